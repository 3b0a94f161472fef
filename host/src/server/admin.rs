//! The admin listener (`--admin-listen`): `GET /metrics`, the Prometheus text exposition of
//! [`crate::metrics`] and of the runtime's gauges (instances, pool slots), and `GET /healthz`.
//! It has a listener of its own and is never reachable through the public one (there
//! `/metrics` is an ordinary route lookup).
//!
//! A tiny server on the host's own codec (`http::parse_head`, `http::page_response`), not a
//! second HTTP framework. Rules:
//! - `GET` and `HEAD` of `/metrics` and `/healthz`; another method there gets 405 with
//!   `Allow: GET, HEAD`, any other path 404.
//! - `/healthz` answers 200 `ok` while serving and 503 `shutting down` once shutdown has begun
//!   (through the grace period), so a load balancer stops sending before the port closes.
//! - Request bodies are never read: a request with one is answered and its connection closed.
//! - At most [`MAX_CONNECTIONS`] connections at once (more wait in the accept queue); a head
//!   must arrive within `--header-timeout`, an idle keep-alive connection closes after
//!   `--idle-timeout`, a client that does not read its answer within `--send-timeout` is cut off.
//!
//! Requests here are not counted in the request metrics, and their bytes and connections are
//! not the public listener's.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error};

use crate::app::App;
use crate::config::Timeouts;
use crate::http::{
    BodyFraming, HttpLimits, RequestError, RequestHead, error_response, page_response, parse_head,
};
use crate::metrics::{self, Exposition, Kind};

/// Admin connections served at once: a scraper and a health checker or two need a few; the
/// cap bounds what a flood of connections to this port can hold.
pub const MAX_CONNECTIONS: usize = 16;

/// The codec limits here: a scrape or a health check is a request line and a few header
/// fields. Bodies are never read, so they have no limit (a request with one is closed after
/// its answer).
const LIMITS: HttpLimits =
    HttpLimits { max_request_line: 1024, max_head_bytes: 8 * 1024, max_headers: 32, max_body: None };

/// Room made for each read of a request head.
const READ_ROOM: usize = 1024;

/// Serves the admin listener until the task is aborted; its connections end with it.
pub(super) async fn serve(listener: TcpListener, app: Arc<App>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                connections.spawn(async move {
                    connection(stream, &app).await;
                    debug!(peer = %peer, "admin connection closed");
                    drop(slot);
                });
            }
            Err(e) if super::is_connection_error(&e) => {}
            Err(e) => {
                error!("admin accept failed: {e}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers the requests of one admin connection until it closes.
async fn connection(mut stream: TcpStream, app: &App) {
    let timeouts = app.config.timeouts;
    let mut buf = BytesMut::with_capacity(READ_ROOM);
    let mut out = Vec::with_capacity(512);
    let mut first = true;
    loop {
        out.clear();
        let close = match read_head(&mut stream, &mut buf, first, &timeouts).await {
            Ok(Some(head)) => {
                let shutting_down = app.shutdown.is_given();
                let close = !head.keep_alive || head.framing != BodyFraming::None || shutting_down;
                write_answer(&mut out, &head, close, shutting_down, || scrape(app));
                close
            }
            Ok(None) => return,
            Err(e) => {
                error_response(&mut out, e.status(), &e.to_string(), &[], true, false);
                true
            }
        };
        first = false;
        match tokio::time::timeout(timeouts.send, stream.write_all(&out)).await {
            Ok(Ok(())) if !close => {}
            _ => break,
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads the next request head; `Ok(None)` when the client closed, went idle past
/// `--idle-timeout` or took longer than `--header-timeout` (then it is simply closed).
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    first: bool,
    timeouts: &Timeouts,
) -> Result<Option<RequestHead>, RequestError> {
    // From the accept for the first request, else from the request's first byte.
    let mut deadline = first.then(|| tokio::time::Instant::now() + timeouts.header);
    loop {
        if !buf.is_empty() {
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeouts.header);
            if let Some((head, n)) = parse_head(buf, &LIMITS)? {
                buf.advance(n);
                return Ok(Some(head));
            }
        }
        buf.reserve(READ_ROOM);
        let until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + timeouts.idle);
        match tokio::time::timeout_at(until, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Ok(None),
        }
    }
}

/// What the admin listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Metrics,
    Health,
}

/// Appends the complete answer to `head` to `out`; `scrape` renders `/metrics`.
fn write_answer(
    out: &mut Vec<u8>,
    head: &RequestHead,
    close: bool,
    shutting_down: bool,
    scrape: impl FnOnce() -> String,
) {
    let head_only = head.method == "HEAD";
    let endpoint = match head.path.as_str() {
        "/metrics" => Endpoint::Metrics,
        "/healthz" => Endpoint::Health,
        _ => return error_response(out, 404, "not found", &[], close, head_only),
    };
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        return error_response(out, 405, "method not allowed", &[("allow", "GET, HEAD")], close, head_only);
    }
    match endpoint {
        Endpoint::Metrics => {
            let text = scrape();
            page_response(out, 200, metrics::CONTENT_TYPE, text.as_bytes(), &[], close, head_only);
        }
        Endpoint::Health if shutting_down => error_response(out, 503, "shutting down", &[], close, head_only),
        Endpoint::Health => error_response(out, 200, "ok", &[], close, head_only),
    }
}

/// The whole `/metrics` text: the host's counters, then the gauges read now.
fn scrape(app: &App) -> String {
    let mut out = Exposition::new();
    app.metrics.render(&mut out);
    let runtime = &app.runtime;
    let limits = runtime.limits();
    let gauges: [(&str, &str, u64); 5] = [
        (
            "wasm_host_instances",
            "Guest instances alive: running, holding a streaming response, or idle between requests with --instance-reuse.",
            runtime.live_instances() as u64,
        ),
        (
            "wasm_host_instances_idle",
            "Instances waiting for their next request (--instance-reuse); counted in wasm_host_instances too.",
            runtime.idle_instances() as u64,
        ),
        (
            "wasm_host_instances_max",
            "Instances that may be alive at once (--max-instances); past it requests get 503.",
            limits.max_instances.into(),
        ),
        (
            "wasm_host_route_instances_max",
            "Instances one handler may hold at once (--route-max-instances).",
            limits.route_max_instances().into(),
        ),
        ("wasm_host_handlers", "Handler files in the route table now.", app.routes.load().len() as u64),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help);
        out.sample(name, &[], value);
    }
    let pool = runtime.pool_use();
    out.family(
        "wasm_host_pool_slots",
        Kind::Gauge,
        "Slots of the instance pool, by kind (sized at start-up from --max-instances).",
    );
    for slots in &pool {
        out.sample("wasm_host_pool_slots", &[("kind", slots.kind)], slots.total);
    }
    out.family("wasm_host_pool_slots_in_use", Kind::Gauge, "Slots of the instance pool in use now, by kind.");
    for slots in &pool {
        out.sample("wasm_host_pool_slots_in_use", &[("kind", slots.kind)], slots.in_use);
    }
    out.into_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(request: &[u8], shutting_down: bool) -> String {
        let (head, _) = parse_head(request, &LIMITS).unwrap().unwrap();
        let mut out = Vec::new();
        write_answer(&mut out, &head, !head.keep_alive, shutting_down, || "m 1\n".to_owned());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn metrics_is_the_exposition_in_text_format_0_0_4() {
        let a = answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(a.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{a}");
        assert!(a.ends_with("\r\n\r\nm 1\n"), "{a}");
        assert!(!a.contains("connection: close"), "{a}");
    }

    #[test]
    fn head_gets_the_length_without_the_body() {
        let a = answer(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert!(a.contains("content-length: 4\r\n") && a.ends_with("\r\n\r\n"), "{a}");
    }

    #[test]
    fn healthz_is_ok_until_shutdown_begins() {
        let ok = answer(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nok\n"), "{ok}");
        let going = answer(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", true);
        assert!(going.starts_with("HTTP/1.1 503 ") && going.ends_with("shutting down\n"), "{going}");
    }

    #[test]
    fn other_methods_get_405_with_allow_and_other_paths_404() {
        let a = answer(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false);
        assert!(a.starts_with("HTTP/1.1 405 ") && a.contains("allow: GET, HEAD\r\n"), "{a}");
        let a = answer(b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert!(a.starts_with("HTTP/1.1 405 "), "{a}");
        for path in ["/", "/metrics/", "/hello-world", "/healthz/x"] {
            let a = answer(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(), false);
            assert!(a.starts_with("HTTP/1.1 404 "), "{path}: {a}");
        }
    }

    #[test]
    fn a_query_does_not_change_the_endpoint() {
        let a = answer(b"GET /metrics?name[]=x HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
    }

    #[test]
    fn close_is_announced() {
        let a = answer(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false);
        assert!(a.contains("connection: close\r\n"), "{a}");
    }
}
