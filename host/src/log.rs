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

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Log lines queued for the writer thread at most; past it, loggers wait (nothing is dropped).
pub const LOG_QUEUE_LINES: usize = 8192;

/// Where access lines go once [`init`] ran, and whether they are coloured.
static ACCESS: OnceLock<(NonBlocking, bool)> = OnceLock::new();

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
        .finish(std::io::BufWriter::with_capacity(64 << 10, std::io::stderr()));
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
