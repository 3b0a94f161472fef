//! What the host logs: request ids on the access line and on every line of the request (and
//! in what handlers see), the text format's fields, and `--log-format json`.

use std::time::Duration;

use test_artifacts as a;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

fn tree() -> Tree {
    Tree::new(&[("x/ANY.wasm", a::INSPECT), ("talk/GET.wasm", a::LOGS)])
}

/// The `x-request-id` values the inspect guest saw.
fn ids_seen(r: &RawResponse) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("x-request-id"))
        .map(|h| h[1].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_valid_request_id_is_kept_and_handlers_and_the_access_line_see_it() {
    let t = tree();
    let s = Server::start(t.path(), &[]);
    let r = raw(&s, b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\nX-Request-Id: trace-42.abc\r\n\r\n").unwrap();
    assert_eq!(ids_seen(&r), ["trace-42.abc"]);
    assert!(s.wait_for_log("request_id=trace-42.abc", WAIT), "{}", s.log());
    let log = s.log();
    let access = log.lines().find(|l| l.contains("request_id=trace-42.abc")).unwrap();
    for field in
        ["method=GET", "path=/x", "query=\"a=1\"", "status=200", "route=\"ANY /x\"", "outcome=complete"]
    {
        assert!(access.contains(field), "{field} missing: {access}");
    }
    assert!(!log.contains("Some("), "a Rust debug value leaked into the log:\n{log}");
}

#[test]
fn a_missing_invalid_or_repeated_request_id_is_replaced_by_a_generated_one() {
    let t = tree();
    let s = Server::start(t.path(), &[]);
    let mut seen = Vec::new();
    for extra in ["", "X-Request-Id: has space\r\n", "X-Request-Id: a\r\nX-Request-Id: b\r\n"] {
        let r = raw(&s, format!("GET /x HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes()).unwrap();
        let ids = ids_seen(&r);
        assert_eq!(ids.len(), 1, "{extra:?}: {ids:?}");
        assert!(ids[0].len() == 16 && ids[0].bytes().all(|b| b.is_ascii_hexdigit()), "{ids:?}");
        assert!(s.wait_for_log(&format!("request_id={}", ids[0]), WAIT), "{}", s.log());
        seen.push(ids[0].clone());
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "ids repeat: {seen:?}");
}

#[test]
fn guest_output_and_failures_carry_the_request_id() {
    let t = tree();
    let s = Server::start(t.path(), &[]);
    let r = raw(&s, b"GET /talk HTTP/1.1\r\nHost: h\r\nX-Request-Id: talk-1\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert!(s.wait_for_log("hello from stderr", WAIT), "{}", s.log());
    let log = s.log();
    let line = log.lines().find(|l| l.contains("hello from stdout")).unwrap();
    assert!(line.contains("request_id=talk-1") && line.contains("[GET /talk]"), "{line}");
}

#[test]
fn a_request_rejected_before_routing_is_logged_with_its_method_and_path() {
    let t = tree();
    let s = Server::start(t.path(), &[]);
    let r = raw(&s, b"GET /x?q HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap();
    assert_eq!(r.status, 400);
    assert!(s.wait_for_log("rejected request", WAIT), "{}", s.log());
    let log = s.log();
    let line = log.lines().find(|l| l.contains("rejected request")).unwrap();
    assert!(line.contains("method=GET") && line.contains("path=/x") && line.contains("status=400"), "{line}");
    assert!(line.contains("outcome=rejected"), "{line}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let t = tree();
    let s = Server::start(t.path(), &["--log-format", "json"]);
    let r = raw(&s, b"GET /talk HTTP/1.1\r\nHost: h\r\nX-Request-Id: json-1\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert!(s.wait_for_log("\"target\":\"access\"", WAIT), "{}", s.log());
    let objects: Vec<serde_json::Value> = s
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    let access = objects.iter().find(|o| o["target"] == "access").expect("an access object");
    assert_eq!(access["fields"]["path"], "/talk");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["route"], "GET /talk");
    let guest = objects
        .iter()
        .find(|o| o["fields"]["message"].as_str().is_some_and(|m| m.contains("hello from stdout")))
        .expect("the guest's line");
    assert_eq!(guest["fields"]["request_id"], "json-1", "{guest}");
}
