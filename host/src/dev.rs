//! `wasm-host dev`: from source to served in one command. Builds every handler crate of a
//! project (the layout `wasm-host new` creates), places the components into the project's
//! routes tree, serves it, and on every save rebuilds only the crates that changed; the
//! server's own hot reload swaps them in without a restart.
//!
//! ```text
//! PROJECT/
//!   Cargo.toml        [workspace] members = ["handlers/*"], and [workspace.metadata.wasm-host]
//!                     routes = "routes"
//!   handlers/NAME/    one cdylib crate per handler; [package.metadata.wasm-host] route = "/x/{id}",
//!                     methods = ["GET", "PUT"]
//!   routes/           where the built components are placed, as routes/x/{id}/GET.wasm
//! ```
//!
//! A build error is printed as cargo prints it (colours kept) and, while it lasts, requests to
//! that route get a page with the compiler's message (or, with `--keep-serving`, the previous
//! good version). Handlers are built with line tables and without stripping, so a trap's page
//! shows function names and file:line.
//!
//! Owns the build loop only; serving is `server`, reloading is `site`.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use serde::Deserialize;
use tracing::{info, warn};

use crate::app::App;
use crate::routes::{MethodKey, RouteFile, RouteTable};
use crate::site::RouteWatcher;

/// The guests' target.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Why a project cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The folder has no project manifest.
    #[error(
        "{} is not a wasm-host project: its Cargo.toml has no [workspace.metadata.wasm-host] table \
         (create a project with `wasm-host new NAME`)",
        .0.display()
    )]
    NotAProject(PathBuf),
    /// A manifest cannot be read or parsed.
    #[error("cannot read {}: {reason}", path.display())]
    Manifest {
        /// The Cargo.toml.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A handler crate is not a `cdylib`, so cargo would not write a component.
    #[error(
        "{}: the crate is not a cdylib, so it builds no component; add\n\n    [lib]\n    crate-type = [\"cdylib\"]\n",
        .0.display()
    )]
    NotCdylib(PathBuf),
    /// A handler crate does not say where it is served.
    #[error("{}: no [package.metadata.wasm-host] route = \"/path\" (where is it served?)", .0.display())]
    NoRoute(PathBuf),
    /// A route or method the router cannot serve.
    #[error("{}: {reason}", path.display())]
    BadRoute {
        /// The Cargo.toml.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct RootManifest {
    workspace: Option<RootWorkspace>,
}

#[derive(Deserialize)]
struct RootWorkspace {
    metadata: Option<RootMetadata>,
}

#[derive(Deserialize)]
struct RootMetadata {
    #[serde(rename = "wasm-host")]
    wasm_host: Option<ProjectSettings>,
}

#[derive(Deserialize)]
struct ProjectSettings {
    routes: Option<PathBuf>,
}

#[derive(Deserialize)]
struct CrateManifest {
    package: Package,
    lib: Option<Lib>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    metadata: Option<PackageMetadata>,
}

#[derive(Deserialize)]
struct PackageMetadata {
    #[serde(rename = "wasm-host")]
    wasm_host: Option<HandlerSettings>,
}

#[derive(Deserialize)]
struct HandlerSettings {
    route: Option<String>,
    methods: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Lib {
    name: Option<String>,
    #[serde(rename = "crate-type")]
    crate_type: Option<Vec<String>>,
}

/// One handler crate of a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerCrate {
    /// The package name (`cargo build -p`).
    pub package: String,
    /// The library name: the component is `<lib>.wasm`.
    pub lib: String,
    /// The crate's folder.
    pub dir: PathBuf,
    /// The route pattern, e.g. `/users/{id}`.
    pub route: String,
    /// The handler files it is placed as.
    pub methods: Vec<MethodKey>,
}

impl HandlerCrate {
    /// Where the component goes in the routes tree, one file per method.
    fn destinations(&self, routes_dir: &Path) -> Vec<PathBuf> {
        let folder =
            self.route.split('/').filter(|s| !s.is_empty()).fold(routes_dir.to_path_buf(), |p, s| p.join(s));
        self.methods.iter().map(|m| folder.join(m.file_name())).collect()
    }
}

/// A project: its handler crates and where they are served from.
#[derive(Debug)]
pub struct Project {
    /// The project folder.
    pub root: PathBuf,
    /// The routes tree served.
    pub routes_dir: PathBuf,
    /// Where cargo writes (`CARGO_TARGET_DIR`, else `PROJECT/target`).
    pub target_dir: PathBuf,
    /// The handler crates, by package name.
    pub handlers: Vec<HandlerCrate>,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ProjectError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProjectError::Manifest { path: path.to_path_buf(), reason: e.to_string() })?;
    toml::from_str(&text)
        .map_err(|e| ProjectError::Manifest { path: path.to_path_buf(), reason: e.to_string() })
}

impl Project {
    /// Reads the project at `root`: its settings and every `handlers/*/Cargo.toml`.
    ///
    /// # Errors
    ///
    /// A [`ProjectError`] naming the manifest and what to change.
    pub fn load(root: &Path) -> Result<Self, ProjectError> {
        let manifest: RootManifest = read_toml(&root.join("Cargo.toml"))?;
        let settings = manifest
            .workspace
            .and_then(|w| w.metadata)
            .and_then(|m| m.wasm_host)
            .ok_or_else(|| ProjectError::NotAProject(root.to_path_buf()))?;
        let routes_dir = root.join(settings.routes.unwrap_or_else(|| "routes".into()));
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("handlers"))
            .map(|it| {
                it.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.join("Cargo.toml").is_file())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        let handlers = dirs.into_iter().map(|dir| read_crate(&dir)).collect::<Result<_, _>>()?;
        Ok(Self { root: root.to_path_buf(), routes_dir, target_dir, handlers })
    }
}

fn read_crate(dir: &Path) -> Result<HandlerCrate, ProjectError> {
    let path = dir.join("Cargo.toml");
    let manifest: CrateManifest = read_toml(&path)?;
    let lib = manifest.lib.unwrap_or(Lib { name: None, crate_type: None });
    if !lib.crate_type.unwrap_or_default().iter().any(|t| t == "cdylib") {
        return Err(ProjectError::NotCdylib(path));
    }
    let settings = manifest.package.metadata.and_then(|m| m.wasm_host);
    let route =
        settings.as_ref().and_then(|s| s.route.clone()).ok_or_else(|| ProjectError::NoRoute(path.clone()))?;
    if !route.starts_with('/') || route.split('/').any(|s| s == "." || s == "..") {
        return Err(ProjectError::BadRoute {
            path,
            reason: format!("route {route:?} must start with `/`, without `.` or `..`"),
        });
    }
    let names = settings.and_then(|s| s.methods).unwrap_or_else(|| vec!["GET".into()]);
    let methods = names
        .iter()
        .map(|m| {
            MethodKey::from_file_name(&format!("{m}.wasm")).ok_or_else(|| ProjectError::BadRoute {
                path: path.clone(),
                reason: format!("unknown method {m:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    let lib = lib.name.unwrap_or_else(|| manifest.package.name.replace('-', "_"));
    Ok(HandlerCrate { package: manifest.package.name, lib, dir: dir.to_path_buf(), route, methods })
}

/// Installs the wasm target with rustup when it is missing (no-op without rustup).
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    info!("installing the {WASM_TARGET} target with rustup");
    let status =
        Command::new("rustup").args(["target", "add", WASM_TARGET]).status().context("cannot run rustup")?;
    anyhow::ensure!(status.success(), "`rustup target add {WASM_TARGET}` failed");
    Ok(())
}

/// Builds one crate; cargo's output goes to our stderr as cargo wrote it. `Err`: the output
/// without colours, for the error page.
fn build(project: &Project, krate: &HandlerCrate) -> Result<PathBuf, String> {
    let color = if std::io::stderr().is_terminal() { "always" } else { "never" };
    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&project.root)
        .args(["build", "--release", "--target", WASM_TARGET, "-p", &krate.package, "--color", color])
        .env("CARGO_TARGET_DIR", &project.target_dir)
        // Symbols and line tables for readable traps in dev mode.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .env("CARGO_PROFILE_RELEASE_STRIP", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut output = String::new();
    let mut stderr = std::io::stderr();
    if let Some(pipe) = child.stderr.take() {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = writeln!(stderr, "{line}");
            output.push_str(&strip_ansi(&line));
            output.push('\n');
        }
    }
    match child.wait() {
        Ok(status) if status.success() => {
            Ok(project.target_dir.join(WASM_TARGET).join("release").join(format!("{}.wasm", krate.lib)))
        }
        Ok(_) => Err(output),
        Err(e) => Err(format!("cargo did not finish: {e}")),
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Copies `component` to `dest` atomically (a hidden file beside it, then a rename), so the
/// server never loads half a file.
fn place(component: &Path, dest: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(component)?;
    if std::fs::read(dest).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let dir = dest.parent().expect("a destination has a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.dev-tmp", dest.file_name().expect("a file name").to_string_lossy()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, dest)
}

/// A crate's sources, summarised by the names, sizes and modification times of its files:
/// changes when a file is saved.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            if name.as_encoded_bytes().starts_with(b".") || name == "target" {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    out.sort();
    out
}

/// The build loop's memory between rounds.
#[derive(Default)]
pub struct Builder {
    /// Per package: the fingerprint of its last build.
    built: BTreeMap<String, Vec<(PathBuf, u64, SystemTime)>>,
    /// Per package: cargo's output of its failed build.
    failed: BTreeMap<String, (HandlerCrate, Arc<str>)>,
    /// Files this loop placed in the routes tree.
    placed: HashSet<PathBuf>,
}

impl Builder {
    /// Builds every crate of `project` whose sources changed since its last build, places the
    /// good ones, and returns the table of broken ones. Blocking: run it off the async workers.
    pub fn round(&mut self, project: &Project) -> RouteTable<Arc<str>> {
        let mut wanted = HashSet::new();
        for krate in &project.handlers {
            let print = fingerprint(&krate.dir);
            let dests = krate.destinations(&project.routes_dir);
            wanted.extend(dests.iter().cloned());
            if self.built.get(&krate.package) == Some(&print) {
                continue;
            }
            let started = Instant::now();
            match build(project, krate) {
                Ok(component) => {
                    let millis = started.elapsed().as_millis() as u64;
                    for dest in &dests {
                        match place(&component, dest) {
                            Ok(()) => {
                                self.placed.insert(dest.clone());
                            }
                            Err(e) => {
                                warn!("cannot place {} at {}: {e}", component.display(), dest.display())
                            }
                        }
                    }
                    info!(handler = %krate.package, route = %krate.route, millis, "built; the server swaps it in");
                    self.failed.remove(&krate.package);
                }
                Err(output) => {
                    warn!(
                        handler = %krate.package, route = %krate.route,
                        "build failed; requests to the route show the compiler's message until it builds"
                    );
                    self.failed.insert(krate.package.clone(), (krate.clone(), output.into()));
                }
            }
            self.built.insert(krate.package.clone(), print);
        }
        // Files for crates (or routes, methods) that are gone.
        for stale in self.placed.iter().filter(|p| !wanted.contains(*p)).cloned().collect::<Vec<_>>() {
            let _ = std::fs::remove_file(&stale);
            self.placed.remove(&stale);
        }
        self.failed.retain(|package, _| project.handlers.iter().any(|h| &h.package == package));
        let entries = self.failed.values().flat_map(|(krate, output)| {
            krate.methods.iter().zip(krate.destinations(&project.routes_dir)).map(|(method, path)| {
                (
                    RouteFile { route: krate.route.clone(), method: *method, path, declares: Vec::new() },
                    output.clone(),
                )
            })
        });
        RouteTable::new(entries.collect::<Vec<_>>()).unwrap_or_else(|e| {
            warn!("broken builds cannot be shown as pages: {e}");
            RouteTable::default()
        })
    }
}

/// Starts watching a project's handler sources (before serving, so no save is missed).
///
/// # Errors
///
/// When `PROJECT/handlers` cannot be watched.
pub fn watch_project(root: &Path) -> anyhow::Result<RouteWatcher> {
    Ok(RouteWatcher::new(&root.join("handlers"))?)
}

/// Rebuilds on every save until shutdown: on each change `watcher` reports, reruns
/// [`Builder::round`] and publishes the broken-build table to `app`.
pub async fn watch_sources(app: Arc<App>, root: PathBuf, mut watcher: RouteWatcher, mut builder: Builder) {
    let Some(failures) = &app.build_failures else { return };
    loop {
        tokio::select! {
            changed = watcher.changed() => if changed.is_none() { return },
            () = app.shutdown.token().cancelled() => return,
        }
        let job_root = root.clone();
        let result = tokio::task::spawn_blocking(move || {
            let table = match Project::load(&job_root) {
                Ok(project) => Some(builder.round(&project)),
                Err(e) => {
                    warn!("{e}");
                    None
                }
            };
            (table, builder)
        })
        .await;
        match result {
            Ok((table, returned)) => {
                builder = returned;
                if let Some(table) = table {
                    failures.table.store(Arc::new(table));
                }
            }
            Err(e) => {
                warn!("the build loop failed: {e}");
                return;
            }
        }
    }
}
