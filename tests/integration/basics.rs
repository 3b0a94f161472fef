//! Serving handlers: the examples, routing answers, hooks, faults, keep-alive, pipelining.

use std::io::{BufReader, Write};
use std::path::Path;

use serde_json::Value;
use test_artifacts as a;

use crate::support::*;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn example_routes_answer_as_documented() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);

    let r = raw(&s, b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "Hello world!"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("12"));
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")), "{r:?}");

    let (status, body) = get(&s, "/params/C?url=B");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["urlParams"]["url"], "B");
    assert_eq!(v["pathParams"]["route"], "C");
    assert_eq!(v["bodyParams"], Value::Null);

    let mut resp = client()
        .post(&s.url("/params/C?url=B"))
        .header("content-type", "application/json")
        .send(r#"{"body": "A"}"#)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v = json(&resp.body_mut().read_to_string().unwrap());
    assert_eq!(v["bodyParams"]["body"], "A");
    assert_eq!(v["urlParams"]["url"], "B");

    let resp = client()
        .post(&s.url("/params/C"))
        .header("content-type", "application/json")
        .send("{not json")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let (status, body) = get(&s, "/http-error");
    // The examples' error page (errors/{code}) renders the handler's message.
    assert_eq!(status, 403);
    assert!(body.contains("Forbidden Access"), "{body}");

    let (status, _) = get(&s, "/exception");
    assert_eq!(status, 500);
    assert!(s.wait_for_log("Oups", std::time::Duration::from_secs(5)), "panic message logged");
    // One WARN line with the route, the message and where; the wasm backtrace only at DEBUG.
    let log = s.log();
    let warn =
        log.lines().find(|l| l.contains("WARN") && l.contains("Oups")).unwrap_or_else(|| panic!("{log}"));
    assert!(warn.contains("handler panicked at") && warn.contains("exception/src/lib.rs:"), "{warn}");
    assert!(warn.contains("route=\"GET /exception\""), "{warn}");
    assert!(!log.contains("wasm backtrace"), "the backtrace is for DEBUG: {log}");
    assert_eq!(get(&s, "/hello-world"), (200, "Hello world!".into()), "served after a trap");

    let (status, _) = get(&s, "/private");
    assert_eq!(status, 401);
    let mut resp = client().get(&s.url("/private")).header("authorization", "Bearer letmein").call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(!resp.body_mut().read_to_string().unwrap().is_empty());

    let bytes = raw_all(&s, b"GET /kill HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        bytes.is_empty(),
        "kill must close without a response, got {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn unknown_path_is_404_and_missing_method_is_405_with_allow() {
    let t =
        Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD), ("hello/PUT.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    let r = raw(&s, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
    let r = raw(&s, b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT"));
    let r = raw(&s, b"GET /hello/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn request_reaches_the_guest_intact() {
    let t = Tree::new(&[("users/{id}/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &[]);
    let r = raw(
        &s,
        b"POST /users/4%202?a=1&b=x%20y HTTP/1.1\r\nHost: example\r\nX-Bytes: caf\xe9\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r.text());
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/users/4 2");
    assert_eq!(v["query"], "a=1&b=x%20y");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["params"]["id"], "4 2");
    assert_eq!(v["body_len"], 5);
    assert!(v["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    let headers = v["headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h[0] == "X-Bytes" && h[1] == "caf\u{fffd}"), "{headers:?}");
}

#[test]
fn chunked_request_body_is_decoded() {
    let t = Tree::new(&[("x/POST.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &[]);
    let r = raw(
        &s,
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(json(&r.text())["body_len"], 11);
}

#[test]
fn expect_100_continue_gets_continue_then_response() {
    let t = Tree::new(&[("x/POST.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &[]);
    let mut c = s.connect();
    c.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let cont = read_response(&mut r, true).unwrap();
    assert_eq!(cont.status, 100);
    c.write_all(b"abc").unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(json(&resp.text())["body_len"], 3);
}

#[test]
fn head_has_headers_but_no_body() {
    let t = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    let mut c = s.connect();
    c.write_all(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let head = read_response(&mut r, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("12"));
    // The next response starts right after the head: no body bytes in between.
    let get = read_response(&mut r, false).unwrap();
    assert_eq!(get.text(), "Hello world!");
}

#[test]
fn host_error_answers_to_head_have_no_body_on_a_real_socket() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);
    for (target, status) in [("/nowhere", 404), ("/echo", 405), ("/exception", 500)] {
        let mut c = s.connect();
        let req =
            format!("HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n");
        c.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(c);
        assert_eq!(read_response(&mut r, true).unwrap().status, status, "HEAD {target}");
        // Read in step: the GET's answer is next, not the error text.
        assert_eq!(read_response(&mut r, false).unwrap().text(), "Hello world!", "HEAD {target}");
    }
}

#[test]
fn http10_and_connection_close_end_the_connection() {
    let t = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    let out = raw_all(&s, b"GET /hello HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("Hello world!"), "{text}");
    let out = raw_all(&s, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(text.ends_with("Hello world!"), "{text}");
}

#[test]
fn hundred_sequential_requests_share_one_connection() {
    let t = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    let c = s.connect();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    for i in 0..100 {
        w.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let resp = read_response(&mut r, false).unwrap_or_else(|| panic!("no response #{i}"));
        assert_eq!((resp.status, resp.text().as_str()), (200, "Hello world!"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let t = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD), ("p/{n}/GET.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &[]);
    let mut c = s.connect();
    c.write_all(
        b"GET /p/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /p/3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let first = read_response(&mut r, false).unwrap();
    assert_eq!(json(&first.text())["params"]["n"], "1");
    assert_eq!(read_response(&mut r, false).unwrap().status, 404);
    let third = read_response(&mut r, false).unwrap();
    assert_eq!(json(&third.text())["params"]["n"], "3");
}

#[test]
fn early_respond_and_close_from_before() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);
    // `before` answers 401 and the body (small) is drained: the connection stays usable.
    let mut c = s.connect();
    c.write_all(b"GET /private HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody").unwrap();
    c.write_all(b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, false).unwrap().status, 401);
    assert_eq!(read_response(&mut r, false).unwrap().text(), "Hello world!");
    // `before` closes: nothing comes back, the socket is closed.
    let mut c = s.connect();
    c.write_all(b"GET /kill HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(is_closed(&mut c));
}

#[test]
fn respond_or_close_from_stream_stops_the_body() {
    let t = Tree::new(&[("r/POST.wasm", a::RESPOND_IN_STREAM), ("c/POST.wasm", a::CLOSE_IN_STREAM)]);
    let s = Server::start(t.path(), &[]);
    // The rest of the body must never be parsed as a request: the connection closes.
    let mut body = b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'a', 5000));
    let mut c = s.connect();
    c.write_all(&body).unwrap();
    let mut r = BufReader::new(c);
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 422, "{}", resp.text());
    assert!(is_closed(&mut r));

    let mut body = b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n".to_vec();
    body.extend(b"0123456789");
    assert!(raw_all(&s, &body).is_empty());
}

#[test]
fn guest_output_is_logged_with_its_route() {
    let t = Tree::new(&[("talk/GET.wasm", a::LOGS)]);
    let s = Server::start(t.path(), &[]);
    assert_eq!(get(&s, "/talk").0, 200);
    // The access line is written after the response, so wait for it too.
    let ok = s.wait_for_log("hello from stderr", std::time::Duration::from_secs(5))
        && s.wait_for_log("path=/talk", std::time::Duration::from_secs(5));
    let log = s.log();
    assert!(ok, "{log}");
    let line = log.lines().find(|l| l.contains("hello from stdout")).expect("stdout line logged");
    assert!(line.contains("[GET /talk] hello from stdout"), "prefixed with the route: {line}");
    // One access-log line per request with method, path, status and bytes.
    let access = log.lines().find(|l| l.contains("access") && l.contains("path=/talk")).expect("access line");
    assert!(access.contains("status=200") && access.contains("bytes="), "{access}");
}

#[test]
fn control_characters_in_guest_output_are_logged_escaped() {
    let t = Tree::new(&[("talk/GET.wasm", a::LOGS)]);
    let s = Server::start(t.path(), &[]);
    assert_eq!(get(&s, "/talk?hostile").0, 200);
    assert!(s.wait_for_log("covered", std::time::Duration::from_secs(5)), "{}", s.log());
    let log = s.log();
    let line = log.lines().find(|l| l.contains("covered")).unwrap();
    assert!(
        line.contains(r"[GET /talk] covered\rhidden \x1b[31mred\x1b[0m \u{9b}2J nul\x00 bell\x07 tab	end"),
        "{line:?}"
    );
    // Only the host's own colours remain (stripped by the test's reader): no raw control byte.
    assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "{line:?}");
}

#[test]
fn invalid_response_header_from_guest_is_500() {
    let t = Tree::new(&[("bad/GET.wasm", a::BAD_HEADER), ("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    let r = raw(&s, b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 500);
    assert!(r.headers.iter().all(|(n, _)| !n.eq_ignore_ascii_case("x-injected")));
    assert_eq!(get(&s, "/ok").0, 200);
}

#[test]
fn a_status_outside_200_to_599_from_a_guest_is_a_500_and_599_is_sent() {
    let t = Tree::new(&[("bad/GET.wasm", a::BAD_HEADER)]);
    let s = Server::start(t.path(), &[]);
    for status in [100, 101, 199, 600, 700, 999, 1000] {
        let r = raw(&s, format!("GET /bad?status={status} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(r.status, 500, "status {status} was sent as it is");
        assert!(!r.text().contains("should not be sent"), "{status}: {}", r.text());
    }
    let r = raw(&s, b"GET /bad?status=599 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (599, "should not be sent"));
}

#[test]
fn a_response_head_over_64_kib_is_a_500_and_the_connection_goes_on() {
    let t = Tree::new(&[("bad/GET.wasm", a::BAD_HEADER)]);
    let s = Server::start(t.path(), &[]);
    let mut conn = BufReader::new(s.connect());
    for (query, status) in [
        ("fields=1&size=2000000", 500), // one 2 MB value
        ("fields=10000&size=1", 500),   // 10,000 fields
        ("fields=100&size=100", 200),   // ≈11 KiB: fine
    ] {
        conn.get_mut().write_all(format!("GET /bad?{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let r = read_response(&mut conn, false).expect("an answer on the same connection");
        assert_eq!(r.status, status, "{query}");
        assert!(r.headers.len() < 200, "{query}: none of a refused head is sent");
    }
    assert!(s.wait_for_log("response head over 64 KiB", std::time::Duration::from_secs(5)), "{}", s.log());
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);
    let mut c = s.connect();
    // Pipelined behind a quick request: once its answer is back, the connection is accepted
    // and the second request, read with the first, is in flight.
    c.write_all(b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\nGET /hang/1/bye HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    let reader = std::thread::spawn(move || read_response(&mut r, false));
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    let resp = reader.join().unwrap().expect("in-flight response");
    assert_eq!((resp.status, resp.text().as_str()), (200, "bye"));
}

#[test]
fn an_idle_keep_alive_connection_closes_as_soon_as_shutdown_begins() {
    // Grace and idle timeout far longer than `terminate` waits (30 s): the host exits in time
    // only if shutting down closes the idle connection at once.
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--shutdown-grace", "5m", "--idle-timeout", "5m"]);
    let mut c = s.connect();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(is_closed(&mut r), "the idle connection was closed");
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &[]);
    let c = s.connect();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    // Sequential and concurrent requests: none may see another's statics or heap.
    for _ in 0..50 {
        w.write_all(b"GET /n HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r, false).unwrap().text(), "1 1");
    }
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let c = std::net::TcpStream::connect(addr).unwrap();
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                for _ in 0..50 {
                    w.write_all(b"GET /n HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    assert_eq!(read_response(&mut r, false).unwrap().text(), "1 1");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn accept_loop_survives_running_out_of_file_descriptors() {
    let t = Tree::new(&[("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    // Leave the running server only a few spare file descriptors.
    let used = std::fs::read_dir(format!("/proc/{}/fd", s.pid())).unwrap().count();
    let status = std::process::Command::new("prlimit")
        .arg(format!("--nofile={}", used + 6))
        .args(["--pid", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // More connections than it has descriptors for: accept fails with EMFILE.
    let held: Vec<std::net::TcpStream> = (0..30).map(|_| s.connect()).collect();
    assert!(s.wait_for_log("accept failed", std::time::Duration::from_secs(10)), "{}", s.log());
    drop(held);
    // Once the clients are gone the server is still there and serving.
    let ok = eventually(std::time::Duration::from_secs(20), || {
        let Ok(mut c) = std::net::TcpStream::connect(s.addr) else { return false };
        c.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        if c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
            return false;
        }
        read_response(&mut BufReader::new(c), false).is_some_and(|r| r.text() == "Hello world!")
    });
    assert!(ok, "{}", s.log());
}

#[test]
fn only_an_any_file_is_asked_its_methods_at_load() {
    // The `contract` guest's `info.methods` traps: named after a method, it is never called.
    let t = Tree::new(&[("c/GET.wasm", a::CONTRACT)]);
    let s = Server::start(t.path(), &["--strict"]);
    let r = raw(&s, b"GET /c?case=framing HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "framed by the host\n"));
    drop(s);
    // As ANY.wasm it is asked, so the file does not load. (`routes` loads the tree the way
    // `run --strict` does and always exits, so a host that wrongly loaded it cannot hang here.)
    let t = Tree::new(&[("c/ANY.wasm", a::CONTRACT)]);
    let out = std::process::Command::new(BIN).arg("routes").arg(t.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ANY.wasm: its `info.methods` export failed"), "{stderr}");
}

#[test]
fn files_with_the_same_bytes_run_one_compiled_component_with_instances_of_their_own() {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
    let cache = tempfile::tempdir().unwrap();
    let t = Tree::new(&[("a/GET.wasm", a::COUNTER), ("b/GET.wasm", a::COUNTER), ("v/GET.wasm", a::VERSION)]);
    let args = ["--cache-dir", cache.path().to_str().unwrap(), "--instance-reuse", "10"];
    let s = Server::start(t.path(), &args);
    assert!(s.wait_for_log("compiled=2 from_cache=0 shared=1", WAIT), "{}", s.log());
    // Reused instances stay per route: /b's first request is its first, whatever /a served.
    assert_eq!(get(&s, "/a"), (200, "1 1".into()));
    assert_eq!(get(&s, "/a"), (200, "2 2".into()));
    assert_eq!(get(&s, "/b"), (200, "1 1".into()));
    assert_eq!(get(&s, "/v"), (200, "v1".into()));
    // A file added later with the same bytes runs the loaded code too.
    t.put("c/GET.wasm", a::COUNTER);
    assert!(s.wait_for_log("code=\"shared\"", WAIT), "{}", s.log());
    assert!(eventually(WAIT, || get(&s, "/c") == (200, "1 1".into())), "{}", s.log());
    // Two distinct components, each mapped once, however many files run them.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", s.pid())).unwrap();
    let code: Vec<&str> = maps
        .lines()
        .filter(|l| l.ends_with(".cwasm") && l.split_whitespace().nth(1) == Some("r-xp"))
        .collect();
    assert_eq!(code.len(), 2, "{maps}");
}

#[test]
fn one_handler_for_several_methods_answers_405_with_allow_for_the_rest() {
    let t = Tree::new(&[("items/ANY.wasm", a::MULTI_METHOD)]);
    let s = Server::start(t.path(), &[]);
    assert_eq!(get(&s, "/items"), (200, "listed".into()));
    let mut resp = client().post(&s.url("/items")).send("x").unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap()),
        (201, "created x".into())
    );
    assert_eq!(client().delete(&s.url("/items")).call().unwrap().status().as_u16(), 204);
    let mut c = s.connect();
    c.write_all(b"HEAD /items HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_response(&mut BufReader::new(c), true).unwrap();
    assert_eq!((head.status, head.header("content-length")), (200, Some("6")), "HEAD is served by get");
    for method in ["PUT", "PATCH", "PROPFIND"] {
        let r =
            raw(&s, format!("{method} /items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .unwrap();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST, DELETE"), "{method}");
    }
    // A method file beside it wins over it, and joins the Allow list.
    t.put("items/PUT.wasm", a::EXAMPLE_HELLO_WORLD);
    let put = |s: &Server| client().put(&s.url("/items")).send("").unwrap().status().as_u16();
    assert!(eventually(std::time::Duration::from_secs(10), || put(&s) == 200), "{}", s.log());
    let r = raw(&s, b"PATCH /items HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, PUT, DELETE"));
    // `wasm-host routes` lists the methods it declares.
    let out = std::process::Command::new(BIN).arg("routes").arg(t.path()).output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.lines().any(|l| l.starts_with("/items") && l.contains("ANY:GET,POST,DELETE")), "{out}");
}
