//! Handlers written in other languages, built with their real toolchains by `make
//! examples-polyglot` (`examples/polyglot/build.sh`): Python (componentize-py) against our
//! `handler` world and as a `wasi:http/proxy` component, JavaScript (componentize-js) against our
//! world. Each answers its route over a real socket, through the real binary.
//!
//! `make test` builds them first. Run alone, `cargo test` fails these tests with instructions
//! when they are not built, unless `WASM_HOST_SKIP_POLYGLOT=1` is set: then each says it skipped.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use test_artifacts as a;

use crate::support::*;

/// The polyglot routes tree, or `None` (after saying so) when the caller asked to skip them.
#[allow(clippy::print_stderr, reason = "a skipped test says so where cargo test shows it")]
fn polyglot_routes(test: &str) -> Option<&'static Path> {
    if std::env::var_os("WASM_HOST_SKIP_POLYGLOT").is_some_and(|v| v == "1") {
        eprintln!(
            "{test}: SKIPPED: WASM_HOST_SKIP_POLYGLOT=1 (the Python and JavaScript handlers are not tested)"
        );
        return None;
    }
    let routes = Path::new(a::POLYGLOT_ROUTES);
    assert!(
        routes.join("js/notes/ANY.wasm").is_file(),
        "\n\nthe polyglot handlers are not built ({} is missing).\nBuild them with `make \
         examples-polyglot` (make test does; it installs componentize-py and componentize-js \
         under target/polyglot), or set WASM_HOST_SKIP_POLYGLOT=1 to skip these tests.\n\n",
        routes.display()
    );
    Some(routes)
}

/// Sends one request on a fresh connection; (status, head field, JSON body).
fn call(s: &Server, request: &[u8], field: &str) -> (u16, Option<String>, Value) {
    let r = raw(s, request).expect("a response");
    let body = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.body)));
    (r.status, r.header(field).map(str::to_owned), body)
}

#[test]
fn a_python_handler_of_our_world_answers_json_and_keeps_state_in_the_store() {
    let Some(routes) = polyglot_routes("python-hooks") else { return };
    let s = Server::start(routes, &["--state", "memory"]);
    for visits in 1..=2 {
        let (status, kind, body) = call(&s, b"GET /py/greet/ada HTTP/1.1\r\nHost: x\r\n\r\n", "content-type");
        assert_eq!(status, 200, "{body}");
        assert_eq!(kind.as_deref(), Some("application/json"));
        assert_eq!(body, json!({"hello": "ada", "visits": visits, "language": "python"}));
    }
    // Another name has its own counter; `stream` counted the body.
    let (status, _, body) =
        call(&s, b"GET /py/greet/bob HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "content-type");
    assert_eq!(
        (status, body),
        (200, json!({"hello": "bob", "visits": 1, "language": "python", "body_bytes": 3}))
    );
    // `before` answers early.
    let long = "n".repeat(65);
    let (status, _, body) =
        call(&s, format!("GET /py/greet/{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(), "content-type");
    assert_eq!((status, body), (400, json!({"error": "name longer than 64 characters"})));
}

#[test]
fn a_python_wasi_http_component_sees_its_request_with_params_and_no_forged_fields() {
    let Some(routes) = polyglot_routes("python-wasi") else { return };
    let s = Server::start(routes, &["--state", "memory"]);
    let (status, _, body) = call(
        &s,
        b"POST /py-wasi/hi?x=1 HTTP/1.1\r\nHost: x\r\nwasm-host-param-word: forged\r\n\
          wasm-host-param-extra: forged\r\nContent-Length: 5\r\n\r\nhello",
        "content-type",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"method": "POST", "path": "/py-wasi/hi?x=1", "params": {"word": "hi"},
               "route": "/py-wasi/{word}", "body_bytes": 5, "language": "python"})
    );
    // A body read in 64 KiB pieces as it streams in.
    let big = vec![b'x'; 1 << 20];
    let mut request =
        format!("PUT /py-wasi/big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
    request.extend_from_slice(&big);
    let (status, _, body) = call(&s, &request, "content-type");
    assert_eq!(
        (status, &body["method"], &body["body_bytes"]),
        (200, &json!("PUT"), &json!(1 << 20)),
        "{body}"
    );
}

#[test]
fn a_javascript_handler_of_our_world_stores_and_reads_notes_and_rejects_bad_bodies() {
    let Some(routes) = polyglot_routes("js-hooks") else { return };
    let s = Server::start(routes, &["--state", "memory"]);
    let post = |body: &str| {
        let request =
            format!("POST /js/notes HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        call(&s, request.as_bytes(), "allow")
    };
    let (status, _, body) = post(r#"{"text": "first"}"#);
    assert_eq!((status, body), (201, json!({"id": 1, "text": "first", "language": "javascript"})));
    let (status, _, body) = post(r#"{"text": "second"}"#);
    assert_eq!((status, &body["id"]), (201, &json!(2)), "{body}");

    let (status, _, body) = call(&s, b"GET /js/notes?id=1 HTTP/1.1\r\nHost: x\r\n\r\n", "allow");
    assert_eq!((status, body), (200, json!({"id": 1, "text": "first", "language": "javascript"})));
    let (status, _, body) = call(&s, b"GET /js/notes?id=99 HTTP/1.1\r\nHost: x\r\n\r\n", "allow");
    assert_eq!((status, body), (404, json!({"error": "no note 99"})));
    let (status, _, _) = call(&s, b"GET /js/notes?id=x HTTP/1.1\r\nHost: x\r\n\r\n", "allow");
    assert_eq!(status, 400);

    let (status, _, body) = post("not json");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("the body is not JSON"), "{body}");
    let (status, _, _) = post(r#"{"note": 1}"#);
    assert_eq!(status, 400);
    let (status, _, body) = post(&format!(r#"{{"text": "{}"}}"#, "x".repeat(20 << 10)));
    assert_eq!((status, body), (413, json!({"error": "a note is at most 16384 bytes"})));
    let (status, allow, _) = call(&s, b"DELETE /js/notes HTTP/1.1\r\nHost: x\r\n\r\n", "allow");
    assert_eq!((status, allow.as_deref()), (405, Some("GET, POST")));
}

#[test]
fn foreign_handlers_keep_answering_correctly_when_instances_are_reused() {
    let Some(routes) = polyglot_routes("reuse") else { return };
    let s = Server::start(routes, &["--state", "memory", "--instance-reuse", "100"]);
    // One keep-alive connection, so each request can go to the instance the last one left.
    let mut conn = std::io::BufReader::new(s.connect());
    for visits in 1..=3 {
        std::io::Write::write_all(conn.get_mut(), b"GET /py/greet/ada HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut conn, false).expect("a response");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({"hello": "ada", "visits": visits, "language": "python"}));
    }
    for word in ["one", "two"] {
        let request = format!("GET /py-wasi/{word} HTTP/1.1\r\nHost: x\r\n\r\n");
        std::io::Write::write_all(conn.get_mut(), request.as_bytes()).unwrap();
        let r = read_response(&mut conn, false).expect("a response");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["params"], json!({"word": word}));
    }
}

#[test]
fn routes_shows_the_world_of_each_foreign_component() {
    let Some(routes) = polyglot_routes("routes") else { return };
    let out = Command::new(BIN).arg("routes").arg(routes).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| listing.lines().find(|l| l.contains(needle)).unwrap_or_default().to_owned();
    assert!(line("/py/greet/{name}").contains("wasm-host:http/handler"), "{listing}");
    assert!(line("/js/notes").contains("wasm-host:http/handler"), "{listing}");
    assert!(line("/py-wasi/{word}").contains("wasi:http/proxy"), "{listing}");
}
