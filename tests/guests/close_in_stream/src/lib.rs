//! The `stream` hook drops the connection on the first body chunk. Without a body, `after`
//! answers `no body`.

use wasm_host_sdk::prelude::*;

fn close(_req: &mut Request, _chunk: &[u8]) -> Flow {
    Flow::close()
}

fn answer(_req: Request) -> &'static str {
    "no body"
}

export!(stream = close, after = answer);
