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

tokio::task_local! {
    /// The id of the request the current task is answering (`conn` sets it per exchange).
    static REQUEST_ID: crate::http::request_id::RequestId;
}

/// Runs `exchange` as the answer to the request `id`: every line logged while it runs (guest
/// output, failures) shows [`CurrentRequest`]. A task-local, not a `tracing` span: entering a
/// span on every poll cost a tenth of hello world's rate.
///
/// A plain function returning the scope's future, not an `async fn`: an `async fn` would keep
/// `exchange` as its argument beside the scope it is moved into, doubling the size of every
/// connection's task (each parked request holds one).
pub fn in_request<F: Future>(
    id: crate::http::request_id::RequestId,
    exchange: F,
) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, exchange)
}

/// Displays the id of the request being answered, `-` outside one: a log field
/// (`request_id = %CurrentRequest`).
pub struct CurrentRequest;

impl std::fmt::Display for CurrentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        REQUEST_ID.try_with(|id| f.write_str(id.as_str())).unwrap_or_else(|_| f.write_str("-"))
    }
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `tracing`'s text lines, `key=value` fields; colours on a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// Where access lines go once [`init`] ran, and how they are written.
static ACCESS_FORMAT: OnceLock<Format> = OnceLock::new();

/// Sets up logging for the binary: `RUST_LOG` filters (default `info`), colours on a terminal
/// in the text format. Keep the guard alive until exit: dropping it flushes what is queued.
pub fn init(format: Format) -> WorkerGuard {
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
    let ansi = format == Format::Text && std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer.clone());
    match format {
        Format::Text => builder.with_ansi(ansi).init(),
        Format::Json => builder.json().init(),
    }
    let _ = ACCESS.set((writer, ansi));
    let _ = ACCESS_FORMAT.set(format);
    guard
}

/// One request, as the access log records it.
pub struct Access<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request path (without the query), as sent.
    pub path: &'a str,
    /// The query without the `?`, as sent; empty when there is none.
    pub query: &'a str,
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
    /// The request's id (`x-request-id`).
    pub request_id: &'a str,
    /// How the exchange ended.
    pub outcome: Ending,
}

/// How an exchange ended, for the access line's `outcome` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The whole response was sent.
    Complete,
    /// The response head went out but not the whole body: the connection was aborted (a
    /// handler failure mid-stream, a client that left or read too slowly).
    Aborted,
    /// Nothing was sent: the handler closed the connection, or the client left first.
    Closed,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::Aborted => "aborted",
            Ending::Closed => "closed",
        }
    }
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
            method = %line.method, path = %line.path, query = %line.query, status = %Status(line.status),
            bytes = line.bytes, micros = line.micros, route = %line.route, peer = %line.peer, live = line.live,
            request_id = %line.request_id, outcome = line.outcome.as_str(),
        );
        return;
    };
    let json = ACCESS_FORMAT.get() == Some(&Format::Json);
    thread_local! {
        static BUF: RefCell<String> = RefCell::new(String::with_capacity(256));
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        if json {
            format_json(buf, line, std::time::SystemTime::now());
        } else {
            format_line(buf, line, std::time::SystemTime::now(), *ansi);
        }
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
    let query = Quoted(line.query);
    let fields: [(&str, &dyn std::fmt::Display); 11] = [
        ("method", &line.method),
        ("path", &Quoted(line.path)),
        ("query", if line.query.is_empty() { &"-" } else { &query }),
        ("status", &Status(line.status)),
        ("bytes", &line.bytes),
        ("micros", &line.micros),
        ("route", &Quoted(line.route)),
        ("peer", &line.peer),
        ("live", &line.live),
        ("request_id", &line.request_id),
        ("outcome", &line.outcome.as_str()),
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

/// The access line as one JSON object, in the shape of `tracing`'s JSON format.
fn format_json(buf: &mut String, line: &Access<'_>, now: std::time::SystemTime) {
    fn string(buf: &mut String, s: &str) {
        // serde_json escapes exactly what JSON needs; a `String` target cannot fail.
        let _ = serde_json::to_writer(StringWriter(buf), s);
    }
    let _ = write!(
        buf,
        "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"fields\":{{",
        humantime::format_rfc3339_micros(now)
    );
    buf.push_str("\"method\":");
    string(buf, line.method);
    buf.push_str(",\"path\":");
    string(buf, line.path);
    buf.push_str(",\"query\":");
    string(buf, line.query);
    match line.status {
        Some(status) => {
            let _ = write!(buf, ",\"status\":{status}");
        }
        None => buf.push_str(",\"status\":null"),
    }
    let _ = write!(buf, ",\"bytes\":{},\"micros\":{},\"route\":", line.bytes, line.micros);
    string(buf, line.route);
    let _ = write!(buf, ",\"peer\":\"{}\",\"live\":{},\"request_id\":", line.peer, line.live);
    string(buf, line.request_id);
    let _ = write!(buf, ",\"outcome\":\"{}\"}},\"target\":\"access\"}}", line.outcome.as_str());
    buf.push('\n');
}

/// `serde_json`'s writer into a `String` (it only ever writes UTF-8).
struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
        self.0.push_str(text);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A field value for the text line, in double quotes (with `"` and `\` escaped) when it has a
/// space, a quote, a backslash or an `=`, bare otherwise; `-` when empty.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.0;
        if value.is_empty() {
            return f.write_str("-");
        }
        if !value.bytes().any(|b| matches!(b, b' ' | b'"' | b'\\' | b'=')) {
            return f.write_str(value);
        }
        f.write_str("\"")?;
        for c in value.chars() {
            if matches!(c, '"' | '\\') {
                f.write_str("\\")?;
            }
            std::fmt::Write::write_char(f, c)?;
        }
        f.write_str("\"")
    }
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
            query: "",
            status: Some(200),
            bytes: 129,
            micros: 33,
            route: "GET /users/{id}",
            peer: "127.0.0.1:5555".parse().unwrap(),
            live: 1,
            request_id: "0123456789abcdef",
            outcome: Ending::Complete,
        }
    }

    #[test]
    fn access_line_reads_like_tracings_own_format() {
        let mut buf = String::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_631_813_924_245);
        format_line(&mut buf, &sample(), at, false);
        assert_eq!(
            buf,
            "2025-12-01T23:30:13.924245Z  INFO access: method=GET path=/users/42 query=- status=200 bytes=129 \
             micros=33 route=\"GET /users/{id}\" peer=127.0.0.1:5555 live=1 request_id=0123456789abcdef \
             outcome=complete\n"
        );
    }

    #[test]
    fn values_with_spaces_quotes_or_equals_signs_are_quoted_and_escaped() {
        let mut buf = String::new();
        let line = Access { query: "a=\"b c\"\\", outcome: Ending::Aborted, ..sample() };
        format_line(&mut buf, &line, std::time::UNIX_EPOCH, false);
        assert!(buf.contains(r#" query="a=\"b c\"\\" "#), "{buf}");
        assert!(buf.ends_with(" outcome=aborted\n"), "{buf}");
    }

    #[test]
    fn the_json_access_line_is_one_object_with_every_field() {
        let mut buf = String::new();
        let line = Access { query: "q=\"1\"", status: None, outcome: Ending::Closed, ..sample() };
        format_json(&mut buf, &line, std::time::UNIX_EPOCH);
        assert_eq!(buf.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(v["target"], "access");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000Z");
        let f = &v["fields"];
        assert_eq!(f["query"], "q=\"1\"");
        assert_eq!(f["status"], serde_json::Value::Null);
        assert_eq!(f["route"], "GET /users/{id}");
        assert_eq!(f["bytes"], 129);
        assert_eq!(f["request_id"], "0123456789abcdef");
        assert_eq!(f["outcome"], "closed");
    }

    #[test]
    fn access_line_without_a_status_says_dash() {
        let mut buf = String::new();
        format_line(&mut buf, &Access { status: None, ..sample() }, std::time::UNIX_EPOCH, false);
        assert!(buf.contains(" status=- "), "{buf}");
    }
}
