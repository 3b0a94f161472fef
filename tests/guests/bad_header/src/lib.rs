//! Answers with a header value containing CR LF (a response-splitting attempt), or with
//! `?status=N` the status N: the host must refuse an invalid response and answer 500.

use wasm_host_sdk::prelude::*;

fn bad(req: Request) -> Response {
    match req.query("status").and_then(|s| s.parse().ok()) {
        Some(status) => Response::text("should not be sent").with_status(status),
        None => Response::text("should not be sent").with_header("x-bad", "a\r\nInjected: yes"),
    }
}

export!(bad);
