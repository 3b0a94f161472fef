//! Hot reload: when the routes directory changes (or on SIGHUP), rescan it, compile only the
//! handler files whose content changed, and swap the whole route table atomically.
//!
//! Requests hold the table snapshot (and so the handler versions) they started with, so requests
//! in flight, long streams and SSE included, finish on the old code while new requests get the
//! new table as soon as it is stored. A file that fails to load keeps its previous version
//! serving; it is retried when its content changes (or on SIGHUP).
//!
//! This joins `routes` (scan, table, watcher) and `runtime` (compile), like `conn.rs` does for
//! requests; it never runs on a request's path (compiles happen on a blocking thread).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::routes::{MethodKey, RouteTable, RouteWatcher, scan};
use crate::runtime::{ContentHash, Runtime};
use crate::server::{App, LoadedHandler, Routes, load_file};

/// What the reloader remembers between rebuilds.
#[derive(Default)]
pub struct ReloadState {
    /// Files that failed to load, by content: not recompiled until their content changes.
    failed: HashMap<PathBuf, ContentHash>,
}

/// Rescans `dir` against the `current` table. Returns the new table if anything changed, or
/// `None` if nothing did or the tree cannot be used (then the current table keeps serving).
/// `force` retries files that failed before even if their content did not change.
pub fn rebuild(
    runtime: &Runtime,
    dir: &Path,
    current: &Routes,
    state: &mut ReloadState,
    force: bool,
) -> Option<Routes> {
    let files = match scan(dir) {
        Ok(files) => files,
        Err(e) => {
            warn!("routes not reloaded, the previous table keeps serving:\n{e}");
            return None;
        }
    };
    let mut old: HashMap<(String, MethodKey), Arc<LoadedHandler>> =
        current.entries().map(|(f, h)| ((f.route.clone(), f.method), h.clone())).collect();
    if force {
        state.failed.clear();
    }
    let mut changed = false;
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let key = (file.route.clone(), file.method);
        let previous = old.remove(&key);
        let bytes = match std::fs::read(&file.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(file = %file.path.display(), "cannot read handler: {e}; keeping the previous version");
                if let Some(prev) = previous {
                    entries.push((file, prev));
                }
                continue;
            }
        };
        let hash = ContentHash::of(&bytes);
        if let Some(prev) = &previous
            && prev.hash == hash
        {
            entries.push((file, prev.clone()));
            continue;
        }
        if state.failed.get(&file.path) == Some(&hash) {
            if let Some(prev) = previous {
                entries.push((file, prev));
            }
            continue;
        }
        let started = Instant::now();
        match load_file(runtime, &file, &bytes, hash) {
            Ok((loaded, cached)) => {
                state.failed.remove(&file.path);
                let old_hash = previous.as_ref().map_or_else(|| "none".to_owned(), |p| p.hash.to_string());
                info!(
                    route = %file.route, method = file.method.as_str(), old = %old_hash, new = %hash,
                    millis = started.elapsed().as_millis() as u64, cached,
                    "handler reloaded"
                );
                changed = true;
                entries.push((file, Arc::new(loaded)));
            }
            Err(e) => {
                state.failed.insert(file.path.clone(), hash);
                match previous {
                    Some(prev) => {
                        warn!("{e}; keeping the previous version ({}) serving", prev.hash);
                        entries.push((file, prev));
                    }
                    None => warn!("{e}; the route is not served until the file is fixed"),
                }
            }
        }
    }
    for ((route, method), gone) in old {
        info!(route = %route, method = method.as_str(), old = %gone.hash, "handler removed");
        changed = true;
    }
    if !changed {
        return None;
    }
    match RouteTable::new(entries) {
        Ok(table) => Some(table),
        Err(e) => {
            warn!("routes not reloaded, the previous table keeps serving:\n{e}");
            None
        }
    }
}

/// Watches the routes directory (and SIGHUP) until shutdown, swapping in each rebuilt table.
pub async fn watch(app: Arc<App>, mut watcher: Option<RouteWatcher>) {
    let mut state = ReloadState::default();
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
            () = app.shutdown.cancelled() => return,
        };
        let job_app = app.clone();
        let result = tokio::task::spawn_blocking(move || {
            let current = job_app.routes.load_full();
            let table = rebuild(&job_app.runtime, &job_app.config.routes_dir, &current, &mut state, force);
            (table, state)
        })
        .await;
        let table;
        (table, state) = match result {
            Ok(r) => r,
            Err(e) => {
                warn!("route reload failed: {e}");
                (None, ReloadState::default())
            }
        };
        if let Some(table) = table {
            let handlers = table.len();
            app.routes.store(Arc::new(table));
            info!(handlers, "route table swapped");
        }
    }
}
