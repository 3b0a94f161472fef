//! Announces a 100-byte body (`Response::sized(100, ..)`) but its stream ends after 50 bytes,
//! in two chunks (30 + 20): the host must abort the connection rather than send a short body.

use wasm_host_sdk::prelude::*;

fn short(_req: Request) -> Response {
    Response::sized(100, [vec![b'a'; 30], vec![b'b'; 20]])
}

export!(short);
