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

/// Runs the `before` hook and keeps the request for the following hooks.
pub fn before<F, R>(head: bindings::Request, hook: F) -> bindings::Flow
where
    F: FnOnce(&Request) -> R,
    R: IntoFlow,
{
    let request = Request::from_head(head);
    let accepts_json = request.accepts_json();
    STATE.with_borrow_mut(|state| state.accepts_json = accepts_json);
    let flow = hook(&request).into_flow();
    STATE.with_borrow_mut(|state| state.request = Some(request));
    lower_flow(flow)
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

    fn full_body(response: &bindings::Response) -> &[u8] {
        match &response.body {
            WitBody::Full(bytes) => bytes,
            _ => panic!("not a full body"),
        }
    }

    #[test]
    fn default_hooks_buffer_the_body_for_after() {
        assert!(matches!(before(head("POST", "/x"), proceed), bindings::Flow::Proceed));
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
        before(head("POST", "/x"), proceed);
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
        let flow = before(head("GET", "/"), |_: &Request| -> Result<(), HttpError> {
            Err(HttpError::unauthorized("no"))
        });
        let bindings::Flow::Respond(response) = flow else { panic!("expected respond") };
        assert_eq!(response.status, 401);
        assert_eq!(full_body(&response), b"no");
        assert!(matches!(before(head("GET", "/"), |_: &Request| Flow::close()), bindings::Flow::Close));
    }

    #[test]
    fn stream_hook_can_respond() {
        before(head("POST", "/"), proceed);
        let flow = stream(vec![1, 2], |_: &mut Request, chunk: &[u8]| Some((422, chunk.len().to_string())));
        let bindings::Flow::Respond(response) = flow else { panic!("expected respond") };
        assert_eq!((response.status, full_body(&response)), (422, &b"2"[..]));
    }

    #[test]
    fn chunked_response_is_pulled_until_none() {
        before(head("GET", "/"), proceed);
        let response = after(|_: Request| Response::sized(4, [b"ab".to_vec(), b"cd".to_vec()]));
        assert!(matches!(response.body, WitBody::Sized(4)));
        assert!(next_event().is_none(), "an events pull on a chunk stream ends it");
        before(head("GET", "/"), proceed);
        after(|_: Request| Response::chunked(["ab", "cd"]));
        assert_eq!(next_chunk().as_deref(), Some(&b"ab"[..]));
        assert_eq!(next_chunk().as_deref(), Some(&b"cd"[..]));
        assert_eq!(next_chunk(), None);
        assert_eq!(next_chunk(), None);
    }

    #[test]
    fn events_are_lowered_with_all_fields() {
        before(head("GET", "/"), proceed);
        let response = after(|_: Request| {
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
        let flow = before(head("POST", "/echo"), |_: &Request| Flow::begin(Response::text("hi\n")));
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
        let flow =
            before(head("GET", "/"), |_: &Request| Flow::begin(Response::sized(2, [vec![], b"ok".to_vec()])));
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
        let flow = before(json_head, |_: &Request| Err::<(), _>(HttpError::forbidden("no")));
        let bindings::Flow::Respond(response) = flow else { panic!("expected respond") };
        assert_eq!((response.status, full_body(&response)), (403, &br#"{"error":"no"}"#[..]));

        let response = after(|_: Request| HttpError::not_found("gone"));
        assert_eq!(full_body(&response), br#"{"error":"gone"}"#);
        let content_types: Vec<_> =
            response.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-type")).collect();
        assert_eq!(content_types.len(), 1);
        assert_eq!(content_types[0].value, b"application/json");

        before(head("GET", "/"), proceed);
        let response = after(|_: Request| HttpError::not_found("gone"));
        assert_eq!(full_body(&response), b"gone", "no Accept: text");
    }

    #[test]
    #[should_panic(expected = "before `before`")]
    fn after_without_before_panics() {
        after(|_: Request| "x");
    }
}
