//! `GET /blob/{bytes}`: a sized (`Content-Length`) stream of that many bytes, byte `i` being
//! `i % 251`, produced in 64 KiB chunks as the host pulls them. A non-numeric size is a 400.
//! With `?chunked` the same bytes come as a chunked (`Transfer-Encoding: chunked`) stream.

use wasm_host_sdk::prelude::*;

/// The size of each chunk but the last.
const CHUNK: u64 = 64 * 1024;

fn blob(req: Request) -> Result<Response, HttpError> {
    let length: u64 = req.param("bytes").unwrap_or_default().parse()?;
    let chunks = (0..length.div_ceil(CHUNK)).map(move |index| {
        let start = index * CHUNK;
        (start..length.min(start + CHUNK)).map(|i| (i % 251) as u8).collect::<Vec<u8>>()
    });
    if req.query("chunked").is_some() {
        return Ok(Response::chunked(chunks));
    }
    Ok(Response::sized(length, chunks))
}

export!(blob);
