//! The shared application state every connection works with: the validated configuration, the
//! wasm runtime (which owns the instance budget), the current route table snapshot, the
//! counters `/metrics` shows and the shutdown signal.
//!
//! Depends on `config`, `routes` (the table type), `runtime` (the handler type), `metrics` and
//! `site::static_files` (the static directory); it is filled by `site` (route building) and
//! `server` (the static directory), and read by `conn` and `server`, which it knows nothing of.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes::{MethodKey, RouteTable};
use crate::runtime::{ContentHash, Handler, Runtime};
use crate::static_files::StaticDir;

/// A handler file as served, with the label its log lines carry (e.g. `GET /users/{id}`).
pub struct LoadedHandler {
    /// The compiled, pre-linked component, or why the file could not be loaded: the route
    /// then answers 503 until the file is fixed.
    pub handler: Result<Handler, Arc<str>>,
    /// `METHOD /route`, shared by every request's log lines.
    pub label: Arc<str>,
    /// The version: the hash of the file's bytes.
    pub hash: ContentHash,
    /// The methods the handler says it implements (empty: it does not say).
    pub declares: Vec<MethodKey>,
}

/// The route table the server serves from. Handlers are shared between table versions, so a
/// reload only compiles what changed and a request keeps its version alive until it ends.
pub type Routes = RouteTable<Arc<LoadedHandler>>;

/// Dev mode's record of handlers whose latest build failed, as a route table of compiler
/// messages: a request it matches gets the message instead of the handler (unless
/// `--keep-serving` and a previous version is there).
#[derive(Default)]
pub struct BuildFailures {
    /// The routes whose build failed, each with cargo's output.
    pub table: ArcSwap<RouteTable<Arc<str>>>,
}

/// State shared by every connection.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The wasm runtime; it also counts the live instances against `--max-instances`.
    pub runtime: Runtime,
    /// The current route table; each request works on the snapshot it loaded.
    pub routes: ArcSwap<Routes>,
    /// The site's error pages (`routes/errors/{code}`), keyed `/{code}`.
    pub error_pages: ArcSwap<Routes>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// `wasm-host dev` only: the handlers whose build is broken.
    pub build_failures: Option<BuildFailures>,
    /// The static files served where no route matches (`--static`), if any.
    pub static_dir: Option<Arc<StaticDir>>,
    /// What the host counts (requests, bytes, connections, reloads), for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Taken by a woken parked request while it runs again: at most
    /// [`PARKED_RERUNS`](crate::config::PARKED_RERUNS) at a time.
    pub reruns: tokio::sync::Semaphore,
}

impl App {
    /// The state for serving `routes` (and `error_pages`) with `runtime` under `config`.
    pub fn new(config: Config, runtime: Runtime, routes: Routes, error_pages: Routes) -> Self {
        let build_failures = config.dev.map(|_| BuildFailures::default());
        let metrics = Arc::new(Metrics::new(config.workers));
        Self {
            config,
            runtime,
            routes: ArcSwap::from_pointee(routes),
            error_pages: ArcSwap::from_pointee(error_pages),
            shutdown: CancellationToken::new(),
            build_failures,
            static_dir: None,
            metrics,
            reruns: tokio::sync::Semaphore::new(crate::config::PARKED_RERUNS),
        }
    }
}
