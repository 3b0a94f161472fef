//! Runs handler components: one [`Engine`] (async calls, pooling allocator, epoch interruption),
//! one [`Linker`] with WASI p2, a [`Handler`] per handler file (compiled component +
//! `InstancePre`, of one [`World`]), and an [`Instance`] per request whose hook calls are bounded
//! by CPU and wall-clock deadlines. The instance budget (`--max-instances`) is counted here and
//! only here: each [`Instance`] holds one permit for as long as it lives.
//!
//! Must not parse HTTP or know about sockets: it takes the contract's types in and gives them
//! out; `conn/` does the joining.

mod bindings;
pub mod code_cache;
mod cpu;
pub mod pool;
pub mod proxy;
mod reuse;
mod services;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::info;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};

pub use bindings::{Body, Event, Flow, Header, Request, Response};
use bindings::{DescribedPre, HandlerPre, HandlerWorld};
pub use services::{DEADLINE_MARGIN, Park, Resume};
use state::HostState;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

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

/// A handler file that could not be loaded: the file and the typed reason.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read handler {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("cannot load handler {}: not a WebAssembly file (a handler is a component built with `cargo build --target wasm32-wasip2`)", path.display())]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// The file is a core WebAssembly module (e.g. a `wasm32-wasip1` build), not a component.
    #[error("cannot load handler {}: this is a core WebAssembly module, not a component: build with `--target wasm32-wasip2`", path.display())]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a valid component (or do not compile).
    #[error("cannot load handler {}: {reason:#}", path.display())]
    Compile {
        /// The file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: wasmtime::Error,
    },
    /// The component imports something the host does not provide.
    #[error("cannot load handler {}: {reason:#}", path.display())]
    Link {
        /// The file.
        path: PathBuf,
        /// wasmtime's explanation (which import is missing).
        reason: wasmtime::Error,
    },
    /// The component's `info` export failed when asked at load.
    #[error("cannot load handler {}: its `info.methods` export failed: {reason:#}", path.display())]
    Describe {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: wasmtime::Error,
    },
    /// The component does not export a world the host can serve (`reason` says what the
    /// handler world misses).
    #[error("cannot load handler {}: implements neither the wasm-host handler world nor wasi:http/proxy (exports wasi:http/incoming-handler): {reason:#}", path.display())]
    World {
        /// The file.
        path: PathBuf,
        /// wasmtime's explanation (which export is missing or has the wrong type).
        reason: wasmtime::Error,
    },
}

impl LoadError {
    /// The file that failed to load.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::NotWasm { path }
            | Self::CoreModule { path }
            | Self::Compile { path, .. }
            | Self::Link { path, .. }
            | Self::Describe { path, .. }
            | Self::World { path, .. } => path,
        }
    }
}

/// A failed hook call or pull.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The guest trapped (bad data, `unreachable`); the message is wasmtime's, with its wasm
    /// backtrace (shown as a whole by `wasm-host dev`; the error's one line leaves it out).
    #[error("guest trapped: {}", trap_summary(.0))]
    Trap(String),
    /// The guest panicked: Rust's panic message and where, as the guest reported them; `trap`
    /// is wasmtime's account (with the wasm backtrace).
    #[error("handler panicked at {location}: {message}")]
    Panic {
        /// `src/lib.rs:8:5`.
        location: String,
        /// The panic message.
        message: String,
        /// wasmtime's trap message.
        trap: String,
    },
    /// The guest tried to grow its memory past `--max-memory`.
    #[error("handler ran out of memory: it tried to grow past the --max-memory limit of {} MiB (raise --max-memory to allow more)", limit >> 20)]
    OutOfMemory {
        /// The limit, in bytes.
        limit: usize,
        /// wasmtime's trap message.
        trap: String,
    },
    /// The guest broke the contract (e.g. `begin` from `stream`).
    #[error("handler broke the contract: {0}")]
    Contract(&'static str),
    /// A `wasi:http` guest answered with an error code instead of a response, or failed its
    /// response body with one.
    #[error("handler answered with an error: {0}")]
    ErrorCode(String),
    /// The call used more CPU time than allowed and was interrupted.
    #[error("guest exceeded its cpu time limit of {0:?}")]
    CpuTimeout(Duration),
    /// The call (or request) took longer in wall-clock time than allowed.
    #[error("guest exceeded its deadline")]
    Deadline,
    /// Every instance permit is taken (`--max-instances`).
    #[error("no free instance slot (--max-instances reached)")]
    Busy,
    /// The handler holds its whole share of the instance budget (`--route-max-instances`).
    #[error("the route holds its share of instance slots (--route-max-instances {0} reached)")]
    RouteBusy(u32),
    /// No instance could be created (instance pool or memory exhausted).
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
}

/// What a trap message says without its wasm backtrace: wasmtime's `{:#}` reads "error while
/// executing at wasm backtrace:\n    0: … \n   19: 0x7937 - module!function: CAUSE", and a log
/// line should be one line.
fn trap_summary(trap: &str) -> &str {
    let Some((_, frames)) = trap.split_once("wasm backtrace:") else { return trap };
    let last = frames.lines().last().unwrap_or_default();
    last.split_once(" - ").and_then(|(_, frame)| frame.split_once(": ")).map_or(trap, |(_, cause)| cause)
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
    cache: Option<code_cache::CodeCache>,
    linker: Linker<HostState>,
    limits: RuntimeLimits,
    /// One permit per instance that may be alive at once (`--max-instances`).
    permits: Arc<Semaphore>,
    /// Instances done with their request and not yet torn down ([`Retired`]).
    retiring: Arc<AtomicUsize>,
    stop_epoch: Arc<AtomicBool>,
    /// state: handed to every instance (`services::RequestServices`); set with `set_services`.
    services: Option<crate::services::Services>,
    /// Instances waiting for their next request (`--instance-reuse`).
    idle: Arc<reuse::IdleSet>,
    /// The last handler version handed out by `load` (instances are reused per version).
    versions: AtomicU64,
    /// How the pool was sized (its slot counts, for [`Runtime::pool_use`]).
    plan: pool::PoolPlan,
}

impl Runtime {
    /// Creates the engine (pool sized from `limits.max_instances`, compiled code cached as
    /// `cache` says), the instance budget, and starts the epoch thread. The host services
    /// instances are granted are set with `set_services`.
    ///
    /// # Errors
    ///
    /// A [`pool::PoolError`] when the machine cannot hold `limits` (too many mappings for
    /// `vm.max_map_count`, or memory slots that do not fit the address space), saying which
    /// option to change; wasmtime's error if the engine cannot be created.
    pub fn new(limits: &RuntimeLimits, cache: &CompileCache) -> anyhow::Result<Self> {
        Self::with_plan(limits, cache, &pool::plan(limits, &pool::Machine::probe())?)
    }

    /// [`Runtime::new`] with the pool sized by `plan` instead of by the machine.
    pub(crate) fn with_plan(
        limits: &RuntimeLimits,
        cache: &CompileCache,
        plan: &pool::PoolPlan,
    ) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = wasmtime::Config::new();
        plan.apply(&mut pool, &mut config);
        info!(
            max_instances = limits.max_instances,
            memory_slots = plan.memories,
            reservation = %if plan.full_reservation() {
                format!("{} GiB (no bounds checks)", plan.reservation >> 30)
            } else {
                format!("{} MiB = --max-memory (4 GiB slots do not fit the address space; bounds-checked)", plan.reservation >> 20)
            },
            mappings = plan.mappings,
            "instance pool"
        );

        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            // Wasm backtraces and host panics do not need the system unwinder to walk guest
            // frames (wasmtime keeps its own frame info; perf profiles with frame pointers).
            // Without `.eh_frame` in every component, loading one maps and registers less.
            .native_unwind_info(false)
            .wasm_backtrace_details(if limits.backtrace_details {
                wasmtime::WasmBacktraceDetails::Enable
            } else {
                wasmtime::WasmBacktraceDetails::Disable
            });
        let engine = Engine::new(&config)?;
        let dir = match cache {
            CompileCache::Off => None,
            CompileCache::Dir(dir) => Some(dir.clone()),
            CompileCache::Default => {
                let dir = CompileCache::default_dir();
                if dir.is_none() {
                    tracing::warn!(
                        "no compile cache: neither XDG_CACHE_HOME nor HOME is set (see --cache-dir)"
                    );
                }
                dir
            }
        };
        let cache = dir
            .map(|dir| {
                code_cache::CodeCache::open(&dir, &engine).with_context(|| {
                    format!(
                        "cannot create the compile cache {} (choose one with --cache-dir, or --no-cache)",
                        dir.display()
                    )
                })
            })
            .transpose()?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // wasi:http for standard proxy components, and for ours that import its types (e.g.
        // componentize-js's default build); outgoing requests are refused (`proxy.rs`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        services::add_to_linker(&mut linker)?; // state: kv + topics imports

        let stop_epoch = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = stop_epoch.clone();
        let idle = Arc::new(reuse::IdleSet::default());
        let sweep = (limits.instance_reuse > 1).then(|| idle.clone());
        std::thread::Builder::new().name("wasm-host-epoch".into()).spawn(move || {
            let mut ticks = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
                ticks = ticks.wrapping_add(1);
                if let Some(idle) = sweep.as_ref().filter(|_| ticks.is_multiple_of(reuse::SWEEP_TICKS)) {
                    drop(idle.expired(Instant::now()));
                }
            }
        })?;

        Ok(Self {
            engine,
            cache,
            linker,
            limits: limits.clone(),
            permits: Arc::new(Semaphore::new(limits.max_instances as usize)),
            retiring: Arc::default(),
            stop_epoch,
            services: None,
            idle,
            versions: AtomicU64::new(0),
            plan: plan.clone(),
        })
    }

    /// Compiles a handler file's `bytes` and checks it implements a world the host serves
    /// (every export present, every import satisfiable). Returns the handler and whether its
    /// code came from the compile cache. Slow when not cached: call it off the request path.
    /// Runs no guest code: [`methods`](Self::methods) asks an `ANY` file's handler what it
    /// implements.
    pub fn load(&self, path: &Path, bytes: &[u8]) -> Result<(Handler, bool), LoadError> {
        let path = || path.to_path_buf();
        // The preamble says what the file is: `\0asm`, then version 1 for a core module or
        // 0x0d with layer 1 for a component.
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule { path: path() }),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm { path: path() }),
        }
        let (component, cached) = match &self.cache {
            Some(cache) => cache.load(&self.engine, bytes),
            None => Component::new(&self.engine, bytes).map(|c| (c, false)),
        }
        .map_err(|reason| LoadError::Compile { path: path(), reason })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|reason| LoadError::Link { path: path(), reason })?;
        let described = DescribedPre::new(pre.clone()).ok();
        let world = match HandlerPre::new(pre.clone()) {
            Ok(hooks) => WorldPre::Hooks(hooks),
            Err(reason) => match ProxyPre::new(pre) {
                Ok(proxy) => WorldPre::Proxy(proxy),
                Err(_) => return Err(LoadError::World { path: path(), reason }),
            },
        };
        let code = Arc::new(Code { world, described });
        Ok((self.handler_of(code), cached))
    }

    /// Another handler running `handler`'s compiled code, for a file with the same bytes:
    /// nothing is compiled or mapped again, but it has an instance share and reused instances
    /// of its own, as if loaded on its own.
    pub fn same_code(&self, handler: &Handler) -> Handler {
        self.handler_of(handler.code.clone())
    }

    fn handler_of(&self, code: Arc<Code>) -> Handler {
        let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        let share = Arc::new(Semaphore::new(self.limits.route_max_instances() as usize));
        Handler { code, version, share }
    }

    /// The request methods `handler` says it implements: its `info` export, asked on a
    /// throwaway instance (empty when it has none). Off the request path, like `load`.
    pub fn methods(&self, path: &Path, handler: &Handler) -> Result<Vec<String>, LoadError> {
        match &handler.code.described {
            Some(described) => self
                .describe(described)
                .map_err(|reason| LoadError::Describe { path: path.to_path_buf(), reason }),
            None => Ok(Vec::new()),
        }
    }

    /// Asks a component's `info` export which methods it implements, on a throwaway instance
    /// under the usual CPU budget. Runs on a thread of its own so it can block whatever
    /// context `load` is called from (a tokio worker at start-up, a blocking thread on reload).
    fn describe(&self, pre: &DescribedPre<HostState>) -> wasmtime::Result<Vec<String>> {
        let route: Arc<str> = "(load)".into();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut store = self.new_store(&route);
                    pollster::block_on(async {
                        let described = pre.instantiate_async(&mut store).await?;
                        described.wasm_host_http_info().call_methods(&mut store).await
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(wasmtime::Error::msg("the probe thread panicked")))
        })
    }

    /// A fresh store for one instance serving `route`: memory limits, CPU budget, services.
    fn new_store(&self, route: &Arc<str>) -> Store<HostState> {
        let max_memory = usize::try_from(self.limits.max_memory).unwrap_or(usize::MAX);
        let state = HostState::new(route, max_memory, self.limits.cpu_timeout);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.data_mut().services.handle = self.services.clone(); // state
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let s = cx.data_mut();
            // A wasi:http call's budget restarts at each step it made (`proxy::Progress`).
            if let Some((progress, seen)) = &mut s.progress {
                let now = progress.get();
                if now != *seen {
                    *seen = now;
                    s.cpu.restart();
                }
            }
            if s.cpu.charge(EPOCH_TICK) > s.cpu_budget {
                s.cpu_exceeded = true;
                return Err(wasmtime::Error::msg("cpu time limit exceeded"));
            }
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        });
        store
    }

    /// An instance of `handler` for one request to `route`, holding one permit of the
    /// instance budget and one of the handler's share of it until it is dropped: a fresh one,
    /// or with `--instance-reuse` one of this handler version that served a request before
    /// without a failure. When the permits are taken it waits only for those of instances
    /// being torn down ([`Retired`], at most [`RETIRE_WAIT`]).
    ///
    /// # Errors
    ///
    /// [`GuestError::Busy`] when every permit is taken, [`GuestError::RouteBusy`] when the
    /// handler holds its whole share of them, [`GuestError::Instantiate`] when the pool or the
    /// kernel cannot give it memory.
    pub async fn instantiate(&self, handler: &Handler, route: &Arc<str>) -> Result<Instance, GuestError> {
        if self.limits.instance_reuse > 1
            && let Some(instance) = self.idle.take(handler.version)
        {
            return Ok(instance);
        }
        let route_max = self.limits.route_max_instances();
        let share = self.acquire(&handler.share).await.ok_or(GuestError::RouteBusy(route_max))?;
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Idle instances hold permits: the budget is full only when none is idle.
                drop(self.idle.evict_oldest());
                self.acquire(&self.permits).await.ok_or(GuestError::Busy)?
            }
        };
        let mut store = self.new_store(route);
        // Boxed: wasmtime's instantiation future is larger than anything else an exchange
        // awaits before its response streams, and inline it would size every connection's
        // task, which each parked request holds for as long as it waits.
        let instantiated = match &handler.code.world {
            WorldPre::Hooks(pre) => {
                Box::pin(pre.instantiate_async(&mut store)).await.map(InstanceWorld::Hooks)
            }
            WorldPre::Proxy(pre) => {
                Box::pin(pre.instantiate_async(&mut store)).await.map(InstanceWorld::Proxy)
            }
        };
        let world = instantiated.map_err(|e| GuestError::Instantiate(format!("{e:#}")))?;
        Ok(Instance {
            cpu: store.data().cpu.clone(),
            store,
            world,
            cpu_timeout: self.limits.cpu_timeout,
            version: handler.version,
            served: 0,
            _permits: (permit, share),
        })
    }

    /// Takes back an instance whose request was answered without any failure. With
    /// `--instance-reuse N` it waits (at most 10 s) for the next request to the same handler
    /// version, until it has served N. An instance not kept is handed back as [`Retired`], for
    /// the caller to drop where its teardown (the memory reset) costs no one a wait: after the
    /// answer is written. Never call it with an instance any call of which failed.
    #[must_use = "an instance handed back is torn down where it is dropped"]
    pub fn recycle(&self, mut instance: Instance) -> Option<Retired> {
        instance.served += 1;
        let services = &mut instance.store.data_mut().services;
        services.park = None;
        services.resume = None;
        if instance.served >= self.limits.instance_reuse {
            return Some(self.retire(instance));
        }
        // The idle set makes room by handing back its oldest instance.
        self.idle.put(instance.version, instance, reuse::MAX_IDLE).map(|oldest| self.retire(oldest))
    }

    /// Counts `instance` as retiring until it is dropped.
    fn retire(&self, instance: Instance) -> Retired {
        self.retiring.fetch_add(1, Ordering::SeqCst);
        Retired { instance: Some(instance), retiring: self.retiring.clone() }
    }

    /// A permit of `permits`: one free now or, when none is but some instance done with its
    /// request is still being torn down ([`Retired`]), the next one freed within
    /// [`RETIRE_WAIT`]. A client that sends its next request as soon as it has read an answer
    /// is so never refused for the instance that answered it, whose teardown comes after the
    /// write; a budget held by running requests is refused at once.
    async fn acquire(&self, permits: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.retiring.load(Ordering::SeqCst) == 0 {
            // A teardown that ended since the first try freed its permits before it counted
            // itself out.
            return permits.clone().try_acquire_owned().ok();
        }
        tokio::time::timeout(RETIRE_WAIT, permits.clone().acquire_owned()).await.ok()?.ok()
    }

    /// The services instances are given, if any (`set_services`).
    pub fn services(&self) -> Option<&crate::services::Services> {
        self.services.as_ref()
    }

    /// The limits this runtime enforces.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// Guest instances alive right now (running, holding a streaming response, or idle between
    /// requests with `--instance-reuse`).
    pub fn live_instances(&self) -> usize {
        self.limits.max_instances as usize - self.permits.available_permits()
    }

    /// Instances waiting for their next request (`--instance-reuse`); they count as live.
    pub fn idle_instances(&self) -> usize {
        self.idle.len()
    }

    /// The pooling allocator's slots of each kind: how many it has, how many are in use now.
    pub fn pool_use(&self) -> Vec<PoolSlots> {
        let Some(m) = self.engine.pooling_allocator_metrics() else {
            return Vec::new();
        };
        let p = &self.plan;
        vec![
            PoolSlots {
                kind: "component_instances",
                in_use: m.component_instances(),
                total: p.instances.into(),
            },
            PoolSlots { kind: "core_instances", in_use: m.core_instances(), total: p.core_instances.into() },
            PoolSlots { kind: "memories", in_use: m.memories() as u64, total: p.memories.into() },
            PoolSlots { kind: "tables", in_use: m.tables() as u64, total: p.tables.into() },
            PoolSlots { kind: "stacks", in_use: m.stacks() as u64, total: p.stacks.into() },
        ]
    }
}

/// One kind of slot of the pooling allocator ([`Runtime::pool_use`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSlots {
    /// `component_instances`, `core_instances`, `memories`, `tables` or `stacks`.
    pub kind: &'static str,
    /// Slots in use now.
    pub in_use: u64,
    /// Slots the pool has.
    pub total: u64,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_epoch.store(true, Ordering::Relaxed);
    }
}

/// The world a handler component implements. Each world has its own way to serve a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// wasm-host's own `handler` world (`wit/handler.wit`): the before/stream/after hooks.
    Hooks,
    /// The standard `wasi:http/proxy` world: one `incoming-handler.handle` call per request
    /// (`proxy.rs`).
    Proxy,
}

impl World {
    /// The WIT name, for the route listing.
    pub fn name(self) -> &'static str {
        match self {
            World::Hooks => "wasm-host:http/handler",
            World::Proxy => "wasi:http/proxy",
        }
    }
}

/// A pre-linked component, by world.
#[derive(Clone)]
enum WorldPre {
    Hooks(HandlerPre<HostState>),
    Proxy(ProxyPre<HostState>),
}

/// An instantiated component, by world.
enum InstanceWorld {
    Hooks(HandlerWorld),
    Proxy(Proxy),
}

/// A component compiled and pre-linked once, shared by every handler file with its bytes.
struct Code {
    world: WorldPre,
    /// Its `info` export, if it has one (asked only for `ANY` files).
    described: Option<DescribedPre<HostState>>,
}

/// A loaded handler file: compiled and pre-linked once, instantiated per request.
#[derive(Clone)]
pub struct Handler {
    code: Arc<Code>,
    /// Unique per load: reused instances are only ever handed to requests of their version.
    version: u64,
    /// This handler's share of the instance budget (`--route-max-instances`); a reloaded file
    /// starts a share of its own.
    share: Arc<Semaphore>,
}

impl Handler {
    /// The world the component implements.
    pub fn world(&self) -> World {
        match self.code.world {
            WorldPre::Hooks(_) => World::Hooks,
            WorldPre::Proxy(_) => World::Proxy,
        }
    }
}

/// How long a request finding the instance budget full waits for a permit while instances
/// are being torn down (a teardown takes microseconds, a few milliseconds for an instance that
/// used tens of MiB; it starts once its answer is written).
pub const RETIRE_WAIT: Duration = Duration::from_millis(100);

/// An instance done with its request and not kept for reuse, handed back by
/// [`Runtime::recycle`] to be dropped where its teardown (the memory reset) keeps no one
/// waiting: after the answer is written. Until then a request finding the budget full waits
/// for its permit instead of getting 503.
#[must_use = "a retired instance is torn down where it is dropped"]
pub struct Retired {
    instance: Option<Instance>,
    retiring: Arc<AtomicUsize>,
}

impl Drop for Retired {
    fn drop(&mut self) {
        // The instance (and its permits) goes first, so a request that sees the count drop
        // finds its permit free.
        drop(self.instance.take());
        self.retiring.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One request's guest instance. Each call runs under a CPU budget and a wall-clock deadline;
/// after any error the instance must be dropped, not called again. Holds one permit of the
/// instance budget until dropped.
pub struct Instance {
    store: Store<HostState>,
    world: InstanceWorld,
    cpu_timeout: Duration,
    /// The store's CPU clock, which the calls' futures run on.
    cpu: Arc<cpu::CpuClock>,
    /// The handler version it is an instance of.
    version: u64,
    /// Requests it has answered (`--instance-reuse`).
    served: u32,
    /// One of the instance budget, one of its handler's share of it.
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Instance {
    /// Calls `before(request)`.
    pub async fn before(&mut self, request: &Request, deadline: Instant) -> Result<Flow, GuestError> {
        self.reset_budget(deadline);
        let hooks = hooks(&self.world)?;
        let store = &mut self.store;
        let call = move || hooks.call_before(store, request);
        let outcome = tokio::time::timeout_at(deadline.into(), cpu::timed(&self.cpu, call)).await;
        finish(outcome, &self.store, self.cpu_timeout)
    }

    /// Calls `stream(chunk)`.
    pub async fn stream(&mut self, chunk: &[u8], deadline: Instant) -> Result<Flow, GuestError> {
        self.reset_budget(deadline);
        let hooks = hooks(&self.world)?;
        let store = &mut self.store;
        let call = move || hooks.call_stream(store, chunk);
        let outcome = tokio::time::timeout_at(deadline.into(), cpu::timed(&self.cpu, call)).await;
        finish(outcome, &self.store, self.cpu_timeout)
    }

    /// Calls `after()`.
    pub async fn after(&mut self, deadline: Instant) -> Result<Response, GuestError> {
        self.reset_budget(deadline);
        let hooks = hooks(&self.world)?;
        let store = &mut self.store;
        let call = move || hooks.call_after(store);
        let outcome = tokio::time::timeout_at(deadline.into(), cpu::timed(&self.cpu, call)).await;
        finish(outcome, &self.store, self.cpu_timeout)
    }

    /// Calls `next-chunk()`.
    pub async fn next_chunk(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, GuestError> {
        self.reset_budget(deadline);
        let hooks = hooks(&self.world)?;
        let store = &mut self.store;
        let call = move || hooks.call_next_chunk(store);
        let outcome = tokio::time::timeout_at(deadline.into(), cpu::timed(&self.cpu, call)).await;
        finish(outcome, &self.store, self.cpu_timeout)
    }

    /// Calls `next-event()`.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, GuestError> {
        self.reset_budget(deadline);
        let hooks = hooks(&self.world)?;
        let store = &mut self.store;
        let call = move || hooks.call_next_event(store);
        let outcome = tokio::time::timeout_at(deadline.into(), cpu::timed(&self.cpu, call)).await;
        finish(outcome, &self.store, self.cpu_timeout)
    }

    /// What the last hook call asked to wait for with `subscription.park`, if anything; clears
    /// it.
    pub fn take_park(&mut self) -> Option<Park> {
        self.store.data_mut().services.park.take()
    }

    /// Where this instance's subscriptions start: after a parked request's wake-up, at the
    /// parked position on its topic; `None` for a first run.
    pub fn set_resume(&mut self, resume: Option<Resume>) {
        self.store.data_mut().services.resume = resume;
    }

    fn reset_budget(&mut self, deadline: Instant) {
        self.store.data_mut().services.deadline = Some(deadline); // state: bounds waits
        self.cpu.restart();
        self.store.set_epoch_deadline(1);
    }
}

/// The hooks of our own world; a contract error for a `wasi:http` instance.
fn hooks(world: &InstanceWorld) -> Result<&HandlerWorld, GuestError> {
    match world {
        InstanceWorld::Hooks(hooks) => Ok(hooks),
        InstanceWorld::Proxy(_) => Err(GuestError::Contract("a wasi:http component has no hooks")),
    }
}

fn finish<T>(
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    store: &Store<HostState>,
    cpu_timeout: Duration,
) -> Result<T, GuestError> {
    let state = store.data();
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) if state.cpu_exceeded => Err(GuestError::CpuTimeout(cpu_timeout)),
        Ok(Err(e)) if state.limits.memory_exceeded => {
            Err(GuestError::OutOfMemory { limit: state.limits.max_memory, trap: format!("{e:#}") })
        }
        Ok(Err(e)) => {
            let trap = format!("{e:#}");
            match state.panic.lock().ok().and_then(|mut p| p.take()) {
                Some(panic) => {
                    Err(GuestError::Panic { location: panic.location, message: panic.message, trap })
                }
                None => Err(GuestError::Trap(trap)),
            }
        }
        Err(_) => Err(GuestError::Deadline),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_trap_is_summed_up_in_one_line_without_its_backtrace() {
        let trap = "error while executing at wasm backtrace:\n    0:   0x790e - <unknown>!<wasm function 121>\n   \
                    19:   0x7937 - hostile.wasm!hostile::recurse: memory fault at wasm address 0xffffff10: \
                    wasm trap: out of bounds memory access";
        assert_eq!(
            super::trap_summary(trap),
            "memory fault at wasm address 0xffffff10: wasm trap: out of bounds memory access"
        );
        assert_eq!(super::trap_summary("wasm trap: unreachable"), "wasm trap: unreachable");
    }
}
