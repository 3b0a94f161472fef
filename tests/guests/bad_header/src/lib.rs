//! Answers with a header value containing CR LF (a response-splitting attempt): the host must
//! refuse the response and answer 500.

use wasm_host_sdk::prelude::*;

fn bad(_req: Request) -> Response {
    Response::text("should not be sent").with_header("x-bad", "a\r\nInjected: yes")
}

export!(bad);
