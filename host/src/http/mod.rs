//! Sans-IO HTTP/1.1: request head parsing, request body decoding and response encoding.
//!
//! This module owns the HTTP/1.1 wire format and nothing else: bytes in, parsed values out
//! ([`parse_head`], [`BodyDecoder`]), and values in, bytes out ([`plan_response`] decides a
//! response's framing, [`encode_head`] writes its head, [`BodyEncoder`] frames and counts its
//! body, [`encode_event`] encodes Server-Sent Events, [`error_response`] writes the host's own
//! small answers). It never touches a socket, never spawns or awaits,
//! and must not depend on wasmtime, the router or the runtime; `conn/` joins those.
//!
//! Every limit of [`HttpLimits`] is enforced here, and every framing decision is made in one
//! strict function (`head::body_framing`, RFC 9112 §6). Anything ambiguous is rejected with a
//! [`RequestError`] whose [`status`](RequestError::status) is the answer to send before closing
//! the connection; the codec never guesses.

pub mod body;
pub mod date;
pub mod framing;
#[cfg(test)]
mod fuzz;
pub mod head;
pub mod request_id;
pub mod response;
pub mod sse;

pub use body::{BodyDecoder, Decoded, MAX_CHUNK_SIZE_LINE, MAX_TRAILER_BYTES};
pub use date::{HTTP_DATE_LEN, http_date};
pub use framing::{BodyEncoder, BodyError, BodyKind, Framed, ResponsePlan, plan_response};
pub use head::{BodyFraming, RequestHead, Version, is_head_request, parse_head};
pub use response::{
    CHUNK_TRAILER, CONTINUE_100, ChunkHeader, ERROR_MARKER, LAST_CHUNK, ResponseError, ResponseFraming,
    chunk_header, encode_head, error_response, is_token, page_response, reason_phrase, status_allows_body,
};
pub use sse::{SSE_HEADERS, SSE_KEEPALIVE, SseError, SseEvent, encode_event};

/// Default for [`HttpLimits::max_request_line`]: 8 KiB.
///
/// RFC 9112 §3 recommends supporting request lines of at least 8000 octets; this is the
/// common server default (nginx, hyper's `http` crate) and comfortably fits real URLs.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;

/// Default for [`HttpLimits::max_head_bytes`]: 64 KiB.
///
/// Large enough for big cookies and auth tokens, small enough that a connection that never
/// finishes its head cannot make the server buffer more than this per connection.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;

/// Default for [`HttpLimits::max_headers`]: 100 header fields.
///
/// Browsers send about 10–20; 100 matches hyper's default and bounds the per-request header
/// vector a client can force us to allocate.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Default for [`HttpLimits::max_body`]: 16 MiB.
///
/// Bodies are streamed to handlers, so this is not a memory bound for the host itself; it
/// caps how much an unauthenticated client can push into a handler (which may buffer it)
/// unless the operator raises it.
pub const DEFAULT_MAX_BODY: Option<u64> = Some(16 * 1024 * 1024);

/// Parsing limits, all checked by the codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest request line accepted, in bytes, without its line ending. Exceeding it
    /// answers [`RequestError::UriTooLong`] (414).
    pub max_request_line: usize,
    /// Longest request head accepted, in bytes, including leading empty lines, the request
    /// line and the final empty line. Exceeding it answers
    /// [`RequestError::HeaderFieldsTooLarge`] (431).
    pub max_head_bytes: usize,
    /// Most header fields accepted. Exceeding it answers
    /// [`RequestError::HeaderFieldsTooLarge`] (431).
    pub max_headers: usize,
    /// Largest request body accepted, in bytes; `None` is unlimited. Exceeding it answers
    /// [`RequestError::PayloadTooLarge`] (413).
    pub max_body: Option<u64>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// A request the codec refuses. [`status`](Self::status) is the HTTP status to answer with;
/// after any of these the connection must be closed, since the framing of what follows is
/// unknown.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// 400: the request is malformed; the text says why, e.g.
    /// `"content-length with transfer-encoding"`.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 414: the request line is longer than [`HttpLimits::max_request_line`].
    #[error("request line too long")]
    UriTooLong,
    /// 431: the head is longer than [`HttpLimits::max_head_bytes`], has more than
    /// [`HttpLimits::max_headers`] fields, or the chunked trailer section is too large.
    #[error("request header fields too large")]
    HeaderFieldsTooLarge,
    /// 413: the body is larger than [`HttpLimits::max_body`].
    #[error("request body too large")]
    PayloadTooLarge,
    /// 501: the request uses a feature the server does not implement (an unknown
    /// transfer-coding); the text says which.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// 505: the request line names HTTP/2 or a higher major version.
    #[error("http version not supported")]
    VersionNotSupported,
    /// 417: the `Expect` header holds something other than `100-continue`
    /// (RFC 9110 §10.1.1).
    #[error("unsupported expectation")]
    ExpectationFailed,
}

impl RequestError {
    /// The HTTP status code to answer this error with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UriTooLong => 414,
            Self::HeaderFieldsTooLarge => 431,
            Self::PayloadTooLarge => 413,
            Self::NotImplemented(_) => 501,
            Self::VersionNotSupported => 505,
            Self::ExpectationFailed => 417,
        }
    }
}

/// Helpers shared by the submodules.
pub(crate) mod syntax {
    /// `tchar` of RFC 9110 §5.6.2.
    pub(crate) const fn is_tchar(b: u8) -> bool {
        matches!(b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z')
    }

    /// A byte allowed in a field value (RFC 9110 §5.5): VCHAR, obs-text, SP or HTAB.
    pub(crate) const fn is_field_value_byte(b: u8) -> bool {
        matches!(b, b'\t' | b' '..=0x7e | 0x80..=0xff)
    }

    /// `qdtext` of RFC 9110 §5.6.4.
    pub(crate) const fn is_qdtext(b: u8) -> bool {
        matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
    }

    /// Removes optional whitespace (SP / HTAB, RFC 9110 §5.6.3) at both ends.
    pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
        while let [b' ' | b'\t', rest @ ..] = s {
            s = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = s {
            s = rest;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_named_consts() {
        let l = HttpLimits::default();
        assert_eq!(l.max_request_line, 8 * 1024);
        assert_eq!(l.max_head_bytes, 64 * 1024);
        assert_eq!(l.max_headers, 100);
        assert_eq!(l.max_body, Some(16 * 1024 * 1024));
    }

    #[test]
    fn request_error_statuses() {
        assert_eq!(RequestError::BadRequest("x").status(), 400);
        assert_eq!(RequestError::UriTooLong.status(), 414);
        assert_eq!(RequestError::HeaderFieldsTooLarge.status(), 431);
        assert_eq!(RequestError::PayloadTooLarge.status(), 413);
        assert_eq!(RequestError::NotImplemented("x").status(), 501);
        assert_eq!(RequestError::VersionNotSupported.status(), 505);
        assert_eq!(RequestError::ExpectationFailed.status(), 417);
    }

    #[test]
    fn request_error_messages_are_lower_case() {
        let all = [
            RequestError::BadRequest("missing host"),
            RequestError::UriTooLong,
            RequestError::HeaderFieldsTooLarge,
            RequestError::PayloadTooLarge,
            RequestError::NotImplemented("transfer-coding"),
            RequestError::VersionNotSupported,
            RequestError::ExpectationFailed,
        ];
        for e in all {
            let msg = e.to_string();
            assert_eq!(msg, msg.to_lowercase(), "{msg}");
        }
        assert_eq!(RequestError::BadRequest("missing host").to_string(), "bad request: missing host");
    }

    #[test]
    fn trim_ows_trims_only_sp_and_htab() {
        assert_eq!(syntax::trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(syntax::trim_ows(b"   "), b"");
        assert_eq!(syntax::trim_ows(b"\ra\n"), b"\ra\n");
    }
}
