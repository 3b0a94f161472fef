//! A handler written against the raw WIT bindings of our world, bypassing every check the SDK
//! makes, so the host's own enforcement of the response contract is what the client sees. The
//! query picks the response (`?case=`):
//!
//! - `framing`: `framed by the host\n` (19 bytes) with every field the host owns set wrong:
//!   `Content-Length: 1000`, `Transfer-Encoding: chunked`, `Connection: close`, `Upgrade`,
//!   `Keep-Alive`, `Trailer`, `Date`, plus `x-kept: yes`.
//! - `status&n=N`: status N with the full body `must not be sent`.
//! - `chunked-status&n=N`: status N with a chunked body of one chunk `must not be sent`.
//! - `name`: a header field whose name is not a token (`x bad`).
//! - `nul`: a header value with a NUL byte.
//! - `data`: an event whose data holds every line ending, each followed by what would be a
//!   field of its own (`event: injected`, `id: injected`, `retry: 1`), then a second event.
//! - `event` / `id` (`&with=cr|lf|nul`): an event `ok`, then one whose `event` or `id` field
//!   holds that character followed by `data: injected`.
//!
//! Its `info.methods` export panics (see below).

use std::cell::RefCell;

use wasm_host_sdk::bindings::wasm_host::http::types::{Body, Header};
use wasm_host_sdk::bindings::{self, Event, Flow, Request, Response};

/// What the pulls of this request hand out, in order.
struct Pulls {
    chunks: Vec<Vec<u8>>,
    events: Vec<Event>,
}

thread_local! {
    static QUERY: RefCell<String> = const { RefCell::new(String::new()) };
    static PULLS: RefCell<Pulls> = const { RefCell::new(Pulls { chunks: Vec::new(), events: Vec::new() }) };
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn header(name: &str, value: &[u8]) -> Header {
    Header { name: name.into(), value: value.to_vec() }
}

fn event(data: &str) -> Event {
    Event { event: None, data: data.into(), id: None, retry: None }
}

fn respond(query: &str) -> Response {
    let status = param(query, "n").and_then(|n| n.parse().ok()).unwrap_or(200);
    let full = |status, headers, body: &[u8]| Response { status, headers, body: Body::Full(body.to_vec()) };
    let with = match param(query, "with") {
        Some("cr") => "\r",
        Some("lf") => "\n",
        _ => "\0",
    };
    match param(query, "case") {
        Some("framing") => full(
            200,
            vec![
                header("Content-Length", b"1000"),
                header("Transfer-Encoding", b"chunked"),
                header("Connection", b"close"),
                header("Upgrade", b"h2c"),
                header("Keep-Alive", b"timeout=1"),
                header("Trailer", b"x-sum"),
                header("Date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
                header("x-kept", b"yes"),
            ],
            b"framed by the host\n",
        ),
        Some("status") => full(status, vec![header("content-type", b"text/plain")], b"must not be sent"),
        Some("chunked-status") => {
            PULLS.with_borrow_mut(|p| p.chunks = vec![b"must not be sent".to_vec()]);
            Response { status, headers: Vec::new(), body: Body::Chunked }
        }
        Some("name") => full(200, vec![header("x bad", b"v")], b"must not be sent"),
        Some("nul") => full(200, vec![header("x-nul", b"a\0b")], b"must not be sent"),
        Some("data") => {
            let data = "one\revent: injected\ntwo\nid: injected\r\nthree\r\rretry: 1";
            PULLS.with_borrow_mut(|p| p.events = vec![event(data), event("after")]);
            Response { status: 200, headers: Vec::new(), body: Body::Events }
        }
        Some(field @ ("event" | "id")) => {
            let bad = format!("x{with}data: injected");
            let broken = if field == "event" {
                Event { event: Some(bad), ..event("broken") }
            } else {
                Event { id: Some(bad), ..event("broken") }
            };
            PULLS.with_borrow_mut(|p| p.events = vec![event("ok"), broken]);
            Response { status: 200, headers: Vec::new(), body: Body::Events }
        }
        _ => full(400, Vec::new(), b"unknown ?case=\n"),
    }
}

struct Raw;

impl bindings::Guest for Raw {
    fn before(request: Request) -> Flow {
        QUERY.set(request.query);
        Flow::Proceed
    }

    fn stream(_chunk: Vec<u8>) -> Flow {
        Flow::Proceed
    }

    fn after() -> Response {
        QUERY.with_borrow(|query| respond(query))
    }

    fn next_chunk() -> Option<Vec<u8>> {
        PULLS.with_borrow_mut(|p| (!p.chunks.is_empty()).then(|| p.chunks.remove(0)))
    }

    fn next_event() -> Option<Event> {
        PULLS.with_borrow_mut(|p| (!p.events.is_empty()).then(|| p.events.remove(0)))
    }
}

// Traps: the host asks only an `ANY.wasm` file's handler for its methods, so as `GET.wasm` this
// is never called, and as `ANY.wasm` the file fails to load.
impl bindings::exports::wasm_host::http::info::Guest for Raw {
    fn methods() -> Vec<String> {
        panic!("info.methods called")
    }
}

wasm_host_sdk::bindings::__export_handler!(Raw with_types_in wasm_host_sdk::bindings);
