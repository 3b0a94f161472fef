//! What the host counts for its operators, and the Prometheus text exposition of it (format
//! 0.0.4), served as `GET /metrics` on `--admin-listen` by `server/admin.rs`.
//!
//! Owns the counters and their text format; knows nothing of HTTP, sockets or wasm. `conn`
//! reports each request ([`Metrics::request`]: route label, status, duration) and each head it
//! refused ([`Metrics::rejected`]); `server` wraps each accepted connection
//! ([`Metrics::connection`], then [`ConnectionGuard::meter`]), whose stream counts the bytes
//! it moves; `site` reports each reload ([`Metrics::reloaded`]). Gauges kept elsewhere (live
//! instances, the pool) are read at scrape time by `server/admin.rs` and written with the same
//! [`Exposition`].
//!
//! The request path takes no lock and writes no cache line another worker writes:
//! - Every counter is split into stripes, one per worker thread (a thread picks its stripe
//!   once, round-robin), each on cache lines of its own; a scrape adds the stripes up.
//! - A request finds its route's counters in a copy-on-write map (`ArcSwap`: one lock-free
//!   load and a hash lookup); only the first request of a route label takes the map's lock,
//!   to add it. Labels come from the route table (`METHOD /pattern`, `static`, `-`), never
//!   from a request's path, so the map is as large as the site.
//! - Exact statuses go in a few slots per stripe, each one word (status and count), claimed
//!   with one compare-and-swap by the first request of that status; a route that answers more
//!   distinct statuses than a stripe has slots counts the rest under a lock of its own.
//!
//! Written here rather than with a crate: `prometheus-client`'s label families take a read
//! lock on one shared map for every increment, and `metrics` + `metrics-exporter-prometheus`
//! hash a label key into a sharded registry per call and keep every histogram sample until the
//! next scrape or upkeep; the text format is small, and doing it here keeps one striped update
//! per request.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{Display, Write as _};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request duration histogram's buckets: as exposed (`le`, seconds) and in
/// microseconds. A hello-world request takes 0.3–0.5 ms here, so the first bucket tells the
/// fast path from the rest; 10 s is a third of `--request-timeout`. Streamed responses (SSE,
/// long downloads) count until their end and mostly land in `+Inf`.
pub const DURATION_BUCKETS: [(&str, u64); 14] = [
    ("0.0005", 500),
    ("0.001", 1_000),
    ("0.0025", 2_500),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("5", 5_000_000),
    ("10", 10_000_000),
];

/// Distinct statuses one stripe of a route counts without a lock. A route answers a handful
/// (200, 304, 404 from its handler, 500/503/504 from the host); one cache line holds eight.
pub const STATUS_SLOTS: usize = 8;

/// Stripes at most: past 64 worker threads, threads share stripes (still correct: every
/// update is atomic).
pub const MAX_STRIPES: usize = 64;

/// The status recorded for a request that got no response (the handler or the client closed);
/// exposed as `status="-"`, as the access log writes it.
const NO_STATUS: u16 = 0;

/// A slot's low bits count, its high 16 bits hold the status.
const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Why a request to a handler failed, the `reason` label of
/// `wasm_host_handler_failures_total`. `conn` decides which failure is which; this module only
/// counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The guest trapped (`unreachable`, an out-of-bounds access, its stack ran out).
    Trap,
    /// The guest panicked.
    Panic,
    /// The guest tried to grow its memory past `--max-memory`.
    OutOfMemory,
    /// A call ran past `--cpu-timeout`.
    CpuTimeout,
    /// The request or a pull ran past its wall-clock deadline.
    Deadline,
    /// A response (or a stream) that broke the contract: an invalid head, a bad event, a
    /// `sized` body of the wrong length, a misplaced flow, a `wasi:http` error code.
    BadResponse,
    /// No instance: `--max-instances` or `--route-max-instances` reached, or instantiation
    /// failed.
    Busy,
    /// The handler file is broken (it did not load or build) and answers 503.
    Unavailable,
}

impl FailureReason {
    /// Every reason, in the order the exposition lists them.
    pub const ALL: [FailureReason; 8] = [
        Self::Trap,
        Self::Panic,
        Self::OutOfMemory,
        Self::CpuTimeout,
        Self::Deadline,
        Self::BadResponse,
        Self::Busy,
        Self::Unavailable,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::Panic => "panic",
            Self::OutOfMemory => "out_of_memory",
            Self::CpuTimeout => "cpu_timeout",
            Self::Deadline => "deadline",
            Self::BadResponse => "bad_response",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Everything the host counts. Cheap to update from any thread; read by [`render`](Self::render).
pub struct Metrics {
    /// Stripes per counter, less one (a power of two, so this masks a thread's index).
    mask: usize,
    /// Per route label: its counters.
    routes: ArcSwap<HashMap<Arc<str>, Arc<RouteMetrics>>>,
    /// Held while a new route label is added to `routes`.
    adding: Mutex<()>,
    /// Request heads refused before any routing, by status (their histogram stays empty).
    rejected: RouteMetrics,
    /// Bytes and connections, per stripe.
    io: Box<[IoStripe]>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Handler failures by [`FailureReason`] (index in `FailureReason::ALL`): a failing
    /// request is already the slow path, one shared counter each is enough.
    failures: [AtomicU64; FailureReason::ALL.len()],
    /// Requests parked now (`subscription.park`): waiting without an instance. Only parking
    /// requests touch it, and they are about to wait.
    parked: AtomicU64,
}

/// One route label's counters: a stripe per worker thread, and the statuses no stripe had a
/// slot for.
struct RouteMetrics {
    stripes: Box<[RouteStripe]>,
    overflow: Mutex<BTreeMap<u16, u64>>,
}

/// One thread's share of a route's counters, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct RouteStripe {
    statuses: StatusSlots,
    /// Requests per duration bucket (not cumulative; the last one is `+Inf`).
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    /// Sum of the durations, in microseconds (overflows after 584,000 years of requests).
    sum_micros: AtomicU64,
}

/// Up to [`STATUS_SLOTS`] exact statuses with their counts, one word each (status in the high
/// 16 bits, count below); 0 is a free slot.
#[derive(Default)]
struct StatusSlots([AtomicU64; STATUS_SLOTS]);

/// One thread's share of the connection counters.
#[derive(Default)]
#[repr(align(128))]
struct IoStripe {
    received: AtomicU64,
    sent: AtomicU64,
    opened: AtomicU64,
    closed: AtomicU64,
}

/// The stripe index of the calling thread: threads are numbered in the order they first count
/// something, so the first worker threads get stripes of their own.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.with(|i| *i)
}

impl StatusSlots {
    /// Counts one `status`; false when every slot holds another status.
    fn add(&self, status: u16) -> bool {
        let tag = u64::from(status) << COUNT_BITS;
        for slot in &self.0 {
            let mut seen = slot.load(Relaxed);
            if seen == 0 {
                match slot.compare_exchange(0, tag | 1, Relaxed, Relaxed) {
                    Ok(_) => return true,
                    Err(now) => seen = now,
                }
            }
            if seen & !COUNT_MASK == tag {
                slot.fetch_add(1, Relaxed);
                return true;
            }
        }
        false
    }

    /// Adds every counted status into `into`.
    fn sum_into(&self, into: &mut BTreeMap<u16, u64>) {
        for slot in &self.0 {
            let v = slot.load(Relaxed);
            if v != 0 {
                *into.entry((v >> COUNT_BITS) as u16).or_default() += v & COUNT_MASK;
            }
        }
    }
}

impl RouteMetrics {
    fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes).map(|_| RouteStripe::default()).collect(),
            overflow: Mutex::new(BTreeMap::new()),
        }
    }

    fn count_status(&self, stripe: usize, status: u16) {
        if !self.stripes[stripe].statuses.add(status) {
            *self.overflow.lock().unwrap_or_else(PoisonError::into_inner).entry(status).or_default() += 1;
        }
    }

    fn record(&self, stripe: usize, status: u16, elapsed: Duration) {
        self.count_status(stripe, status);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let s = &self.stripes[stripe];
        s.buckets[bucket_of(micros)].fetch_add(1, Relaxed);
        s.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Requests per status, all stripes added up.
    fn statuses(&self) -> BTreeMap<u16, u64> {
        let mut all = self.overflow.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for stripe in &self.stripes {
            stripe.statuses.sum_into(&mut all);
        }
        all
    }

    /// Cumulative bucket counts (the last is `+Inf`, the count) and the sum in microseconds.
    fn histogram(&self) -> ([u64; DURATION_BUCKETS.len() + 1], u64) {
        let mut buckets = [0; DURATION_BUCKETS.len() + 1];
        let mut sum = 0u64;
        for stripe in &self.stripes {
            for (total, n) in buckets.iter_mut().zip(&stripe.buckets) {
                *total += n.load(Relaxed);
            }
            sum = sum.wrapping_add(stripe.sum_micros.load(Relaxed));
        }
        let mut running = 0;
        for b in &mut buckets {
            running += *b;
            *b = running;
        }
        (buckets, sum)
    }
}

/// The bucket of a duration: the first whose bound it does not exceed (`le` is inclusive).
fn bucket_of(micros: u64) -> usize {
    DURATION_BUCKETS.partition_point(|&(_, le)| le < micros)
}

impl Metrics {
    /// Counters striped for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        let stripes = workers.clamp(1, MAX_STRIPES).next_power_of_two();
        Self {
            mask: stripes - 1,
            routes: ArcSwap::from_pointee(HashMap::new()),
            adding: Mutex::new(()),
            rejected: RouteMetrics::new(stripes),
            io: (0..stripes).map(|_| IoStripe::default()).collect(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            failures: Default::default(),
            parked: AtomicU64::new(0),
        }
    }

    fn stripe(&self) -> usize {
        thread_index() & self.mask
    }

    /// Counts one answered request: `route` is the access log's route label (`GET /users/{id}`,
    /// `static`, `-`), `status` the status sent (`None`: nothing was), `elapsed` the time from
    /// its head to the end of its response.
    pub fn request(&self, route: &str, status: Option<u16>, elapsed: Duration) {
        let stripe = self.stripe();
        let status = status.unwrap_or(NO_STATUS);
        if let Some(counters) = self.routes.load().get(route) {
            counters.record(stripe, status, elapsed);
            return;
        }
        self.add_route(route).record(stripe, status, elapsed);
    }

    /// The counters of a route label seen for the first time (or added meanwhile).
    #[cold]
    fn add_route(&self, route: &str) -> Arc<RouteMetrics> {
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.routes.load_full();
        if let Some(counters) = current.get(route) {
            return counters.clone();
        }
        let counters = Arc::new(RouteMetrics::new(self.mask + 1));
        let mut next = HashMap::clone(&current);
        next.insert(route.into(), counters.clone());
        self.routes.store(Arc::new(next));
        counters
    }

    /// Counts a request head refused before routing (malformed, too large, too slow), with
    /// the status it was answered (`None`: nothing was sent).
    pub fn rejected(&self, status: Option<u16>) {
        self.rejected.count_status(self.stripe(), status.unwrap_or(NO_STATUS));
    }

    /// Counts a rescan of the routes directory: whether it swapped in a new table, and whether
    /// anything failed (the tree could not be read, or a changed handler file did not load).
    /// A rescan that did neither (nothing changed) is not a reload.
    pub fn reloaded(&self, swapped: bool, failed: bool) {
        if swapped || failed {
            self.reloads.fetch_add(1, Relaxed);
        }
        if failed {
            self.reload_failures.fetch_add(1, Relaxed);
        }
    }

    /// Counts a request whose handler failed, and why (its status is counted by
    /// [`request`](Self::request) as for any other).
    pub fn handler_failed(&self, reason: FailureReason) {
        self.failures[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts an accepted connection, open until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.io[self.stripe()].opened.fetch_add(1, Relaxed);
        ConnectionGuard { metrics: self.clone() }
    }

    /// Counts a parked request, parked until the guard is dropped.
    pub fn parked(self: &Arc<Self>) -> ParkedGuard {
        self.parked.fetch_add(1, Relaxed);
        ParkedGuard { metrics: self.clone() }
    }

    /// Appends every counter of this registry to `out`.
    pub fn render(&self, out: &mut Exposition) {
        let routes: BTreeMap<Arc<str>, Arc<RouteMetrics>> =
            self.routes.load().iter().map(|(k, v)| (k.clone(), v.clone())).collect();

        out.family(
            "wasm_host_requests_total",
            Kind::Counter,
            "Requests answered, by route (the access log's route: METHOD /pattern, static, or - \
             when none matched) and status (- when none was sent).",
        );
        for (route, counters) in &routes {
            for (status, n) in counters.statuses() {
                out.sample(
                    "wasm_host_requests_total",
                    &[("route", route), ("status", &status_label(status))],
                    n,
                );
            }
        }

        let name = "wasm_host_request_duration_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Time from a request's head to the end of its response (a streamed one included), by route.",
        );
        for (route, counters) in &routes {
            let (buckets, sum) = counters.histogram();
            let les = DURATION_BUCKETS.iter().map(|(le, _)| *le).chain(["+Inf"]);
            for (le, n) in les.zip(buckets) {
                out.sample("wasm_host_request_duration_seconds_bucket", &[("route", route), ("le", le)], n);
            }
            out.sample("wasm_host_request_duration_seconds_sum", &[("route", route)], sum as f64 / 1e6);
            out.sample(
                "wasm_host_request_duration_seconds_count",
                &[("route", route)],
                buckets[buckets.len() - 1],
            );
        }

        out.family(
            "wasm_host_rejected_requests_total",
            Kind::Counter,
            "Request heads refused before routing (malformed, too large, too slow), by status.",
        );
        for (status, n) in self.rejected.statuses() {
            out.sample("wasm_host_rejected_requests_total", &[("status", &status_label(status))], n);
        }

        let sum = |f: fn(&IoStripe) -> &AtomicU64| self.io.iter().map(|s| f(s).load(Relaxed)).sum::<u64>();
        // Closes first: a connection counted as closed was opened before, so open never dips below 0.
        let closed = sum(|s| &s.closed);
        let opened = sum(|s| &s.opened);
        let counters: [(&str, Kind, &str, u64); 7] = [
            (
                "wasm_host_received_bytes_total",
                Kind::Counter,
                "Bytes read from clients on the public listener (request heads and bodies; TLS: after decryption).",
                sum(|s| &s.received),
            ),
            (
                "wasm_host_sent_bytes_total",
                Kind::Counter,
                "Bytes written to clients on the public listener (response heads and bodies; TLS: before encryption).",
                sum(|s| &s.sent),
            ),
            (
                "wasm_host_connections_accepted_total",
                Kind::Counter,
                "Connections accepted on the public listener.",
                opened,
            ),
            (
                "wasm_host_connections_open",
                Kind::Gauge,
                "Connections open on the public listener.",
                opened.saturating_sub(closed),
            ),
            (
                "wasm_host_parked_requests",
                Kind::Gauge,
                "Requests parked on a topic (subscription.park): waiting for a message without an instance.",
                self.parked.load(Relaxed),
            ),
            (
                "wasm_host_reloads_total",
                Kind::Counter,
                "Rescans of the routes directory that swapped in a new route table or failed.",
                self.reloads.load(Relaxed),
            ),
            (
                "wasm_host_reload_failures_total",
                Kind::Counter,
                "Rescans in which the tree could not be read or a changed handler file did not load.",
                self.reload_failures.load(Relaxed),
            ),
        ];
        for (name, kind, help, value) in counters {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
        let name = "wasm_host_handler_failures_total";
        out.family(name, Kind::Counter, "Requests whose handler failed, by reason (the log line says more).");
        for (reason, n) in FailureReason::ALL.iter().zip(&self.failures) {
            out.sample(name, &[("reason", reason.as_str())], n.load(Relaxed));
        }
    }
}

fn status_label(status: u16) -> String {
    if status == NO_STATUS { "-".to_owned() } else { status.to_string() }
}

/// A parked request, counted until dropped.
pub struct ParkedGuard {
    metrics: Arc<Metrics>,
}

impl Drop for ParkedGuard {
    fn drop(&mut self) {
        self.metrics.parked.fetch_sub(1, Relaxed);
    }
}

/// An accepted connection, counted as open until dropped. [`meter`](Self::meter) wraps the
/// stream it is served on, so the bytes it moves are counted too.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
}

impl ConnectionGuard {
    /// `stream`, counting the bytes read from and written to it, and holding this guard.
    pub fn meter<S>(self, stream: S) -> Metered<S> {
        Metered { stream, guard: self }
    }

    fn io(&self) -> &IoStripe {
        &self.metrics.io[self.metrics.stripe()]
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.io().closed.fetch_add(1, Relaxed);
    }
}

/// A stream whose bytes in and out are counted ([`ConnectionGuard::meter`]); otherwise it is
/// `S`, vectored writes included.
pub struct Metered<S> {
    stream: S,
    guard: ConnectionGuard,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            this.guard.io().received.fetch_add(n as u64, Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> Metered<S> {
    fn count_sent(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = poll
            && n > 0
        {
            self.guard.io().sent.fetch_add(n as u64, Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.count_sent(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.count_sent(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A metric family's type (`# TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// `_bucket{le=…}`, `_sum` and `_count` samples.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A Prometheus text exposition (format 0.0.4) being written: families, each a `# HELP` and
/// a `# TYPE` line followed by its samples. Names are the caller's (valid metric and label
/// names); help texts and label values are escaped here.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self { text: String::with_capacity(4096) }
    }

    /// Starts the family `name`; its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        push_escaped(&mut self.text, help, false);
        let _ = writeln!(self.text, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{label="value",…} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(label);
                self.text.push_str("=\"");
                push_escaped(&mut self.text, v, true);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// The text written so far.
    pub fn into_text(self) -> String {
        self.text
    }
}

/// Appends `value` escaped as the text format asks: backslash and line feed always, the
/// double quote inside label values (`quoted`).
fn push_escaped(out: &mut String, value: &str, quoted: bool) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quoted => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &Metrics) -> String {
        let mut out = Exposition::new();
        m.render(&mut out);
        out.into_text()
    }

    fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut out = Exposition::new();
        out.sample("m", &[("route", "GET /a\"b\\c\nd"), ("x", "plain")], 1);
        assert_eq!(out.into_text(), "m{route=\"GET /a\\\"b\\\\c\\nd\",x=\"plain\"} 1\n");
    }

    #[test]
    fn help_escapes_backslash_and_newline_but_not_quotes() {
        let mut out = Exposition::new();
        out.family("m", Kind::Gauge, "a \"b\" c\\d\ne");
        assert_eq!(out.into_text(), "# HELP m a \"b\" c\\\\d\\ne\n# TYPE m gauge\n");
    }

    #[test]
    fn requests_are_counted_by_route_and_exact_status() {
        let m = Metrics::new(2);
        for _ in 0..3 {
            m.request("GET /users/{id}", Some(200), Duration::from_micros(100));
        }
        m.request("GET /users/{id}", Some(404), Duration::from_micros(100));
        m.request("-", Some(404), Duration::from_micros(100));
        m.request("-", None, Duration::from_micros(100));
        let text = rendered(&m);
        assert_eq!(
            lines_with(&text, "wasm_host_requests_total{"),
            [
                "wasm_host_requests_total{route=\"-\",status=\"-\"} 1",
                "wasm_host_requests_total{route=\"-\",status=\"404\"} 1",
                "wasm_host_requests_total{route=\"GET /users/{id}\",status=\"200\"} 3",
                "wasm_host_requests_total{route=\"GET /users/{id}\",status=\"404\"} 1",
            ]
        );
    }

    #[test]
    fn handler_failures_are_exposed_by_reason_every_reason_listed() {
        for (i, reason) in FailureReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "ALL is in declaration order");
        }
        let m = Metrics::new(2);
        m.handler_failed(FailureReason::Trap);
        m.handler_failed(FailureReason::Trap);
        m.handler_failed(FailureReason::CpuTimeout);
        let text = rendered(&m);
        let lines = lines_with(&text, "wasm_host_handler_failures_total{");
        assert_eq!(lines.len(), FailureReason::ALL.len(), "{text}");
        assert!(lines.contains(&"wasm_host_handler_failures_total{reason=\"trap\"} 2"), "{text}");
        assert!(lines.contains(&"wasm_host_handler_failures_total{reason=\"cpu_timeout\"} 1"), "{text}");
        assert!(lines.contains(&"wasm_host_handler_failures_total{reason=\"panic\"} 0"), "{text}");
    }

    #[test]
    fn more_statuses_than_slots_are_all_counted() {
        let m = Metrics::new(1);
        let statuses: Vec<u16> = (200..200 + STATUS_SLOTS as u16 + 3).collect();
        for &s in &statuses {
            m.request("r", Some(s), Duration::ZERO);
            m.request("r", Some(s), Duration::ZERO);
        }
        let counted = m.routes.load()["r"].statuses();
        assert_eq!(counted, statuses.iter().map(|&s| (s, 2)).collect::<BTreeMap<_, _>>());
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let m = Metrics::new(1);
        m.request("r", Some(200), Duration::from_micros(500)); // le="0.0005" exactly
        m.request("r", Some(200), Duration::from_micros(501)); // le="0.001"
        m.request("r", Some(200), Duration::from_secs(11)); // +Inf only
        let text = rendered(&m);
        let bucket = |le: &str| {
            let prefix = format!("wasm_host_request_duration_seconds_bucket{{route=\"r\",le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("{le}: {text}"))
                .to_owned()
        };
        assert_eq!(bucket("0.0005"), "1");
        assert_eq!(bucket("0.001"), "2");
        assert_eq!(bucket("10"), "2");
        assert_eq!(bucket("+Inf"), "3");
        assert!(text.contains("wasm_host_request_duration_seconds_count{route=\"r\"} 3\n"), "{text}");
        assert!(text.contains("wasm_host_request_duration_seconds_sum{route=\"r\"} 11.001001\n"), "{text}");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let m = Arc::new(Metrics::new(2));
        m.request("GET /", Some(200), Duration::from_millis(1));
        m.rejected(Some(400));
        m.reloaded(true, false);
        drop(m.connection());
        let text = rendered(&m);
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest.split(' ').next(), declared.last().map(String::as_str), "{line}");
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = declared.last().unwrap();
                assert!(name.starts_with(family.as_str()), "{name} outside its family {family}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(text.contains("wasm_host_rejected_requests_total{status=\"400\"} 1\n"), "{text}");
        assert!(text.contains("wasm_host_reloads_total 1\n"), "{text}");
        assert!(text.contains("wasm_host_connections_accepted_total 1\n"), "{text}");
        assert!(text.contains("wasm_host_connections_open 0\n"), "{text}");
    }

    #[test]
    fn a_reload_that_changed_nothing_is_not_counted() {
        let m = Metrics::new(1);
        m.reloaded(false, false);
        m.reloaded(true, false);
        m.reloaded(false, true);
        m.reloaded(true, true);
        assert_eq!((m.reloads.load(Relaxed), m.reload_failures.load(Relaxed)), (3, 2));
    }

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let m = Arc::new(Metrics::new(2));
        std::thread::scope(|scope| {
            for t in 0..4u16 {
                let m = &m;
                scope.spawn(move || {
                    for i in 0..10_000u16 {
                        m.request(
                            if i % 2 == 0 { "a" } else { "b" },
                            Some(200 + t),
                            Duration::from_micros(1),
                        );
                    }
                });
            }
        });
        for route in ["a", "b"] {
            let counters = m.routes.load()[route].clone();
            assert_eq!(counters.statuses(), (200..204).map(|s| (s, 5_000)).collect::<BTreeMap<_, _>>());
            assert_eq!(counters.histogram().0[DURATION_BUCKETS.len()], 20_000);
        }
    }

    #[tokio::test]
    async fn a_metered_stream_counts_bytes_both_ways_and_closes_the_connection() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let m = Arc::new(Metrics::new(1));
        let (near, mut far) = tokio::io::duplex(64);
        let mut metered = m.connection().meter(near);
        far.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        metered.read_exact(&mut buf).await.unwrap();
        let parts = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cde")];
        let n = metered.write_vectored(&parts).await.unwrap();
        metered.write_all(&b"abcde"[n..]).await.unwrap();
        let text = rendered(&m);
        assert!(text.contains("wasm_host_received_bytes_total 5\n"), "{text}");
        assert!(text.contains("wasm_host_sent_bytes_total 5\n"), "{text}");
        assert!(text.contains("wasm_host_connections_open 1\n"), "{text}");
        drop(metered);
        assert!(rendered(&m).contains("wasm_host_connections_open 0\n"));
    }
}
