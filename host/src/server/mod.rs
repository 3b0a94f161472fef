//! Listening, the accept loop, the connection budget and graceful shutdown. Each accepted
//! stream goes to `conn::serve`, which never learns what kind of stream it is: a TCP stream, or
//! with `--tls-cert` a TLS stream from `tls.rs` (the handshake runs in the connection's task,
//! so a slow one never holds up the accept loop). Each public connection is counted and its
//! bytes metered (`crate::metrics`); `admin.rs` serves `/metrics` and `/healthz` on
//! `--admin-listen`, a listener of its own.

mod admin;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use self::tls::Tls;
use crate::app::App;
use crate::config::Config;
use crate::runtime::Runtime;
use crate::site::{self, RouteWatcher};
use crate::static_files::StaticDir;

/// A server whose listener is bound and whose routes are loaded, ready to run.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    watcher: Option<RouteWatcher>,
    tls: Option<(Arc<Tls>, tls::CertWatcher)>,
    /// `--admin-listen`: the listener for `/metrics` and `/healthz`.
    admin: Option<TcpListener>,
}

impl Server {
    /// Creates the runtime, loads every route and binds the listener. Must run inside a tokio
    /// runtime.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        // The cheap checks first: a wrong path should not wait for every handler to compile.
        let tls = config.tls.as_ref().map(Tls::load).transpose()?.map(|tls| {
            // Watch before announcing readiness, so no certificate change is missed.
            let watcher = tls.watcher();
            (Arc::new(tls), watcher)
        });
        let static_dir = config
            .static_files
            .as_ref()
            .map(|s| StaticDir::open(&s.dir, s.dotfiles))
            .transpose()?
            .map(Arc::new);
        let mut runtime =
            Runtime::new(&config.runtime, &config.cache).context("cannot create the wasm engine")?;
        // One set of services (key-value, topics) for every handler of this host.
        let services = crate::services::Services::open(&config.state, Default::default())
            .with_context(|| format!("cannot open the state store {}", config.state))?;
        runtime.set_services(services);
        info!(state = %config.state, "shared state");
        let started = std::time::Instant::now();
        let build = site::load(&runtime, &config.routes_dir, config.strict)
            .with_context(|| format!("cannot load routes from {}", config.routes_dir.display()))?;
        site::log_problems(&build);
        let (routes, error_pages) = (build.routes, build.errors);
        info!(
            handlers = routes.len(),
            compiled = build.summary.compiled,
            from_cache = build.summary.cached,
            shared = build.summary.shared,
            millis = started.elapsed().as_millis() as u64,
            dir = %config.routes_dir.display(),
            "routes loaded"
        );
        crate::memory::trim_heap();
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
        let admin = match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--admin-listen)"))?,
            ),
            None => None,
        };
        let app = Arc::new(App { static_dir, ..App::new(config, runtime, routes, error_pages) });
        Ok(Self { listener, app, watcher, tls, admin })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address the admin listener bound (`--admin-listen`), if there is one.
    pub fn admin_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.admin.as_ref().map(TcpListener::local_addr).transpose()
    }

    /// `https` with `--tls-cert`, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The shared state (for embedding and tests).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests the
    /// configured grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { listener, app, watcher, tls, admin } = self;
        // Start-up's code pages go once the host is ready: the walk of the process's mappings
        // takes ≈10 ms with 100 routes, which readiness need not wait for.
        tokio::task::spawn_blocking(crate::memory::release_file_pages);
        let config = &app.config;
        info!(
            workers = config.workers,
            max_connections = config.max_connections,
            max_instances = config.runtime.max_instances,
            route_max_instances = config.runtime.route_max_instances(),
            max_body = %config.http.max_body.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
            watch = watcher.is_some(),
            tls = tls.is_some(),
            static_dir = %app.static_dir.as_ref().map_or_else(|| "-".into(), |s| s.dir().display().to_string()),
            "serving"
        );
        let reloader = tokio::spawn(site::watch(app.clone(), watcher));
        // Serves through the grace period, so `/healthz` can say the host is going.
        let admin = admin.map(|listener| tokio::spawn(admin::serve(listener, app.clone())));
        let (tls, cert_reloader) = match tls {
            Some((tls, watcher)) => {
                let reloader = tokio::spawn(tls.clone().watch(watcher, app.shutdown.token().clone()));
                (Some(tls), Some(reloader))
            }
            None => (None, None),
        };
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
                    // SSE and small responses must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let tls = tls.clone();
                    let counted = app.metrics.connection();
                    let fut = async move {
                        // Each kind of connection in a box of its own size: inline, every
                        // task would be as large as a TLS connection's.
                        match tls {
                            None => Box::pin(crate::conn::serve(counted.meter(stream), peer, app)).await,
                            Some(tls) => {
                                Box::pin(async move {
                                    match tls.handshake(stream).await {
                                        Ok(stream) => {
                                            crate::conn::serve(counted.meter(stream), peer, app).await
                                        }
                                        Err(e) => debug!(peer = %peer, "{e}"),
                                    }
                                })
                                .await;
                            }
                        }
                        drop(permit);
                    };
                    tracker.spawn(fut);
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
        app.shutdown.give();
        reloader.abort();
        if let Some(r) = cert_reloader {
            r.abort();
        }
        tracker.close();
        let grace = config.timeouts.shutdown_grace;
        info!(in_flight = tracker.len(), grace = %humantime::format_duration(grace), "shutting down");
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(in_flight = tracker.len(), "grace period over; closing remaining connections");
        }
        if let Some(admin) = admin {
            admin.abort();
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
///
/// The handlers are installed when this is called (not when the future is first polled), so
/// call it before announcing readiness: a signal that arrives after `listening` is never lost
/// to the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        let int = async {
            match int.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let term = async {
            match term.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = int => info!("received SIGINT"),
            _ = term => info!("received SIGTERM"),
        }
    }
}
