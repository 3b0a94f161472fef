//! Request ids: every request carries one in its `x-request-id` head field, which handlers read
//! like any other field and which the access line and every log line of the request show. A
//! client's (or a proxy's) own id is kept when it is valid, so ids follow a request across
//! services; otherwise the host makes one. Sans-IO: no clock, no randomness beyond a seed.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The head field that carries the id.
pub const REQUEST_ID_FIELD: &str = "x-request-id";

/// Longest id kept from a request; a longer one is replaced. Enough for UUIDs, W3C trace ids
/// and the ids proxies make (AWS's `Root=1-…` is 40 bytes).
pub const MAX_REQUEST_ID: usize = 128;

/// A request id, held inline (no allocation per request).
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; MAX_REQUEST_ID],
    len: u8,
}

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored (`is_valid`, `generate`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The id of no request (`-`): output of an instance between requests.
    pub fn none() -> Self {
        Self::from_valid(b"-")
    }

    fn from_valid(value: &[u8]) -> Self {
        let mut bytes = [0; MAX_REQUEST_ID];
        bytes[..value.len()].copy_from_slice(value);
        Self { bytes, len: value.len() as u8 }
    }

    /// A new id: 16 hex digits, unique within this process (a bijection of a counter) and
    /// unlikely to repeat across processes (a random seed per process).
    pub fn generate() -> Self {
        static SEED: LazyLock<u64> = LazyLock::new(|| {
            use std::hash::{BuildHasher as _, Hasher as _};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        });
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // splitmix64's finalizer: a bijection, so distinct counters give distinct ids.
        let mut z = SEED.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 16];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = HEX[((z >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self::from_valid(&hex)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}

/// Whether a client's id may be kept: 1 to [`MAX_REQUEST_ID`] bytes of visible ASCII other
/// than `"` and `\` (so it needs no quoting or escaping in a log line).
pub fn is_valid(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&value.len())
        && value.iter().all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// The request's id: its one valid `x-request-id` field, or a new one put in place of every
/// `x-request-id` field it had (none, several, or an invalid one).
pub fn ensure(headers: &mut Vec<(String, Vec<u8>)>) -> RequestId {
    let mut given = headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case(REQUEST_ID_FIELD));
    if let (Some((_, value)), None) = (given.next(), given.next())
        && is_valid(value)
    {
        return RequestId::from_valid(value);
    }
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case(REQUEST_ID_FIELD));
    let id = RequestId::generate();
    headers.push((REQUEST_ID_FIELD.to_owned(), id.as_str().as_bytes().to_vec()));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), v.to_vec())).collect()
    }

    #[test]
    fn a_valid_incoming_id_is_kept_as_it_is() {
        let mut h = fields(&[("Host", b"x"), ("X-Request-Id", b"abc-123_ok:/=")]);
        assert_eq!(ensure(&mut h).as_str(), "abc-123_ok:/=");
        assert_eq!(h.len(), 2, "nothing added");
    }

    #[test]
    fn a_missing_invalid_or_repeated_id_is_replaced_by_one_new_field() {
        let long = [b'a'; MAX_REQUEST_ID + 1];
        for given in [
            vec![],
            vec![("x-request-id", &b""[..])],
            vec![("x-request-id", &b"has space"[..])],
            vec![("x-request-id", &b"quo\"te"[..])],
            vec![("x-request-id", &b"\xff"[..])],
            vec![("x-request-id", &long[..])],
            vec![("x-request-id", &b"a"[..]), ("X-Request-ID", &b"b"[..])],
        ] {
            let mut h = fields(&given);
            h.insert(0, ("host".into(), b"x".to_vec()));
            let id = ensure(&mut h);
            assert_eq!(id.as_str().len(), 16, "{given:?}");
            let ids: Vec<_> = h.iter().filter(|(n, _)| n.eq_ignore_ascii_case(REQUEST_ID_FIELD)).collect();
            assert_eq!(ids.len(), 1, "{given:?}");
            assert_eq!(ids[0].1, id.as_str().as_bytes());
        }
        let at_limit = [b'a'; MAX_REQUEST_ID];
        assert!(is_valid(&at_limit));
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().as_str().to_owned()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
