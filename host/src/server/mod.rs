//! Listening, the accept loop, the connection budget and graceful shutdown. Each accepted
//! stream goes to `conn::serve`, which never learns what kind of stream it is: a TCP stream, or
//! with `--tls-cert` a TLS stream from `tls.rs` (the handshake runs in the connection's task,
//! so a slow one never holds up the accept loop).

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
use crate::runtime::{Runtime, Services};
use crate::site::static_files::StaticDir;
use crate::site::{self, RouteWatcher};

/// A server whose listener is bound and whose routes are loaded, ready to run.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    watcher: Option<RouteWatcher>,
    tls: Option<(Arc<Tls>, tls::CertWatcher)>,
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
        let runtime = Runtime::new(&config.runtime, &config.cache, Services::default())
            .context("cannot create the wasm engine")?;
        let started = std::time::Instant::now();
        let (routes, summary) = site::load(&runtime, &config.routes_dir)
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
        let app = Arc::new(App { static_dir, ..App::new(config, runtime, routes) });
        Ok(Self { listener, app, watcher, tls })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
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
        let Server { listener, app, watcher, tls } = self;
        let config = &app.config;
        info!(
            workers = config.workers,
            max_connections = config.max_connections,
            max_instances = config.runtime.max_instances,
            max_body = ?config.http.max_body,
            watch = watcher.is_some(),
            tls = tls.is_some(),
            static_dir = ?app.static_dir.as_ref().map(|s| s.dir().to_path_buf()),
            "serving"
        );
        let reloader = tokio::spawn(site::watch(app.clone(), watcher));
        let (tls, cert_reloader) = match tls {
            Some((tls, watcher)) => {
                let reloader = tokio::spawn(tls.clone().watch(watcher, app.shutdown.clone()));
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
                    tracker.spawn(async move {
                        match tls {
                            None => crate::conn::serve(stream, peer, app).await,
                            Some(tls) => match tls.handshake(stream).await {
                                Ok(stream) => crate::conn::serve(stream, peer, app).await,
                                Err(e) => debug!(peer = %peer, "{e}"),
                            },
                        }
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
        if let Some(r) = cert_reloader {
            r.abort();
        }
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
