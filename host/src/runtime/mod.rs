//! Runs handler components: one [`Engine`] (async calls, pooling allocator, epoch interruption),
//! one [`Linker`] with WASI p2, a [`Handler`] (compiled component + `InstancePre`) per handler
//! file, and an [`Instance`] per request whose hook calls are bounded by CPU and wall-clock
//! deadlines.
//!
//! Must not parse HTTP or know about sockets: it takes the contract's types in and gives them
//! out; `conn.rs` does the joining.

mod bindings;
mod services;
mod state;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};

pub use bindings::{Body, Event, Flow, Header, Request, Response};
use bindings::{HandlerPre, HandlerWorld};
use state::HostState;

use crate::config::{CompileCache, RuntimeLimits};

/// How often the epoch advances. One tick is the granularity of CPU budgets and of how soon a
/// spinning guest yields its worker thread to other requests (see `shared/WASMTIME-48.md`).
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Linear memory kept resident in a pool slot after an instance is dropped, reset by scanning
/// for touched pages (`PAGEMAP_SCAN`, Linux 6.7+) instead of `madvise`. Measured on hello world
/// at 64 connections on 2 cores: madvise's TLB-shootdown IPIs capped the server at ≈15k req/s;
/// keeping pages resident gave ≈55k (256 KiB–2 MiB all within noise; 1 MiB covers typical
/// handlers' heaps). RSS stays ≈14 MiB because warm slots are reused. Kernels without
/// `PAGEMAP_SCAN` fall back to madvise.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// The same for tables (a handler's function tables are a few KiB).
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// A handler file that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load handler {path}: {reason}")]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// Why, with wasmtime's explanation (e.g. which export is missing).
    pub reason: String,
}

/// A failed hook call or pull.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The guest trapped (panic, out of memory, bad data); the message is wasmtime's.
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The call used more CPU time than allowed and was interrupted.
    #[error("guest exceeded its cpu time limit of {0:?}")]
    CpuTimeout(Duration),
    /// The call (or request) took longer in wall-clock time than allowed.
    #[error("guest exceeded its deadline")]
    Deadline,
    /// No instance could be created (instance pool or memory exhausted).
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
}

/// The SHA-256 of a handler file's bytes: identifies a version in logs and decides whether a
/// changed file needs compiling again.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(bytes).into())
    }
}

/// The first 12 hex digits, enough to tell versions apart in a log.
impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0[..6].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// The engine and linker shared by every handler.
pub struct Runtime {
    engine: Engine,
    cache: Option<wasmtime::Cache>,
    linker: Linker<HostState>,
    limits: RuntimeLimits,
    live: Arc<AtomicUsize>,
    stop_epoch: Arc<AtomicBool>,
    /// state: handed to every instance (`services::RequestServices`); set with `set_services`.
    services: Option<crate::services::Services>,
}

impl Runtime {
    /// Creates the engine (pool sized from `limits.max_instances`, compiled code cached as
    /// `cache` says) and starts the epoch thread.
    pub fn new(limits: &RuntimeLimits, cache: &CompileCache) -> anyhow::Result<Self> {
        let n = limits.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        // A wit-bindgen Rust component is 3 core instances, 2 tables and 1 memory; leave slack
        // for components built by other toolchains.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(3))
            .total_stacks(n)
            .max_memory_size(usize::try_from(limits.max_memory).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);

        // wasmtime's cache keys entries by the SHA-256 of the module and every engine setting
        // that affects code; an entry that does not decompress or deserialize is recompiled.
        let cache = match cache {
            CompileCache::Off => None,
            CompileCache::Default => Some(wasmtime::Cache::new(wasmtime::CacheConfig::new())?),
            CompileCache::Dir(dir) => {
                let mut c = wasmtime::CacheConfig::new();
                c.with_directory(dir);
                Some(wasmtime::Cache::new(c)?)
            }
        };
        let mut config = wasmtime::Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .cache(cache.clone());
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        services::add_to_linker(&mut linker)?; // state: kv + topics imports

        let stop_epoch = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = stop_epoch.clone();
        std::thread::Builder::new().name("wasm-host-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;

        Ok(Self {
            engine,
            cache,
            linker,
            limits: limits.clone(),
            live: Arc::default(),
            stop_epoch,
            services: None,
        })
    }

    /// Compiles a handler file's `bytes` and checks it implements the `handler` world (every
    /// export present, every import satisfiable). Returns the handler and whether its code came
    /// from the compile cache. Slow when not cached: call it off the request path.
    pub fn load(&self, path: &Path, bytes: &[u8]) -> Result<(Handler, bool), LoadError> {
        let err = |reason: String| LoadError { path: path.display().to_string(), reason };
        let hits_before = self.cache.as_ref().map(wasmtime::Cache::cache_hits);
        let component = Component::new(&self.engine, bytes).map_err(|e| err(format!("{e:#}")))?;
        let cached = self.cache.as_ref().zip(hits_before).is_some_and(|(c, before)| c.cache_hits() > before);
        let pre = self.linker.instantiate_pre(&component).map_err(|e| err(format!("{e:#}")))?;
        let pre = HandlerPre::new(pre)
            .map_err(|e| err(format!("does not implement the wasm-host handler world: {e:#}")))?;
        Ok((Handler { pre }, cached))
    }

    /// Creates a fresh instance of `handler` for one request to `route`.
    pub async fn instantiate(&self, handler: &Handler, route: &Arc<str>) -> Result<Instance, GuestError> {
        let max_memory = usize::try_from(self.limits.max_memory).unwrap_or(usize::MAX);
        let budget = ticks(self.limits.cpu_timeout);
        let mut store = Store::new(&self.engine, HostState::new(route, max_memory, budget));
        store.limiter(|s| &mut s.limits);
        store.data_mut().services.handle = self.services.clone(); // state
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let s = cx.data_mut();
            s.ticks += 1;
            if s.ticks > s.tick_budget {
                s.cpu_exceeded = true;
                return Err(wasmtime::Error::msg("cpu time limit exceeded"));
            }
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        });
        let live = LiveGuard::new(&self.live);
        let world = handler
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| GuestError::Instantiate(format!("{e:#}")))?;
        Ok(Instance { store, world, cpu_timeout: self.limits.cpu_timeout, _live: live })
    }

    /// The limits this runtime enforces.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// Guest instances alive right now (running or holding a streaming response).
    pub fn live_instances(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_epoch.store(true, Ordering::Relaxed);
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64
}

/// A loaded handler file: compiled and pre-linked once, instantiated per request.
#[derive(Clone)]
pub struct Handler {
    pre: HandlerPre<HostState>,
}

/// Counts live instances; decremented when the instance is dropped, however it ends.
struct LiveGuard(Arc<AtomicUsize>);

impl LiveGuard {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Self(live.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request's guest instance. Each call runs under a CPU budget and a wall-clock deadline;
/// after any error the instance must be dropped, not called again.
pub struct Instance {
    store: Store<HostState>,
    world: HandlerWorld,
    cpu_timeout: Duration,
    _live: LiveGuard,
}

impl Instance {
    /// Calls `before(request)`.
    pub async fn before(&mut self, request: &Request, deadline: Instant) -> Result<Flow, GuestError> {
        self.reset_budget(deadline);
        let call = self.world.call_before(&mut self.store, request);
        finish(tokio::time::timeout_at(deadline.into(), call).await, &self.store, self.cpu_timeout)
    }

    /// Calls `stream(chunk)`.
    pub async fn stream(&mut self, chunk: &[u8], deadline: Instant) -> Result<Flow, GuestError> {
        self.reset_budget(deadline);
        let call = self.world.call_stream(&mut self.store, chunk);
        finish(tokio::time::timeout_at(deadline.into(), call).await, &self.store, self.cpu_timeout)
    }

    /// Calls `after()`.
    pub async fn after(&mut self, deadline: Instant) -> Result<Response, GuestError> {
        self.reset_budget(deadline);
        let call = self.world.call_after(&mut self.store);
        finish(tokio::time::timeout_at(deadline.into(), call).await, &self.store, self.cpu_timeout)
    }

    /// Calls `next-chunk()`.
    pub async fn next_chunk(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, GuestError> {
        self.reset_budget(deadline);
        let call = self.world.call_next_chunk(&mut self.store);
        finish(tokio::time::timeout_at(deadline.into(), call).await, &self.store, self.cpu_timeout)
    }

    /// Calls `next-event()`.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, GuestError> {
        self.reset_budget(deadline);
        let call = self.world.call_next_event(&mut self.store);
        finish(tokio::time::timeout_at(deadline.into(), call).await, &self.store, self.cpu_timeout)
    }

    fn reset_budget(&mut self, deadline: Instant) {
        self.store.data_mut().services.deadline = Some(deadline); // state: bounds waits
        self.store.data_mut().ticks = 0;
        self.store.set_epoch_deadline(1);
    }
}

fn finish<T>(
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    store: &Store<HostState>,
    cpu_timeout: Duration,
) -> Result<T, GuestError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) if store.data().cpu_exceeded => Err(GuestError::CpuTimeout(cpu_timeout)),
        Ok(Err(e)) => Err(GuestError::Trap(format!("{e:#}"))),
        Err(_) => Err(GuestError::Deadline),
    }
}
