//! The per-request store state: the WASI context (which grants nothing but clocks, random and
//! stdout/stderr), the resource table, memory limits and the CPU-budget counter, plus the
//! stdout/stderr streams that turn guest output into log lines prefixed by the route.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything a guest instance's `Store` carries.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory and table limits, enforced by the store's limiter.
    pub(crate) limits: GuestLimits,
    /// The panic the guest reported on stderr, if any (Rust's panic message and location).
    pub(crate) panic: Arc<Mutex<Option<GuestPanic>>>,
    /// How long the current call has run (`cpu.rs`), shared with the call's future.
    pub(crate) cpu: Arc<super::cpu::CpuClock>,
    /// How long one call may run before it is interrupted (`--cpu-timeout`).
    pub(crate) cpu_budget: std::time::Duration,
    /// Set when a call was interrupted for exceeding its CPU budget.
    pub(crate) cpu_exceeded: bool,
    /// state: the shared services and the current call's deadline (`runtime/services.rs`).
    pub(crate) services: super::services::RequestServices,
    /// `wasi:http` components: the context of `wasmtime-wasi-http` and its hooks.
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_grants: super::proxy::HttpGrants,
    /// `wasi:http` components: the call's progress and the step last seen by the CPU budget,
    /// which restarts at each new step (`runtime/proxy.rs`).
    pub(crate) progress: Option<(super::proxy::Progress, u64)>,
}

impl HostState {
    /// State for one request to `route`: no files, no environment, no network, no stdin.
    pub(crate) fn new(route: &Arc<str>, max_memory: usize, cpu_budget: std::time::Duration) -> Self {
        let panic = Arc::new(Mutex::new(None));
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog { route: route.clone(), stream: "stdout", panic: None })
            .stderr(GuestLog { route: route.clone(), stream: "stderr", panic: Some(panic.clone()) })
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES);
        Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: GuestLimits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(max_memory)
                    .instances(16)
                    .tables(16)
                    .memories(4)
                    .trap_on_grow_failure(true)
                    .build(),
                max_memory,
                memory_exceeded: false,
            },
            panic,
            cpu: Arc::new(super::cpu::CpuClock::new()),
            cpu_budget,
            cpu_exceeded: false,
            services: Default::default(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_grants: super::proxy::HttpGrants,
            progress: None,
        }
    }
}

/// Most random bytes one `wasi:random` call may ask for (wasmtime-wasi's default is 64 MiB):
/// the host builds them outside the guest's memory limit, and they take long to make. Rust's
/// and Python's runtimes ask for a few dozen bytes at a time; a larger request traps.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// A Rust panic as the guest's standard library reported it on stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestPanic {
    /// `src/lib.rs:8:5`.
    pub location: String,
    /// The panic message (possibly several lines).
    pub message: String,
}

/// Longest panic message kept; the rest is cut.
const MAX_PANIC_MESSAGE: usize = 4 * 1024;

/// The store's limits, remembering when the guest hit the memory limit so the failure can
/// name it.
pub(crate) struct GuestLimits {
    inner: StoreLimits,
    /// `--max-memory`, in bytes.
    pub(crate) max_memory: usize,
    /// A growth past `max_memory` was refused (and trapped).
    pub(crate) memory_exceeded: bool,
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_exceeded = true;
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            hooks: &mut self.http_grants,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// A guest's stdout or stderr: every line becomes a log event carrying the route. On stderr,
/// a Rust panic report is caught into `panic` (and logged at DEBUG only): the host reports it
/// once, with the failure it causes.
#[derive(Clone)]
struct GuestLog {
    route: Arc<str>,
    stream: &'static str,
    panic: Option<Arc<Mutex<Option<GuestPanic>>>>,
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger { log: self.clone(), partial: Vec::new(), in_panic: false })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASI p3 guests use this; our world is p2. Output from them is dropped rather
        // than mixed unprefixed into the host's own output.
        Box::new(tokio::io::sink())
    }
}

/// `line` with its control characters but TAB written as escapes (`\r`, `\x1b`, `\u{9b}`), so
/// guest output cannot move the terminal's cursor over the route prefix, colour the log or
/// forge a line. Borrowed when there is nothing to escape (the usual case).
fn escape_controls(line: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return line.into();
    }
    let mut escaped = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            '\t' => escaped.push(c),
            '\r' => escaped.push_str("\\r"),
            c if c.is_ascii_control() => write!(escaped, "\\x{:02x}", c as u32).expect("writing to a String"),
            c if c.is_control() => write!(escaped, "\\u{{{:x}}}", c as u32).expect("writing to a String"),
            c => escaped.push(c),
        }
    }
    escaped.into()
}

/// Longest line kept before it is logged in pieces, so a guest cannot grow host memory by
/// printing without newlines.
const MAX_LINE: usize = 16 * 1024;

/// What a guest line's log event adds to it: timestamp, level, target and stream field.
const GUEST_LINE_OVERHEAD: usize = 64;

/// Splits guest output into lines and logs each one.
struct LineLogger {
    log: GuestLog,
    partial: Vec<u8>,
    /// Inside a panic report: lines go into the panic's message.
    in_panic: bool,
}

impl LineLogger {
    fn emit(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = escape_controls(line.trim_end_matches('\r'));
        let line = line.as_ref();
        // Blank lines say nothing (Rust's panic report starts with one).
        if line.is_empty() || self.log.panic.clone().is_some_and(|slot| self.catch_panic(&slot, line)) {
            tracing::debug!(
                target: "guest", stream = %self.log.stream, request_id = %crate::log::CurrentRequest,
                "[{}] {line}", self.log.route
            );
            return;
        }
        // Guest output never outruns the log writer by more than a bound (`log.rs`).
        if crate::log::admit_guest_line(line.len() + self.log.route.len() + GUEST_LINE_OVERHEAD) {
            tracing::info!(
                target: "guest", stream = %self.log.stream, request_id = %crate::log::CurrentRequest,
                "[{}] {line}", self.log.route
            );
        }
    }

    /// Follows Rust's panic report (`thread '…' (id) panicked at LOCATION:`, the message, then a
    /// `note: run with RUST_BACKTRACE` line); returns whether `line` belonged to it.
    fn catch_panic(&mut self, slot: &Mutex<Option<GuestPanic>>, line: &str) -> bool {
        let Ok(mut panic) = slot.lock() else { return false };
        if let Some((_, rest)) = line.split_once(" panicked at ")
            && line.starts_with("thread '")
        {
            let location = rest.strip_suffix(':').unwrap_or(rest).to_owned();
            *panic = Some(GuestPanic { location, message: String::new() });
            self.in_panic = true;
            return true;
        }
        if !self.in_panic {
            return false;
        }
        if line.starts_with("note: run with `RUST_BACKTRACE") {
            self.in_panic = false;
            return true;
        }
        if let Some(panic) = panic.as_mut()
            && panic.message.len() < MAX_PANIC_MESSAGE
        {
            if !panic.message.is_empty() {
                panic.message.push('\n');
            }
            let room = MAX_PANIC_MESSAGE - panic.message.len();
            panic.message.push_str(&line[..line.floor_char_boundary(room.min(line.len()))]);
        }
        true
    }
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        let mut rest = &bytes[..];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.emit(&rest[..nl]);
            } else {
                self.partial.extend_from_slice(&rest[..nl]);
                let line = std::mem::take(&mut self.partial);
                self.emit(&line);
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE {
            let tail = self.partial.split_off(MAX_LINE);
            let line = std::mem::replace(&mut self.partial, tail);
            self.emit(&line);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
        }
    }
}
