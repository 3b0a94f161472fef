//! `GET /spin`: burns CPU forever. The host's deadline has to interrupt it.

use std::hint::black_box;

use wasm_host_sdk::prelude::*;

fn spin(_req: Request) -> &'static str {
    let mut turns = 0u64;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

export!(spin);
