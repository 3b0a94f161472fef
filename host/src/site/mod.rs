//! Building the served site from disk: scan the routes directory, read and hash each handler
//! file, compile what changed, and build the route table. One pipeline, [`SiteBuilder::build`],
//! serves both start-up (strict: any problem refuses to start, [`load`]) and hot reload
//! (tolerant: a broken file keeps its previous version, `reload`).
//!
//! Joins `routes` (the pure table) with `runtime` (compiling) and fills `app`'s route
//! snapshot; it never runs on a request's path (reload compiles on a blocking thread).

mod reload;
mod scan;
pub mod static_files;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use reload::watch;
pub use scan::{MAX_DEPTH, scan};
pub use watch::{DEBOUNCE, RouteWatcher, WatchError};

use crate::app::{LoadedHandler, Routes};
use crate::routes::{MethodKey, Problem, RouteFile, RouteTable};
use crate::runtime::{ContentHash, LoadError, Runtime};

/// One thing wrong with a site: a problem of the tree itself, or a handler that does not load.
#[derive(Debug, thiserror::Error)]
pub enum SiteProblem {
    /// The routes tree (a name, a conflict, an unreadable folder).
    #[error(transparent)]
    Routes(#[from] Problem),
    /// A handler file that cannot be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Why a site could not be built: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SiteError {
    /// The problems, in the order found (at least one).
    pub problems: Vec<SiteProblem>,
}

impl SiteError {
    fn from_routes(problems: Vec<Problem>) -> Self {
        Self { problems: problems.into_iter().map(SiteProblem::Routes).collect() }
    }
}

/// How many handlers a build compiled and how many came from the compile cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Handlers compiled from scratch.
    pub compiled: usize,
    /// Handlers whose compiled code came from the on-disk cache.
    pub cached: usize,
}

/// What a build changed compared to the table it started from.
#[derive(Debug)]
pub enum Change {
    /// A handler file was loaded: new, or with new content.
    Loaded {
        /// The route pattern.
        route: String,
        /// The method of the file.
        method: MethodKey,
        /// The version it replaces, if any.
        old: Option<ContentHash>,
        /// The new version.
        new: ContentHash,
        /// Compile (or cache load) time.
        millis: u64,
        /// Whether the code came from the cache.
        cached: bool,
    },
    /// A handler file is gone.
    Removed {
        /// The route pattern.
        route: String,
        /// The method of the file.
        method: MethodKey,
        /// Its last version.
        old: ContentHash,
    },
}

/// A handler file that failed to load in a build.
#[derive(Debug)]
pub struct Failed {
    /// Why.
    pub problem: SiteProblem,
    /// The previous version, which keeps serving the route (none: the route is not served).
    pub kept: Option<ContentHash>,
}

/// The result of a build that could produce a table.
pub struct Build {
    /// The new table (the previous versions of handlers that failed to load are kept in it).
    pub routes: Routes,
    /// What changed; empty when the new table serves exactly what the previous one did.
    pub changes: Vec<Change>,
    /// Handler files that failed to load.
    pub problems: Vec<Failed>,
    /// Compile and cache counts.
    pub summary: LoadSummary,
}

/// Builds sites, remembering between builds which files failed (by content), so a broken file
/// is not recompiled until it changes.
#[derive(Default)]
pub struct SiteBuilder {
    failed: HashMap<PathBuf, ContentHash>,
}

impl SiteBuilder {
    /// Scans `dir` and builds its table on top of `previous`: handlers whose content did not
    /// change are reused, changed ones are compiled, and one that fails to load keeps its
    /// previous version (reported in [`Build::problems`]). `force` retries files that failed
    /// before even if their content did not change.
    ///
    /// # Errors
    ///
    /// A [`SiteError`] when the tree itself cannot be used (unreadable, bad names, conflicting
    /// folders); no table is built then.
    pub fn build(
        &mut self,
        runtime: &Runtime,
        dir: &Path,
        previous: &Routes,
        force: bool,
    ) -> Result<Build, SiteError> {
        let files = scan(dir).map_err(|e| SiteError::from_routes(e.into_problems()))?;
        let mut old: HashMap<(String, MethodKey), Arc<LoadedHandler>> =
            previous.entries().map(|(f, h)| ((f.route.clone(), f.method), h.clone())).collect();
        if force {
            self.failed.clear();
        }
        let mut entries = Vec::with_capacity(files.len());
        let mut changes = Vec::new();
        let mut problems = Vec::new();
        let mut summary = LoadSummary::default();
        for file in files {
            let previous = old.remove(&(file.route.clone(), file.method));
            let bytes = match std::fs::read(&file.path) {
                Ok(bytes) => bytes,
                Err(source) => {
                    let problem = LoadError::Read { path: file.path.clone(), source }.into();
                    problems.push(Failed { problem, kept: previous.as_ref().map(|p| p.hash) });
                    entries.extend(previous.map(|p| (file, p)));
                    continue;
                }
            };
            let hash = ContentHash::of(&bytes);
            if let Some(prev) = previous.as_ref().filter(|p| p.hash == hash) {
                entries.push((file, prev.clone()));
                continue;
            }
            if self.failed.get(&file.path) == Some(&hash) {
                entries.extend(previous.map(|p| (file, p)));
                continue;
            }
            let started = Instant::now();
            match load_file(runtime, &file, &bytes, hash) {
                Ok((loaded, cached)) => {
                    self.failed.remove(&file.path);
                    if cached {
                        summary.cached += 1;
                    } else {
                        summary.compiled += 1;
                    }
                    changes.push(Change::Loaded {
                        route: file.route.clone(),
                        method: file.method,
                        old: previous.map(|p| p.hash),
                        new: hash,
                        millis: started.elapsed().as_millis() as u64,
                        cached,
                    });
                    entries.push((file, Arc::new(loaded)));
                }
                Err(e) => {
                    self.failed.insert(file.path.clone(), hash);
                    problems.push(Failed { problem: e.into(), kept: previous.as_ref().map(|p| p.hash) });
                    entries.extend(previous.map(|p| (file, p)));
                }
            }
        }
        for ((route, method), gone) in old {
            changes.push(Change::Removed { route, method, old: gone.hash });
        }
        let routes = RouteTable::new(entries).map_err(|e| SiteError::from_routes(e.into_problems()))?;
        Ok(Build { routes, changes, problems, summary })
    }
}

/// Loads every handler under `dir` for start-up and `wasm-host routes`: strict, so any
/// problem (every one is reported, not just the first) refuses the whole site.
///
/// # Errors
///
/// A [`SiteError`] listing every problem.
pub fn load(runtime: &Runtime, dir: &Path) -> Result<(Routes, LoadSummary), SiteError> {
    let build = SiteBuilder::default().build(runtime, dir, &Routes::default(), false)?;
    if !build.problems.is_empty() {
        return Err(SiteError { problems: build.problems.into_iter().map(|f| f.problem).collect() });
    }
    Ok((build.routes, build.summary))
}

/// Loads one handler file from its `bytes`; also says whether its code came from the cache.
fn load_file(
    runtime: &Runtime,
    file: &RouteFile,
    bytes: &[u8],
    hash: ContentHash,
) -> Result<(LoadedHandler, bool), LoadError> {
    let (handler, cached) = runtime.load(&file.path, bytes)?;
    let label = format!("{} {}", file.method.as_str(), file.route).into();
    Ok((LoadedHandler { handler, label, hash }, cached))
}
