//! Answers with a header value containing CR LF (a response-splitting attempt), or with
//! `?status=N` the status N, or with `?fields=N&size=M` N header fields of M bytes each: the
//! host must refuse an invalid response (or a head over its limit) and answer 500.

use wasm_host_sdk::prelude::*;

fn bad(req: Request) -> Response {
    let number = |name: &str| req.query(name).and_then(|s| s.parse::<usize>().ok());
    if let (Some(fields), Some(size)) = (number("fields"), number("size")) {
        let value = "v".repeat(size);
        return (0..fields).fold(Response::text("big head"), |r, i| r.append_header(format!("x-f{i}"), value.as_str()));
    }
    match req.query("status").and_then(|s| s.parse().ok()) {
        Some(status) => Response::text("should not be sent").with_status(status),
        None => Response::text("should not be sent").with_header("x-bad", "a\r\nInjected: yes"),
    }
}

export!(bad);
