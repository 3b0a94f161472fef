//! Watching a routes directory for changes (notify), with debouncing: a burst of file-system
//! events (an editor's save, a `cp` of a large file, a `git checkout`) becomes one "changed"
//! signal once the directory has been quiet for a moment.
//!
//! Knows nothing of handlers: what a change means is decided by whoever rebuilds the table.

use std::path::{Component, Path};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// How long the directory must stay quiet before a change is reported. Long enough to merge
/// the several events of one write, short enough that a deploy is served within milliseconds.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// The longest a steady stream of events can delay a reload.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// A live watch on a routes directory; dropping it stops watching.
pub struct RouteWatcher {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

/// The directory could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    /// The routes directory.
    pub path: String,
    /// notify's reason.
    #[source]
    pub source: notify::Error,
}

impl RouteWatcher {
    /// Starts watching `dir` recursively (folders created later are watched too).
    pub fn new(dir: &Path) -> Result<Self, WatchError> {
        let (tx, events) = mpsc::unbounded_channel();
        // Events carry absolute paths; only names below the routes directory decide hiddenness.
        let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res
                && is_relevant(&event, &root)
            {
                let _ = tx.send(());
            }
        })
        .map_err(|source| WatchError { path: dir.display().to_string(), source })?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError { path: dir.display().to_string(), source })?;
        Ok(Self { _watcher: watcher, events })
    }

    /// Waits for the next change, then for the directory to go quiet. `None` if the watcher
    /// stopped.
    pub async fn changed(&mut self) -> Option<()> {
        self.events.recv().await?;
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let quiet = tokio::time::Instant::now() + DEBOUNCE;
            match tokio::time::timeout_at(quiet.min(deadline), self.events.recv()).await {
                Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
                Ok(None) => return None,
                _ => return Some(()),
            }
        }
    }
}

/// Reads and metadata-only changes cannot change what is served; neither can files whose name
/// (or a parent folder's) starts with `.`, which the scan ignores (editors' swap files, the
/// temporary file of an atomic `mv` deploy).
fn is_relevant(event: &notify::Event, root: &Path) -> bool {
    let kind_matters = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other
    ) || matches!(event.kind, EventKind::Modify(m) if !matches!(m, notify::event::ModifyKind::Metadata(_)));
    kind_matters && event.paths.iter().any(|p| !is_hidden(p.strip_prefix(root).unwrap_or(p)))
}

/// Whether a path relative to the routes directory has a component starting with `.`.
fn is_hidden(relative: &Path) -> bool {
    relative
        .components()
        .any(|c| matches!(c, Component::Normal(name) if name.to_string_lossy().starts_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_files_do_not_count_as_changes() {
        assert!(is_hidden(Path::new(".tmp-GET.wasm")));
        assert!(is_hidden(Path::new(".git/index")));
        assert!(!is_hidden(Path::new("hello/GET.wasm")));
    }

    #[tokio::test]
    async fn a_burst_of_writes_is_one_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RouteWatcher::new(dir.path()).unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join("GET.wasm"), [i]).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), w.changed()).await.unwrap().unwrap();
        // Everything was merged into that one change: nothing more arrives.
        assert!(tokio::time::timeout(Duration::from_millis(200), w.changed()).await.is_err());
    }

    #[tokio::test]
    async fn dot_files_are_ignored_even_below_a_dotted_root() {
        // Temp dirs are often named `.tmpXXXX`: only names below the root count.
        let dir = tempfile::tempdir().unwrap();
        assert!(dir.path().file_name().unwrap().to_string_lossy().starts_with(".tmp"));
        let mut w = RouteWatcher::new(dir.path()).unwrap();
        std::fs::write(dir.path().join(".swap"), b"x").unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), w.changed()).await.is_err());
    }
}
