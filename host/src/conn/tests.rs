//! The exchange rules, driven in-process: one connection served over `tokio::io::duplex`
//! (no binary, no socket) against the example handlers, bytes in, bytes out.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use crate::app::App;
use crate::config::{CompileCache, Config};
use crate::runtime::Runtime;

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// An app serving the example routes with `max_instances` slots and a short CPU budget.
fn app(max_instances: u32) -> Arc<App> {
    let mut config = Config::new(test_artifacts::EXAMPLE_ROUTES.into());
    config.runtime.max_instances = max_instances;
    config.runtime.cpu_timeout = Duration::from_millis(100);
    let cache = CompileCache::Dir(std::env::temp_dir().join("wasm-host-unit-test-cache"));
    let runtime = Runtime::new(&config.runtime, &cache).expect("runtime");
    let build = crate::site::load(&runtime, Path::new(test_artifacts::EXAMPLE_ROUTES), true)
        .expect("example routes load");
    Arc::new(App::new(config, runtime, build.routes, build.errors))
}

/// The shared app for tests that need no special limits.
fn examples() -> Arc<App> {
    static APP: OnceLock<Arc<App>> = OnceLock::new();
    APP.get_or_init(|| app(8)).clone()
}

/// Starts serving one connection; returns the client's end.
fn connect(app: &Arc<App>) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 20);
    tokio::spawn(crate::conn::serve(server, PEER, app.clone()));
    client
}

/// Sends `input`, half-closes, and returns everything the server sends until it closes (the
/// server closes once it has answered every request it was sent). Bounded in time.
async fn talk(app: &Arc<App>, input: &[u8]) -> String {
    let mut client = connect(app);
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a response off the front of `text`: (head, rest after the head).
fn split_head(text: &str) -> (&str, &str) {
    let end = text.find("\r\n\r\n").expect("a complete head") + 4;
    (&text[..end], &text[end..])
}

fn status(head: &str) -> u16 {
    head[9..12].parse().unwrap()
}

#[tokio::test]
async fn host_answers_to_head_never_carry_a_body() {
    let app = examples();
    // Each HEAD is answered by the host itself; the GET pipelined after it must be the very
    // next thing on the wire.
    for (target, expected) in [("/nowhere", 404), ("/echo", 405), ("/exception", 500), ("/spin", 504)] {
        let req =
            format!("HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = talk(&app, req.as_bytes()).await;
        let (head, rest) = split_head(&out);
        assert_eq!(status(head), expected, "{out}");
        assert!(head.contains("content-length: "), "{head}");
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "HEAD {target}: a body went out: {out:?}");
        assert!(rest.ends_with("Hello world!"), "{out}");
    }
}

#[tokio::test]
async fn busy_answer_to_head_has_no_body_and_keeps_the_connection() {
    let app = app(1);
    // Hold the only instance slot with a sleeping request.
    let mut sleeper = connect(&app);
    sleeper.write_all(b"GET /hang/3/done HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let held = async {
        for _ in 0..300 {
            if app.runtime.live_instances() == 1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    assert!(held.await, "the sleeper holds the slot");
    let out =
        talk(&app, b"HEAD /hello-world HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
    let (head, rest) = split_head(&out);
    assert_eq!(status(head), 503, "{out}");
    assert!(head.contains("retry-after: 1\r\n"), "{head}");
    assert!(!head.contains("connection: close"), "a bodyless request keeps its connection: {head}");
    assert!(rest.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out:?}");
}

#[tokio::test]
async fn bad_path_answer_to_head_has_no_body_and_closes() {
    let out = talk(
        &examples(),
        b"HEAD /a/../b HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let (head, rest) = split_head(&out);
    assert_eq!(status(head), 400);
    assert!(head.contains("connection: close\r\n"));
    assert_eq!(rest, "", "no body and nothing after: {out:?}");
}

#[tokio::test]
async fn head_to_a_get_handler_announces_the_length_without_the_body() {
    let out = talk(
        &examples(),
        b"HEAD /hello-world HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let (head, rest) = split_head(&out);
    assert_eq!(status(head), 200);
    assert!(head.contains("content-length: 12\r\n"), "{head}");
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.ends_with("Hello world!"), "{out:?}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let out = talk(
        &examples(),
        b"GET /params/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let statuses: Vec<u16> =
        out.match_indices("HTTP/1.1 ").map(|(i, _)| out[i + 9..i + 12].parse().unwrap()).collect();
    assert_eq!(statuses, [200, 404, 200], "{out}");
    let first = out.find("\"route\":\"1\"").expect("the first answer is the params one");
    assert!(first < out.find("404 Not Found").unwrap());
    assert!(out.ends_with("Hello world!"));
}

#[tokio::test]
async fn early_answer_from_before_drains_a_small_body_and_keeps_the_connection() {
    let out = talk(
        &examples(),
        b"GET /private HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let (head, rest) = split_head(&out);
    assert_eq!(status(head), 401, "{out}");
    assert!(head.contains("www-authenticate: Bearer"), "{head}");
    assert!(rest.contains("HTTP/1.1 200 OK") && rest.ends_with("Hello world!"), "{out}");
}

#[tokio::test]
async fn close_from_before_sends_nothing() {
    let out = talk(
        &examples(),
        b"GET /kill HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(out, "", "nothing is sent, not even for the pipelined request");
}

#[tokio::test]
async fn failure_answers_honour_connection_close() {
    for target in ["/exception", "/nowhere", "/echo"] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let out = talk(&examples(), req.as_bytes()).await;
        let (head, rest) = split_head(&out);
        assert!(head.contains("connection: close\r\n"), "{target}: {head}");
        assert!(!rest.contains("HTTP/1.1"), "{target}: the connection closed after the answer: {out:?}");
    }
    // HTTP/1.0 without keep-alive too.
    let out = talk(&examples(), b"GET /exception HTTP/1.0\r\n\r\nGET /hello-world HTTP/1.0\r\n\r\n").await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.contains("connection: close\r\n"), "{out}");
}

#[tokio::test]
async fn streams_are_chunked_for_http_1_1_and_run_until_close_for_http_1_0() {
    let out = talk(&examples(), b"GET /numbers/3 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = split_head(&out);
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert_eq!(body, "2\r\n1\n\r\n2\r\n2\n\r\n2\r\n3\n\r\n0\r\n\r\n");

    let out = talk(
        &examples(),
        b"GET /numbers/3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello-world HTTP/1.0\r\n\r\n",
    )
    .await;
    let (head, body) = split_head(&out);
    assert!(!head.contains("transfer-encoding") && !head.contains("content-length"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert_eq!(body, "1\n2\n3\n", "the body runs until close; the pipelined request is not answered");
}

#[tokio::test]
async fn expect_continue_gets_continue_before_the_body_is_read() {
    let mut client = connect(&examples());
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"hello").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("hello"), "{out}");
}

#[tokio::test]
async fn no_route_with_an_unread_body_too_large_to_drain_closes() {
    let mut req = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n".to_vec();
    req.resize(req.len() + 300_000, b'a');
    req.extend_from_slice(b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = talk(&examples(), &req).await;
    let (head, rest) = split_head(&out);
    assert_eq!(status(head), 404);
    assert!(head.contains("connection: close\r\n"), "{head}");
    // The examples' error page renders the 404; body bytes are never read as a request.
    assert!(rest.contains("Error 404") && !rest.contains("HTTP/1.1"), "{out:?}");
}

#[tokio::test]
async fn codec_error_in_the_body_of_a_head_request_is_answered_without_a_body() {
    // The body limit (16 MiB) is checked against Content-Length while the head is parsed: the
    // 413 goes to a HEAD, known by its method token alone.
    let out =
        talk(&examples(), b"HEAD /hello-world HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
            .await;
    let (head, rest) = split_head(&out);
    assert_eq!(status(head), 413, "{out}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert_eq!(rest, "", "{out:?}");
}
