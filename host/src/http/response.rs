//! Response encoding: status line and head, chunk framing, and small error responses.
//!
//! The host owns framing: handler headers that would change how the response is delimited
//! or how the connection behaves (`content-length`, `transfer-encoding`, `connection`, …)
//! are dropped and the codec writes its own from [`ResponseFraming`]. Everything is appended
//! to a caller-owned `Vec<u8>`; nothing here writes to a socket.

use super::date::http_date;
use super::head::Version;
use super::syntax::{is_field_value_byte, is_tchar};

/// How a response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// `content-length: N`; exactly N body bytes follow (none for a HEAD request: the
    /// caller passes the length the GET would have and writes no body).
    Length(u64),
    /// `transfer-encoding: chunked`; the body is written with [`chunk_header`],
    /// [`CHUNK_TRAILER`] and [`LAST_CHUNK`]. Not for HTTP/1.0 requests.
    Chunked,
    /// No body and no length header: for 204 and 304, or a stream that ends by closing the
    /// connection. For a status that allows a body (and a request that is not HEAD) the
    /// client reads until close, so an empty body should be `Length(0)` instead.
    NoBody,
    /// The body runs until the connection closes (an HTTP/1.0 client receiving a stream of
    /// unknown length). Always sends `connection: close`.
    UntilClose,
}

/// A response head the codec refuses to write.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    /// The status is outside `200..=599`: 1xx responses are not the handler's to send, and
    /// RFC 9110 §15 defines no code above 599.
    #[error("invalid response status {0}")]
    InvalidStatus(u16),
    /// A header name is not a token, or its value holds CR, LF, NUL or another control
    /// byte other than HTAB.
    #[error("invalid response header {name:?}")]
    InvalidHeader {
        /// The offending header name, as the handler gave it.
        name: String,
    },
    /// [`ResponseFraming::Chunked`] was asked for an HTTP/1.0 request, which cannot decode
    /// it; use [`ResponseFraming::UntilClose`].
    #[error("chunked response to an http/1.0 request")]
    ChunkedForHttp10,
    /// A framing other than [`ResponseFraming::NoBody`] was asked for a status that cannot
    /// have content (1xx, 204, 304); [`plan_response`](super::plan_response) decides this.
    #[error("status {0} cannot have a body")]
    BodyNotAllowed(u16),
    /// The head would be larger than [`MAX_RESPONSE_HEAD`].
    #[error("response head over {} KiB", MAX_RESPONSE_HEAD / 1024)]
    HeadTooLarge,
}

/// Largest response head a handler may send, status line and fields together: 64 KiB.
/// Clients and proxies refuse far less (nginx reads 4–8 KiB of upstream head by default), and
/// the head is built in host memory outside the handler's `--max-memory`.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Written after each chunk's data.
pub const CHUNK_TRAILER: &[u8] = b"\r\n";

/// The last chunk and the empty trailer section: ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The interim response answering `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Handler headers the host drops: it owns framing, the date and the connection.
const HOST_OWNED_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "keep-alive",
    "upgrade",
    "trailer",
    ERROR_MARKER,
];

/// The head field the guest SDK puts on an `HttpError` sent as text: the host may render the
/// site's error page for its status instead, and never sends the field on.
pub const ERROR_MARKER: &str = "wasm-host-error";

/// Appends a response head to `out`: the status line (always `HTTP/1.1`, RFC 9112 §2.5),
/// `date`, the handler's `headers` (`(name, value)` pairs, borrowed: nothing is copied but
/// into `out`), the framing header, the connection header, and the empty line.
///
/// Handler headers named `content-length`, `transfer-encoding`, `connection`, `date`,
/// `keep-alive`, `upgrade` or `trailer` (any case) are dropped. `connection: close` is sent
/// when `!keep_alive` or for [`ResponseFraming::UntilClose`]; `connection: keep-alive` for
/// an HTTP/1.0 request kept alive. `framing` is written as given: it comes from
/// [`plan_response`](super::plan_response), the one place that decides it.
///
/// # Errors
///
/// [`ResponseError`] for a status outside `200..=599`, an invalid header name or value,
/// chunked framing for an HTTP/1.0 request, or framing for a status that cannot have a body
/// (204, 304). Nothing is appended then.
pub fn encode_head<'h>(
    out: &mut Vec<u8>,
    version: Version,
    status: u16,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    framing: ResponseFraming,
    keep_alive: bool,
) -> Result<(), ResponseError> {
    if !(200..=599).contains(&status) {
        return Err(ResponseError::InvalidStatus(status));
    }
    if !status_allows_body(status) && framing != ResponseFraming::NoBody {
        return Err(ResponseError::BodyNotAllowed(status));
    }
    if framing == ResponseFraming::Chunked && version == Version::Http10 {
        return Err(ResponseError::ChunkedForHttp10);
    }

    let start = out.len();
    out.reserve(256);
    push_status_line(out, status);
    push_date(out);
    for (name, value) in headers {
        if !is_token(name.as_bytes()) || !value.iter().all(|&b| is_field_value_byte(b)) {
            out.truncate(start);
            return Err(ResponseError::InvalidHeader { name: name.to_owned() });
        }
        if HOST_OWNED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            continue;
        }
        // Checked before copying, so a huge field never grows the buffer.
        if out.len() - start + name.len() + value.len() + 4 > MAX_RESPONSE_HEAD {
            out.truncate(start);
            return Err(ResponseError::HeadTooLarge);
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::NoBody | ResponseFraming::UntilClose => {}
    }
    if !keep_alive || framing == ResponseFraming::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends a complete small `text/plain; charset=utf-8` response whose body is `message`
/// and a newline, with `content-length`, the `extra` headers (e.g. `&[("allow", "GET")]`
/// for a 405, `&[]` usually), and `connection: close` when `close`. For the host's own
/// answers (400, 404, 413, 500, 504, …); `status` must allow a body. With `head_only` (the
/// answer to a HEAD request, RFC 9110 §9.3.2) the head announces the length but no body
/// follows. The host supplies `extra`, so it is expected to be valid (checked in debug builds
/// only, which the test suite runs with).
pub fn error_response(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    extra: &[(&str, &str)],
    close: bool,
    head_only: bool,
) {
    push_host_head(out, status, "text/plain; charset=utf-8", message.len() as u64 + 1, extra, close);
    if !head_only {
        out.extend_from_slice(message.as_bytes());
        out.push(b'\n');
    }
}

/// Appends a complete host answer whose body is `body` of type `content_type` (e.g. an HTML
/// page): the same head as [`error_response`] otherwise, and no body with `head_only`.
pub fn page_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    close: bool,
    head_only: bool,
) {
    debug_assert!(content_type.bytes().all(is_field_value_byte));
    push_host_head(out, status, content_type, body.len() as u64, extra, close);
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// The head of a host answer with `content-length: len`.
fn push_host_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    len: u64,
    extra: &[(&str, &str)],
    close: bool,
) {
    debug_assert!((200..=599).contains(&status) && status_allows_body(status));
    out.reserve(160 + len as usize);
    push_status_line(out, status);
    push_date(out);
    out.extend_from_slice(b"content-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in extra {
        debug_assert!(is_token(name.as_bytes()));
        debug_assert!(value.bytes().all(is_field_value_byte));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a response with this status may have a body: false for 1xx, 204 and 304
/// (RFC 9112 §6.3 rule 1).
#[must_use]
pub fn status_allows_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// Whether `s` is a token (RFC 9110 §5.6.2): one or more tchars.
#[must_use]
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// The hex size line of a chunk: `{len:x}\r\n`, on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    buf: [u8; 18],
    len: u8,
}

impl ChunkHeader {
    /// The bytes to write before the chunk's data.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// The size line for a chunk of `len` bytes. `len` must not be 0: a zero-size chunk ends
/// the body; write [`LAST_CHUNK`] for that.
#[must_use]
pub fn chunk_header(len: usize) -> ChunkHeader {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    debug_assert!(len > 0, "a zero-size chunk would end the body");
    let len = len as u64;
    let digits = (u64::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    let mut buf = [0u8; 18];
    for (i, slot) in buf[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((len >> shift) & 0xf) as usize];
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    ChunkHeader { buf, len: (digits + 2) as u8 }
}

/// The reason phrase of a registered status code (IANA HTTP Status Code Registry, RFC 9110
/// §15), or `""` for an unregistered one (the reason phrase may be empty, RFC 9112 §4).
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// `HTTP/1.1 {status} {reason}\r\n`.
fn push_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_date(out: &mut Vec<u8>) {
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(&http_date());
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::date::HTTP_DATE_LEN;

    /// `out` as text with the date value replaced by `<date>`, after checking it is a
    /// valid IMF-fixdate.
    fn show(out: &[u8]) -> String {
        let at =
            out.windows(8).position(|w| w == b"\r\ndate: ").expect("a date header after the status line") + 8;
        let date = std::str::from_utf8(&out[at..at + HTTP_DATE_LEN]).unwrap();
        httpdate::parse_http_date(date).expect("an IMF-fixdate");
        let mut shown = out[..at].to_vec();
        shown.extend_from_slice(b"<date>");
        shown.extend_from_slice(&out[at + HTTP_DATE_LEN..]);
        String::from_utf8(shown).unwrap()
    }

    fn head(
        version: Version,
        status: u16,
        headers: &[(&str, &[u8])],
        framing: ResponseFraming,
        keep_alive: bool,
    ) -> Result<String, ResponseError> {
        let mut out = Vec::new();
        encode_head(&mut out, version, status, headers.iter().copied(), framing, keep_alive)?;
        Ok(show(&out))
    }

    fn h(name: &str, value: &[u8]) -> (String, Vec<u8>) {
        (name.to_owned(), value.to_vec())
    }

    /// Owned headers (as a guest returns them) borrowed as pairs.
    fn owned(headers: &[(String, Vec<u8>)]) -> impl Iterator<Item = (&str, &[u8])> {
        headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    #[test]
    fn head_with_length() {
        let mut out = Vec::new();
        let headers = [h("Content-Type", b"text/html"), h("x-a", b"1")];
        encode_head(&mut out, Version::Http11, 200, owned(&headers), ResponseFraming::Length(12), true)
            .unwrap();
        assert_eq!(
            show(&out),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\nContent-Type: text/html\r\nx-a: 1\r\ncontent-length: 12\r\n\r\n"
        );
    }

    #[test]
    fn head_takes_borrowed_pairs_from_any_source() {
        struct Field {
            name: String,
            value: Vec<u8>,
        }
        let guest = [
            Field { name: "x-a".into(), value: b"1".to_vec() },
            Field { name: "Content-Type".into(), value: b"text/plain".to_vec() },
        ];
        let host: &[(&str, &[u8])] = &[("content-type", b"text/event-stream")];
        let headers = guest
            .iter()
            .filter(|f| !f.name.eq_ignore_ascii_case("content-type"))
            .map(|f| (f.name.as_str(), f.value.as_slice()))
            .chain(host.iter().copied());
        let mut out = Vec::new();
        encode_head(&mut out, Version::Http11, 200, headers, ResponseFraming::Chunked, true).unwrap();
        assert_eq!(
            show(&out),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\nx-a: 1\r\ncontent-type: text/event-stream\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn head_appends_to_out() {
        let mut out = b"earlier".to_vec();
        encode_head(&mut out, Version::Http11, 404, [], ResponseFraming::Length(0), true).unwrap();
        assert!(out.starts_with(b"earlierHTTP/1.1 404 Not Found\r\n"));
    }

    #[test]
    fn head_chunked() {
        assert_eq!(
            head(Version::Http11, 201, &[], ResponseFraming::Chunked, true).unwrap(),
            "HTTP/1.1 201 Created\r\ndate: <date>\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn head_no_body_and_close() {
        assert_eq!(
            head(Version::Http11, 200, &[("a", b"b")], ResponseFraming::NoBody, false).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\na: b\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn head_until_close_always_closes() {
        assert_eq!(
            head(Version::Http10, 200, &[], ResponseFraming::UntilClose, true).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn http_1_0_keep_alive_is_explicit() {
        assert_eq!(
            head(Version::Http10, 200, &[], ResponseFraming::Length(3), true).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head(Version::Http10, 200, &[], ResponseFraming::Length(3), false).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\ncontent-length: 3\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn chunked_for_http_1_0_is_refused() {
        assert_eq!(
            head(Version::Http10, 200, &[], ResponseFraming::Chunked, false),
            Err(ResponseError::ChunkedForHttp10)
        );
    }

    #[test]
    fn no_framing_headers_for_204_and_304() {
        assert_eq!(
            head(Version::Http11, 204, &[], ResponseFraming::NoBody, true).unwrap(),
            "HTTP/1.1 204 No Content\r\ndate: <date>\r\n\r\n"
        );
        assert_eq!(
            head(Version::Http10, 304, &[("etag", b"\"x\"")], ResponseFraming::NoBody, false).unwrap(),
            "HTTP/1.1 304 Not Modified\r\ndate: <date>\r\netag: \"x\"\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn framing_for_a_status_without_content_is_refused() {
        for (status, framing) in [(204, ResponseFraming::Length(0)), (304, ResponseFraming::Chunked)] {
            assert_eq!(
                head(Version::Http11, status, &[], framing, true),
                Err(ResponseError::BodyNotAllowed(status))
            );
        }
    }

    #[test]
    fn host_owned_headers_are_dropped() {
        let headers: &[(&str, &[u8])] = &[
            ("Content-Length", b"99"),
            ("TRANSFER-ENCODING", b"gzip"),
            ("connection", b"close"),
            ("Date", b"yesterday"),
            ("keep-alive", b"timeout=5"),
            ("Upgrade", b"websocket"),
            ("trailer", b"x"),
            ("x-kept", b"yes"),
        ];
        assert_eq!(
            head(Version::Http11, 200, headers, ResponseFraming::Length(1), true).unwrap(),
            "HTTP/1.1 200 OK\r\ndate: <date>\r\nx-kept: yes\r\ncontent-length: 1\r\n\r\n"
        );
    }

    #[test]
    fn obs_text_and_htab_values_are_written() {
        let mut out = Vec::new();
        encode_head(
            &mut out,
            Version::Http11,
            200,
            [("x", &b"a\tb \xff"[..])],
            ResponseFraming::Length(0),
            true,
        )
        .unwrap();
        let line = b"\r\nx: a\tb \xff\r\ncontent-length";
        assert!(out.windows(line.len()).any(|w| w == line));
    }

    #[test]
    fn invalid_header_names_are_refused() {
        for name in ["", "a b", "a:b", "a\r\nb", "é", "a\0"] {
            let mut out = b"keep".to_vec();
            let e = encode_head(
                &mut out,
                Version::Http11,
                200,
                [(name, &b"v"[..])],
                ResponseFraming::Length(0),
                true,
            );
            assert_eq!(e, Err(ResponseError::InvalidHeader { name: name.to_owned() }));
            assert_eq!(out, b"keep", "nothing appended on error");
        }
    }

    #[test]
    fn invalid_header_values_are_refused() {
        for value in [&b"a\rb"[..], b"a\nb", b"a\0b", b"a\x7fb", b"\x01", b"a\r\nx-injected: 1"] {
            let mut out = Vec::new();
            let e = encode_head(
                &mut out,
                Version::Http11,
                200,
                owned(&[h("ok", b"1"), h("x", value)]),
                ResponseFraming::Length(0),
                true,
            );
            assert_eq!(e, Err(ResponseError::InvalidHeader { name: "x".to_owned() }));
            assert!(out.is_empty());
        }
        // Invalid even when the header would have been dropped.
        let e = head(Version::Http11, 200, &[("connection", b"a\nb")], ResponseFraming::Length(0), true);
        assert_eq!(e, Err(ResponseError::InvalidHeader { name: "connection".to_owned() }));
    }

    #[test]
    fn status_range() {
        for status in [0, 99, 100, 101, 199, 600, 999, 1000, u16::MAX] {
            let e = head(Version::Http11, status, &[], ResponseFraming::Length(0), true);
            assert_eq!(e, Err(ResponseError::InvalidStatus(status)));
        }
        assert!(head(Version::Http11, 200, &[], ResponseFraming::Length(0), true).is_ok());
        assert!(head(Version::Http11, 599, &[], ResponseFraming::Length(0), true).is_ok());
    }

    #[test]
    fn a_head_over_the_limit_is_refused_before_it_grows_the_buffer() {
        let big = vec![b'v'; MAX_RESPONSE_HEAD];
        let mut out = Vec::new();
        let e = encode_head(
            &mut out,
            Version::Http11,
            200,
            [("x-big", &big[..])],
            ResponseFraming::Length(0),
            true,
        );
        assert_eq!((e, out.len()), (Err(ResponseError::HeadTooLarge), 0));
        assert!(out.capacity() < MAX_RESPONSE_HEAD, "the value was never copied");
        let many = vec![("x-field", &b"0123456789"[..]); MAX_RESPONSE_HEAD / 20];
        let e = encode_head(&mut out, Version::Http11, 200, many, ResponseFraming::Length(0), true);
        assert_eq!((e, out.len()), (Err(ResponseError::HeadTooLarge), 0));
        let fine = vec![b'v'; 32 << 10];
        assert!(
            encode_head(
                &mut out,
                Version::Http11,
                200,
                [("x-ok", &fine[..])],
                ResponseFraming::Length(0),
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn unknown_status_has_empty_reason() {
        assert_eq!(
            head(Version::Http11, 599, &[], ResponseFraming::Length(0), true).unwrap(),
            "HTTP/1.1 599 \r\ndate: <date>\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(413), "Content Too Large");
        assert_eq!(reason_phrase(418), "");
        assert_eq!(reason_phrase(422), "Unprocessable Content");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(505), "HTTP Version Not Supported");
        assert_eq!(reason_phrase(306), "");
        for status in 100..=599 {
            let r = reason_phrase(status);
            assert!(r.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{status}");
        }
    }

    #[test]
    fn error_response_bytes() {
        let mut out = Vec::new();
        error_response(&mut out, 404, "no route for /x", &[], false, false);
        assert_eq!(
            show(&out),
            "HTTP/1.1 404 Not Found\r\ndate: <date>\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 16\r\n\r\nno route for /x\n"
        );
    }

    #[test]
    fn error_response_close_and_extra_headers() {
        let mut out = Vec::new();
        error_response(&mut out, 405, "method not allowed", &[("allow", "GET, HEAD")], true, false);
        assert_eq!(
            show(&out),
            "HTTP/1.1 405 Method Not Allowed\r\ndate: <date>\r\ncontent-type: text/plain; charset=utf-8\r\n\
             allow: GET, HEAD\r\ncontent-length: 19\r\nconnection: close\r\n\r\nmethod not allowed\n"
        );
    }

    #[test]
    fn error_response_to_head_announces_the_length_but_has_no_body() {
        let mut out = Vec::new();
        error_response(&mut out, 404, "not found", &[], false, true);
        assert_eq!(
            show(&out),
            "HTTP/1.1 404 Not Found\r\ndate: <date>\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 10\r\n\r\n"
        );
    }

    #[test]
    fn page_response_carries_its_own_type_and_length() {
        let mut out = Vec::new();
        page_response(&mut out, 500, "text/html; charset=utf-8", b"<p>x</p>", &[], false, false);
        assert_eq!(
            show(&out),
            "HTTP/1.1 500 Internal Server Error\r\ndate: <date>\r\ncontent-type: text/html; charset=utf-8\r\n\
             content-length: 8\r\n\r\n<p>x</p>"
        );
    }

    #[test]
    fn error_response_length_counts_utf8_bytes() {
        let mut out = Vec::new();
        error_response(&mut out, 500, "é", &[], true, false);
        assert!(show(&out).ends_with("content-length: 3\r\nconnection: close\r\n\r\né\n"));
    }

    #[test]
    fn statuses_allowing_a_body() {
        assert!(!status_allows_body(100));
        assert!(!status_allows_body(101));
        assert!(!status_allows_body(199));
        assert!(!status_allows_body(204));
        assert!(!status_allows_body(304));
        assert!(status_allows_body(200));
        assert!(status_allows_body(205));
        assert!(status_allows_body(404));
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"content-type"));
        assert!(is_token(b"!#$%&'*+-.^_`|~09AZaz"));
        assert!(!is_token(b""));
        for b in b" \t\"(),/:;<=>?@[\\]{}\x00\x7f\xff" {
            assert!(!is_token(&[b'a', *b]), "{b:#x}");
        }
    }

    #[test]
    fn chunk_headers() {
        assert_eq!(chunk_header(1).as_bytes(), b"1\r\n");
        assert_eq!(chunk_header(15).as_bytes(), b"f\r\n");
        assert_eq!(chunk_header(16).as_bytes(), b"10\r\n");
        assert_eq!(chunk_header(0x1234abcd).as_bytes(), b"1234abcd\r\n");
        assert_eq!(chunk_header(usize::MAX).as_bytes(), format!("{:x}\r\n", usize::MAX).as_bytes());
    }

    #[test]
    fn chunk_constants() {
        assert_eq!(CHUNK_TRAILER, b"\r\n");
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn chunked_body_round_trips_through_the_decoder() {
        use crate::http::body::{BodyDecoder, Decoded};
        use crate::http::head::BodyFraming;
        let mut wire = Vec::new();
        for piece in [&b"hello"[..], &[b'x'; 300], b"!"] {
            wire.extend_from_slice(chunk_header(piece.len()).as_bytes());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(CHUNK_TRAILER);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let (n, what) = d.decode(&wire[at..]).unwrap();
            match what {
                Decoded::Data(r) => body.extend_from_slice(&wire[at..][r]),
                Decoded::NeedMore => panic!("complete input"),
                Decoded::Done => {
                    assert_eq!(at + n, wire.len());
                    break;
                }
            }
            at += n;
        }
        assert_eq!(body.len(), 306);
    }

    #[test]
    fn error_messages_are_lower_case() {
        for e in [
            ResponseError::InvalidStatus(42),
            ResponseError::InvalidHeader { name: "x".into() },
            ResponseError::ChunkedForHttp10,
            ResponseError::BodyNotAllowed(204),
        ] {
            let m = e.to_string();
            assert_eq!(m, m.to_lowercase());
        }
    }
}
