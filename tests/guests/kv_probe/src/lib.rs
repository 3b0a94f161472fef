//! `ANY /kv/{op}`: one key-value or topic call per request, arguments from the query string
//! (percent-decoded, so `%00` reaches the host as NUL) and the body. Errors answer with the
//! SDK's status for them (503, 400, 413, 409) and the host's message.
//!
//! - `get?key=K` → the value, 404 when absent; `set?key=K[&ttl_ms=N]` (body) → 204
//! - `delete?key=K`, `exists?key=K` → `true`/`false`
//! - `list?prefix=P[&cursor=C][&limit=N]` → `{"keys": [...], "cursor": ...}`
//! - `incr?key=K[&by=N]` → the new value
//! - `cas?key=K[&expect=V]` (body = new value; no `expect`: only if unset) → `true`/`false`
//! - `publish?topic=T` (body) → the id
//! - `next?topic=T[&after=N][&timeout_ms=N]` → `{"id":..,"data":..}`, 204 when none came
//! - `park?topic=T[&after=N][&timeout_ms=N][&until=TEXT][&stream]`: the same, but parked
//!   (`Subscription::park`) instead of waiting in the instance; with `until`, messages with
//!   other text are skipped and the request parks again. Each run adds 1 to the key
//!   `runs:T`. With `stream` it parks with a chunked response (which the host refuses).

use std::time::Duration;

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::json;
use wasm_host_sdk::{kv, topic};

fn number<T: std::str::FromStr>(req: &Request, name: &str) -> Result<Option<T>, HttpError> {
    match req.query(name) {
        Some(v) => v.parse().map(Some).map_err(|_| HttpError::bad_request(format!("{name}={v:?} is not a number"))),
        None => Ok(None),
    }
}

fn handle(req: Request) -> Result<Response, HttpError> {
    let key = req.query("key").unwrap_or_default();
    let op = req.param("op").unwrap_or_default().to_owned();
    Ok(match op.as_str() {
        "get" => match kv::get_bytes(&key)? {
            Some(value) => value.into_response(),
            None => Response::new(404),
        },
        "set" => {
            match number::<u64>(&req, "ttl_ms")? {
                Some(ms) => kv::set_bytes_with_ttl(&key, req.body(), Duration::from_millis(ms))?,
                None => kv::set_bytes(&key, req.body())?,
            }
            Response::new(204)
        }
        "delete" => Response::text(kv::delete(&key)?.to_string()),
        "exists" => Response::text(kv::exists(&key)?.to_string()),
        "list" => {
            let prefix = req.query("prefix").unwrap_or_default();
            let cursor = req.query("cursor");
            let page = kv::list(&prefix, cursor.as_deref(), number(&req, "limit")?.unwrap_or(0))?;
            Response::json(&json!({ "keys": page.keys, "cursor": page.cursor }))
        }
        "incr" => Response::text(kv::increment(&key, number(&req, "by")?.unwrap_or(1))?.to_string()),
        "cas" => {
            let expect = req.query("expect");
            Response::text(kv::compare_and_swap(&key, expect.as_deref().map(str::as_bytes), req.body())?.to_string())
        }
        "publish" => Response::text(topic::publish_bytes(&req.query("topic").unwrap_or_default(), req.body())?.to_string()),
        "next" => {
            let mut sub = topic::subscribe(&req.query("topic").unwrap_or_default(), number(&req, "after")?)?;
            let next = match number::<u64>(&req, "timeout_ms")? {
                Some(ms) => sub.next_timeout(Duration::from_millis(ms))?,
                None => sub.next_message()?,
            };
            match next {
                Some(m) => Response::json(&json!({ "id": m.id, "data": m.text() })),
                None => Response::new(204),
            }
        }
        "park" => {
            let name = req.query("topic").unwrap_or_default();
            kv::increment(&format!("runs:{name}"), 1)?;
            let mut sub = topic::subscribe(&name, number(&req, "after")?)?;
            let until = req.query("until");
            while let Some(m) = sub.ready(1)?.pop() {
                if until.as_deref().is_none_or(|u| m.text() == u) {
                    return Ok(Response::json(&json!({ "id": m.id, "data": m.text() })));
                }
            }
            let timeout = Duration::from_millis(number(&req, "timeout_ms")?.unwrap_or(60_000));
            if req.query("stream").is_some() {
                sub.park(timeout, Response::chunked(vec![b"never".to_vec()]))
            } else {
                sub.park(timeout, Response::new(204))
            }
        }
        other => return Err(HttpError::not_found(format!("no operation {other:?}"))),
    })
}

export!(handle);
