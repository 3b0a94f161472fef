//! The host's log: `tracing` for every event, written to stderr by one background thread, and
//! the access line (one per request) formatted here directly.
//!
//! The access line is the one event on the request path, so it skips `tracing`'s generic
//! formatter (field visitors, a `Debug` pass per field: ≈6 % of a hello-world request's CPU)
//! and is written straight into the same queue as every other line, so lines keep their order.
//! It reads exactly as `tracing`'s own format would print it, and obeys the same filter:
//! `RUST_LOG=warn` (or `access=off`) turns it off.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Log lines queued for the writer thread at most; past it, loggers wait (nothing is dropped).
pub const LOG_QUEUE_LINES: usize = 8192;

/// Bytes of guest output (stdout/stderr lines) that may wait for the writer thread: past it,
/// guest lines are dropped and counted until the writer catches up, so a guest that floods its
/// output while the log sink is slow cannot grow host memory (or stall the workers once the
/// line queue is full). Host events and access lines are never dropped.
pub const MAX_QUEUED_GUEST_BYTES: i64 = 4 << 20;

/// Where access lines go once [`init`] ran, and whether they are coloured.
static ACCESS: OnceLock<(Queue, bool)> = OnceLock::new();

/// Bytes handed to the writer thread and not yet written by it.
static QUEUED: AtomicI64 = AtomicI64::new(0);

/// Bytes of guest output dropped since the last report of drops.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The writer thread's queue, counting what goes in ([`QUEUED`]).
#[derive(Clone)]
struct Queue(NonBlocking);

impl std::io::Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        QUEUED.fetch_add(buf.len() as i64, Ordering::Relaxed);
        let written = self.0.write(buf);
        let n = written.as_ref().map_or(0, |n| *n);
        QUEUED.fetch_sub((buf.len() - n) as i64, Ordering::Relaxed);
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Queue {
    type Writer = Queue;

    fn make_writer(&'a self) -> Queue {
        self.clone()
    }
}

/// The writer thread's end: counts what leaves the queue.
struct Drain<W>(W);

impl<W: std::io::Write> std::io::Write for Drain<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        QUEUED.fetch_sub(n as i64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Whether a guest output line of `len` bytes may be logged now: false while the writer
/// thread is more than [`MAX_QUEUED_GUEST_BYTES`] behind (the line is dropped and counted).
/// The first line admitted after drops is preceded by a warning with the count.
pub(crate) fn admit_guest_line(len: usize) -> bool {
    if QUEUED.load(Ordering::Relaxed) + len as i64 > MAX_QUEUED_GUEST_BYTES {
        DROPPED.fetch_add(len as u64, Ordering::Relaxed);
        return false;
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(
            target: "guest",
            dropped_bytes = dropped,
            "guest output dropped while the log writer was behind"
        );
    }
    true
}

/// Sets up logging for the binary: `RUST_LOG` filters (default `info`), colours on a terminal.
/// Keep the guard alive until exit: dropping it flushes what is queued.
pub fn init() -> WorkerGuard {
    // Log lines are written by a background thread so request tasks never block on stderr;
    // not lossy: when the writer falls behind, loggers wait rather than drop access lines.
    // The thread writes what has queued up in one go (it flushes when the queue is empty): one
    // write per line cost a tenth of the server's CPU at 45k req/s.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Room for ≈60 ms of access lines at 128k req/s. The default of 128,000 lines is
        // allocated up front (4 MiB, a quarter of an idle host's memory).
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("wasm-host-log")
        .finish(Drain(std::io::BufWriter::with_capacity(64 << 10, std::io::stderr())));
    let writer = Queue(writer);
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(writer.clone())
        .with_ansi(ansi)
        .init();
    let _ = ACCESS.set((writer, ansi));
    guard
}

/// One request, as the access log records it.
pub struct Access<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request path (without the query).
    pub path: &'a str,
    /// The status sent; `None` when nothing was (the handler or the client closed).
    pub status: Option<u16>,
    /// Bytes on the wire, head included.
    pub bytes: u64,
    /// From the head's arrival to the end of the response.
    pub micros: u64,
    /// The route that answered (`GET /users/{id}`, `static`), `-` when none did.
    pub route: &'a str,
    /// The client.
    pub peer: SocketAddr,
    /// Instances alive when the line was written.
    pub live: usize,
}

/// Writes the access line for one request (target `access`, level INFO), if that is enabled.
pub fn access(line: &Access<'_>) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    let Some((writer, ansi)) = ACCESS.get() else {
        // A library user (or a test) with its own subscriber gets an ordinary event.
        tracing::info!(
            target: "access",
            method = %line.method, path = %line.path, status = %Status(line.status), bytes = line.bytes,
            micros = line.micros, route = %line.route, peer = %line.peer, live = line.live,
        );
        return;
    };
    thread_local! {
        static BUF: RefCell<String> = RefCell::new(String::with_capacity(256));
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        format_line(buf, line, std::time::SystemTime::now(), *ansi);
        // Only fails when the log thread is gone (at exit), like any other line then.
        // (A clone per line is what `tracing` does too: `MakeWriter` for `NonBlocking`.)
        let _ = writer.clone().write_all(buf.as_bytes());
    });
}

/// The line `tracing`'s default format prints for the same event (`2026-12-01T23:30:13.924245Z
///  INFO access: method=GET path=/ …`), with its colours when `ansi`.
fn format_line(buf: &mut String, line: &Access<'_>, now: std::time::SystemTime, ansi: bool) {
    let (dim, italic, green, reset) =
        if ansi { ("\x1b[2m", "\x1b[3m", "\x1b[32m", "\x1b[0m") } else { ("", "", "", "") };
    let fields: [(&str, &dyn std::fmt::Display); 8] = [
        ("method", &line.method),
        ("path", &line.path),
        ("status", &Status(line.status)),
        ("bytes", &line.bytes),
        ("micros", &line.micros),
        ("route", &line.route),
        ("peer", &line.peer),
        ("live", &line.live),
    ];
    let _ = write!(
        buf,
        "{dim}{}{reset} {green} INFO{reset} {dim}access{reset}{dim}:{reset} ",
        humantime::format_rfc3339_micros(now)
    );
    for (i, (name, value)) in fields.into_iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(buf, "{sep}{italic}{name}{reset}{dim}={reset}{value}");
    }
    buf.push('\n');
}

/// A status for the access log: `-` when none was sent.
pub(crate) struct Status(pub(crate) Option<u16>);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(status) => write!(f, "{status}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Access<'static> {
        Access {
            method: "GET",
            path: "/users/42",
            status: Some(200),
            bytes: 129,
            micros: 33,
            route: "GET /users/{id}",
            peer: "127.0.0.1:5555".parse().unwrap(),
            live: 1,
        }
    }

    #[test]
    fn access_line_reads_like_tracings_own_format() {
        let mut buf = String::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_631_813_924_245);
        format_line(&mut buf, &sample(), at, false);
        assert_eq!(
            buf,
            "2025-12-01T23:30:13.924245Z  INFO access: method=GET path=/users/42 status=200 bytes=129 \
             micros=33 route=GET /users/{id} peer=127.0.0.1:5555 live=1\n"
        );
    }

    #[test]
    fn access_line_without_a_status_says_dash() {
        let mut buf = String::new();
        format_line(&mut buf, &Access { status: None, ..sample() }, std::time::UNIX_EPOCH, false);
        assert!(buf.contains(" status=- "), "{buf}");
    }
}
