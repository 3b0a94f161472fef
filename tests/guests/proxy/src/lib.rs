//! A standard `wasi:http/proxy` component, written against the `wasip2` crate alone, whose
//! behaviour the query string picks:
//!
//! - (none): `hello from wasi:http` with a `content-length`;
//! - `echo`: streams the request body back, chunked, as it reads it;
//! - `headers`: one line per request head field (sorted), then the method, path, scheme and
//!   authority as the guest sees them;
//! - `loop`: spins forever (the CPU budget must stop it);
//! - `panic`: panics before setting a response;
//! - `trap`, `grow`, `huge`, `recurse`: fails before setting a response by `unreachable`, by
//!   allocating 1 MiB at a time until the memory limit stops it, by one 1.5 GiB allocation, or
//!   by recursing until the stack runs out;
//! - `forbidden`: tries to set each framing and hop-by-hop field (`connection`,
//!   `transfer-encoding`, `upgrade`, `keep-alive`, `proxy-connection`, `host`), and a name that
//!   is not a token and a value with CR LF, and answers what `Fields` said to each;
//! - `panic_mid_body`: panics after its response head and part of the body;
//! - `outgoing`: tries an outgoing request and answers what it got;
//! - `short`: declares 10 bytes, writes 5 and finishes (the body must fail);
//! - `unfinished`: sets a chunked response, writes a piece and returns without `finish`;
//! - `empty_loop`: sets a chunked response, writes a piece, then writes empty pieces forever;
//! - `count`: answers how many requests this instance served (1 unless instances are reused);
//! - `sandbox`: tries files, environment and sockets and answers what it could reach.

use std::sync::atomic::{AtomicU32, Ordering};

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::{OutputStream, StreamError};

struct Proxy;

wasip2::http::proxy::export!(Proxy);

static SERVED: AtomicU32 = AtomicU32::new(0);

impl wasip2::exports::http::incoming_handler::Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        let path = request.path_with_query().unwrap_or_default();
        let query = path.split_once('?').map_or("", |(_, q)| q);
        match query {
            "echo" => echo(request, out),
            "headers" => {
                let mut lines: Vec<String> = request
                    .headers()
                    .entries()
                    .into_iter()
                    .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(&value)))
                    .collect();
                lines.sort();
                lines.push(format!("method={}", method_name(&request.method())));
                lines.push(format!("path={path}"));
                lines.push(format!("scheme={}", scheme_name(request.scheme())));
                lines.push(format!("authority={}", request.authority().unwrap_or_default()));
                answer(out, 200, "text/plain", &(lines.join("\n") + "\n"));
            }
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "panic" => panic!("the proxy guest panics on purpose"),
            "trap" => core::arch::wasm32::unreachable(),
            "grow" => {
                let mut held = Vec::new();
                loop {
                    held.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "huge" => {
                let huge: Vec<u8> = Vec::with_capacity(std::hint::black_box(3 << 29));
                std::hint::black_box(huge);
                unreachable!("a 1.5 GiB allocation succeeded past the memory limit");
            }
            "recurse" => {
                std::hint::black_box(recurse(std::hint::black_box(1)));
            }
            "forbidden" => {
                let fields = Fields::new();
                let tries: [(&str, &[u8]); 8] = [
                    ("connection", b"close"),
                    ("transfer-encoding", b"chunked"),
                    ("upgrade", b"h2c"),
                    ("keep-alive", b"timeout=1"),
                    ("proxy-connection", b"keep-alive"),
                    ("host", b"elsewhere"),
                    ("x bad", b"v"),
                    ("x-split", b"a\r\nInjected: yes"),
                ];
                let lines: Vec<String> = tries
                    .iter()
                    .map(|(name, value)| format!("{name}: {:?}", fields.append(name, value)))
                    .collect();
                answer(out, 200, "text/plain", &(lines.join("\n") + "\n"));
            }
            "panic_mid_body" => {
                let (_body, stream) = start(out, 200, None);
                // More than the host buffers, so the head goes out before the panic.
                write_all(&stream, &vec![b'x'; 1 << 20]);
                panic!("the proxy guest panics mid-body");
            }
            "outgoing" => {
                let request = OutgoingRequest::new(Fields::new());
                request.set_scheme(Some(&Scheme::Http)).expect("scheme");
                request.set_authority(Some("127.0.0.1:9")).expect("authority");
                request.set_path_with_query(Some("/")).expect("path");
                let text = match wasip2::http::outgoing_handler::handle(request, None) {
                    Err(code) => format!("refused at once: {code:?}"),
                    Ok(future) => {
                        future.subscribe().block();
                        match future.get() {
                            Some(Ok(Err(code))) => format!("refused: {code:?}"),
                            Some(Ok(Ok(response))) => format!("got a response: {}", response.status()),
                            other => format!("unexpected: {other:?}"),
                        }
                    }
                };
                answer(out, 200, "text/plain", &(text + "\n"));
            }
            "short" => {
                let (body, stream) = start(out, 200, Some(10));
                write_all(&stream, b"12345");
                drop(stream);
                let _ = OutgoingBody::finish(body, None);
            }
            "empty_loop" => {
                let (_body, stream) = start(out, 200, None);
                write_all(&stream, b"part of a body");
                loop {
                    if stream.check_write().is_ok_and(|room| room > 0) {
                        let _ = stream.write(&[]);
                    } else {
                        stream.subscribe().block();
                    }
                }
            }
            "unfinished" => {
                let (body, stream) = start(out, 200, None);
                write_all(&stream, b"part of a body");
                // Returns holding the body: never finished, never dropped.
                std::mem::forget((body, stream));
            }
            "count" => answer(out, 200, "text/plain", &format!("{served}\n")),
            "sandbox" => {
                let files = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.kind());
                let env = std::env::vars().count();
                let socket = std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| e.kind());
                answer(out, 200, "text/plain", &format!("files={files:?} env={env} socket={:?}\n", socket.map(|_| ())));
            }
            _ => answer(out, 200, "text/plain", "hello from wasi:http\n"),
        }
    }
}

#[expect(unconditional_recursion, reason = "the stack must run out")]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

/// Sets a response with `content-type` and the body's length, writes the body and finishes.
fn answer(out: ResponseOutparam, status: u16, content_type: &str, text: &str) {
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), content_type.as_bytes().to_vec()),
        ("content-length".to_owned(), text.len().to_string().into_bytes()),
    ])
    .expect("valid fields");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    write_all(&stream, text.as_bytes());
    drop(stream);
    OutgoingBody::finish(body, None).expect("the body has its announced length");
}

/// Sets a response (with `content-length` when `length` is given) and returns its body.
fn start(out: ResponseOutparam, status: u16, length: Option<u64>) -> (OutgoingBody, OutputStream) {
    let mut fields = vec![("content-type".to_owned(), b"application/octet-stream".to_vec())];
    if let Some(n) = length {
        fields.push(("content-length".to_owned(), n.to_string().into_bytes()));
    }
    let response = OutgoingResponse::new(Fields::from_list(&fields).expect("valid fields"));
    response.set_status_code(status).expect("a valid status");
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    (body, stream)
}

/// Streams the request body back as it arrives.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let incoming = request.consume().expect("the body is taken once");
    let input = incoming.stream().expect("the stream is taken once");
    let (body, stream) = start(out, 200, None);
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(bytes) => write_all(&stream, &bytes),
            Err(StreamError::Closed) => break,
            Err(e) => panic!("reading the request body failed: {e:?}"),
        }
    }
    drop(input);
    drop(stream);
    OutgoingBody::finish(body, None).expect("a chunked body finishes");
}

/// Writes all of `bytes`, waiting for room as the host gives it.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let room = stream.check_write().expect("the client is still there") as usize;
        if room == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = room.min(bytes.len());
        stream.write(&bytes[..n]).expect("the client is still there");
        bytes = &bytes[n..];
    }
    stream.blocking_flush().expect("the client is still there");
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(other) => other.clone(),
    }
}

fn scheme_name(scheme: Option<Scheme>) -> String {
    match scheme {
        Some(Scheme::Http) => "http".into(),
        Some(Scheme::Https) => "https".into(),
        Some(Scheme::Other(other)) => other,
        None => "-".into(),
    }
}
