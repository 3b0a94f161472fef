//! `GET /wasi-hello`: a standard `wasi:http/proxy` component, written with the `wasip2` crate
//! alone (no wasm-host SDK), so it runs unchanged on any `wasi:http` host: wasm-host serves it
//! from a routes folder like any handler, and `wasmtime serve` runs the same file (`make bench
//! ARGS=--vs-wasmtime` compares them). It answers every request with `Hello world!` as
//! `text/plain; charset=utf-8` and `Content-Length: 12`, the bytes the example `hello_world`
//! answers, so the benchmark compares like with like.

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// The body of every response.
const HELLO: &[u8] = b"Hello world!";

/// The exported `wasi:http/incoming-handler`.
struct Hello;

wasip2::http::proxy::export!(Hello);

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/plain; charset=utf-8".to_vec()),
            ("content-length".to_owned(), HELLO.len().to_string().into_bytes()),
        ])
        .expect("valid header fields");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("the body stream is taken once");
        out.blocking_write_and_flush(HELLO).expect("the client is still there");
        drop(out);
        OutgoingBody::finish(body, None).expect("the body has the announced length");
    }
}
