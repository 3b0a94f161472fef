//! The shared application state every connection works with: the validated configuration, the
//! wasm runtime (which owns the instance budget), the current route table snapshot and the
//! shutdown signal.
//!
//! Depends on `config`, `routes` (the table type), `runtime` (the handler type) and
//! `site::static_files` (the static directory); it is filled by `site` (route building) and
//! `server` (the static directory), and read by `conn` and `server`, which it knows nothing of.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::routes::RouteTable;
use crate::runtime::{ContentHash, Handler, Runtime};
use crate::site::static_files::StaticDir;

/// A handler ready to serve, with the label its log lines carry (e.g. `GET /users/{id}`).
pub struct LoadedHandler {
    /// The compiled, pre-linked component.
    pub handler: Handler,
    /// `METHOD /route`, shared by every request's log lines.
    pub label: Arc<str>,
    /// The version: the hash of the file's bytes.
    pub hash: ContentHash,
}

/// The route table the server serves from. Handlers are shared between table versions, so a
/// reload only compiles what changed and a request keeps its version alive until it ends.
pub type Routes = RouteTable<Arc<LoadedHandler>>;

/// State shared by every connection.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The wasm runtime; it also counts the live instances against `--max-instances`.
    pub runtime: Runtime,
    /// The current route table; each request works on the snapshot it loaded.
    pub routes: ArcSwap<Routes>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// The static files served where no route matches (`--static`), if any.
    pub static_dir: Option<Arc<StaticDir>>,
}

impl App {
    /// The state for serving `routes` with `runtime` under `config`.
    pub fn new(config: Config, runtime: Runtime, routes: Routes) -> Self {
        Self {
            config,
            runtime,
            routes: ArcSwap::from_pointee(routes),
            shutdown: CancellationToken::new(),
            static_dir: None,
        }
    }
}
