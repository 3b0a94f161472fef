//! `GET /kill`: the `before` hook drops the connection without answering.

use wasm_host_sdk::prelude::*;

fn kill(_req: &Request) -> Flow {
    Flow::close()
}

fn unreachable(_req: Request) -> &'static str {
    "the connection was supposed to be closed"
}

export!(before = kill, after = unreachable);
