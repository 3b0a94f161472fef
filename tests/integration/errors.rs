//! Error pages: `routes/errors/{code}/GET.wasm` renders every error the host answers with and
//! every `HttpError` a handler sends as text; HEAD gets none; a failing page falls back.

use std::io::{BufReader, Write};
use std::path::Path;

use test_artifacts as a;

use crate::support::*;

fn page(s: &Server, request: &[u8]) -> RawResponse {
    raw(s, request).expect("a response")
}

#[test]
fn host_errors_and_handler_errors_get_the_sites_error_page() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);
    let r = page(&s, b"GET /nowhere?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").unwrap().starts_with("text/html"), "{:?}", r.headers);
    let text = r.text();
    assert!(
        text.contains("Error 404") && text.contains("not found") && text.contains("GET /nowhere"),
        "{text}"
    );

    let r = page(&s, b"PUT /hello-world HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert!(r.text().contains("Error 405") && r.text().contains("PUT /hello-world"), "{}", r.text());

    let r = page(&s, b"GET /exception HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("Error 500") && r.text().contains("internal server error"), "{}", r.text());

    // A handler's HttpError (sent as text) gets the page too, with its message.
    let r = page(&s, b"GET /http-error HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Error 403") && r.text().contains("Forbidden Access"), "{}", r.text());
    assert!(r.header("wasm-host-error").is_none(), "the SDK's marker never goes out");

    // Errors found while reading the head are rendered too.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let r = page(&s, long.as_bytes());
    assert_eq!(r.status, 414);
    assert!(r.text().contains("Error 414"), "{}", r.text());

    // errors/ is not an ordinary route.
    assert_eq!(page(&s, b"GET /errors/404 HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
}

#[test]
fn head_gets_no_error_page_body_and_a_failing_page_falls_back_to_plain() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);
    let mut c = s.connect();
    c.write_all(b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, true).unwrap().status, 404);
    assert_eq!(
        read_response(&mut r, false).unwrap().text(),
        "Hello world!",
        "no page body after the HEAD answer"
    );

    // The example page panics for this path: the built-in plain answer goes out instead.
    let r = page(&s, b"GET /exception/page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (404, "not found\n"));
    assert!(s.wait_for_log("error page for 404 failed", std::time::Duration::from_secs(5)), "{}", s.log());
    // And the server goes on rendering pages.
    assert!(page(&s, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n").text().contains("Error 404"));
}

#[test]
fn routes_lists_error_pages_and_refuses_misplaced_ones() {
    let t = Tree::new(&[
        ("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD),
        ("errors/{code}/GET.wasm", a::EXAMPLE_ERROR_PAGE),
        ("errors/404/ANY.wasm", a::EXAMPLE_ERROR_PAGE),
    ]);
    let out = std::process::Command::new(BIN).arg("routes").arg(t.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("/errors/{code}") && l.contains("(error page)")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("/errors/404") && l.contains("(error page)")), "{text}");

    t.put("errors/teapot/GET.wasm", a::EXAMPLE_ERROR_PAGE);
    let out = std::process::Command::new(BIN).arg("routes").arg(t.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("errors/teapot/GET.wasm") && err.contains("not an error page"), "{err}");
}
