//! `GET /hang/{secs}/{msg}`: sleeps `secs` seconds (fractions allowed), then answers `msg`.
//! Useful to see many suspended requests at once, or a request outliving the host's deadline.
//! A `secs` that is not a non-negative decimal number is a 400.

use std::time::Duration;

use wasm_host_sdk::prelude::*;

fn hang(req: Request) -> Result<String, HttpError> {
    let secs = req.param("secs").unwrap_or_default();
    let delay = seconds(secs)
        .ok_or_else(|| HttpError::bad_request(format!("{secs:?} is not a number of seconds")))?;
    std::thread::sleep(delay);
    Ok(req.param("msg").unwrap_or_default().to_owned())
}

/// `12`, `0.5`, `.25`: whole seconds and up to nine decimals (nanoseconds; more are ignored).
/// Parsed with integers rather than as an `f64`: the float parser's tables would add 10 KB to
/// the data segment every instance copies, and this handler is the one that measures what a
/// suspended request costs.
fn seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let secs = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let nanos = fraction.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0, |n, b| n * 10 + u32::from(b - b'0'));
    Some(Duration::new(secs, nanos))
}

export!(hang);

