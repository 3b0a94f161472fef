//! A chunked response whose stream yields one chunk, then panics: the host has already sent the
//! response head, so it must close the connection without a terminating chunk (never a second
//! response).

use wasm_host_sdk::prelude::*;

fn first_then_panic(_req: Request) -> Response {
    Response::chunked((0..2).map(|i| {
        assert!(i == 0, "the stream broke after the first chunk");
        b"first".to_vec()
    }))
}

export!(first_then_panic);
