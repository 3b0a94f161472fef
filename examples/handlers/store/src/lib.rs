//! `PUT|GET|DELETE /store/{key}`: web.py's REST example on the shared key-value store.
//!
//! - `PUT /store/{key}` keeps the request body as the value (204);
//! - `GET /store/{key}` answers it (`text/plain` if it is UTF-8, else bytes), 404 when absent;
//! - `DELETE /store/{key}` removes it (204), 404 when absent.
//!
//! The value lives in the host, not in this instance: another request, another handler or
//! (with Redis) another host sees it, and with the default store it survives restarts.
//! A key over 512 bytes answers 400, a value over 1 MiB 413, an unreachable store 503.

use wasm_host_sdk::kv;
use wasm_host_sdk::prelude::*;

fn key(req: &Request) -> String {
    format!("store/{}", req.param("key").unwrap_or_default())
}

fn handle(req: Request) -> Result<Response, HttpError> {
    let key = key(&req);
    match req.method() {
        "PUT" => {
            kv::set_bytes(&key, req.body())?;
            Ok(Response::new(204))
        }
        "DELETE" => match kv::delete(&key)? {
            true => Ok(Response::new(204)),
            false => Err(HttpError::not_found(format!("no value for {key:?}"))),
        },
        _ => match kv::get_bytes(&key)? {
            Some(value) => Ok(match String::from_utf8(value) {
                Ok(text) => Response::text(text),
                Err(bytes) => bytes.into_bytes().into_response(),
            }),
            None => Err(HttpError::not_found(format!("no value for {key:?}"))),
        },
    }
}

export!(handle);
