//! `wasm-host new`: creates a handler crate, inside a project laid out for building and
//! serving (the layout a future `wasm-host dev` reads).
//!
//! ```text
//! PROJECT/
//!   Cargo.toml              workspace: members handlers/*, [workspace.metadata.wasm-host]
//!   handlers/NAME/          one crate per handler (cdylib); its route and methods in
//!     Cargo.toml            [package.metadata.wasm-host]
//!     src/lib.rs
//!   routes/                 the tree `wasm-host run routes` serves: built handlers go here
//!   sdk/wasm-host-sdk/      the SDK, copied from this binary (see below)
//!   sdk/wit/                the WIT contract the SDK is generated from
//! ```
//!
//! How the SDK resolves: the SDK is not on a registry, so this binary carries its sources and
//! the WIT files (embedded by `host/build.rs`) and writes them into the project; the handlers
//! depend on that copy by path. A project then builds anywhere the package registries are
//! reachable, needs nothing but the binary that created it, and keeps the SDK matching the
//! host it was made with. `--sdk PATH` depends on an existing SDK checkout instead.
//!
//! Owns only file generation: no HTTP, no wasm. Names and methods are checked against the
//! router's rules ([`MethodKey`]) so every generated route is one the router serves.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cli::NewArgs;
use crate::routes::MethodKey;

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// The line that marks a project's root `Cargo.toml`.
const PROJECT_MARKER: &str = "[workspace.metadata.wasm-host]";
/// Where the SDK copy goes, relative to the project.
const SDK_DIR: &str = "sdk/wasm-host-sdk";
/// Where the WIT copy goes, relative to the project (the SDK reads `../wit`).
const WIT_DIR: &str = "sdk/wit";
/// The sample value route parameters get in the generated unit tests.
const SAMPLE_PARAM: &str = "42";

/// Why a handler could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate name.
    #[error(
        "invalid handler name {0:?}: use lower-case letters, digits, `-` and `_`, starting with a \
         letter (it names the crate and its .wasm file)"
    )]
    InvalidName(String),
    /// The route is not one the router can serve.
    #[error("invalid route {route:?}: {reason}")]
    InvalidRoute {
        /// The route given.
        route: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A method without a handler file name.
    #[error("unknown method {0:?}: use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY")]
    InvalidMethod(String),
    /// The crate or project folder is already there.
    #[error("{} already exists; pick another name or remove it", .0.display())]
    Exists(PathBuf),
    /// `--sdk` does not point at the SDK.
    #[error("{} is not the wasm-host SDK (no Cargo.toml naming `wasm-host-sdk`)", .0.display())]
    NotAnSdk(PathBuf),
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// What [`new_handler`] created.
#[derive(Debug)]
pub struct Created {
    /// The project folder.
    pub project: PathBuf,
    /// The project folder as the user reaches it: relative to the working directory when
    /// inside it (empty for the working directory itself).
    pub location: PathBuf,
    /// Whether the project was created too (or the handler added to an existing one).
    pub new_project: bool,
    /// The handler crate's folder, relative to the project.
    pub handler_dir: PathBuf,
    /// The `.wasm` file cargo builds, relative to the project.
    pub wasm: PathBuf,
    /// The route files the component is to be served as, relative to the project.
    pub route_files: Vec<PathBuf>,
}

impl Created {
    /// The commands that build, test and serve the handler, for the terminal.
    pub fn next_steps(&self) -> String {
        let quote = |path: &Path| {
            let text = path.display().to_string();
            if text.contains(['{', '}', ' ']) { format!("'{text}'") } else { text }
        };
        let mut steps = String::new();
        let what = if self.new_project { "created the project" } else { "added to the project" };
        let _ = writeln!(steps, "{what} {}: handler {}", self.project.display(), self.handler_dir.display());
        let _ = writeln!(steps, "\nnext:");
        if !self.location.as_os_str().is_empty() {
            let _ = writeln!(steps, "  cd {}", quote(&self.location));
        }
        let _ = writeln!(steps, "  cargo test                                      # native unit tests");
        let _ = writeln!(steps, "  rustup target add wasm32-wasip2                 # once");
        let _ = writeln!(steps, "  cargo build --release --target wasm32-wasip2");
        if let Some(folder) = self.route_files.first().and_then(|file| file.parent()) {
            let _ = writeln!(steps, "  mkdir -p {}", quote(folder));
        }
        for file in &self.route_files {
            let _ = writeln!(steps, "  cp {} {}", quote(&self.wasm), quote(file));
        }
        let _ = writeln!(steps, "  wasm-host run routes");
        steps
    }
}

/// Creates the handler `args.name` in the project `args.project`, or in `cwd` if it is a
/// project, or in a new project `cwd/NAME`.
pub fn new_handler(args: &NewArgs, cwd: &Path) -> Result<Created, ScaffoldError> {
    let name = check_name(&args.name)?;
    let route = Route::parse(args.route.as_deref().unwrap_or(&format!("/{name}")))?;
    let methods = parse_methods(&args.method)?;
    let sdk = match &args.sdk {
        Some(path) => Some(check_sdk(&cwd.join(path))?),
        None => None,
    };
    let (project, new_project) = match &args.project {
        Some(dir) => {
            let dir = cwd.join(dir);
            let existing = is_project(&dir);
            (dir, !existing)
        }
        None if is_project(cwd) => (cwd.to_path_buf(), false),
        None => (cwd.join(name), true),
    };
    if new_project && project.exists() && fs::read_dir(&project).map_or(true, |mut it| it.next().is_some()) {
        return Err(ScaffoldError::Exists(project));
    }
    let handler_dir = Path::new("handlers").join(name);
    if project.join(&handler_dir).exists() {
        return Err(ScaffoldError::Exists(project.join(&handler_dir)));
    }

    let handler = Handler { name, route, methods };
    if new_project {
        write_project(&project, sdk.as_deref())?;
    }
    write(&project.join(&handler_dir).join("Cargo.toml"), handler.cargo_toml().as_bytes())?;
    let lib_rs = project.join(&handler_dir).join("src/lib.rs");
    write(&lib_rs, handler.lib_rs().as_bytes())?;
    format_source(&lib_rs);
    let location = project.strip_prefix(cwd).map_or_else(|_| project.clone(), Path::to_path_buf);
    Ok(Created {
        project,
        location,
        new_project,
        handler_dir,
        wasm: Path::new("target/wasm32-wasip2/release").join(format!("{}.wasm", handler.lib_name())),
        route_files: handler.route_files(),
    })
}

/// Formats a generated file with `rustfmt` if there is one (the generator lays code out
/// close to rustfmt's style, not exactly); without it the file stays as generated.
fn format_source(path: &Path) {
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Whether `dir` holds a wasm-host project (its `Cargo.toml` has the marker table).
fn is_project(dir: &Path) -> bool {
    fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|text| text.lines().any(|line| line.trim() == PROJECT_MARKER))
}

fn check_name(name: &str) -> Result<&str, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !is_keyword(name)
        && !["std", "core", "alloc", "test", "proc_macro", "wasm-host-sdk", "wasm_host_sdk"].contains(&name);
    if valid { Ok(name) } else { Err(ScaffoldError::InvalidName(name.to_owned())) }
}

fn parse_methods(methods: &[String]) -> Result<Vec<MethodKey>, ScaffoldError> {
    let mut keys = Vec::new();
    for method in methods.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let key = MethodKey::from_file_name(&format!("{}.wasm", method.to_ascii_uppercase()))
            .ok_or_else(|| ScaffoldError::InvalidMethod(method.to_owned()))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        keys.push(MethodKey::Get);
    }
    keys.sort_by_key(|key| MethodKey::ALL.iter().position(|k| k == key));
    Ok(keys)
}

fn check_sdk(path: &Path) -> Result<PathBuf, ScaffoldError> {
    let manifest = fs::read_to_string(path.join("Cargo.toml")).unwrap_or_default();
    if !manifest.lines().any(|line| line.trim() == "name = \"wasm-host-sdk\"") {
        return Err(ScaffoldError::NotAnSdk(path.to_path_buf()));
    }
    fs::canonicalize(path).map_err(|source| ScaffoldError::Io { path: path.to_path_buf(), source })
}

fn write(path: &Path, contents: &[u8]) -> Result<(), ScaffoldError> {
    let io = |source| ScaffoldError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    fs::write(path, contents).map_err(io)
}

/// Writes the project files: workspace manifest, README, .gitignore, routes/ and the SDK copy
/// (unless `sdk` points at one).
fn write_project(project: &Path, sdk: Option<&Path>) -> Result<(), ScaffoldError> {
    let sdk_path = match sdk {
        Some(path) => path.display().to_string(),
        None => {
            for (path, contents) in SDK_FILES {
                write(&project.join(vendored_path(path)), contents)?;
            }
            SDK_DIR.to_owned()
        }
    };
    write(&project.join("Cargo.toml"), workspace_toml(&sdk_path).as_bytes())?;
    write(&project.join(".gitignore"), b"/target\n")?;
    write(&project.join("README.md"), PROJECT_README.as_bytes())?;
    let routes = project.join("routes");
    fs::create_dir_all(&routes).map_err(|source| ScaffoldError::Io { path: routes, source })
}

/// Where an embedded file goes in a project: `guest-sdk/src/lib.rs` → `sdk/wasm-host-sdk/src/lib.rs`.
fn vendored_path(path: &str) -> PathBuf {
    match (path.strip_prefix("guest-sdk/"), path.strip_prefix("wit/")) {
        (Some(rest), _) => Path::new(SDK_DIR).join(rest),
        (_, Some(rest)) => Path::new(WIT_DIR).join(rest),
        _ => unreachable!("host/build.rs embeds only guest-sdk/ and wit/, not {path}"),
    }
}

fn workspace_toml(sdk_path: &str) -> String {
    format!(
        r#"# A wasm-host project: one crate per handler in handlers/, served from routes/.
#   cargo test                                    native unit tests of every handler
#   cargo build --release --target wasm32-wasip2  one component per handler in target/wasm32-wasip2/release/
# Each handler's Cargo.toml says where it is served ([package.metadata.wasm-host]).

[workspace]
resolver = "3"
members = ["handlers/*"]
# The SDK copy is a dependency, not a member: `cargo test` runs the handlers' tests only.
exclude = ["sdk"]

[workspace.dependencies]
wasm-host-sdk = {{ path = {sdk_path:?} }}

{PROJECT_MARKER}
# The routes tree to serve (`wasm-host run routes`); built handlers are placed in it.
routes = "routes"

# Small components: size over speed, whole-program optimisation, no symbols.
[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1
"#
    )
}

const PROJECT_README: &str = r#"# A wasm-host project

```
Cargo.toml          the workspace: handlers/*, and [workspace.metadata.wasm-host]
handlers/NAME/      one handler crate each; [package.metadata.wasm-host] in its Cargo.toml
                    gives its route and methods
routes/             the routes tree served by `wasm-host run routes`
sdk/                the wasm-host SDK and its WIT contract, copied by `wasm-host new`
```

Add a handler with `wasm-host new NAME --route /path/{param} --method GET,POST` (run here).

Build and test:

```sh
cargo test                                      # native unit tests
cargo build --release --target wasm32-wasip2    # target/wasm32-wasip2/release/NAME.wasm
```

Serve: copy each `NAME.wasm` to `routes/<route>/<METHOD>.wasm` for every method listed in
its Cargo.toml (e.g. `routes/users/{id}/GET.wasm`), then `wasm-host run routes`. Replace a
file with an atomic `mv` and the running server picks it up.

The SDK's reference: `cargo doc -p wasm-host-sdk --open`.
"#;

/// One segment of a route given to `--route`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A folder matched as is.
    Literal(String),
    /// A `{name}` folder; `field` is the Rust field that holds it.
    Param { name: String, field: String },
}

/// A route given to `--route`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    segments: Vec<Segment>,
}

impl Route {
    fn parse(text: &str) -> Result<Self, ScaffoldError> {
        let invalid =
            |reason: &str| ScaffoldError::InvalidRoute { route: text.to_owned(), reason: reason.to_owned() };
        let rest = text.strip_prefix('/').ok_or_else(|| invalid("it must start with `/`"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(Self { segments });
        }
        for piece in rest.split('/') {
            if let Some(name) = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err(invalid("a parameter segment is `{name}` with a non-empty name"));
                }
                if segments.iter().any(|s| matches!(s, Segment::Param { name: n, .. } if n == name)) {
                    return Err(invalid("a parameter name appears twice"));
                }
                segments.push(Segment::Param { name: name.to_owned(), field: field_name(name) });
            } else if piece.is_empty() {
                return Err(invalid("it has an empty segment (`//`)"));
            } else if piece == "." || piece == ".." || piece.starts_with('.') {
                return Err(invalid("a segment may not start with `.` (the router ignores such folders)"));
            } else if let Some(c) =
                piece.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(*c)))
            {
                return Err(invalid(&format!("the character {c:?} is not allowed in a route segment")));
            } else {
                segments.push(Segment::Literal(piece.to_owned()));
            }
        }
        Ok(Self { segments })
    }

    /// The route as written: `/users/{id}`.
    fn text(&self) -> String {
        self.render(|name, _| format!("{{{name}}}"))
    }

    /// The route with each parameter replaced by `value(name, field)`.
    fn render(&self, mut value: impl FnMut(&str, &str) -> String) -> String {
        if self.segments.is_empty() {
            return "/".to_owned();
        }
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => format!("/{text}"),
                Segment::Param { name, field } => format!("/{}", value(name, field)),
            })
            .collect()
    }

    fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param { name, field } => Some((name.as_str(), field.as_str())),
            Segment::Literal(_) => None,
        })
    }
}

/// The Rust field for a route parameter: the name itself if it is a plain identifier, else a
/// sanitized one (`user-id` → `user_id`, `type` → `p_type`) that serde renames.
fn field_name(name: &str) -> String {
    let mut field: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    // Names the generated code uses itself are taken too.
    let taken = ["_", "req", "bytes", "method", "handle", "response", "params"];
    if field.is_empty()
        || field.starts_with(|c: char| c.is_ascii_digit())
        || is_keyword(&field)
        || taken.contains(&field.as_str())
    {
        field.insert_str(0, "p_");
    }
    field
}

fn is_keyword(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv", "try",
        "typeof", "unsized", "virtual", "yield",
    ];
    KEYWORDS.contains(&word)
}

/// The handler being generated.
struct Handler<'a> {
    name: &'a str,
    route: Route,
    methods: Vec<MethodKey>,
}

impl Handler<'_> {
    /// The library (and .wasm) name cargo derives from the crate name.
    fn lib_name(&self) -> String {
        self.name.replace('-', "_")
    }

    fn methods_text(&self) -> String {
        self.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// `routes/users/{id}/GET.wasm`, one per method.
    fn route_files(&self) -> Vec<PathBuf> {
        let mut folder = PathBuf::from("routes");
        for segment in &self.route.segments {
            match segment {
                Segment::Literal(text) => folder.push(text),
                Segment::Param { name, .. } => folder.push(format!("{{{name}}}")),
            }
        }
        self.methods.iter().map(|method| folder.join(method.file_name())).collect()
    }

    fn cargo_toml(&self) -> String {
        let methods: Vec<String> = self.methods.iter().map(|m| format!("{:?}", m.as_str())).collect();
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# A handler is a WebAssembly component: `cargo build --release --target wasm32-wasip2`.
crate-type = ["cdylib"]

[dependencies]
# The project's copy of the SDK (see the workspace Cargo.toml); serde is re-exported by it.
wasm-host-sdk.workspace = true

# Where this handler is served: routes/<route>/<METHOD>.wasm for each method.
[package.metadata.wasm-host]
route = {route:?}
methods = [{methods}]
"#,
            name = self.name,
            route = self.route.text(),
            methods = methods.join(", "),
        )
    }

    /// The Rust expression answering `method` (`None`: the request's own method, for ANY),
    /// as a match arm's right-hand side. Parameters are local variables named after their
    /// fields (`let Params { id } = ...`), captured by the format string.
    fn answer(&self, method: Option<&str>, with_body: bool) -> String {
        let path = self.route.render(|_, field| format!("{{{field}}}"));
        let (method_text, method_arg) = match method {
            Some(method) => (method, ""),
            None => ("{}", ", req.method()"),
        };
        if with_body {
            let text = format!("{method_text} {path}: {{bytes}} bytes\\n");
            return format!(
                "{{\n            let bytes = req.body().len();\n            \
                 Ok(Response::text(format!(\"{text}\"{method_arg})))\n        }}"
            );
        }
        let text = format!("{method_text} {path}\\n");
        if self.route.params().next().is_some() || method.is_none() {
            format!("Ok(Response::text(format!(\"{text}\"{method_arg})))")
        } else {
            format!("Ok(Response::text(\"{text}\"))")
        }
    }

    fn lib_rs(&self) -> String {
        let route = self.route.text();
        let mut code = String::new();
        let _ = writeln!(code, "//! The `{}` handler: {} {route}.", self.name, self.methods_text());
        let _ = writeln!(code, "//!");
        let _ = writeln!(code, "//! `cargo build --release --target wasm32-wasip2` (in the project) writes");
        let files: Vec<String> = self.route_files().iter().map(|f| format!("`{}`", f.display())).collect();
        let _ = writeln!(
            code,
            "//! `target/wasm32-wasip2/release/{}.wasm`; serve it as {}.",
            self.lib_name(),
            files.join(" and ")
        );
        let _ = writeln!(code, "//! `cargo test` runs the tests below natively.");
        code.push_str("\nuse wasm_host_sdk::prelude::*;\n");
        let has_params = self.route.params().next().is_some();
        if has_params {
            let _ = writeln!(code, "\n/// The route's parameters (`{route}`), read with `req.params_as()`.");
            code.push_str("#[derive(Debug, Deserialize)]\n#[serde(crate = \"wasm_host_sdk::serde\")]\nstruct Params {\n");
            for (name, field) in self.route.params() {
                if name != field {
                    let _ = writeln!(code, "    #[serde(rename = {name:?})]");
                }
                let _ = writeln!(code, "    {field}: String,");
            }
            code.push_str("}\n");
        }
        code.push_str("\n/// Answers every request routed to this handler.\n");
        code.push_str("fn handle(req: Request) -> Result<Response, HttpError> {\n");
        if has_params {
            let fields: Vec<&str> = self.route.params().map(|(_, field)| field).collect();
            let _ = writeln!(code, "    let Params {{ {} }} = req.params_as()?;", fields.join(", "));
        }
        let has_get = self.methods.contains(&MethodKey::Get);
        let arms: Vec<String> = self
            .methods
            .iter()
            .filter_map(|method| {
                let pattern = match method {
                    MethodKey::Any => return None,
                    MethodKey::Head if has_get => return None,
                    MethodKey::Get => "\"GET\" | \"HEAD\"".to_owned(),
                    other => format!("{:?}", other.as_str()),
                };
                let with_body = matches!(method, MethodKey::Post | MethodKey::Put | MethodKey::Patch);
                let answer = self.answer(Some(method.as_str()), with_body);
                // A block arm takes no comma.
                let comma = if with_body { "" } else { "," };
                Some(format!("        {pattern} => {answer}{comma}\n"))
            })
            .collect();
        let any = self.methods.contains(&MethodKey::Any);
        if arms.is_empty() && any {
            let _ = writeln!(code, "    {}\n}}", self.answer(None, false));
        } else {
            code.push_str("    match req.method() {\n");
            code.extend(arms);
            if any {
                let _ = writeln!(code, "        _ => {},", self.answer(None, false));
            } else {
                code.push_str(
                    "        method => Err(HttpError::new(405, format!(\"{method} is not handled here\"))),\n",
                );
            }
            code.push_str("    }\n}\n");
        }
        code.push_str("\nexport!(handle);\n");
        code.push_str("\n#[cfg(test)]\nmod tests {\n    use super::*;\n");
        for (method, with_body) in self.tested_methods() {
            let path = self.route.render(|_, _| SAMPLE_PARAM.to_owned());
            let mut calls: Vec<String> = self
                .route
                .params()
                .map(|(name, _)| format!(".with_param({name:?}, {SAMPLE_PARAM:?})"))
                .collect();
            let expected = if with_body {
                calls.push(".with_body(\"hello\")".to_owned());
                format!("{method} {path}: 5 bytes\\n")
            } else {
                format!("{method} {path}\\n")
            };
            // Laid out as rustfmt would: one line if short, else one call per line.
            let new = format!("Request::new({method:?}, {path:?})");
            let one_line = format!("{new}{}", calls.concat());
            let request = if one_line.len() <= 60 {
                one_line
            } else {
                calls.iter().fold(new, |request, call| format!("{request}\n            {call}"))
            };
            let _ = write!(
                code,
                "\n    #[test]\n    fn answers_{lower}() {{\n        let req = {request};\n        \
                 let response = handle(req).into_response();\n        \
                 assert_eq!(response.status(), 200);\n        \
                 assert_eq!(response.body(), Some(&b\"{expected}\"[..]));\n    }}\n",
                lower = method.to_ascii_lowercase(),
            );
        }
        code.push_str("}\n");
        code
    }

    /// The methods the unit tests call, with whether they send a body.
    fn tested_methods(&self) -> Vec<(&'static str, bool)> {
        let mut tested: Vec<(&'static str, bool)> = self
            .methods
            .iter()
            .filter(|m| !matches!(m, MethodKey::Any))
            .map(|m| (m.as_str(), matches!(m, MethodKey::Post | MethodKey::Put | MethodKey::Patch)))
            .collect();
        if self.methods.contains(&MethodKey::Any) {
            // A method the explicit arms do not take, so the catch-all answers it.
            let spare = ["OPTIONS", "DELETE", "PATCH", "POST", "PUT", "GET"]
                .into_iter()
                .find(|candidate| tested.iter().all(|(m, _)| m != candidate));
            if let Some(spare) = spare {
                tested.push((spare, false));
            }
        }
        tested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, route: Option<&str>, methods: &[&str]) -> NewArgs {
        NewArgs {
            name: name.to_owned(),
            route: route.map(str::to_owned),
            method: methods.iter().map(|m| (*m).to_owned()).collect(),
            project: None,
            sdk: None,
        }
    }

    #[test]
    fn the_embedded_sdk_is_self_contained() {
        let find = |path: &str| {
            SDK_FILES.iter().find(|(p, _)| *p == path).map(|(_, bytes)| String::from_utf8_lossy(bytes))
        };
        let manifest = find("guest-sdk/Cargo.toml").expect("the SDK manifest is embedded");
        // A project has no wasm-host workspace to inherit from.
        let inherits = manifest
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .any(|code| code.contains("workspace"));
        assert!(
            !inherits,
            "guest-sdk/Cargo.toml must not use `workspace = true` (wasm-host new copies it):\n{manifest}"
        );
        let lib = find("guest-sdk/src/lib.rs").expect("the SDK sources are embedded");
        assert!(lib.contains("path: \"../wit\""), "the SDK reads ../wit, where the copy puts the WIT files");
        assert!(find("wit/handler.wit").is_some());
        assert!(SDK_FILES.iter().all(|(path, _)| !path.contains("/target/") && !path.contains("/.")));
    }

    #[test]
    fn names_must_be_crate_names() {
        for good in ["users", "my-api", "a1_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Users", "1st", "-x", "a b", "fn", "test", "wasm-host-sdk", "a/b"] {
            assert!(matches!(check_name(bad), Err(ScaffoldError::InvalidName(_))), "{bad}");
        }
    }

    #[test]
    fn routes_follow_the_router() {
        let route = Route::parse("/users/{id}/posts/{post-id}/").unwrap();
        assert_eq!(route.text(), "/users/{id}/posts/{post-id}");
        assert_eq!(route.params().collect::<Vec<_>>(), [("id", "id"), ("post-id", "post_id")]);
        assert_eq!(Route::parse("/").unwrap().text(), "/");
        for (bad, why) in [
            ("users", "start with `/`"),
            ("/a//b", "empty segment"),
            ("/a/../b", "`.`"),
            ("/{}", "non-empty"),
            ("/{a}/{a}", "twice"),
            ("/a b", "' '"),
            ("/a\"b", "'\"'"),
        ] {
            let error = Route::parse(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn field_names_are_identifiers() {
        assert_eq!(field_name("id"), "id");
        assert_eq!(field_name("User-ID"), "user_id");
        assert_eq!(field_name("type"), "p_type");
        assert_eq!(field_name("1st"), "p_1st");
        assert_eq!(field_name("req"), "p_req", "a local of the generated code");
    }

    #[test]
    fn methods_parse_case_insensitively_in_router_order() {
        let keys = parse_methods(&["put".into(), "GET".into(), "put".into()]).unwrap();
        assert_eq!(keys, [MethodKey::Get, MethodKey::Put]);
        assert!(
            matches!(parse_methods(&["FETCH".into()]), Err(ScaffoldError::InvalidMethod(m)) if m == "FETCH")
        );
        assert_eq!(parse_methods(&[]).unwrap(), [MethodKey::Get]);
    }

    #[test]
    fn generated_handler_answers_each_method() {
        let handler = Handler {
            name: "users",
            route: Route::parse("/users/{id}").unwrap(),
            methods: parse_methods(&["GET".into(), "PUT".into(), "ANY".into()]).unwrap(),
        };
        let code = handler.lib_rs();
        assert!(code.contains("let Params { id } = req.params_as()?;"), "{code}");
        for arm in [
            r#""GET" | "HEAD" => Ok(Response::text(format!("GET /users/{id}\n"))),"#,
            r#""PUT" => {
            let bytes = req.body().len();
            Ok(Response::text(format!("PUT /users/{id}: {bytes} bytes\n")))
        }"#,
            r#"_ => Ok(Response::text(format!("{} /users/{id}\n", req.method()))),"#,
        ] {
            assert!(code.contains(arm), "{arm}\nnot in\n{code}");
        }
        assert!(code.contains("fn answers_options()"), "ANY is tested with a method no arm takes:\n{code}");
        assert_eq!(
            handler.route_files(),
            ["routes/users/{id}/GET.wasm", "routes/users/{id}/PUT.wasm", "routes/users/{id}/ANY.wasm"]
                .map(PathBuf::from)
        );
        let manifest = handler.cargo_toml();
        assert!(
            manifest.contains("crate-type = [\"cdylib\"]")
                && manifest.contains("methods = [\"GET\", \"PUT\", \"ANY\"]")
        );
    }

    #[test]
    fn new_creates_a_project_then_adds_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let created = new_handler(&args("users", Some("/users/{id}"), &["GET", "PUT"]), dir.path()).unwrap();
        assert!(created.new_project);
        let project = dir.path().join("users");
        assert_eq!(created.project, project);
        for file in [
            "Cargo.toml",
            "sdk/wasm-host-sdk/Cargo.toml",
            "sdk/wasm-host-sdk/src/lib.rs",
            "sdk/wit/handler.wit",
            "handlers/users/src/lib.rs",
        ] {
            assert!(project.join(file).is_file(), "{file}");
        }
        assert!(project.join("routes").is_dir());
        assert!(is_project(&project));
        let steps = created.next_steps();
        assert!(steps.contains("  cd users\n"), "{steps}");
        assert!(
            steps.contains("cp target/wasm32-wasip2/release/users.wasm 'routes/users/{id}/PUT.wasm'"),
            "{steps}"
        );

        // Inside the project, `new` adds a crate and leaves the rest alone.
        let added = new_handler(&args("health-check", None, &[]), &project).unwrap();
        assert!(!added.new_project);
        assert!(!added.next_steps().contains("cd "), "already there");
        assert_eq!(added.wasm, Path::new("target/wasm32-wasip2/release/health_check.wasm"));
        assert_eq!(added.route_files, [PathBuf::from("routes/health-check/GET.wasm")]);
        let code = fs::read_to_string(project.join("handlers/health-check/src/lib.rs")).unwrap();
        assert!(code.contains(r#""GET" | "HEAD" => Ok(Response::text("GET /health-check\n")),"#), "{code}");

        // Neither an existing crate nor a non-empty folder is overwritten.
        assert!(matches!(new_handler(&args("users", None, &[]), &project), Err(ScaffoldError::Exists(_))));
        assert!(matches!(new_handler(&args("users", None, &[]), dir.path()), Err(ScaffoldError::Exists(_))));
    }

    #[test]
    fn sdk_option_points_at_an_existing_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let mut with_sdk = args("a", None, &[]);
        with_sdk.sdk = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"));
        let created = new_handler(&with_sdk, dir.path()).unwrap();
        assert!(!created.project.join("sdk").exists(), "no copy with --sdk");
        let manifest = fs::read_to_string(created.project.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("guest-sdk\" }"), "{manifest}");
        with_sdk.name = "b".into();
        with_sdk.sdk = Some(dir.path().to_path_buf());
        assert!(matches!(new_handler(&with_sdk, dir.path()), Err(ScaffoldError::NotAnSdk(_))));
    }
}
