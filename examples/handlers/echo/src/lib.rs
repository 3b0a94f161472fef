//! `POST /echo`: answers the request body as a chunked response with the request's
//! `Content-Type`, chunk by chunk as it arrives: a full-duplex exchange, so the handler never
//! holds more than one chunk whatever the size of the body.
//!
//! `before` starts the response at once ([`Flow::begin`]); the `stream` hook then sends each
//! chunk back ([`Request::send`]). `after` is never called in a full-duplex exchange.

use wasm_host_sdk::prelude::*;

fn begin(req: &Request) -> Flow {
    let content_type = req.content_type().unwrap_or("application/octet-stream");
    Flow::begin(Response::new(200).with_header("content-type", content_type))
}

fn echo(req: &mut Request, chunk: &[u8]) {
    req.send(chunk);
}

export!(before = begin, stream = echo, after = |_req| ());
