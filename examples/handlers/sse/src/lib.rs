//! `GET /server-sent-events`: a `count` event with data `{"count":i}` every second, forever
//! (until the client goes away):
//!
//! ```text
//! event: count
//! data: {"count":1}
//! ```
//!
//! The iterator sleeps between events; the sleep suspends only this request.

use std::time::Duration;

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::json;

fn events(_req: Request) -> Response {
    Response::events((1u64..).map(|count| {
        std::thread::sleep(Duration::from_secs(1));
        Event::json(&json!({ "count": count })).event("count")
    }))
}

export!(events);
