//! `wasm-host dev`: a project of handler crates built, served, rebuilt on save; build errors
//! and traps shown as pages; `--keep-serving`; project errors that say what to do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// Builds (cargo, for wasm32-wasip2) can take minutes on a cold, shared machine.
const BUILD: Duration = Duration::from_secs(300);

/// One target dir for every dev-mode project of the run, so the SDK's dependencies are built
/// once.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dev-target")
}

/// A project laid out as `wasm-host new` makes it, with one handler crate `package` (unique
/// per test: the target dir is shared) at `/hello/{name}` whose source is `lib_rs`.
fn project(package: &str, lib_rs: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk").canonicalize().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"handlers/*\"]\n\n[workspace.dependencies]\n\
             wasm-host-sdk = {{ path = {:?} }}\n\n[workspace.metadata.wasm-host]\nroutes = \"routes\"\n\n\
             [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\n",
            sdk.display().to_string()
        ),
    )
    .unwrap();
    let krate = dir.path().join("handlers/hello");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nwasm-host-sdk.workspace = true\n\n[package.metadata.wasm-host]\nroute = \"/hello/{{name}}\"\n\
         methods = [\"GET\"]\n"),
    )
    .unwrap();
    write_source(dir.path(), lib_rs);
    dir
}

fn write_source(project: &Path, lib_rs: &str) {
    std::fs::write(project.join("handlers/hello/src/lib.rs"), lib_rs).unwrap();
}

/// A handler answering `hello {name} {version}`, panicking for the name `boom`.
fn source(version: &str) -> String {
    format!(
        "use wasm_host_sdk::prelude::*;\n\nfn hello(req: Request) -> String {{\n    \
         let name = req.param(\"name\").unwrap_or_default();\n    \
         if name == \"boom\" {{\n        panic!(\"boom for {{name}}\");\n    }}\n    \
         format!(\"hello {{name}} {version}\")\n}}\n\nexport!(hello);\n"
    )
}

fn dev(project: &Path, args: &[&str]) -> Server {
    let target = target_dir();
    Server::start_command("dev", project, args, &[("CARGO_TARGET_DIR", target.as_os_str())])
}

fn get_with(s: &Server, path: &str, accept: &str) -> (u16, Option<String>, String) {
    let mut resp = client().get(&s.url(path)).header("accept", accept).call().unwrap();
    let ty = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), ty, resp.body_mut().read_to_string().unwrap())
}

#[test]
fn dev_builds_serves_and_rebuilds_on_save_with_pages_for_build_errors_and_traps() {
    let p = project("dev_hello", &source("v1"));
    let s = dev(p.path(), &[]);
    assert_eq!(get(&s, "/hello/bob"), (200, "hello bob v1".into()));
    assert!(p.path().join("routes/hello/{name}/GET.wasm").is_file(), "placed in the routes tree");

    // Save: the new code is served, without a restart.
    write_source(p.path(), &source("v2"));
    assert!(eventually(BUILD, || get(&s, "/hello/bob").1 == "hello bob v2"), "{}", s.log());

    // A trap: the panic, where, and a symbolised backtrace with file:line.
    let (status, _, page) = get_with(&s, "/hello/boom", "*/*");
    assert_eq!(status, 500);
    assert!(page.contains("handler panicked at") && page.contains("boom for boom"), "{page}");
    assert!(page.contains("handlers/hello/src/lib.rs:"), "file:line in the page: {page}");
    assert!(page.contains("hello\n") || page.contains(" - hello"), "function names: {page}");

    // A build error: cargo's message as text, or as HTML for a browser, while it lasts.
    write_source(
        p.path(),
        &source("v3").replace("format!(\"hello {name} v3\")", "format!(\"hello {name} v3\") + 1"),
    );
    assert!(eventually(BUILD, || get(&s, "/hello/bob").0 == 500), "{}", s.log());
    let (_, ty, page) = get_with(&s, "/hello/bob", "*/*");
    assert!(ty.unwrap().starts_with("text/plain"), "text for non-browsers");
    assert!(page.contains("does not build") && page.contains("error[E0"), "{page}");
    let (_, ty, page) = get_with(&s, "/hello/bob", "text/html,application/xhtml+xml");
    assert!(ty.unwrap().starts_with("text/html"), "HTML for browsers");
    assert!(page.contains("<pre") && page.contains("error[E0"), "{page}");
    assert!(s.log().contains("build failed"), "{}", s.log());

    // Fixed: served again.
    write_source(p.path(), &source("v4"));
    assert!(eventually(BUILD, || get(&s, "/hello/bob").1 == "hello bob v4"), "{}", s.log());
}

#[test]
fn keep_serving_serves_the_last_good_build_while_the_new_one_is_broken() {
    let p = project("dev_keep", &source("good"));
    let s = dev(p.path(), &["--keep-serving"]);
    assert_eq!(get(&s, "/hello/ann"), (200, "hello ann good".into()));
    write_source(p.path(), "this is not rust");
    assert!(s.wait_for_log("build failed", BUILD), "{}", s.log());
    assert_eq!(get(&s, "/hello/ann"), (200, "hello ann good".into()), "the previous version keeps serving");
}

#[test]
fn dev_refuses_what_is_not_a_project_or_not_a_cdylib_saying_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
    let run = |dir: &Path| Command::new(BIN).arg("dev").arg(dir).args(["--listen", "127.0.0.1:0"]).exits();
    let out = run(empty.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a wasm-host project") && err.contains("wasm-host new"), "{err}");

    let p = project("dev_plain", &source("x"));
    let manifest = p.path().join("handlers/hello/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("crate-type = [\"cdylib\"]", "");
    std::fs::write(&manifest, text).unwrap();
    let out = run(p.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a cdylib") && err.contains("crate-type = [\"cdylib\"]"), "{err}");
}
