//! Hot reload: when the routes directory changes (or on SIGHUP), rescan it, compile only the
//! handler files whose content changed, and swap the whole route table atomically.
//!
//! Requests hold the table snapshot (and so the handler versions) they started with, so requests
//! in flight, long streams and SSE included, finish on the old code while new requests get the
//! new table as soon as it is stored. A file that fails to load keeps its previous version
//! serving; it is retried when its content changes (or on SIGHUP).
//!
//! The rebuild itself is [`SiteBuilder::build`], the same pipeline start-up uses; this module
//! only decides when to run it and swaps the result in. It never runs on a request's path
//! (compiles happen on a blocking thread).

use std::sync::Arc;

use tracing::{info, warn};

use super::{Build, Change, RouteWatcher, SiteBuilder};
use crate::app::App;

/// Logs what a reload changed and what failed; returns whether the table should be swapped.
fn report(build: &Build) -> bool {
    super::log_problems(build);
    for change in &build.changes {
        match change {
            Change::Loaded { route, method, old, new, millis, source } => {
                let old = old.map_or_else(|| "none".to_owned(), |h| h.to_string());
                let code = source.as_str();
                info!(route = %route, method = method.as_str(), old = %old, new = %new, millis, code, "handler reloaded");
            }
            Change::Unavailable { .. } => {}
            Change::Removed { route, method, old } => {
                info!(route = %route, method = method.as_str(), old = %old, "handler removed");
            }
        }
    }
    !build.changes.is_empty()
}

/// Watches the routes directory (and SIGHUP) until shutdown, swapping in each rebuilt table.
pub async fn watch(app: Arc<App>, mut watcher: Option<RouteWatcher>) {
    let mut builder = SiteBuilder::default();
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let changed = async {
            match watcher.as_mut() {
                Some(w) => w.changed().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<Option<()>>();
        let force = tokio::select! {
            c = changed => {
                if c.is_none() {
                    warn!("the routes watcher stopped; changes are no longer picked up (SIGHUP still rescans)");
                    watcher = None;
                    continue;
                }
                false
            }
            _ = hup => {
                info!("SIGHUP: rescanning the routes directory");
                true
            }
            () = app.shutdown.token().cancelled() => return,
        };
        let job_app = app.clone();
        let result = tokio::task::spawn_blocking(move || {
            let current = job_app.routes.load_full();
            let build = builder.build(&job_app.runtime, &job_app.config.routes_dir, &current, force);
            (build, builder)
        })
        .await;
        let build = match result {
            Ok((build, returned)) => {
                builder = returned;
                build
            }
            Err(e) => {
                warn!("route reload failed: {e}");
                app.metrics.reloaded(false, true);
                builder = SiteBuilder::default();
                continue;
            }
        };
        match build {
            Ok(build) => {
                let failed = !build.problems.is_empty();
                let swapped = report(&build);
                if swapped {
                    let handlers = build.routes.len();
                    app.routes.store(Arc::new(build.routes));
                    app.error_pages.store(Arc::new(build.errors));
                    info!(handlers, "route table swapped");
                    tokio::task::spawn_blocking(|| {
                        crate::memory::trim_heap();
                        crate::memory::release_file_pages();
                    });
                }
                app.metrics.reloaded(swapped, failed);
            }
            Err(e) => {
                warn!("routes not reloaded, the previous table keeps serving:\n{e}");
                app.metrics.reloaded(false, true);
            }
        }
    }
}
