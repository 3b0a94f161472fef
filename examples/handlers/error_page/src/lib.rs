//! `errors/{code}/GET.wasm`: the site's error page. Whenever the host answers with an error
//! (404, 405, 413, 500, 503, …) or a handler returns an `HttpError` sent as text, the host asks
//! this handler for `GET /errors/{code}` with the status, the message and the original
//! request's method and path in `wasm-host-error-*` / `wasm-host-original-*` head fields, and
//! sends its body with the original status.

use wasm_host_sdk::prelude::*;

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(req: Request) -> Response {
    let field = |name| escape(req.header(name).unwrap_or("-"));
    let status = field("wasm-host-error-status");
    if req.header("wasm-host-original-path") == Some("/exception/page") {
        panic!("this error page breaks on purpose for {status}");
    }
    Response::html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status}</title></head>\n\
         <body><h1>Error {status}</h1>\n<p class=\"message\">{message}</p>\n\
         <p class=\"request\">{method} {path}</p>\n</body></html>\n",
        message = field("wasm-host-error-message"),
        method = field("wasm-host-original-method"),
        path = field("wasm-host-original-path"),
    ))
}

export!(page);
