//! `POST /counter`: adds one to a shared counter atomically and answers the new value.
//! A thousand concurrent requests end at exactly a thousand (also across hosts with Redis).

use wasm_host_sdk::kv;
use wasm_host_sdk::prelude::*;

fn count(_req: Request) -> Result<String, HttpError> {
    Ok(kv::increment("counter", 1)?.to_string())
}

export!(count);
