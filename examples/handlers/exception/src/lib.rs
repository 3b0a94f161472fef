//! `GET /exception`: panics. The panic traps the instance, the host answers
//! `500 Internal Server Error` and logs `Oups...` from the handler's stderr.

use wasm_host_sdk::prelude::*;

fn handle(_req: Request) -> &'static str {
    panic!("Oups...")
}

export!(handle);
