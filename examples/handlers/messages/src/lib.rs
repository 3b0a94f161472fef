//! Homor's "message waiting queue" on a topic:
//!
//! - `POST /messages` with a JSON body publishes it; answers `{"id": N}`.
//! - `GET /messages/wait[?after=ID][&timeout=SECS]` answers at once with the messages newer
//!   than `ID` if there are any; otherwise (and without `after`: only messages published after
//!   the request arrived) it waits up to `timeout` seconds (default 25) for one, then answers
//!   204. The answer lists each message's id and body:
//!   `[{"id": 3, "body": {...}}, ...]`. Pass the last id as `after` to poll again without
//!   missing anything.
//!
//! A waiting request is parked: it holds no instance while it waits (a few KiB of host
//! memory), so tens of thousands can wait at once.

use std::time::Duration;

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::{Value, json};
use wasm_host_sdk::topic;

/// The topic the queue lives on.
const TOPIC: &str = "messages";

/// Seconds a poll waits when `timeout` is not given: below the host's 30 s request timeout.
const DEFAULT_TIMEOUT_SECS: u64 = 25;

/// Messages in one answer at most; poll again with `after` for the rest.
const MAX_BATCH: usize = 100;

fn handle(req: Request) -> Result<Response, HttpError> {
    match req.method() {
        "POST" => {
            let body: Value = req.json()?;
            let id = topic::publish(TOPIC, &body)?;
            Ok(Response::json(&json!({ "id": id })))
        }
        _ => wait(&req),
    }
}

fn wait(req: &Request) -> Result<Response, HttpError> {
    let after = match req.query("after") {
        Some(a) => Some(a.parse::<u64>().map_err(|_| HttpError::bad_request(format!("after={a:?} is not a message id")))?),
        None => None,
    };
    let timeout = match req.query("timeout") {
        Some(t) => t.parse::<u64>().map_err(|_| HttpError::bad_request(format!("timeout={t:?} is not a number of seconds")))?,
        None => DEFAULT_TIMEOUT_SECS,
    };
    let mut messages = topic::subscribe(TOPIC, after)?;
    let batch = messages.ready(MAX_BATCH)?;
    if batch.is_empty() {
        // The host runs `wait` again when a message comes, and `ready` has it then; or it
        // answers 204 at the timeout. No instance is held meanwhile.
        return Ok(messages.park(Duration::from_secs(timeout), Response::new(204)));
    }
    let list: Vec<Value> = batch
        .iter()
        .map(|m| json!({ "id": m.id, "body": m.json::<Value>().unwrap_or_else(|_| Value::String(m.text())) }))
        .collect();
    Ok(Response::json(&list))
}

export!(handle);
