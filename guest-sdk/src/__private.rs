//! The glue between the generated `Guest` trait and the user's hooks, used by the code
//! [`export!`](crate::export) expands to. Not part of the API.
//!
//! The host creates a fresh instance for every request, so the per-request state (the request
//! between `before` and `after`, then the response stream) lives in a thread-local: there is
//! exactly one request per instance, and wasm32-wasip2 components are single-threaded.
//! No borrow of the state is held while user code runs.
//!
//! In a full-duplex exchange (`flow::begin`), `next-chunk` first drains the begin response's own
//! body, then the chunks queued with `Request::send`; when nothing is queued it answers an empty
//! chunk ("send more input") until `stream` has been called with the empty end-of-body chunk,
//! and `none` after that.

use std::cell::RefCell;

use crate::bindings;
use crate::bindings::wasm_host::http::types::{Body as WitBody, Header as WitHeader};
use crate::event::Event;
use crate::flow::{Flow, IntoFlow};
use crate::request::Request;
use crate::response::{Body, ChunkStream, EventStream, IntoResponse, Response};

/// The response body still to be pulled by the host.
enum Stream {
    Chunks(ChunkStream),
    Events(EventStream),
}

/// Everything the SDK keeps between hook calls.
struct State {
    /// Set by `before`, updated by `stream`, taken by `after`.
    request: Option<Request>,
    /// Set when a streaming response is returned, pulled by `next-chunk`/`next-event`.
    stream: Option<Stream>,
    /// Set by `before` returning `begin`.
    duplex: Option<Duplex>,
    /// Whether the request's `Accept` prefers JSON: error messages are then sent as JSON.
    accepts_json: bool,
}

/// The progress of a full-duplex exchange.
struct Duplex {
    /// `stream` got the empty chunk that ends the request body.
    input_done: bool,
}

thread_local! {
    static STATE: RefCell<State> =
        const { RefCell::new(State { request: None, stream: None, duplex: None, accepts_json: false }) };
}

/// The answer of a multi-method handler called with a method it does not implement (the host
/// normally answers these itself).
pub fn method_not_allowed(methods: &[&str]) -> crate::Response {
    crate::IntoResponse::into_response(crate::HttpError::new(405, "Method Not Allowed"))
        .with_header("allow", methods.join(", "))
}

/// The default `before` hook: proceed.
pub fn proceed(_request: &Request) -> Flow {
    Flow::Proceed
}

/// Runs the `before` hook and keeps the request for the following hooks. A request without a
/// body that the hook lets proceed is answered at once by `after`: no `stream` call can come,
/// and answering from `before` saves the host a call into the guest (the host treats a
/// response from `before` exactly like one from `after`).
pub fn before<F, R, A, S>(head: bindings::Request, hook: F, after: A) -> bindings::Flow
where
    F: FnOnce(&Request) -> R,
    R: IntoFlow,
    A: FnOnce(Request) -> S,
    S: IntoResponse,
{
    let request = Request::from_head(head);
    let accepts_json = request.accepts_json();
    // A fresh start: with `--instance-reuse` this instance may have served a request before,
    // and nothing of it may leak into this one (a stream it left unfinished, say).
    let old = STATE.replace(State { request: None, stream: None, duplex: None, accepts_json });
    drop(old);
    let flow = hook(&request).into_flow();
    if matches!(flow, Flow::Proceed) && !has_body(&request) {
        return bindings::Flow::Respond(lower_response(after(request).into_response()));
    }
    STATE.with_borrow_mut(|state| state.request = Some(request));
    lower_flow(flow)
}

/// Whether a request head announces a body (RFC 9112 §6.3: a request has one only with
/// `Transfer-Encoding` or a `Content-Length` other than 0).
fn has_body(request: &Request) -> bool {
    request.header_bytes("transfer-encoding").is_some()
        || request.header_bytes("content-length").is_some_and(|length| length.iter().any(|&b| b != b'0'))
}

/// The default `stream` hook: appends the chunk to the request body.
pub fn buffer(chunk: Vec<u8>) -> bindings::Flow {
    STATE.with_borrow_mut(|state| {
        note_end_of_input(state, &chunk);
        let body = request_mut(state).body_mut();
        if body.is_empty() {
            *body = chunk;
        } else {
            body.extend_from_slice(&chunk);
        }
    });
    bindings::Flow::Proceed
}

/// Runs a custom `stream` hook on one chunk.
pub fn stream<F, R>(chunk: Vec<u8>, hook: F) -> bindings::Flow
where
    F: FnOnce(&mut Request, &[u8]) -> R,
    R: IntoFlow,
{
    STATE.with_borrow_mut(|state| note_end_of_input(state, &chunk));
    let mut request = take_request();
    let flow = hook(&mut request, &chunk).into_flow();
    STATE.with_borrow_mut(|state| state.request = Some(request));
    lower_flow(flow)
}

/// Runs the `after` hook on the request and returns its response.
pub fn after<F, R>(hook: F) -> bindings::Response
where
    F: FnOnce(Request) -> R,
    R: IntoResponse,
{
    let request = take_request();
    lower_response(hook(request).into_response())
}

/// The next chunk of a chunked or sized response body.
pub fn next_chunk() -> Option<Vec<u8>> {
    let duplex = STATE.with_borrow(|state| state.duplex.is_some());
    if let Some(Stream::Chunks(mut chunks)) = STATE.with_borrow_mut(|state| state.stream.take()) {
        // In duplex mode an empty chunk means "idle": skip those of the response's own body.
        if let Some(chunk) = chunks.by_ref().find(|chunk| !duplex || !chunk.is_empty()) {
            STATE.with_borrow_mut(|state| state.stream = Some(Stream::Chunks(chunks)));
            return Some(chunk);
        }
    }
    STATE.with_borrow_mut(|state| {
        let input_done = state.duplex.as_ref()?.input_done;
        match state.request.as_mut().and_then(Request::next_sent) {
            Some(chunk) => Some(chunk),
            None if input_done => None,
            None => Some(Vec::new()),
        }
    })
}

/// The next event of an events response body.
pub fn next_event() -> Option<bindings::Event> {
    let Some(Stream::Events(mut events)) = STATE.with_borrow_mut(|state| state.stream.take()) else {
        return None;
    };
    let event = events.next()?;
    STATE.with_borrow_mut(|state| state.stream = Some(Stream::Events(events)));
    Some(lower_event(event))
}

/// Records the empty chunk that ends the request body of a full-duplex exchange.
fn note_end_of_input(state: &mut State, chunk: &[u8]) {
    if let (true, Some(duplex)) = (chunk.is_empty(), state.duplex.as_mut()) {
        duplex.input_done = true;
    }
}

fn request_mut(state: &mut State) -> &mut Request {
    state.request.as_mut().expect("wasm-host called a hook of this handler before `before`")
}

fn take_request() -> Request {
    STATE
        .with_borrow_mut(|state| state.request.take())
        .expect("wasm-host called a hook of this handler before `before`")
}

fn lower_flow(flow: Flow) -> bindings::Flow {
    match flow {
        Flow::Proceed => bindings::Flow::Proceed,
        Flow::Respond(response) => bindings::Flow::Respond(lower_response(response)),
        Flow::Close => bindings::Flow::Close,
        Flow::Begin(response) => bindings::Flow::Begin(lower_duplex_response(response)),
    }
}

/// Converts the response of `Flow::begin`: its body becomes the first chunks of a chunked (or
/// sized) body, and the exchange enters duplex mode.
fn lower_duplex_response(response: Response) -> bindings::Response {
    let accepts_json = STATE.with_borrow(|state| state.accepts_json);
    let (status, headers, body) = response.negotiate_error(accepts_json).into_parts();
    let (body, first_chunks): (WitBody, ChunkStream) = match body {
        Body::Full(bytes) => (WitBody::Chunked, Box::new(std::iter::once(bytes))),
        Body::Chunked(chunks) => (WitBody::Chunked, chunks),
        Body::Sized(length, chunks) => (WitBody::Sized(length), chunks),
        Body::Events(_) => panic!(
            "Flow::begin needs a byte body (Response::chunked, Response::sized or a complete body), \
             not Response::events"
        ),
    };
    STATE.with_borrow_mut(|state| {
        state.stream = Some(Stream::Chunks(first_chunks));
        state.duplex = Some(Duplex { input_done: false });
    });
    bindings::Response { status, headers: lower_headers(headers), body }
}

/// Converts a response for the host, keeping a streaming body for the pull exports. An error
/// message becomes JSON if the request prefers it.
fn lower_response(response: Response) -> bindings::Response {
    let accepts_json = STATE.with_borrow(|state| state.accepts_json);
    let (status, headers, body) = response.negotiate_error(accepts_json).into_parts();
    let (body, stream) = match body {
        Body::Full(bytes) => (WitBody::Full(bytes), None),
        Body::Chunked(chunks) => (WitBody::Chunked, Some(Stream::Chunks(chunks))),
        Body::Sized(length, chunks) => (WitBody::Sized(length), Some(Stream::Chunks(chunks))),
        Body::Events(events) => (WitBody::Events, Some(Stream::Events(events))),
    };
    STATE.with_borrow_mut(|state| state.stream = stream);
    bindings::Response { status, headers: lower_headers(headers), body }
}

fn lower_headers(headers: Vec<(String, Vec<u8>)>) -> Vec<WitHeader> {
    headers.into_iter().map(|(name, value)| WitHeader { name, value }).collect()
}

fn lower_event(event: Event) -> bindings::Event {
    bindings::Event { event: event.event, data: event.data, id: event.id, retry: event.retry }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpError;

    fn head(method: &str, path: &str) -> bindings::Request {
        bindings::Request {
            method: method.into(),
            path: path.into(),
            query: "a=1".into(),
            protocol: "HTTP/1.1".into(),
            headers: vec![WitHeader { name: "Host".into(), value: b"example.com".to_vec() }],
            params: vec![("id".into(), "7".into())],
            remote_addr: "10.0.0.1:1234".into(),
        }
    }

    /// An `after` hook that must not run (the request has a body still to come).
    fn never(_: Request) -> &'static str {
        panic!("`after` ran from `before` although the request has a body")
    }

    /// A request with a chunked body.
    fn with_body(method: &str, path: &str) -> bindings::Request {
        let mut head = head(method, path);
        head.headers.push(WitHeader { name: "Transfer-Encoding".into(), value: b"chunked".to_vec() });
        head
    }

    /// Runs the hooks on a bodiless request, which `before` answers with `after`'s response.
    fn answer<S: IntoResponse>(
        head: bindings::Request,
        after: impl FnOnce(Request) -> S,
    ) -> bindings::Response {
        match before(head, proceed, after) {
            bindings::Flow::Respond(response) => response,
            _ => panic!("a bodiless request is answered from `before`"),
        }
    }

    fn full_body(response: &bindings::Response) -> &[u8] {
        match &response.body {
            WitBody::Full(bytes) => bytes,
            _ => panic!("not a full body"),
        }
    }

    #[test]
    fn default_hooks_buffer_the_body_for_after() {
        assert!(matches!(before(with_body("POST", "/x"), proceed, never), bindings::Flow::Proceed));
        assert!(matches!(buffer(b"hello ".to_vec()), bindings::Flow::Proceed));
        assert!(matches!(buffer(b"world".to_vec()), bindings::Flow::Proceed));
        let response = after(|req: Request| {
            assert_eq!(req.method(), "POST");
            assert_eq!(req.header("host"), Some("example.com"));
            assert_eq!(req.param("id"), Some("7"));
            assert_eq!(req.query("a").as_deref(), Some("1"));
            assert_eq!(req.remote_addr(), "10.0.0.1:1234");
            req.into_body()
        });
        assert_eq!(response.status, 200);
        assert_eq!(full_body(&response), b"hello world");
        assert_eq!(response.headers[0].name, "content-type");
    }

    #[test]
    fn custom_stream_hook_sees_chunks_and_does_not_buffer() {
        before(with_body("POST", "/x"), proceed, never);
        let count = |req: &mut Request, chunk: &[u8]| {
            req.body_mut().push(u8::try_from(chunk.len()).unwrap());
        };
        stream(vec![0; 3], count);
        stream(vec![0; 5], count);
        let response = after(|req: Request| req.into_body());
        assert_eq!(full_body(&response), [3, 5]);
    }

    #[test]
    fn before_can_respond_or_close() {
        let flow = before(
            head("GET", "/"),
            |_: &Request| -> Result<(), HttpError> { Err(HttpError::unauthorized("no")) },
            never,
        );
        let bindings::Flow::Respond(response) = flow else { panic!("expected respond") };
        assert_eq!(response.status, 401);
        assert_eq!(full_body(&response), b"no");
        assert!(matches!(
            before(head("GET", "/"), |_: &Request| Flow::close(), never),
            bindings::Flow::Close
        ));
    }

    #[test]
    fn stream_hook_can_respond() {
        before(with_body("POST", "/"), proceed, never);
        let flow = stream(vec![1, 2], |_: &mut Request, chunk: &[u8]| Some((422, chunk.len().to_string())));
        let bindings::Flow::Respond(response) = flow else { panic!("expected respond") };
        assert_eq!((response.status, full_body(&response)), (422, &b"2"[..]));
    }

    #[test]
    fn chunked_response_is_pulled_until_none() {
        let response =
            answer(head("GET", "/"), |_: Request| Response::sized(4, [b"ab".to_vec(), b"cd".to_vec()]));
        assert!(matches!(response.body, WitBody::Sized(4)));
        assert!(next_event().is_none(), "an events pull on a chunk stream ends it");
        answer(head("GET", "/"), |_: Request| Response::chunked(["ab", "cd"]));
        assert_eq!(next_chunk().as_deref(), Some(&b"ab"[..]));
        assert_eq!(next_chunk().as_deref(), Some(&b"cd"[..]));
        assert_eq!(next_chunk(), None);
        assert_eq!(next_chunk(), None);
    }

    #[test]
    fn a_new_request_starts_from_nothing_the_last_one_left() {
        // With instance reuse an instance can see a second `before` after a stream it never
        // finished (a HEAD request, a client that left).
        answer(head("GET", "/"), |_: Request| Response::chunked(["left", "over"]));
        assert_eq!(next_chunk().as_deref(), Some(&b"left"[..]));
        assert!(matches!(before(with_body("POST", "/"), proceed, never), bindings::Flow::Proceed));
        assert_eq!(next_chunk(), None, "the last request's stream is gone");
        let response = after(|req: Request| req.body().len().to_string());
        assert_eq!(full_body(&response), b"0", "no body of an earlier request either");
    }

    #[test]
    fn events_are_lowered_with_all_fields() {
        let response = answer(head("GET", "/"), |_: Request| {
            Response::events([Event::data("a\nb").event("multi").id("7").retry(10), "end".into()])
        });
        assert!(matches!(response.body, WitBody::Events));
        let first = next_event().unwrap();
        assert_eq!(
            (first.event.as_deref(), first.data.as_str(), first.id.as_deref(), first.retry),
            (Some("multi"), "a\nb", Some("7"), Some(10))
        );
        let second = next_event().unwrap();
        assert_eq!((second.event, second.data.as_str()), (None, "end"));
        assert!(next_event().is_none());
    }

    #[test]
    fn duplex_sends_the_begin_body_then_queued_chunks_then_ends_after_the_input() {
        let flow =
            before(with_body("POST", "/echo"), |_: &Request| Flow::begin(Response::text("hi\n")), never);
        let bindings::Flow::Begin(response) = flow else { panic!("expected begin") };
        assert!(matches!(response.body, WitBody::Chunked));
        let shout = |req: &mut Request, chunk: &[u8]| {
            if chunk.is_empty() {
                req.send("end\n");
            } else {
                req.send(chunk.to_ascii_uppercase());
                req.send(Vec::new());
            }
        };
        assert!(matches!(stream(b"abc".to_vec(), shout), bindings::Flow::Proceed));
        assert_eq!(next_chunk().as_deref(), Some(&b"hi\n"[..]));
        assert_eq!(next_chunk().as_deref(), Some(&b"ABC"[..]));
        assert_eq!(next_chunk().as_deref(), Some(&b""[..]), "idle: more input needed");
        stream(b"d".to_vec(), shout);
        assert_eq!(next_chunk().as_deref(), Some(&b"D"[..]));
        assert_eq!(next_chunk().as_deref(), Some(&b""[..]));
        stream(Vec::new(), shout);
        assert_eq!(next_chunk().as_deref(), Some(&b"end\n"[..]));
        assert_eq!(next_chunk(), None);
    }

    #[test]
    fn duplex_sized_keeps_its_length_and_ends_without_input() {
        let flow = before(
            head("GET", "/"),
            |_: &Request| Flow::begin(Response::sized(2, [vec![], b"ok".to_vec()])),
            never,
        );
        let bindings::Flow::Begin(response) = flow else { panic!("expected begin") };
        assert!(matches!(response.body, WitBody::Sized(2)));
        buffer(Vec::new());
        assert_eq!(next_chunk().as_deref(), Some(&b"ok"[..]));
        assert_eq!(next_chunk(), None);
    }

    #[test]
    fn errors_are_json_for_requests_that_accept_json() {
        let mut json_head = head("GET", "/");
        json_head.headers.push(WitHeader { name: "Accept".into(), value: b"application/json".to_vec() });
        let flow = before(json_head.clone(), |_: &Request| Err::<(), _>(HttpError::forbidden("no")), never);
        let bindings::Flow::Respond(response) = flow else { panic!("expected respond") };
        assert_eq!((response.status, full_body(&response)), (403, &br#"{"error":"no"}"#[..]));

        let response = answer(json_head, |_: Request| HttpError::not_found("gone"));
        assert_eq!(full_body(&response), br#"{"error":"gone"}"#);
        let content_types: Vec<_> =
            response.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-type")).collect();
        assert_eq!(content_types.len(), 1);
        assert_eq!(content_types[0].value, b"application/json");

        let response = answer(head("GET", "/"), |_: Request| HttpError::not_found("gone"));
        assert_eq!(full_body(&response), b"gone", "no Accept: text");
    }

    #[test]
    fn a_request_without_a_body_is_answered_from_before() {
        assert_eq!(full_body(&answer(head("GET", "/"), |_: Request| "now")), b"now");
        let mut empty = head("POST", "/");
        empty.headers.push(WitHeader { name: "Content-Length".into(), value: b"0".to_vec() });
        assert_eq!(full_body(&answer(empty, |_: Request| "empty")), b"empty");
        let mut sized = head("POST", "/");
        sized.headers.push(WitHeader { name: "content-length".into(), value: b"10".to_vec() });
        assert!(matches!(before(sized, proceed, never), bindings::Flow::Proceed), "a body is still to come");
    }

    #[test]
    #[should_panic(expected = "before `before`")]
    fn after_without_before_panics() {
        after(|_: Request| "x");
    }
}
