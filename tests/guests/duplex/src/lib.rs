//! A full-duplex exchange (`flow::begin`): the response starts with `start\n` (the body of the
//! begin response), then carries each request body chunk upper-cased as it arrives, then
//! `end <bytes received>\n` once the body is complete (the `stream` call with an empty chunk).
//! A `?sized=N` query answers with `Content-Length: N` instead of chunked, to test a duplex
//! body that ends short or runs long.

use wasm_host_sdk::prelude::*;

/// The body bytes received so far.
#[derive(Default)]
struct Received(u64);

fn begin(req: &Request) -> Result<Flow, HttpError> {
    let response = match req.query("sized") {
        Some(length) => Response::sized(length.parse()?, [b"start\n".to_vec()]),
        None => Response::text("start\n"),
    };
    Ok(Flow::begin(response))
}

fn upper(req: &mut Request, chunk: &[u8]) {
    if chunk.is_empty() {
        let received = req.state_mut::<Received>().0;
        req.send(format!("end {received}\n"));
        return;
    }
    req.state_mut::<Received>().0 += chunk.len() as u64;
    req.send(chunk.to_ascii_uppercase());
}

export!(before = begin, stream = upper, after = |_req| "after is not called in a full-duplex exchange");
