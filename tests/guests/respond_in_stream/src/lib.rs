//! The `stream` hook counts the body bytes and, once it has seen more than 1000, answers
//! `422 {"stopped_at": <bytes seen>}` without reading the rest. A smaller body reaches `after`,
//! which answers `200 {"bytes": <length>}`.

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::json;

/// The most body bytes accepted.
const LIMIT: u64 = 1000;

/// The body bytes seen so far.
#[derive(Default)]
struct Seen(u64);

fn count(req: &mut Request, chunk: &[u8]) -> Flow {
    let seen = req.state_mut::<Seen>();
    seen.0 += chunk.len() as u64;
    if seen.0 > LIMIT {
        return Flow::respond((422, Json(json!({ "stopped_at": seen.0 }))));
    }
    Flow::proceed()
}

fn answer(mut req: Request) -> Json<wasm_host_sdk::serde_json::Value> {
    let seen = req.take_state::<Seen>().unwrap_or_default();
    Json(json!({ "bytes": seen.0 }))
}

export!(stream = count, after = answer);
