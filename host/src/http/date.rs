//! The `Date` header value (RFC 9110 §6.6.1), formatted once per second per thread.
//!
//! Every response carries a `Date`; formatting it costs more than the rest of the head, so
//! each thread keeps the last IMF-fixdate and reformats only when the second changes. No
//! locks, no allocation.

use std::cell::Cell;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// 9999-12-31T23:59:59Z, the last instant an IMF-fixdate can express.
const MAX_SECS: u64 = 253_402_300_799;

thread_local! {
    /// The Unix second last formatted on this thread, and its IMF-fixdate.
    static CACHE: Cell<(u64, [u8; HTTP_DATE_LEN])> = const { Cell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
}

/// The current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), ASCII, from a
/// per-thread cache refreshed when the second changes.
#[must_use]
pub fn http_date() -> [u8; HTTP_DATE_LEN] {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).min(MAX_SECS);
    CACHE.with(|cache| {
        let (cached_secs, cached) = cache.get();
        if cached_secs == secs {
            return cached;
        }
        let date = format_date(secs);
        cache.set((secs, date));
        date
    })
}

/// Formats a Unix time (seconds, at most [`MAX_SECS`]) as an IMF-fixdate.
fn format_date(secs: u64) -> [u8; HTTP_DATE_LEN] {
    let time = UNIX_EPOCH + Duration::from_secs(secs);
    let mut out = [0u8; HTTP_DATE_LEN];
    let mut w = &mut out[..];
    // An IMF-fixdate of a year <= 9999 is exactly HTTP_DATE_LEN bytes, so this cannot fail.
    let written = write!(w, "{}", httpdate::HttpDate::from(time));
    debug_assert!(written.is_ok() && w.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(&format_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format_date(MAX_SECS), b"Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn http_date_is_now_and_parses_back() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let date = http_date();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&date).unwrap()).unwrap();
        let secs = parsed.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((before..=after).contains(&secs));
        let again = httpdate::parse_http_date(std::str::from_utf8(&http_date()).unwrap()).unwrap();
        assert!(again >= parsed);
    }
}
