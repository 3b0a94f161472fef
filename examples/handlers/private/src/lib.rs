//! `GET /private`: the `before` hook answers `401 Unauthorized` (with
//! `WWW-Authenticate: Bearer`) unless the request carries `Authorization: Bearer letmein`;
//! `after` then answers `Welcome!`.

use wasm_host_sdk::prelude::*;

/// The token this demo accepts.
const TOKEN: &str = "Bearer letmein";

fn authenticate(req: &Request) -> Result<(), Response> {
    if req.header("authorization") == Some(TOKEN) {
        return Ok(());
    }
    Err(HttpError::unauthorized("Unauthorized").into_response().with_header("www-authenticate", "Bearer"))
}

fn welcome(_req: Request) -> &'static str {
    "Welcome!"
}

export!(before = authenticate, after = welcome);
