//! Request head parsing: request line, header fields, and the body framing decision.
//!
//! [`parse_head`] turns the bytes at the start of a connection's read buffer into a
//! [`RequestHead`], enforcing [`HttpLimits`] even on an incomplete head. `httparse` does the
//! tokenizing; this module adds what it leaves to the caller: the version answer (505 vs 400),
//! length limits, target forms, `Host` rules, `Connection`, `Expect`, and the framing decision
//! of RFC 9112 §6 in `body_framing`. It never reads a socket and never guesses: anything
//! ambiguous is a [`RequestError`].

use std::fmt;
use std::mem::MaybeUninit;

use super::syntax::{is_qdtext, is_tchar, trim_ows};
use super::{HttpLimits, RequestError};

/// Header slots kept on the stack; a larger [`HttpLimits::max_headers`] uses a heap buffer.
const STACK_HEADERS: usize = 128;

/// Length of `HTTP/1.x` in the request line.
const VERSION_LEN: usize = 8;

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The version as written in a start line: `"HTTP/1.0"` or `"HTTP/1.1"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the request body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`, or `Content-Length: 0`.
    None,
    /// Exactly this many bytes follow the head (`Content-Length`, never 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method exactly as sent (a token; methods are case-sensitive).
    pub method: String,
    /// The raw, still percent-encoded path of the target. Starts with `/`, except `"*"` for
    /// `OPTIONS *`. For an absolute-form target (`http://host/p?q`) the path part, `/` if
    /// empty.
    pub path: String,
    /// The raw query without the `?`; empty if there is none.
    pub query: String,
    /// The protocol version of the request line.
    pub version: Version,
    /// Header fields in the order received: names as sent, values with surrounding
    /// whitespace removed. Values may hold obs-text (bytes >= 0x80) and so are not UTF-8.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How the body that follows the head is framed.
    pub framing: BodyFraming,
    /// Whether the connection may serve another request after this one: for HTTP/1.1 true
    /// unless `Connection` has the `close` option, for HTTP/1.0 true only if it has
    /// `keep-alive` (and not `close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (case-insensitive) in an HTTP/1.1 request; the
    /// expectation is ignored for HTTP/1.0 as RFC 9110 §10.1.1 requires.
    pub expect_continue: bool,
}

impl RequestHead {
    /// First header value with this name (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Every value of the headers with this name (ASCII case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

/// Whether the request at the start of `buf` (after any leading empty lines) is a HEAD
/// request, judged from the method token alone: for answering a head that failed to parse
/// without a body (RFC 9110 §9.3.2) when its method is all that is known.
#[must_use]
pub fn is_head_request(buf: &[u8]) -> bool {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    buf[start..].starts_with(b"HEAD ")
}

/// The method and path of the request line at the start of `buf`, when they can be read from
/// it (a token, a space, a target of visible ASCII up to `?` or a space): for logging a request
/// that was rejected before it could be parsed whole. `None` for anything else.
#[must_use]
pub fn request_line_start(buf: &[u8]) -> Option<(&str, &str)> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line = &buf[start..buf.len().min(start + 8 * 1024)];
    let space = line.iter().position(|&b| b == b' ')?;
    let (method, rest) = (&line[..space], &line[space + 1..]);
    let end = rest.iter().position(|&b| matches!(b, b' ' | b'?' | b'\r' | b'\n')).unwrap_or(rest.len());
    let target = &rest[..end];
    let visible = |b: &u8| b.is_ascii_graphic() && *b != b'"' && *b != b'\\';
    if method.is_empty()
        || !crate::http::response::is_token(method)
        || target.is_empty()
        || !target.iter().all(visible)
    {
        return None;
    }
    Some((std::str::from_utf8(method).ok()?, std::str::from_utf8(target).ok()?))
}

/// Parses a request head from the start of `buf`.
///
/// - `Ok(None)`: the head is incomplete; read more bytes and call again with the whole
///   buffer. Limits are checked on incomplete input too: a request line with no line end
///   within [`HttpLimits::max_request_line`] bytes is [`RequestError::UriTooLong`], a head
///   not complete within [`HttpLimits::max_head_bytes`] is
///   [`RequestError::HeaderFieldsTooLarge`].
/// - `Ok(Some((head, n)))`: `n` bytes (including ignored leading empty lines) form the head;
///   the body, if any, starts at `buf[n..]`.
///
/// Line endings are CRLF; a bare LF is accepted as a line end (RFC 9112 §2.2), a bare CR is
/// rejected.
///
/// # Errors
///
/// A [`RequestError`] when the head is malformed, ambiguous or over a limit; answer with
/// its [`status`](RequestError::status) and close the connection.
pub fn parse_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<(RequestHead, usize)>, RequestError> {
    // The head must be complete within max_head_bytes: nothing here looks at more than that,
    // so no answer depends on bytes past the limit (nor on how many of them have arrived).
    let limited = &buf[..buf.len().min(limits.max_head_bytes)];
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    let Some(start) = skip_empty_lines(limited)? else {
        return incomplete(buf, limits);
    };
    let window = &limited[start..];

    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap_slots;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap_slots = Vec::with_capacity(limits.max_headers);
        heap_slots.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap_slots
    };

    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(n)) => {
            let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
                return Err(RequestError::BadRequest("invalid request line"));
            };
            check_request_line_len(method.len() + target.len() + 2 + VERSION_LEN, limits)?;
            let head = build_head(method, target, minor, req.headers, limits)?;
            Ok(Some((head, start + n)))
        }
        Ok(httparse::Status::Partial) => {
            match (req.method, req.path, req.version) {
                (Some(method), Some(target), Some(_)) => {
                    check_request_line_len(method.len() + target.len() + 2 + VERSION_LEN, limits)?
                }
                _ => check_partial_request_line(window, limits)?,
            }
            incomplete(buf, limits)
        }
        Err(httparse::Error::Version) => match later_minor_version(&req, window) {
            // RFC 9110 §2.5: a higher minor version is processed as the highest one we
            // implement. httparse knows only 1.0 and 1.1, so parse a copy that says 1.1.
            Some(LaterMinor::At(offset)) => {
                let mut copy = buf[..start + window.len()].to_vec();
                copy[start + offset] = b'1';
                parse_head(&copy, limits)
            }
            Some(LaterMinor::Incomplete) => {
                check_partial_request_line(window, limits)?;
                incomplete(buf, limits)
            }
            None => Err(refused(version_error(&req, window), buf, start, window, limits)),
        },
        Err(e) => Err(refused(map_httparse_error(e, &req, window), buf, start, window, limits)),
    }
}

/// The answer for a head httparse refused with `e`: [`RequestError::UriTooLong`] instead when
/// a shorter read of the same bytes, one byte past `max_request_line`, already answers 414
/// (the line is too long before it is known to be wrong). The answer must not depend on how
/// the bytes arrive. `window` is what httparse saw, from `buf[start]` on.
fn refused(e: RequestError, buf: &[u8], start: usize, window: &[u8], limits: &HttpLimits) -> RequestError {
    match limits.max_request_line.checked_add(1) {
        // That read has no longer prefix to look at, so this recursion ends there.
        Some(shortest) if window.len() > shortest => {
            if parse_head(&buf[..start + shortest], limits) == Err(RequestError::UriTooLong) {
                return RequestError::UriTooLong;
            }
            e
        }
        _ => e,
    }
}

/// Where a request line says `HTTP/1.x` with a single digit x from 2 to 9.
enum LaterMinor {
    /// x is at this offset of the request line, and the line ends after it.
    At(usize),
    /// The line has not arrived past x yet.
    Incomplete,
}

fn later_minor_version(req: &httparse::Request<'_, '_>, rest: &[u8]) -> Option<LaterMinor> {
    let (method, target) = (req.method?, req.path?);
    let at = method.len() + target.len() + 2;
    match rest.get(at..)? {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => Some(LaterMinor::Incomplete),
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9', b'\r' | b'\n', ..] => {
            Some(LaterMinor::At(at + "HTTP/1.".len()))
        }
        _ => None,
    }
}

/// The answer for a head that is not complete in `buf`: read more, unless the buffer
/// already holds `max_head_bytes` without a complete head.
fn incomplete(buf: &[u8], limits: &HttpLimits) -> Result<Option<(RequestHead, usize)>, RequestError> {
    if buf.len() >= limits.max_head_bytes { Err(RequestError::HeaderFieldsTooLarge) } else { Ok(None) }
}

/// Skips the empty lines (CRLF or LF) before the request line. `Ok(None)` if `buf` holds
/// nothing else yet; a CR not followed by LF is an error.
fn skip_empty_lines(buf: &[u8]) -> Result<Option<usize>, RequestError> {
    let mut i = 0;
    loop {
        match buf.get(i) {
            Some(b'\n') => i += 1,
            Some(b'\r') => match buf.get(i + 1) {
                Some(b'\n') => i += 2,
                Some(_) => return Err(RequestError::BadRequest("bare cr in line ending")),
                None => return Ok(None),
            },
            Some(_) => return Ok(Some(i)),
            None => return Ok(None),
        }
    }
}

fn check_request_line_len(len: usize, limits: &HttpLimits) -> Result<(), RequestError> {
    if len > limits.max_request_line { Err(RequestError::UriTooLong) } else { Ok(()) }
}

/// Checks the length of a request line whose end httparse has not reached, looking at no
/// more than `max_request_line` + CRLF bytes.
fn check_partial_request_line(rest: &[u8], limits: &HttpLimits) -> Result<(), RequestError> {
    let scan = &rest[..rest.len().min(limits.max_request_line.saturating_add(2))];
    let len = match scan.iter().position(|&b| b == b'\n') {
        Some(lf) => lf - usize::from(lf > 0 && scan[lf - 1] == b'\r'),
        None => scan.len() - usize::from(scan.last() == Some(&b'\r')),
    };
    check_request_line_len(len, limits)
}

fn map_httparse_error(e: httparse::Error, req: &httparse::Request<'_, '_>, rest: &[u8]) -> RequestError {
    match e {
        httparse::Error::Version => version_error(req, rest),
        httparse::Error::TooManyHeaders => RequestError::HeaderFieldsTooLarge,
        // Also covers obs-fold (a line starting with SP/HTAB) and whitespace before the
        // colon (RFC 9112 §5.1, §5.2).
        httparse::Error::HeaderName => RequestError::BadRequest("invalid header field name"),
        httparse::Error::HeaderValue => RequestError::BadRequest("invalid header field value"),
        httparse::Error::NewLine => RequestError::BadRequest("invalid line ending"),
        httparse::Error::Token => RequestError::BadRequest("invalid request line"),
        _ => RequestError::BadRequest("invalid request"),
    }
}

/// httparse only knows `HTTP/1.0` and `HTTP/1.1` (`HTTP/1.2`–`HTTP/1.9` are handled as 1.1
/// before this). A request line naming major version 2 or higher is well-formed HTTP but not
/// ours to serve: 505 (RFC 9110 §15.6.6). Anything else (`http/1.1`, `HTTP/0.9`, `HTTP/1.10`,
/// garbage) is a bad request.
fn version_error(req: &httparse::Request<'_, '_>, rest: &[u8]) -> RequestError {
    if let (Some(method), Some(target)) = (req.method, req.path) {
        let version = rest.get(method.len() + target.len() + 2..).unwrap_or_default();
        if let [b'H', b'T', b'T', b'P', b'/', b'2'..=b'9', ..] = version {
            return RequestError::VersionNotSupported;
        }
    }
    RequestError::BadRequest("invalid http version")
}

fn build_head(
    method: &str,
    target: &str,
    minor: u8,
    headers: &[httparse::Header<'_>],
    limits: &HttpLimits,
) -> Result<RequestHead, RequestError> {
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let (path, query) = split_target(method, target)?;

    let mut hosts = 0usize;
    let mut close = false;
    let mut keep_alive_option = false;
    let mut expect_continue = false;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if hosts > 1 {
                // RFC 9112 §3.2: more than one Host field line is a 400.
                return Err(RequestError::BadRequest("multiple host headers"));
            }
            if !is_valid_authority(h.value) {
                return Err(RequestError::BadRequest("invalid host header"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list_elements(h.value) {
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_option = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            for expectation in list_elements(h.value) {
                if expectation.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(RequestError::ExpectationFailed);
                }
            }
        }
    }
    if hosts == 0 && version == Version::Http11 {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
        return Err(RequestError::BadRequest("missing host"));
    }
    let framing = body_framing(version, headers, limits.max_body)?;
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_option && !close,
    };

    Ok(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version,
        headers: headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
    })
}

/// Splits the request-target (RFC 9112 §3.2) into raw path and query.
///
/// origin-form `/p?q` and absolute-form `http(s)://authority/p?q` are accepted, and the
/// asterisk-form `*` for `OPTIONS` only. authority-form (`CONNECT host:port`), relative
/// paths, fragments and non-ASCII bytes are rejected.
fn split_target<'t>(method: &str, target: &'t str) -> Result<(&'t str, &'t str), RequestError> {
    if !target.is_ascii() {
        return Err(RequestError::BadRequest("non-ascii byte in request target"));
    }
    if target.contains('#') {
        return Err(RequestError::BadRequest("fragment in request target"));
    }
    let path_and_query = if target.starts_with('/') {
        target
    } else if target == "*" {
        return if method == "OPTIONS" {
            Ok(("*", ""))
        } else {
            Err(RequestError::BadRequest("asterisk-form target without options"))
        };
    } else if let Some(rest) = strip_http_scheme(target) {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || !is_valid_authority(authority.as_bytes()) {
            return Err(RequestError::BadRequest("invalid authority in request target"));
        }
        &rest[end..]
    } else {
        return Err(RequestError::BadRequest("invalid request target"));
    };
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    Ok((if path.is_empty() { "/" } else { path }, query))
}

/// `target` without a leading `http://` or `https://` (scheme case-insensitive).
fn strip_http_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        let prefix = target.as_bytes().get(..scheme.len())?;
        prefix.eq_ignore_ascii_case(scheme.as_bytes()).then(|| &target[scheme.len()..])
    })
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2) by its alphabet: unreserved, sub-delims,
/// percent-encoding, `:` and the brackets of an IP literal. Empty is allowed (RFC 9112 §3.2);
/// userinfo (`@`) is not (RFC 9110 §4.2.4).
fn is_valid_authority(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            )
    })
}

/// The non-empty elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty())
}

/// Decides how the request body is framed, per RFC 9112 §6.1–§6.3, rejecting every case
/// where two readings are possible instead of choosing one:
///
/// - `Transfer-Encoding` together with `Content-Length` is a 400: the combination is how
///   request smuggling works (§6.1 allows rejecting it; §6.3 rule 3).
/// - `Transfer-Encoding` in an HTTP/1.0 request is a 400: the framing is faulty (§6.1).
/// - The transfer-codings of all `Transfer-Encoding` lines form one list. If `chunked` is
///   not its last element the length cannot be determined: 400 (§6.3 rule 4). `chunked`
///   more than once (§6.1: MUST NOT apply chunked more than once), with parameters, an empty
///   list or a malformed element are 400 too. A well-framed list with another coding
///   (`gzip, chunked`) is a 501: we do not implement it (§6.1).
/// - `Content-Length` must be `1*DIGIT` without overflow (RFC 9110 §8.6). Several values,
///   in one line as a list or on several lines, are accepted only if all are equal;
///   differing values are a 400 (§6.3 rule 5). A length above `max_body` is a 413 before
///   any byte of the body is read. `0` means no body.
/// - Neither header: a request has no body (§6.3 rule 7).
fn body_framing(
    version: Version,
    headers: &[httparse::Header<'_>],
    max_body: Option<u64>,
) -> Result<BodyFraming, RequestError> {
    let mut codings = TransferCodings::default();
    let mut transfer_encoding = false;
    let mut content_length: Option<u64> = None;

    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            codings.scan(h.value)?;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for element in h.value.split(|&b| b == b',') {
                let n = parse_decimal(trim_ows(element))
                    .ok_or(RequestError::BadRequest("invalid content-length"))?;
                match content_length {
                    Some(prev) if prev != n => {
                        return Err(RequestError::BadRequest("conflicting content-length"));
                    }
                    _ => content_length = Some(n),
                }
            }
        }
    }

    if transfer_encoding {
        if content_length.is_some() {
            return Err(RequestError::BadRequest("content-length with transfer-encoding"));
        }
        if version == Version::Http10 {
            return Err(RequestError::BadRequest("transfer-encoding in http/1.0 request"));
        }
        if codings.count == 0 {
            return Err(RequestError::BadRequest("empty transfer-encoding"));
        }
        if !codings.last_is_chunked {
            return Err(RequestError::BadRequest("chunked is not the final transfer-coding"));
        }
        if codings.chunked > 1 {
            return Err(RequestError::BadRequest("chunked applied more than once"));
        }
        if codings.other {
            return Err(RequestError::NotImplemented("transfer-coding other than chunked"));
        }
        return Ok(BodyFraming::Chunked);
    }
    match content_length {
        None | Some(0) => Ok(BodyFraming::None),
        Some(n) if max_body.is_some_and(|max| n > max) => Err(RequestError::PayloadTooLarge),
        Some(n) => Ok(BodyFraming::Length(n)),
    }
}

/// What the `Transfer-Encoding` lines seen so far say.
#[derive(Default)]
struct TransferCodings {
    /// Transfer-codings in the list.
    count: usize,
    /// How many of them are `chunked`.
    chunked: usize,
    /// The last one is `chunked`.
    last_is_chunked: bool,
    /// A coding other than `chunked` is present.
    other: bool,
}

impl TransferCodings {
    /// Adds the codings of one `Transfer-Encoding` value:
    /// `#( token *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) ) )`
    /// (RFC 9112 §6.1, RFC 9110 §10.1.4), empty list elements ignored (RFC 9110 §5.6.1).
    fn scan(&mut self, value: &[u8]) -> Result<(), RequestError> {
        const BAD: RequestError = RequestError::BadRequest("invalid transfer-encoding");
        let mut i = 0;
        loop {
            while matches!(value.get(i), Some(b' ' | b'\t' | b',')) {
                i += 1;
            }
            if i == value.len() {
                return Ok(());
            }
            let name_end = skip_token(value, i).ok_or(BAD)?;
            let is_chunked = value[i..name_end].eq_ignore_ascii_case(b"chunked");
            i = skip_ows(value, name_end);
            let mut has_params = false;
            while value.get(i) == Some(&b';') {
                has_params = true;
                i = skip_ows(value, i + 1);
                i = skip_ows(value, skip_token(value, i).ok_or(BAD)?);
                if value.get(i) != Some(&b'=') {
                    return Err(BAD);
                }
                i = skip_ows(value, i + 1);
                i = skip_ows(value, skip_token_or_quoted(value, i).ok_or(BAD)?);
            }
            if !matches!(value.get(i), None | Some(b',')) {
                return Err(BAD);
            }
            if is_chunked && has_params {
                return Err(RequestError::BadRequest("chunked with parameters"));
            }
            self.count += 1;
            self.chunked += usize::from(is_chunked);
            self.other |= !is_chunked;
            self.last_is_chunked = is_chunked;
        }
    }
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// End of the non-empty token starting at `i`.
fn skip_token(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while s.get(i).is_some_and(|&b| is_tchar(b)) {
        i += 1;
    }
    (i > start).then_some(i)
}

/// End of the token or quoted-string (RFC 9110 §5.6.4) starting at `i`.
fn skip_token_or_quoted(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return skip_token(s, i);
    }
    let mut i = i + 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !matches!(escaped, b'\t' | b' '..=0x7e | 0x80..=0xff) {
                    return None;
                }
                i += 2;
            }
            b if is_qdtext(b) => i += 1,
            _ => return None,
        }
    }
}

/// `1*DIGIT` as a u64; `None` if empty, not all digits, or too large.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_requests_are_known_by_their_method_token() {
        assert!(is_head_request(b"HEAD / HTTP/1.1\r\n"));
        assert!(is_head_request(b"\r\n\r\nHEAD /x"));
        assert!(!is_head_request(b"HEADER / HTTP/1.1"));
        assert!(!is_head_request(b"GET / HTTP/1.1"));
        assert!(!is_head_request(b"head / HTTP/1.1"));
        assert!(!is_head_request(b""));
    }

    fn parse_with(buf: &[u8], limits: &HttpLimits) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse_head(buf, limits)
    }

    fn parse(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse_with(buf, &HttpLimits::default())
    }

    fn ok(buf: &[u8]) -> (RequestHead, usize) {
        match parse(buf) {
            Ok(Some(r)) => r,
            other => panic!("expected a head for {:?}, got {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn err(buf: &[u8]) -> RequestError {
        match parse(buf) {
            Err(e) => e,
            other => panic!("expected an error for {:?}, got {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn framing(buf: &[u8]) -> BodyFraming {
        ok(buf).0.framing
    }

    fn bad(buf: &[u8]) {
        assert!(matches!(err(buf), RequestError::BadRequest(_)), "{:?}", String::from_utf8_lossy(buf));
    }

    // ---- request line and headers ----

    #[test]
    fn parses_simple_get() {
        let buf = b"GET /hello/w%20rld?a=1&b=2 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  v a l  \r\n\r\n";
        let (head, n) = ok(buf);
        assert_eq!(n, buf.len());
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/hello/w%20rld");
        assert_eq!(head.query, "a=1&b=2");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(
            head.headers,
            vec![("Host".to_owned(), b"example.com".to_vec()), ("X-Thing".to_owned(), b"v a l".to_vec()),]
        );
        assert_eq!(head.framing, BodyFraming::None);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
    }

    #[test]
    fn consumed_count_stops_at_the_body() {
        let buf = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET";
        let (head, n) = ok(buf);
        assert_eq!(&buf[n..], b"helloGET");
        assert_eq!(head.framing, BodyFraming::Length(5));
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let buf = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
        let (a, n) = ok(buf);
        assert_eq!(a.path, "/a");
        let (b, m) = ok(&buf[n..]);
        assert_eq!(b.path, "/b");
        assert_eq!(n + m, buf.len());
    }

    #[test]
    fn every_prefix_of_a_head_is_incomplete() {
        let buf = b"\r\nPOST /x?y HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for i in 0..buf.len() {
            assert!(matches!(parse(&buf[..i]), Ok(None)), "prefix {i}");
        }
        assert_eq!(ok(buf).1, buf.len());
    }

    #[test]
    fn method_is_kept_as_sent() {
        assert_eq!(ok(b"PURGE / HTTP/1.1\r\nHost: h\r\n\r\n").0.method, "PURGE");
        assert_eq!(ok(b"get / HTTP/1.1\r\nHost: h\r\n\r\n").0.method, "get");
        bad(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn leading_empty_lines_are_ignored_and_consumed() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (head, n) = ok(buf);
        assert_eq!(head.path, "/");
        assert_eq!(n, buf.len());
        assert_eq!(ok(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").1, 28);
        assert!(matches!(parse(b"\r\n\r\n"), Ok(None)));
        assert!(matches!(parse(b"\r"), Ok(None)));
    }

    #[test]
    fn bare_cr_before_request_line_is_rejected() {
        bad(b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn endless_empty_lines_hit_the_head_limit() {
        let limits = HttpLimits { max_head_bytes: 16, ..HttpLimits::default() };
        assert_eq!(parse_with(&[b'\n'; 16], &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
        assert!(matches!(parse_with(&[b'\n'; 15], &limits), Ok(None)));
    }

    #[test]
    fn http_1_0_and_1_1_are_accepted() {
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").0.version, Version::Http10);
        assert_eq!(ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").0.version, Version::Http11);
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
        assert_eq!(Version::Http11.to_string(), "HTTP/1.1");
    }

    #[test]
    fn major_version_2_or_higher_is_505() {
        assert_eq!(err(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), RequestError::VersionNotSupported);
        assert_eq!(err(b"GET / HTTP/3\r\n\r\n"), RequestError::VersionNotSupported);
        assert_eq!(err(b"GET / HTTP/2"), RequestError::VersionNotSupported);
        // The HTTP/2 prior-knowledge preface.
        assert_eq!(err(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), RequestError::VersionNotSupported);
    }

    #[test]
    fn a_later_minor_version_is_handled_as_http_1_1() {
        let request = b"GET /a?b HTTP/1.2\r\nHost: h\r\n\r\nGET";
        let (head, consumed) = ok(request);
        assert_eq!((head.version, head.path.as_str(), consumed), (Version::Http11, "/a", request.len() - 3));
        assert_eq!(ok(b"\r\nPOST / HTTP/1.9\nHost: h\n\n").0.version, Version::Http11);
        // Still arriving: wait for the rest of the line.
        assert!(matches!(parse(b"GET / HTTP/1.2"), Ok(None)));
        // HTTP/1.1 rules apply: no Host is a 400.
        bad(b"GET / HTTP/1.3\r\n\r\n");
    }

    #[test]
    fn other_versions_are_400() {
        bad(b"GET / HTTP/0.9\r\n\r\n");
        bad(b"GET / http/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET / HTTP/1.10\r\nHost: h\r\n\r\n");
        bad(b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n");
        bad(b"GET / FOO\r\n\r\n");
        bad(b"GET /\r\n\r\n");
    }

    #[test]
    fn request_line_delimiters_are_single_spaces() {
        bad(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b" GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn control_bytes_in_target_are_rejected() {
        bad(b"GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let buf = b"GET / HTTP/1.1\nHost: h\nA: b\n\nrest";
        let (head, n) = ok(buf);
        assert_eq!(&buf[n..], b"rest");
        assert_eq!(head.header("a"), Some(&b"b"[..]));
    }

    #[test]
    fn bare_cr_is_rejected() {
        bad(b"GET / HTTP/1.1\rHost: h\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\rc\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\n\r\r");
    }

    #[test]
    fn obs_fold_is_rejected() {
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\tc\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n");
    }

    #[test]
    fn whitespace_before_colon_is_rejected() {
        bad(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA\t: b\r\n\r\n");
    }

    #[test]
    fn invalid_header_names_are_rejected() {
        bad(b"GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA(b: c\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA\x01: c\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n");
    }

    #[test]
    fn control_bytes_in_header_values_are_rejected() {
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\x00c\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\x7fc\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\x1bc\r\n\r\n");
    }

    #[test]
    fn obs_text_and_htab_in_values_are_kept() {
        let (head, _) = ok(b"GET / HTTP/1.1\r\nHost: h\r\nA: \t\xff\xfe\tx\t \r\nB:\r\n\r\n");
        assert_eq!(head.header("a"), Some(&b"\xff\xfe\tx"[..]));
        assert_eq!(head.header("B"), Some(&b""[..]));
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_returns_the_first() {
        let (head, _) = ok(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n");
        assert_eq!(head.header("X-A"), Some(&b"1"[..]));
        assert_eq!(head.header("x-a"), Some(&b"1"[..]));
        assert_eq!(head.header_all("X-a").collect::<Vec<_>>(), vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(head.header("missing"), None);
        assert_eq!(head.headers[2].0, "x-a");
    }

    // ---- limits ----

    #[test]
    fn request_line_at_the_limit_is_accepted() {
        let limits = HttpLimits { max_request_line: 16, ..HttpLimits::default() };
        // "GET /abc HTTP/1.0" is 17 bytes, "GET /ab HTTP/1.0" 16.
        assert!(parse_with(b"GET /ab HTTP/1.0\r\n\r\n", &limits).unwrap().is_some());
        assert_eq!(parse_with(b"GET /abc HTTP/1.0\r\n\r\n", &limits).unwrap_err(), RequestError::UriTooLong);
    }

    #[test]
    fn long_request_line_is_414_before_it_ends() {
        let limits = HttpLimits { max_request_line: 16, ..HttpLimits::default() };
        assert!(matches!(parse_with(b"GET /abcdefghijk", &limits), Ok(None)));
        assert_eq!(parse_with(b"GET /abcdefghijkl", &limits).unwrap_err(), RequestError::UriTooLong);
        // 16 bytes and a CR: the LF may still make it fit.
        assert!(matches!(parse_with(b"GET /ab HTTP/1.0\r", &limits), Ok(None)));
        assert!(matches!(parse_with(b"GET /ab HTTP/1.0\r\nA: b", &limits), Ok(None)));
        assert_eq!(parse_with(b"GET /abc HTTP/1.0\r\nA: b", &limits).unwrap_err(), RequestError::UriTooLong);
        // 16 bytes without a line end may still fit; 17 cannot.
        assert!(matches!(parse_with(b"GET /abc HTTP/1.", &limits), Ok(None)));
        assert_eq!(parse_with(b"GET /abcd HTTP/1.", &limits).unwrap_err(), RequestError::UriTooLong);
    }

    #[test]
    fn request_line_over_the_limit_is_414_even_when_an_error_follows() {
        // The limit is passed before the error byte arrives: a read that stops there answers
        // 414, so a read of the whole request must too.
        let limits = HttpLimits { max_request_line: 16, ..HttpLimits::default() };
        for buf in [
            &b"GET /abcdefghijklmnop HTTP/1.1\r\nNo Colon\r\n\r\n"[..],
            b"GET /abcdefghijklmnop HTTP/2.0\r\n\r\n",
            b"GET /abcdefghijklmnop\x01 HTTP/1.1\r\n\r\n",
            b"GET /abcdefghijklmnop HTTP/1.1\rX",
            b"GET /abcdefghijk HTTP/1.2*\r\n\r\n",
        ] {
            assert_eq!(parse_with(&buf[..17], &limits).unwrap_err(), RequestError::UriTooLong);
            assert_eq!(parse_with(buf, &limits).unwrap_err(), RequestError::UriTooLong, "{buf:?}");
        }
        // An error within the limit is answered as it is.
        assert!(matches!(
            parse_with(b"G(T /abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\n\r\n", &limits),
            Err(RequestError::BadRequest(_))
        ));
        assert_eq!(
            parse_with(b"GET /a HTTP/2.0\r\n\r\n", &limits).unwrap_err(),
            RequestError::VersionNotSupported
        );
    }

    #[test]
    fn a_bare_cr_past_the_head_limit_is_not_looked_at() {
        let limits = HttpLimits { max_head_bytes: 2, ..HttpLimits::default() };
        assert_eq!(parse_with(b"\n\r", &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
        assert_eq!(parse_with(b"\n\rX", &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
        assert_eq!(
            parse_with(b"\rX", &limits).unwrap_err(),
            RequestError::BadRequest("bare cr in line ending")
        );
    }

    #[test]
    fn the_request_line_is_judged_within_the_head_limit() {
        // Bytes past max_head_bytes are never looked at, so they cannot turn the 431 of an
        // unfinished head into a 414, whether they arrive in the same read or later.
        let limits = HttpLimits { max_head_bytes: 16, max_request_line: 20, ..HttpLimits::default() };
        let buf = b"GET /abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\n\r\n";
        assert_eq!(parse_with(&buf[..16], &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
        assert_eq!(parse_with(buf, &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
    }

    #[test]
    fn a_later_minor_version_still_arriving_is_held_to_the_line_limit() {
        let limits = HttpLimits { max_request_line: 16, ..HttpLimits::default() };
        // "GET /abcdefghijk" (16 bytes) is already 414 before the version arrives.
        assert_eq!(parse_with(b"GET /abcdefghijkl", &limits).unwrap_err(), RequestError::UriTooLong);
        assert_eq!(parse_with(b"GET /abcdefghijkl HTTP/1.2", &limits).unwrap_err(), RequestError::UriTooLong);
        assert!(matches!(parse_with(b"GET /a HTTP/1.2", &limits), Ok(None)));
    }

    #[test]
    fn default_request_line_limit() {
        let mut buf = b"GET /".to_vec();
        buf.extend(std::iter::repeat_n(b'a', DEFAULT_LINE_FILL));
        assert!(matches!(parse(&buf), Ok(None)));
        buf.push(b'a');
        assert_eq!(parse(&buf).unwrap_err(), RequestError::UriTooLong);
    }
    // "GET /" + fill = 8192 bytes of line so far.
    const DEFAULT_LINE_FILL: usize = super::super::DEFAULT_MAX_REQUEST_LINE - 5;

    #[test]
    fn head_at_the_limit_is_accepted() {
        let buf = b"GET / HTTP/1.0\r\nA: b\r\n\r\n";
        let limits = HttpLimits { max_head_bytes: buf.len(), ..HttpLimits::default() };
        assert_eq!(parse_with(buf, &limits).unwrap().unwrap().1, buf.len());
        let mut longer = buf.to_vec();
        longer.extend_from_slice(b"body bytes beyond the head limit");
        assert_eq!(parse_with(&longer, &limits).unwrap().unwrap().1, buf.len());
    }

    #[test]
    fn head_over_the_limit_is_431() {
        let buf = b"GET / HTTP/1.0\r\nA: bc\r\n\r\n";
        let limits = HttpLimits { max_head_bytes: buf.len() - 1, ..HttpLimits::default() };
        assert_eq!(parse_with(buf, &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
        // Incomplete, but already as long as the limit.
        assert_eq!(
            parse_with(&buf[..buf.len() - 1], &limits).unwrap_err(),
            RequestError::HeaderFieldsTooLarge
        );
        assert!(matches!(parse_with(&buf[..buf.len() - 2], &limits), Ok(None)));
    }

    #[test]
    fn leading_empty_lines_count_toward_the_head_limit() {
        let buf = b"\r\nGET / HTTP/1.0\r\n\r\n";
        let limits = HttpLimits { max_head_bytes: buf.len() - 1, ..HttpLimits::default() };
        assert_eq!(parse_with(buf, &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
        let limits = HttpLimits { max_head_bytes: buf.len(), ..HttpLimits::default() };
        assert_eq!(parse_with(buf, &limits).unwrap().unwrap().1, buf.len());
    }

    #[test]
    fn header_count_at_the_limit_is_accepted() {
        let limits = HttpLimits { max_headers: 2, ..HttpLimits::default() };
        let (head, _) = parse_with(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n", &limits).unwrap().unwrap();
        assert_eq!(head.headers.len(), 2);
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = HttpLimits { max_headers: 2, ..HttpLimits::default() };
        assert_eq!(
            parse_with(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nC: d\r\n\r\n", &limits).unwrap_err(),
            RequestError::HeaderFieldsTooLarge
        );
    }

    #[test]
    fn default_header_count_limit() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 1..super::super::DEFAULT_MAX_HEADERS {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let ok_buf = [&buf[..], b"\r\n"].concat();
        assert_eq!(ok(&ok_buf).0.headers.len(), 100);
        buf.extend_from_slice(b"X-Extra: v\r\n\r\n");
        assert_eq!(err(&buf), RequestError::HeaderFieldsTooLarge);
    }

    #[test]
    fn header_limit_above_the_stack_array_uses_the_heap() {
        let limits = HttpLimits { max_headers: 300, ..HttpLimits::default() };
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..299 {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let ok_buf = [&buf[..], b"\r\n"].concat();
        assert_eq!(parse_with(&ok_buf, &limits).unwrap().unwrap().0.headers.len(), 300);
        buf.extend_from_slice(b"X-Extra: v\r\n\r\n");
        assert_eq!(parse_with(&buf, &limits).unwrap_err(), RequestError::HeaderFieldsTooLarge);
    }

    // ---- Host ----

    #[test]
    fn http_1_1_without_host_is_400() {
        assert_eq!(err(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"), RequestError::BadRequest("missing host"));
    }

    #[test]
    fn http_1_0_without_host_is_accepted() {
        assert!(ok(b"GET / HTTP/1.0\r\n\r\n").0.header("host").is_none());
    }

    #[test]
    fn more_than_one_host_is_400() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            RequestError::BadRequest("multiple host headers")
        );
        assert_eq!(
            err(b"GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n"),
            RequestError::BadRequest("multiple host headers")
        );
    }

    #[test]
    fn host_values() {
        assert!(ok(b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n").0.keep_alive);
        ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n");
        bad(b"GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n");
    }

    // ---- request target ----

    #[test]
    fn origin_form_splits_path_and_query() {
        let (h, _) = ok(b"GET /a/b?x=1?y HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/a/b", "x=1?y"));
        let (h, _) = ok(b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/a", ""));
        let (h, _) = ok(b"GET //a HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.path, "//a");
    }

    #[test]
    fn absolute_form_takes_path_and_query() {
        let (h, _) = ok(b"GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/p/q", "x=1"));
        let (h, _) = ok(b"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/", ""));
        let (h, _) = ok(b"GET http://example.com?x HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/", "x"));
    }

    #[test]
    fn absolute_form_needs_a_valid_authority_and_http_scheme() {
        bad(b"GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET http://user@h/p HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET http:/h/p HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn asterisk_form_only_with_options() {
        let (h, _) = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("*", ""));
        bad(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn authority_form_and_relative_targets_are_400() {
        bad(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        bad(b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET ?q HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn fragment_and_non_ascii_targets_are_400() {
        bad(b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n");
        bad(b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    // ---- Connection and Expect ----

    #[test]
    fn http_1_1_keep_alive_unless_close() {
        assert!(ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").0.keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").0.keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").0.keep_alive);
        assert!(
            !ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nconnection: close\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn http_1_0_closes_unless_keep_alive() {
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").0.keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: foo ,Keep-Alive\r\n\r\n").0.keep_alive);
        assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn expect_100_continue() {
        assert!(
            ok(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n")
                .0
                .expect_continue
        );
        assert!(ok(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n").0.expect_continue);
        // RFC 9110 §10.1.1: ignored for HTTP/1.0.
        assert!(!ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").0.expect_continue);
    }

    #[test]
    fn other_expectations_are_417() {
        assert_eq!(
            err(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"),
            RequestError::ExpectationFailed
        );
        assert_eq!(
            err(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, x\r\n\r\n"),
            RequestError::ExpectationFailed
        );
    }

    // ---- framing (RFC 9112 §6) ----

    #[test]
    fn no_framing_headers_means_no_body() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n"), BodyFraming::None);
    }

    #[test]
    fn content_length() {
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n"),
            BodyFraming::Length(42)
        );
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\ncontent-length:  007 \r\n\r\n"),
            BodyFraming::Length(7)
        );
        assert_eq!(framing(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n"), BodyFraming::Length(3));
    }

    #[test]
    fn content_length_zero_is_no_body() {
        assert_eq!(framing(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), BodyFraming::None);
    }

    #[test]
    fn content_length_must_be_digits() {
        for v in [&b"+5"[..], b"-5", b"0x10", b"5 5", b"5a", b"", b"1e3", b"5.0", b"\xff"] {
            let buf = [&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "[..], v, b"\r\n\r\n"].concat();
            assert_eq!(err(&buf), RequestError::BadRequest("invalid content-length"), "{v:?}");
        }
    }

    #[test]
    fn content_length_overflow_is_400() {
        let limits = HttpLimits { max_body: None, ..HttpLimits::default() };
        let max = parse_with(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n",
            &limits,
        );
        assert_eq!(max.unwrap().unwrap().0.framing, BodyFraming::Length(u64::MAX));
        assert_eq!(
            parse_with(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n",
                &limits
            )
            .unwrap_err(),
            RequestError::BadRequest("invalid content-length")
        );
    }

    #[test]
    fn identical_content_lengths_are_accepted() {
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"),
            BodyFraming::Length(5)
        );
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            BodyFraming::Length(5)
        );
    }

    #[test]
    fn differing_content_lengths_are_400() {
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n"),
            RequestError::BadRequest("conflicting content-length")
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 05\r\nContent-Length: 6\r\n\r\n"),
            RequestError::BadRequest("conflicting content-length")
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,,5\r\n\r\n"),
            RequestError::BadRequest("invalid content-length")
        );
    }

    #[test]
    fn content_length_over_max_body_is_413() {
        let limits = HttpLimits { max_body: Some(10), ..HttpLimits::default() };
        let at = parse_with(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", &limits);
        assert_eq!(at.unwrap().unwrap().0.framing, BodyFraming::Length(10));
        assert_eq!(
            parse_with(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", &limits).unwrap_err(),
            RequestError::PayloadTooLarge
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16777217\r\n\r\n"),
            RequestError::PayloadTooLarge
        );
    }

    #[test]
    fn chunked() {
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BodyFraming::Chunked
        );
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: CHUNKED\r\n\r\n"),
            BodyFraming::Chunked
        );
        // Empty list elements are ignored (RFC 9110 §5.6.1).
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n"),
            BodyFraming::Chunked
        );
    }

    #[test]
    fn content_length_with_transfer_encoding_is_400() {
        let e = RequestError::BadRequest("content-length with transfer-encoding");
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            e
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
            e
        );
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n"), e);
    }

    #[test]
    fn transfer_encoding_in_http_1_0_is_400() {
        assert_eq!(
            err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestError::BadRequest("transfer-encoding in http/1.0 request")
        );
    }

    #[test]
    fn unknown_coding_before_chunked_is_501() {
        let e = RequestError::NotImplemented("transfer-coding other than chunked");
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), e);
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), e);
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: x;q=\"a,b\" ; r = s, chunked\r\n\r\n"),
            e
        );
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n"), e);
    }

    #[test]
    fn chunked_not_last_is_400() {
        let e = RequestError::BadRequest("chunked is not the final transfer-coding");
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), e);
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), e);
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), e);
    }

    #[test]
    fn chunked_twice_is_400() {
        let e = RequestError::BadRequest("chunked applied more than once");
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), e);
        assert_eq!(err(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), e);
    }

    #[test]
    fn malformed_transfer_encoding_is_400() {
        for v in [
            &b"chu nked"[..],
            b"chunked;a=b",
            b"\"chunked\"",
            b"gzip chunked",
            b"gzip;, chunked",
            b"gzip;q, chunked",
            b"gzip;q=, chunked",
            b"gzip;q=\"a, chunked",
            b"chunked\x01",
            b"",
            b" , ",
        ] {
            let buf = [&b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "[..], v, b"\r\n\r\n"].concat();
            assert!(matches!(err(&buf), RequestError::BadRequest(_)), "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn te_header_is_not_transfer_encoding() {
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nContent-Length: 2\r\n\r\n"),
            BodyFraming::Length(2)
        );
    }

    #[test]
    fn parse_decimal_rules() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"00000000000000000000000000012"), Some(12));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1 "), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }

    #[test]
    fn the_method_and_path_of_a_rejected_request_are_read_when_they_can_be() {
        assert_eq!(request_line_start(b"GET /a/b?q=1 HTTP/1.1\r\nHost"), Some(("GET", "/a/b")));
        assert_eq!(request_line_start(b"\r\nPOST /x HTTP/1.1"), Some(("POST", "/x")));
        assert_eq!(request_line_start(b"GET /long-without-end"), Some(("GET", "/long-without-end")));
        for junk in [
            &b""[..],
            b"\x16\x03\x01\x02",
            b"GET",
            b"G(T / HTTP/1.1",
            b"GET \"/x\" HTTP/1.1",
            b"GET  / HTTP/1.1",
        ] {
            assert_eq!(request_line_start(junk), None, "{:?}", String::from_utf8_lossy(junk));
        }
    }
}
