//! The per-request store state: the WASI context (which grants nothing but clocks, random and
//! stdout/stderr), the resource table, memory limits and the CPU-budget counter, plus the
//! stdout/stderr streams that turn guest output into log lines prefixed by the route.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything a guest instance's `Store` carries.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory and table limits, enforced by the store's limiter.
    pub(crate) limits: StoreLimits,
    /// Epoch ticks the current call has run for (reset at each call).
    pub(crate) ticks: u64,
    /// Ticks one call may run before it is interrupted.
    pub(crate) tick_budget: u64,
    /// Set when a call was interrupted for exceeding its CPU budget.
    pub(crate) cpu_exceeded: bool,
    /// state: the shared services and the current call's deadline (`runtime/services.rs`).
    pub(crate) services: super::services::RequestServices,
}

impl HostState {
    /// State for one request to `route`: no files, no environment, no network, no stdin.
    pub(crate) fn new(route: &Arc<str>, max_memory: usize, tick_budget: u64) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog { route: route.clone(), stream: "stdout" })
            .stderr(GuestLog { route: route.clone(), stream: "stderr" })
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory)
                .instances(16)
                .tables(16)
                .memories(4)
                .trap_on_grow_failure(true)
                .build(),
            ticks: 0,
            tick_budget,
            cpu_exceeded: false,
            services: Default::default(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A guest's stdout or stderr: every line becomes a log event carrying the route.
#[derive(Clone)]
struct GuestLog {
    route: Arc<str>,
    stream: &'static str,
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger { log: self.clone(), partial: Vec::new() })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASI p3 guests use this; our world is p2. Output from them is dropped rather
        // than mixed unprefixed into the host's own output.
        Box::new(tokio::io::sink())
    }
}

/// Longest line kept before it is logged in pieces, so a guest cannot grow host memory by
/// printing without newlines.
const MAX_LINE: usize = 16 * 1024;

/// Splits guest output into lines and logs each one.
struct LineLogger {
    log: GuestLog,
    partial: Vec<u8>,
}

impl LineLogger {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        tracing::info!(target: "guest", stream = %self.log.stream, "[{}] {line}", self.log.route);
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
            self.emit(&self.partial);
        }
    }
}
