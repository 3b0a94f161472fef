//! Binding, the accept loop, the guards on resources (connection and instance budgets) and
//! graceful shutdown. Everything a connection needs is in the shared [`App`].

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::routes::{RouteFile, RouteTable, RouteWatcher, scan};
use crate::runtime::{ContentHash, Handler, LoadError, Runtime};

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

/// Why a routes directory could not be loaded: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct RoutesError {
    /// One message per problem, each naming its file.
    pub problems: Vec<String>,
}

/// How a routes directory was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Handlers compiled from scratch.
    pub compiled: usize,
    /// Handlers whose compiled code came from the on-disk cache.
    pub cached: usize,
}

/// Loads one handler file from its `bytes`; also says whether its code came from the cache.
pub fn load_file(
    runtime: &Runtime,
    file: &RouteFile,
    bytes: &[u8],
    hash: ContentHash,
) -> Result<(LoadedHandler, bool), LoadError> {
    let (handler, cached) = runtime.load(&file.path, bytes)?;
    let label = format!("{} {}", file.method.as_str(), file.route).into();
    Ok((LoadedHandler { handler, label, hash }, cached))
}

/// Scans `dir` and loads every handler file in it, reporting every failure (not just the first).
pub fn load_routes(runtime: &Runtime, dir: &Path) -> Result<(Routes, LoadSummary), RoutesError> {
    let files = scan(dir).map_err(|e| RoutesError { problems: vec![e.to_string()] })?;
    let mut loaded = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    let mut summary = LoadSummary::default();
    for file in files {
        let result = std::fs::read(&file.path)
            .map_err(|e| LoadError {
                path: file.path.display().to_string(),
                reason: format!("cannot read file: {e}"),
            })
            .and_then(|bytes| load_file(runtime, &file, &bytes, ContentHash::of(&bytes)));
        match result {
            Ok((handler, cached)) => {
                if cached {
                    summary.cached += 1;
                } else {
                    summary.compiled += 1;
                }
                loaded.push((file, Arc::new(handler)));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(RoutesError { problems });
    }
    let table = RouteTable::new(loaded).map_err(|e| RoutesError { problems: vec![e.to_string()] })?;
    Ok((table, summary))
}

/// State shared by every connection.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The wasm runtime.
    pub runtime: Runtime,
    /// The current route table; each request works on the snapshot it loaded.
    pub routes: ArcSwap<Routes>,
    /// Live guest instances allowed at once.
    pub instances: Semaphore,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
}

/// A server whose listener is bound and whose routes are loaded, ready to run.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    watcher: Option<RouteWatcher>,
}

impl Server {
    /// Creates the runtime, loads every route and binds the listener. Must run inside a tokio
    /// runtime.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let mut runtime =
            Runtime::new(&config.runtime, &config.cache).context("cannot create the wasm engine")?;
        // state: one set of services for every handler of this host.
        let services = crate::services::Services::open(&config.state, Default::default())
            .with_context(|| format!("cannot open the state store {}", config.state))?;
        runtime.set_services(services);
        info!(state = %config.state, "shared state");
        let started = std::time::Instant::now();
        let (routes, summary) = load_routes(&runtime, &config.routes_dir)
            .with_context(|| format!("cannot load routes from {}", config.routes_dir.display()))?;
        info!(
            handlers = routes.len(),
            compiled = summary.compiled,
            from_cache = summary.cached,
            millis = started.elapsed().as_millis() as u64,
            dir = %config.routes_dir.display(),
            "routes loaded"
        );
        // Watch before announcing readiness, so no change made after start-up is missed.
        let watcher = if config.watch {
            match RouteWatcher::new(&config.routes_dir) {
                Ok(w) => Some(w),
                Err(e) => {
                    warn!("{e}; hot reload is off (SIGHUP still rescans)");
                    None
                }
            }
        } else {
            None
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let app = Arc::new(App {
            instances: Semaphore::new(config.runtime.max_instances as usize),
            routes: ArcSwap::from_pointee(routes),
            runtime,
            shutdown: CancellationToken::new(),
            config,
        });
        Ok(Self { listener, app, watcher })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for embedding and tests).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests the
    /// configured grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { listener, app, watcher } = self;
        let config = &app.config;
        info!(
            workers = config.workers,
            max_connections = config.max_connections,
            max_instances = config.runtime.max_instances,
            max_body = ?config.http.max_body,
            watch = watcher.is_some(),
            "serving"
        );
        let reloader = tokio::spawn(crate::reload::watch(app.clone(), watcher));
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let tracker = TaskTracker::new();
        tokio::pin!(shutdown);
        loop {
            // Wait for a connection slot before accepting: past the limit clients queue in the
            // kernel's backlog instead of costing us file descriptors.
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => p.expect("never closed"),
                () = &mut shutdown => break,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = &mut shutdown => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let app = app.clone();
                    tracker.spawn(async move {
                        crate::conn::serve(stream, peer, app).await;
                        drop(permit);
                    });
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors or memory: back off instead of spinning, and keep
                    // serving the connections we have.
                    error!("accept failed: {e}; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
        app.shutdown.cancel();
        reloader.abort();
        tracker.close();
        let grace = config.timeouts.shutdown_grace;
        info!(in_flight = tracker.len(), grace = ?grace, "shutting down");
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(in_flight = tracker.len(), "grace period over; closing remaining connections");
        }
        Ok(())
    }
}

/// Errors that concern one failed handshake, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("received SIGINT"),
        () = term => info!("received SIGTERM"),
    }
}
