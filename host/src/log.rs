//! The host's log: `tracing` for every event, written to stderr by one background thread, and
//! the access line (one per request) formatted here directly.
//!
//! Lines go into one queue in memory, in order; the writer thread takes what has gathered
//! every [`FLUSH_INTERVAL`] and writes it with one `write`. A logger never wakes it while it is
//! busy: only the first line after the log went quiet does. (Waking the writer for every line,
//! as `tracing-appender` does, cost 4–19 µs of a hello-world request's latency at one
//! connection on 2 cores: 98–107 µs against 79–103 µs with the access log off.)
//!
//! The access line is the one event on the request path, so it skips `tracing`'s generic
//! formatter (field visitors, a `Debug` pass per field: ≈6 % of a hello-world request's CPU)
//! and is written straight into the same queue as every other line, so lines keep their order.
//! It reads exactly as `tracing`'s own format would print it, and obeys the same filter:
//! `RUST_LOG=warn` (or `access=off`) turns it off.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use tracing_subscriber::EnvFilter;

/// Bytes queued for the writer thread at most (≈60,000 access lines); past it, loggers wait
/// for room (nothing is dropped). Twice [`MAX_QUEUED_GUEST_BYTES`], so guest output is
/// dropped before it can fill the queue and stall the workers.
pub const LOG_QUEUE_BYTES: usize = 8 << 20;

/// The queue's memory kept by the writer between rounds; a burst's is given back.
const KEEP_QUEUE_CAPACITY: usize = 256 << 10;

/// How long the writer thread lets lines gather between two writes while lines keep coming:
/// also the longest a line waits before it reaches stderr.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Bytes of guest output (stdout/stderr lines) that may wait for the writer thread: past it,
/// guest lines are dropped and counted until the writer catches up, so a guest that floods its
/// output while the log sink is slow cannot grow host memory (or stall the workers once the
/// queue is full). Host events and access lines are never dropped.
pub const MAX_QUEUED_GUEST_BYTES: i64 = 4 << 20;

/// Where access lines go once [`init`] ran, and whether they are coloured.
static ACCESS: OnceLock<(Queue, bool)> = OnceLock::new();

/// Bytes handed to the writer thread and not yet written by it.
static QUEUED: AtomicI64 = AtomicI64::new(0);

/// Bytes of guest output dropped since the last report of drops.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer found nothing to write and waits for `arrived`.
    writer_waits: bool,
    shutdown: bool,
}

/// The queue shared by loggers and the writer thread.
#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Lines arrived while the writer waited, or shutdown.
    arrived: Condvar,
    /// The writer took the queue (loggers waiting for room may go on).
    taken: Condvar,
}

/// The loggers' end of the writer thread's queue.
#[derive(Clone)]
struct Queue(Arc<Shared>);

impl Queue {
    /// Appends `buf`, waiting while the queue has no room for it.
    fn push(&self, buf: &[u8]) {
        let mut pending = self.0.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while !pending.bytes.is_empty() && pending.bytes.len() + buf.len() > LOG_QUEUE_BYTES {
            pending = self.0.taken.wait(pending).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        pending.bytes.extend_from_slice(buf);
        QUEUED.fetch_add(buf.len() as i64, Ordering::Relaxed);
        if std::mem::take(&mut pending.writer_waits) {
            self.0.arrived.notify_one();
        }
    }
}

impl std::io::Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Queue {
    type Writer = Queue;

    fn make_writer(&'a self) -> Queue {
        self.clone()
    }
}

/// Keeps the writer thread: dropping it writes what is queued and ends the thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).shutdown = true;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: takes what has queued, writes it in one go, lets the next lines gather
/// for [`FLUSH_INTERVAL`]; waits (untimed) once a round finds nothing.
fn write_lines(shared: &Shared, out: &mut impl std::io::Write) {
    let mut taken = Vec::new();
    loop {
        {
            let mut pending = shared.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while pending.bytes.is_empty() {
                if pending.shutdown {
                    return;
                }
                pending.writer_waits = true;
                pending = shared.arrived.wait(pending).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            std::mem::swap(&mut pending.bytes, &mut taken);
            pending.writer_waits = false;
        }
        shared.taken.notify_all();
        // A sink that fails (stderr closed) drops the lines, as any logger would.
        let _ = out.write_all(&taken).and_then(|()| out.flush());
        QUEUED.fetch_sub(taken.len() as i64, Ordering::Relaxed);
        taken.clear();
        if taken.capacity() > KEEP_QUEUE_CAPACITY {
            taken = Vec::new(); // after a burst, do not keep its memory
        }
        std::thread::sleep(FLUSH_INTERVAL);
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
/// in the text format. Keep the guard alive until exit: dropping it writes what is queued.
///
/// # Panics
///
/// If the writer thread cannot be started.
pub fn init(format: Format) -> LogGuard {
    // Log lines are written by a background thread so request tasks never block on stderr;
    // not lossy: when the writer falls behind, loggers wait rather than drop access lines.
    // The thread writes what has queued up in one go: one write per line cost a tenth of the
    // server's CPU at 45k req/s.
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("wasm-host-log".into())
        .spawn({
            let shared = shared.clone();
            move || write_lines(&shared, &mut std::io::stderr())
        })
        .expect("cannot start the log writer thread");
    let guard = LogGuard { shared: shared.clone(), thread: Some(thread) };
    let writer = Queue(shared);
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
    /// The client's address and port (`127.0.0.1:51000`).
    pub peer: &'a str,
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
        writer.push(buf.as_bytes());
    });
}

/// The line `tracing`'s default format prints for the same event (`2026-12-01T23:30:13.924245Z
///  INFO access: method=GET path=/ …`), with its colours when `ansi`. Built with pushes rather
/// than the formatting machinery (it runs once per request on a worker: `write!` per field and
/// the full date formatted each time were 6.5 % of a reuse host's CPU; built this way, hello
/// world at 64 connections did 3 % more requests/s with `--instance-reuse 1000` and 5 % more
/// with fresh instances, three alternated rounds each).
fn format_line(buf: &mut String, line: &Access<'_>, now: std::time::SystemTime, ansi: bool) {
    let (dim, italic, green, reset) =
        if ansi { ("\x1b[2m", "\x1b[3m", "\x1b[32m", "\x1b[0m") } else { ("", "", "", "") };
    let status = line.status.map_or(Field::Text("-"), |s| Field::Number(u64::from(s)));
    let query = if line.query.is_empty() { Field::Text("-") } else { Field::Quoted(line.query) };
    let fields = [
        ("method", Field::Text(line.method)),
        ("path", Field::Quoted(line.path)),
        ("query", query),
        ("status", status),
        ("bytes", Field::Number(line.bytes)),
        ("micros", Field::Number(line.micros)),
        ("route", Field::Quoted(line.route)),
        ("peer", Field::Text(line.peer)),
        ("live", Field::Number(line.live as u64)),
        ("request_id", Field::Text(line.request_id)),
        ("outcome", Field::Text(line.outcome.as_str())),
    ];
    buf.push_str(dim);
    push_timestamp(buf, now);
    for part in [reset, " ", green, " INFO", reset, " ", dim, "access", reset, dim, ":", reset, " "] {
        buf.push_str(part);
    }
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            buf.push(' ');
        }
        for part in [italic, name, reset, dim, "=", reset] {
            buf.push_str(part);
        }
        value.push_to(buf);
    }
    buf.push('\n');
}

/// A field value of the text line.
enum Field<'a> {
    /// As it is.
    Text(&'a str),
    /// Quoted when it has to be ([`push_quoted`]).
    Quoted(&'a str),
    Number(u64),
}

impl Field<'_> {
    fn push_to(self, buf: &mut String) {
        match self {
            Field::Text(text) => buf.push_str(text),
            Field::Quoted(text) => push_quoted(buf, text),
            Field::Number(n) => buf.push_str(itoa::Buffer::new().format(n)),
        }
    }
}

/// `now` as RFC 3339 with microseconds (`2026-12-01T23:30:13.924245Z`, what
/// `humantime::format_rfc3339_micros` writes); the date and time of day are formatted once a
/// second per thread.
fn push_timestamp(buf: &mut String, now: std::time::SystemTime) {
    thread_local! {
        /// The second last formatted, and its text up to the seconds' digits.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != since.as_secs() {
            *second = since.as_secs();
            let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs());
            text.clear();
            let _ = write!(text, "{}", humantime::format_rfc3339_seconds(whole));
            text.pop(); // the `Z`
        }
        buf.push_str(text);
    });
    let mut digits = itoa::Buffer::new();
    let micros = digits.format(since.subsec_micros());
    buf.push('.');
    for _ in micros.len()..6 {
        buf.push('0');
    }
    buf.push_str(micros);
    buf.push('Z');
}

/// The access line as one JSON object, in the shape of `tracing`'s JSON format.
fn format_json(buf: &mut String, line: &Access<'_>, now: std::time::SystemTime) {
    fn string(buf: &mut String, s: &str) {
        // serde_json escapes exactly what JSON needs; a `String` target cannot fail.
        let _ = serde_json::to_writer(StringWriter(buf), s);
    }
    buf.push_str("{\"timestamp\":\"");
    push_timestamp(buf, now);
    buf.push_str("\",\"level\":\"INFO\",\"fields\":{");
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
fn push_quoted(buf: &mut String, value: &str) {
    if value.is_empty() {
        buf.push('-');
        return;
    }
    if !value.bytes().any(|b| matches!(b, b' ' | b'"' | b'\\' | b'=')) {
        buf.push_str(value);
        return;
    }
    buf.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            buf.push('\\');
        }
        buf.push(c);
    }
    buf.push('"');
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

    /// A sink that records what it is given, slowly when `delay` is set.
    #[derive(Clone, Default)]
    struct Sink {
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicU64>,
        delay: Option<std::time::Duration>,
    }

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(d) = self.delay {
                std::thread::sleep(d);
            }
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn writer(sink: &Sink) -> (Queue, LogGuard) {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::spawn({
            let (shared, mut sink) = (shared.clone(), sink.clone());
            move || write_lines(&shared, &mut sink)
        });
        (Queue(shared.clone()), LogGuard { shared, thread: Some(thread) })
    }

    #[test]
    fn every_line_is_written_in_order_and_together_before_the_writer_ends() {
        let sink = Sink::default();
        let (queue, guard) = writer(&sink);
        let expected: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        for line in expected.lines() {
            queue.push(format!("{line}\n").as_bytes());
        }
        drop(guard);
        assert_eq!(String::from_utf8(sink.got.lock().unwrap().clone()).unwrap(), expected);
        // Gathered, not one write per line.
        assert!(sink.writes.load(Ordering::Relaxed) < 2000, "{} writes", sink.writes.load(Ordering::Relaxed));
    }

    #[test]
    fn a_full_queue_makes_loggers_wait_instead_of_dropping_lines() {
        let sink = Sink { delay: Some(std::time::Duration::from_millis(20)), ..Sink::default() };
        let (queue, guard) = writer(&sink);
        let line = vec![b'x'; 64 << 10];
        let lines = 3 * LOG_QUEUE_BYTES / line.len(); // three queues' worth, through a slow sink
        for _ in 0..lines {
            queue.push(&line);
        }
        drop(guard);
        assert_eq!(sink.got.lock().unwrap().len(), lines * line.len());
    }

    fn sample() -> Access<'static> {
        Access {
            method: "GET",
            path: "/users/42",
            query: "",
            status: Some(200),
            bytes: 129,
            micros: 33,
            route: "GET /users/{id}",
            peer: "127.0.0.1:5555",
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
    fn the_timestamp_reads_as_humantime_writes_it_across_seconds_and_small_fractions() {
        let epoch = std::time::UNIX_EPOCH;
        // Same second twice, then the next one, then back: the per-second text follows.
        for micros in
            [1_764_631_813_924_245, 1_764_631_813_000_005, 1_764_631_814_000_000, 0, 1_764_631_813_999_999]
        {
            let at = epoch + std::time::Duration::from_micros(micros);
            let mut buf = String::new();
            push_timestamp(&mut buf, at);
            assert_eq!(buf, humantime::format_rfc3339_micros(at).to_string(), "{micros}");
        }
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
