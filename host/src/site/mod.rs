//! Building the served site from disk: scan the routes directory, read and hash each handler
//! file, compile what changed, and build the route table. One pipeline, [`SiteBuilder::build`],
//! serves both start-up ([`load`]) and hot reload (`reload`), with one policy: a handler file
//! that fails to load keeps its previous version serving if it had one, and otherwise its route
//! answers 503 until the file is fixed; a misnamed file is reported and ignored. `--strict`
//! start-up refuses to start on any problem instead.
//!
//! Joins `routes` (the pure table) with `runtime` (compiling) and fills `app`'s route
//! snapshot; it never runs on a request's path (reload compiles on a blocking thread).

pub mod listing;
mod reload;
mod scan;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use reload::watch;
pub use scan::{MAX_DEPTH, Scanned, scan, walk};
pub use watch::{DEBOUNCE, RouteWatcher, WatchError};

use crate::app::{LoadedHandler, Routes};
use crate::routes::{MethodKey, Problem, RouteFile, RouteTable};
use crate::runtime::{ContentHash, Handler, LoadError, Runtime};

/// One thing wrong with a site: a problem of the tree itself, or a handler that does not load.
#[derive(Debug, thiserror::Error)]
pub enum SiteProblem {
    /// The routes tree (a name, a conflict, an unreadable folder).
    #[error(transparent)]
    Routes(#[from] Problem),
    /// A handler file that cannot be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A handler declares a method no handler file can be named after.
    #[error(
        "cannot load handler {}: it declares method `{method}`, which is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        path.display()
    )]
    UnknownMethod {
        /// The file.
        path: PathBuf,
        /// The method it declares.
        method: String,
    },
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

/// How many handlers a build compiled, how many came from the compile cache, and how many
/// share the code of a file with the same bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Handlers compiled from scratch.
    pub compiled: usize,
    /// Handlers whose compiled code came from the on-disk cache.
    pub cached: usize,
    /// Handlers whose file has the same bytes as another one loaded: they run its code.
    pub shared: usize,
}

/// Where a loaded handler's compiled code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Compiled now.
    Compiled,
    /// The on-disk compile cache.
    Cache,
    /// Another handler file with the same bytes, already loaded.
    Shared,
}

impl Source {
    /// How a log line says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compiled => "compiled",
            Self::Cache => "cache",
            Self::Shared => "shared",
        }
    }
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
        /// Where its code came from.
        source: Source,
    },
    /// A new handler file failed to load: its route answers 503 until it is fixed.
    Unavailable {
        /// The route pattern.
        route: String,
        /// The method of the file.
        method: MethodKey,
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
    /// The new table (the previous versions of handlers that failed to load are kept in it;
    /// those without one are in it as unavailable).
    pub routes: Routes,
    /// What changed; empty when the new table serves exactly what the previous one did.
    pub changes: Vec<Change>,
    /// Handler files that failed to load (only when they did not fail the same way before).
    pub problems: Vec<Failed>,
    /// Problems of the tree (misnamed files, unroutable folders); what they concern is not
    /// served.
    pub tree_problems: Vec<Problem>,
    /// The error pages, `routes/errors/{code}` files keyed by `/{code}`: not ordinary routes.
    pub errors: Routes,
    /// Compile and cache counts.
    pub summary: LoadSummary,
}

impl Build {
    /// Whether anything is wrong with the site.
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty() || !self.tree_problems.is_empty()
    }
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
        let Scanned { files, problems: tree_problems } =
            walk(dir).map_err(|e| SiteError::from_routes(e.into_problems()))?;
        let mut old: HashMap<(String, MethodKey), Arc<LoadedHandler>> =
            previous.entries().map(|(f, h)| ((f.route.clone(), f.method), h.clone())).collect();
        if force {
            self.failed.clear();
        }
        let mut entries: Vec<(RouteFile, Arc<LoadedHandler>)> = Vec::with_capacity(files.len());
        let mut changes = Vec::new();
        let mut problems = Vec::new();
        let mut summary = LoadSummary::default();
        // Loaded handlers by content: a file with the same bytes as one in the table this
        // build starts from, or as one loaded earlier in it, runs the same compiled code.
        let mut by_content: HashMap<ContentHash, Handler> = previous
            .entries()
            .filter_map(|(_, loaded)| Some((loaded.hash, loaded.handler.as_ref().ok()?.clone())))
            .collect();
        for file in files {
            let previous = old.remove(&(file.route.clone(), file.method));
            let bytes = match std::fs::read(&file.path) {
                Ok(bytes) => bytes,
                Err(source) => {
                    let problem: SiteProblem = LoadError::Read { path: file.path.clone(), source }.into();
                    let kept = previous
                        .unwrap_or_else(|| unavailable(&file, ContentHash::of(&[]), &problem.to_string()));
                    problems.push(Failed { problem, kept: Some(kept.hash).filter(|_| kept.handler.is_ok()) });
                    entries.push((file, kept));
                    continue;
                }
            };
            let hash = ContentHash::of(&bytes);
            if let Some(prev) = previous.as_ref().filter(|p| p.hash == hash) {
                entries.push((file, prev.clone()));
                continue;
            }
            if self.failed.get(&file.path) == Some(&hash) {
                let kept = previous.unwrap_or_else(|| unavailable(&file, hash, "failed to load"));
                entries.push((file, kept));
                continue;
            }
            let started = Instant::now();
            match load_file(runtime, &file, &bytes, hash, by_content.get(&hash)) {
                Ok((loaded, source)) => {
                    self.failed.remove(&file.path);
                    match source {
                        Source::Compiled => summary.compiled += 1,
                        Source::Cache => summary.cached += 1,
                        Source::Shared => summary.shared += 1,
                    }
                    if let Ok(handler) = &loaded.handler {
                        by_content.entry(hash).or_insert_with(|| handler.clone());
                    }
                    changes.push(Change::Loaded {
                        route: file.route.clone(),
                        method: file.method,
                        old: previous.map(|p| p.hash),
                        new: hash,
                        millis: started.elapsed().as_millis() as u64,
                        source,
                    });
                    entries.push((file, Arc::new(loaded)));
                }
                Err(problem) => {
                    self.failed.insert(file.path.clone(), hash);
                    let kept = match previous {
                        Some(prev) if prev.handler.is_ok() => prev,
                        _ => {
                            changes
                                .push(Change::Unavailable { route: file.route.clone(), method: file.method });
                            unavailable(&file, hash, &problem.to_string())
                        }
                    };
                    problems.push(Failed { problem, kept: Some(kept.hash).filter(|_| kept.handler.is_ok()) });
                    entries.push((file, kept));
                }
            }
        }
        for ((route, method), gone) in old {
            changes.push(Change::Removed { route, method, old: gone.hash });
        }
        // An ANY file routes only the methods its handler declares.
        for (file, loaded) in &mut entries {
            if file.method == MethodKey::Any {
                file.declares = loaded.declares.clone();
            }
        }
        let mut tree_problems = tree_problems;
        let (pages, entries): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(file, _)| file.route == "/errors" || file.route.starts_with("/errors/"));
        let mut error_entries = Vec::new();
        for (mut file, loaded) in pages {
            match error_page_route(&file) {
                Ok(route) => {
                    file.route = route;
                    error_entries.push((file, loaded));
                }
                Err(reason) => tree_problems.push(Problem::BadErrorPage { path: file.path, reason }),
            }
        }
        let routes = RouteTable::new(entries).map_err(|e| SiteError::from_routes(e.into_problems()))?;
        let errors = RouteTable::new(error_entries).map_err(|e| SiteError::from_routes(e.into_problems()))?;
        Ok(Build { routes, changes, problems, tree_problems, errors, summary })
    }
}

/// The error-page table's route for a file under `errors/`: `/errors/404` → `/404`, and
/// `/errors/{code}` → `/{code}` (every status).
fn error_page_route(file: &RouteFile) -> Result<String, &'static str> {
    if !matches!(file.method, MethodKey::Get | MethodKey::Any) {
        return Err("an error page is GET.wasm or ANY.wasm");
    }
    let code =
        file.route.strip_prefix("/errors/").ok_or("put it in errors/{code}/ (e.g. errors/404/GET.wasm)")?;
    let status_ok = code.parse::<u16>().is_ok_and(|s| (400..=599).contains(&s)) && code.len() == 3;
    let param = code.starts_with('{') && code.ends_with('}') && !code.contains('/');
    if status_ok || param {
        Ok(format!("/{code}"))
    } else {
        Err("the folder below errors/ must be a status code from 400 to 599 or a `{param}`")
    }
}

/// Logs every problem of a build, saying what is served instead.
pub fn log_problems(build: &Build) {
    for problem in &build.tree_problems {
        tracing::warn!("{problem}; it is not served");
    }
    for failed in &build.problems {
        match failed.kept {
            Some(kept) => tracing::warn!("{}; keeping the previous version ({kept}) serving", failed.problem),
            None => tracing::warn!("{}; the route answers 503 until the file is fixed", failed.problem),
        }
    }
}

/// The table entry of a handler file that cannot be served: its route answers 503.
fn unavailable(file: &RouteFile, hash: ContentHash, reason: &str) -> Arc<LoadedHandler> {
    let label = format!("{} {}", file.method.as_str(), file.route).into();
    Arc::new(LoadedHandler { handler: Err(reason.into()), label, hash, declares: Vec::new() })
}

/// Loads every handler under `dir` for start-up and `wasm-host routes`. With `strict`, any
/// problem (every one is reported, not just the first) refuses the whole site; otherwise the
/// build carries its problems and broken routes answer 503, as after a reload.
///
/// # Errors
///
/// A [`SiteError`] when the tree cannot be read, or listing every problem under `strict`.
pub fn load(runtime: &Runtime, dir: &Path, strict: bool) -> Result<Build, SiteError> {
    let build = SiteBuilder::default().build(runtime, dir, &Routes::default(), false)?;
    if strict && build.has_problems() {
        let mut problems: Vec<SiteProblem> =
            build.tree_problems.into_iter().map(SiteProblem::Routes).collect();
        problems.extend(build.problems.into_iter().map(|f| f.problem));
        return Err(SiteError { problems });
    }
    Ok(build)
}

/// Loads one handler file from its `bytes`, or runs the code of `same`, a handler loaded from
/// the same bytes; says where the code came from. Only an `ANY` file's handler is asked which
/// methods it implements (the other files are named after theirs), so no guest code runs at
/// load for the others.
fn load_file(
    runtime: &Runtime,
    file: &RouteFile,
    bytes: &[u8],
    hash: ContentHash,
    same: Option<&Handler>,
) -> Result<(LoadedHandler, Source), SiteProblem> {
    let (handler, source) = match same {
        Some(same) => (runtime.same_code(same), Source::Shared),
        None => match runtime.load(&file.path, bytes)? {
            (handler, true) => (handler, Source::Cache),
            (handler, false) => (handler, Source::Compiled),
        },
    };
    let declares = match file.method {
        MethodKey::Any => runtime
            .methods(&file.path, &handler)?
            .into_iter()
            .map(|m| {
                MethodKey::from_request_method(&m)
                    .ok_or_else(|| SiteProblem::UnknownMethod { path: file.path.clone(), method: m })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let label = format!("{} {}", file.method.as_str(), file.route).into();
    Ok((LoadedHandler { handler: Ok(handler), label, hash, declares }, source))
}
