//! The `wasm-host` command line: route listing, load errors, bad arguments.

use std::process::Command;
use std::time::Duration;

use test_artifacts as a;

use crate::support::*;

fn routes_cmd(dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(BIN).arg("routes").arg(dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn routes_prints_the_table() {
    let t = Tree::new(&[
        ("GET.wasm", a::EXAMPLE_HELLO_WORLD),
        ("users/{id}/GET.wasm", a::INSPECT),
        ("users/{id}/PUT.wasm", a::INSPECT),
    ]);
    let (ok, out, err) = routes_cmd(t.path());
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ROUTE", "METHOD", "WORLD", "FILE"]);
    assert_eq!(rows[1][..3], ["/", "GET", "wasm-host:http/handler"]);
    assert_eq!(rows[2][..2], ["/users/{id}", "GET"]);
    assert_eq!(rows[3][..2], ["/users/{id}", "PUT"]);
    assert!(rows[3][3].ends_with("users/{id}/PUT.wasm"));
}

#[test]
fn routes_on_a_broken_tree_prints_every_row_with_the_reason_and_fails() {
    let t = Tree::new(&[("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    t.write("core/GET.wasm", b"\0asm\x01\0\0\0");
    t.write("text/GET.wasm", b"hello, not wasm at all\n");
    t.write("odd/get.wasm", b"");
    let (ok, out, err) = routes_cmd(t.path());
    assert!(!ok, "{out}");
    let row =
        |route: &str| out.lines().find(|l| l.starts_with(route)).unwrap_or_else(|| panic!("{route}: {out}"));
    assert!(!row("/ok ").contains("BROKEN"), "{out}");
    let core = row("/core ");
    assert!(core.contains("BROKEN:") && core.contains("core WebAssembly module, not a component"), "{core}");
    assert!(core.contains("--target wasm32-wasip2"), "{core}");
    let text = row("/text ");
    assert!(text.contains("BROKEN: ") && text.contains("not a WebAssembly file"), "{text}");
    assert!(!text.contains("hello, not wasm"), "no byte dump: {text}");
    assert!(out.contains("not served:") && out.contains("odd/get.wasm"), "{out}");
    assert!(err.contains("3 problem(s)"), "{err}");
}

#[test]
fn a_broken_handler_answers_503_and_strict_refuses_to_start() {
    let t = Tree::new(&[("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD), ("cmd/GET.wasm", a::NOT_A_HANDLER)]);
    t.write("bad/get.wasm", b"");
    // By default the rest is served; the broken route answers 503 and the log says why.
    let s = Server::start(t.path(), &[]);
    assert_eq!(get(&s, "/ok"), (200, "Hello world!".into()));
    assert_eq!(get(&s, "/cmd").0, 503);
    for needle in ["cmd/GET.wasm", "answers 503", "bad/get.wasm"] {
        assert!(s.wait_for_log(needle, Duration::from_secs(5)), "no {needle:?} in the log:\n{}", s.log());
    }
    drop(s);
    let out =
        Command::new(BIN).arg("run").arg(t.path()).args(["--listen", "127.0.0.1:0", "--strict"]).exits();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cmd/GET.wasm") && err.contains("bad/get.wasm"), "{err}");
}

#[test]
fn broken_trees_fail_naming_every_file() {
    let t = Tree::new(&[("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD), ("cmd/GET.wasm", a::NOT_A_HANDLER)]);
    t.write("junk/GET.wasm", b"\0asm not really");
    t.write("odd/FOO.wasm", b"");
    let (ok, _, err) = routes_cmd(t.path());
    assert!(!ok);
    assert!(err.contains("FOO.wasm"), "{err}");

    std::fs::remove_file(t.file("odd/FOO.wasm")).unwrap();
    let (ok, _, err) = routes_cmd(t.path());
    assert!(!ok);
    assert!(err.contains("junk/GET.wasm"), "{err}");
    assert!(err.contains("cmd/GET.wasm"), "{err}");
    // The wrong-world component is explained by what it lacks.
    let line = err.lines().find(|l| l.contains("cmd/GET.wasm")).unwrap();
    assert!(line.contains("before") || line.contains("handler world"), "{line}");

    let t = Tree::new(&[("u/{a}/GET.wasm", a::INSPECT), ("u/{b}/GET.wasm", a::INSPECT)]);
    let (ok, _, err) = routes_cmd(t.path());
    assert!(!ok);
    assert!(err.contains("{a}") && err.contains("{b}"), "{err}");

    // `run --strict` refuses the same tree with the same message and a non-zero exit.
    let out =
        Command::new(BIN).arg("run").arg(t.path()).args(["--listen", "127.0.0.1:0", "--strict"]).exits();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("{a}"));
}

#[test]
fn bad_arguments_fail_clearly() {
    let out = Command::new(BIN).args(["run", "/definitely/not/here"]).exits();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/definitely/not/here"), "{err}");

    let out = Command::new(BIN).args(["run", ".", "--max-body", "lots"]).exits();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));

    let out = Command::new(BIN).args(["run", ".", "--workers", "0"]).exits();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));

    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("run") && help.contains("routes"));
}

#[test]
fn a_cache_dir_that_cannot_be_created_is_a_clear_error_and_a_failed_start() {
    let t = Tree::new(&[("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    // A regular file where the directory should be.
    let file = t.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(t.path())
        .args(["--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(&file)
        .exits();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot create the compile cache") && err.contains("not-a-dir"), "{err}");
}
