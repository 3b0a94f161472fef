//! `GET /hang/{secs}/{msg}`: sleeps `secs` seconds (fractions allowed), then answers `msg`.
//! Useful to see many suspended requests at once, or a request outliving the host's deadline.
//! A `secs` that is not a non-negative number is a 400.

use std::time::Duration;

use wasm_host_sdk::prelude::*;

fn hang(req: Request) -> Result<String, HttpError> {
    let secs: f64 = req.param("secs").unwrap_or_default().parse()?;
    let delay = Duration::try_from_secs_f64(secs).or_status(400)?;
    std::thread::sleep(delay);
    Ok(req.param("msg").unwrap_or_default().to_owned())
}

export!(hang);
