//! `GET /numbers/{n}`: a chunked `text/plain` response `1\n2\n...n\n`, one chunk per line,
//! produced lazily as the host pulls them. A non-numeric `n` is a 400.

use wasm_host_sdk::prelude::*;

fn numbers(req: Request) -> Result<Response, HttpError> {
    let n: u64 = req.param("n").unwrap_or_default().parse()?;
    Ok(Response::chunked((1..=n).map(|i| format!("{i}\n")))
        .with_header("content-type", "text/plain; charset=utf-8"))
}

export!(numbers);
