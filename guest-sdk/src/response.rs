//! [`Response`], the [`IntoResponse`] conversions handlers rely on, and [`Json`].

use std::fmt;

use serde::Serialize;

use crate::cookie::Cookie;
use crate::event::Event;
use crate::request::Request;

/// The header that tells the host a response is an [`HttpError`](crate::HttpError) sent as
/// text, so the site's error page for its status may render it (the host never sends it on).
pub(crate) const ERROR_MARKER: &str = "wasm-host-error";

/// The content type of text responses.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// The content type of HTML responses.
const TEXT_HTML: &str = "text/html; charset=utf-8";
/// The content type of JSON responses.
const APPLICATION_JSON: &str = "application/json";
/// The content type of byte responses and byte streams.
const OCTET_STREAM: &str = "application/octet-stream";
/// The content type of Server-Sent Events streams.
const EVENT_STREAM: &str = "text/event-stream";

/// A stream of body chunks, pulled by the host through `next-chunk`.
pub(crate) type ChunkStream = Box<dyn Iterator<Item = Vec<u8>>>;
/// A stream of events, pulled by the host through `next-event`.
pub(crate) type EventStream = Box<dyn Iterator<Item = Event>>;

/// An HTTP response: status, headers and a body that is either complete or a stream.
///
/// Start from a constructor that sets the body and its `Content-Type` ([`Response::text`],
/// [`Response::json`], [`Response::chunked`], ...), then adjust with [`Response::with_status`]
/// and [`Response::with_header`]:
///
/// ```
/// use wasm_host_sdk::Response;
///
/// let response = Response::html("<h1>Created</h1>")
///     .with_status(201)
///     .with_header("Location", "/items/7");
/// assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
/// ```
///
/// The host adds `Date` and the framing headers (`Content-Length` or `Transfer-Encoding`) and
/// replaces any the handler sets. It answers 500 instead of a response it cannot send: an
/// informational (1xx) or out-of-range status, a header name or value that is not a valid
/// field (e.g. containing CR or LF).
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
    /// The message of the [`HttpError`](crate::HttpError) this text response was made from,
    /// while its `Content-Type` is unchanged: the SDK may send it as JSON instead.
    error_message: Option<String>,
    /// The 500 the SDK answers instead of a response it refused to build (a redirect to a
    /// location with CR/LF, a cookie with an invalid attribute): later builder calls leave it
    /// as it is, so nothing of the refused response leaks out.
    refused: bool,
}

/// The body of a [`Response`].
pub(crate) enum Body {
    /// The whole body.
    Full(Vec<u8>),
    /// A stream of unknown length.
    Chunked(ChunkStream),
    /// A stream of exactly this many bytes.
    Sized(u64, ChunkStream),
    /// A Server-Sent Events stream.
    Events(EventStream),
}

impl Response {
    /// A response with this status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Full(Vec::new()),
            error_message: None,
            refused: false,
        }
    }

    /// An error message as `text/plain`, which [`Response::negotiate`] may turn into JSON.
    pub(crate) fn error_text(status: u16, message: String) -> Self {
        let mut response = Self::text(message.clone()).with_status(status);
        response.error_message = Some(message);
        response
    }

    /// An error message as `{"error": message}`.
    pub(crate) fn error_json(status: u16, message: &str) -> Self {
        Self::json(&serde_json::json!({ "error": message })).with_status(status)
    }

    /// Applies the SDK's rule for error messages to this response, as the SDK does when the
    /// host takes it: a response made from an [`HttpError`](crate::HttpError), whose
    /// `Content-Type` was not changed since, becomes `{"error": "<message>"}` if `req`'s
    /// `Accept` header prefers JSON (see [*Text or JSON*](crate::HttpError#text-or-json)).
    /// Any other response is returned as is. For native tests.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// let req = Request::new("GET", "/").with_header("Accept", "application/json");
    /// let response = HttpError::forbidden("no").into_response().negotiate(&req);
    /// assert_eq!(response.body(), Some(&br#"{"error":"no"}"#[..]));
    ///
    /// let browser = Request::new("GET", "/").with_header("Accept", "text/html,*/*;q=0.8");
    /// assert_eq!(HttpError::forbidden("no").into_response().negotiate(&browser).body(), Some(&b"no"[..]));
    /// ```
    pub fn negotiate(self, req: &Request) -> Self {
        self.negotiate_error(req.accepts_json())
    }

    /// [`Response::negotiate`] with the request's preference already known.
    pub(crate) fn negotiate_error(mut self, accepts_json: bool) -> Self {
        match self.error_message.take() {
            Some(message) if accepts_json => {
                let json = Self::error_json(self.status, &message);
                self.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
                self.headers.extend(json.headers);
                Self { body: json.body, ..self }
            }
            // A text error: the host may render it with the site's error page for its status
            // (`routes/errors/{code}`); it strips this marker either way.
            Some(_) => self.with_header(ERROR_MARKER, "text"),
            None => self,
        }
    }

    /// A response with this status, no headers and an empty body (the same as
    /// [`Response::new`], for readability: `Response::empty(204)`).
    pub fn empty(status: u16) -> Self {
        Self::new(status)
    }

    /// `200 OK` with `text` as a `text/plain; charset=utf-8` body.
    pub fn text(text: impl Into<String>) -> Self {
        Self::full(TEXT_PLAIN, text.into().into_bytes())
    }

    /// `200 OK` with `html` as a `text/html; charset=utf-8` body.
    pub fn html(html: impl Into<String>) -> Self {
        Self::full(TEXT_HTML, html.into().into_bytes())
    }

    /// `200 OK` with `value` serialized as an `application/json` body, or a
    /// `500 Internal Server Error` saying why it could not be serialized.
    pub fn json(value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(json) => Self::full(APPLICATION_JSON, json),
            Err(error) => {
                Self::text(format!("cannot serialize the response as JSON: {error}")).with_status(500)
            }
        }
    }

    /// `200 OK` with `bytes` as an `application/octet-stream` body.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self::full(OCTET_STREAM, bytes.into())
    }

    /// `200 OK` with a body of unknown length (`Transfer-Encoding: chunked`) and content type
    /// `application/octet-stream`: the host pulls the chunks one at a time when the client can
    /// take more, and sends each non-empty one as an HTTP chunk. The iterator may block (e.g.
    /// sleep) between chunks.
    ///
    /// ```
    /// use wasm_host_sdk::Response;
    ///
    /// let countdown = Response::chunked((1..=3).rev().map(|i| format!("{i}\n")))
    ///     .with_header("content-type", "text/plain; charset=utf-8");
    /// let body: Vec<Vec<u8>> = countdown.into_chunks().unwrap().collect();
    /// assert_eq!(body, [b"3\n", b"2\n", b"1\n"]);
    /// ```
    ///
    /// Keep chunks at 64 KiB or less: every chunk is copied out of the handler's memory whole.
    pub fn chunked<I>(chunks: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>> + 'static,
        I::IntoIter: 'static,
    {
        Self::stream(OCTET_STREAM, Body::Chunked(Box::new(chunks.into_iter().map(Into::into))))
    }

    /// `200 OK` with a body of exactly `length` bytes (`Content-Length: length`), produced by
    /// `chunks` like [`Response::chunked`]. If the chunks add up to fewer or more bytes, the
    /// host aborts the connection rather than send a wrong body.
    pub fn sized<I>(length: u64, chunks: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>> + 'static,
        I::IntoIter: 'static,
    {
        let chunks = Box::new(chunks.into_iter().map(Into::into));
        Self::stream(OCTET_STREAM, Body::Sized(length, chunks))
    }

    /// `200 OK` with a Server-Sent Events stream (`text/event-stream`). The host pulls the
    /// events one at a time and sends keep-alive comments while the iterator blocks; the
    /// stream ends when the iterator does or when the client goes away.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wasm_host_sdk::{Event, Response};
    ///
    /// let clock = Response::events((1..).map(|i| {
    ///     std::thread::sleep(Duration::from_secs(1));
    ///     Event::json(&serde_json::json!({ "count": i })).event("count")
    /// }));
    /// # drop(clock);
    /// ```
    pub fn events<I>(events: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Event> + 'static,
        I::IntoIter: 'static,
    {
        Self::stream(EVENT_STREAM, Body::Events(Box::new(events.into_iter().map(Into::into))))
    }

    fn full(content_type: &str, body: Vec<u8>) -> Self {
        Self { body: Body::Full(body), ..Self::new(200) }.with_header("content-type", content_type)
    }

    fn stream(content_type: &str, body: Body) -> Self {
        Self { body, ..Self::new(200) }.with_header("content-type", content_type)
    }

    /// `303 See Other` to `location`: the client fetches `location` with GET, whatever the
    /// method of this request (the usual answer to a form POST). See the other redirects for
    /// 301, 302, 307 and 308.
    ///
    /// `location` may be absolute (`https://example.com/x`) or relative (`/users/7`).
    /// Non-ASCII characters and spaces are percent-encoded. A location containing a control
    /// character (CR, LF, NUL, ...) is never sent: the response is a `500` saying so instead,
    /// so a redirect target taken from the request cannot inject headers (later builder calls
    /// leave that 500 unchanged).
    ///
    /// ```
    /// use wasm_host_sdk::Response;
    ///
    /// let response = Response::redirect("/users/7");
    /// assert_eq!((response.status(), response.header("location")), (303, Some("/users/7")));
    ///
    /// let evil = Response::redirect("/\r\nSet-Cookie: admin=1");
    /// assert_eq!((evil.status(), evil.header("location")), (500, None));
    /// assert_eq!(Response::redirect("/café").header("location"), Some("/caf%C3%A9"));
    /// ```
    pub fn redirect(location: impl AsRef<str>) -> Self {
        Self::redirect_with(303, location.as_ref())
    }

    /// `301 Moved Permanently` to `location` (clients may change a POST into a GET; prefer
    /// [`Response::permanent_redirect`] for anything but GET). Validated like
    /// [`Response::redirect`].
    pub fn moved_permanently(location: impl AsRef<str>) -> Self {
        Self::redirect_with(301, location.as_ref())
    }

    /// `302 Found` to `location` (clients may change a POST into a GET). Validated like
    /// [`Response::redirect`].
    pub fn found(location: impl AsRef<str>) -> Self {
        Self::redirect_with(302, location.as_ref())
    }

    /// `307 Temporary Redirect` to `location`: the client repeats the same method and body
    /// there. Validated like [`Response::redirect`].
    pub fn temporary_redirect(location: impl AsRef<str>) -> Self {
        Self::redirect_with(307, location.as_ref())
    }

    /// `308 Permanent Redirect` to `location`: the client repeats the same method and body
    /// there, and may remember the move. Validated like [`Response::redirect`].
    ///
    /// ```
    /// # use wasm_host_sdk::Response;
    /// assert_eq!(Response::permanent_redirect("https://example.com/").status(), 308);
    /// ```
    pub fn permanent_redirect(location: impl AsRef<str>) -> Self {
        Self::redirect_with(308, location.as_ref())
    }

    fn redirect_with(status: u16, location: &str) -> Self {
        match encode_location(location) {
            Ok(location) => Self::text(format!("Redirecting to {location}\n"))
                .with_status(status)
                .with_header("location", location),
            Err(message) => Self::refusal(message),
        }
    }

    /// The 500 answered instead of a response the SDK refused to build.
    fn refusal(message: String) -> Self {
        Self { refused: true, ..Self::error_text(500, message) }
    }

    /// Adds a `Set-Cookie` header for `cookie` (several cookies give several headers).
    ///
    /// A cookie whose `path` or `domain` contains a control character or `;` is never sent:
    /// the response becomes a `500` saying so, which later builder calls (more cookies,
    /// headers, a status) leave unchanged.
    ///
    /// ```
    /// use wasm_host_sdk::{Cookie, Response};
    ///
    /// let response = Response::text("hi")
    ///     .with_cookie(Cookie::new("a", "1"))
    ///     .with_cookie(Cookie::new("b", "x y").http_only());
    /// let cookies: Vec<_> = response.headers().filter(|(name, _)| *name == "set-cookie").map(|h| h.1).collect();
    /// assert_eq!(cookies, [&b"a=1"[..], b"b=x%20y; HttpOnly"]);
    /// ```
    pub fn with_cookie(self, cookie: Cookie) -> Self {
        if self.refused {
            return self;
        }
        match cookie.header_value() {
            Ok(value) => self.append_header("set-cookie", value),
            Err(message) => Self::refusal(message),
        }
    }

    /// Replaces the status code.
    pub fn with_status(mut self, status: u16) -> Self {
        if !self.refused {
            self.status = status;
        }
        self
    }

    /// Sets the header `name` to `value`, replacing any header of that name (case-insensitive),
    /// e.g. to change the `Content-Type` a constructor chose.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        if self.refused {
            return self;
        }
        let name = name.into();
        if name.eq_ignore_ascii_case("content-type") {
            // The handler chose the format: an error message is no longer re-rendered.
            self.error_message = None;
        }
        self.headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header field, keeping those of the same name (e.g. several `Set-Cookie`).
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        if !self.refused {
            self.headers.push((name.into(), value.into()));
        }
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The value of the first header named `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Every header field as `(name, raw value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// The body if it is complete, `None` if it is a stream.
    pub fn body(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Full(body) => Some(body),
            _ => None,
        }
    }

    /// The chunks of a [`Response::chunked`] or [`Response::sized`] body (a complete body is
    /// one chunk); `None` for an events stream.
    pub fn into_chunks(self) -> Option<Box<dyn Iterator<Item = Vec<u8>>>> {
        match self.body {
            Body::Full(body) => Some(Box::new(std::iter::once(body))),
            Body::Chunked(chunks) | Body::Sized(_, chunks) => Some(chunks),
            Body::Events(_) => None,
        }
    }

    /// The events of a [`Response::events`] body; `None` for any other body.
    pub fn into_events(self) -> Option<Box<dyn Iterator<Item = Event>>> {
        match self.body {
            Body::Events(events) => Some(events),
            _ => None,
        }
    }

    pub(crate) fn into_parts(self) -> (u16, Vec<(String, Vec<u8>)>, Body) {
        (self.status, self.headers, self.body)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            Body::Full(body) => format!("full({} bytes)", body.len()),
            Body::Chunked(_) => "chunked".to_owned(),
            Body::Sized(length, _) => format!("sized({length})"),
            Body::Events(_) => "events".to_owned(),
        };
        let headers: Vec<_> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value)))
            .collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body", &body)
            .finish()
    }
}

/// A redirect target as sent in `Location`: non-ASCII characters, spaces and characters not
/// allowed in a URI percent-encoded; an error if it holds a control character.
fn encode_location(location: &str) -> Result<String, String> {
    if let Some(c) = location.chars().find(|c| c.is_control()) {
        return Err(format!(
            "refusing to redirect to {location:?}: the location contains the control character {c:?}"
        ));
    }
    if location.is_empty() {
        return Err("refusing to redirect to an empty location".to_owned());
    }
    let mut encoded = String::with_capacity(location.len());
    for c in location.chars() {
        if c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}') {
            encoded.push(c);
        } else {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    Ok(encoded)
}

/// A value serialized as an `application/json` response.
///
/// ```
/// use wasm_host_sdk::prelude::*;
///
/// #[derive(serde::Serialize)]
/// struct User { name: String }
///
/// fn get(_req: Request) -> Json<User> {
///     Json(User { name: "Ada".into() })
/// }
/// # assert_eq!(get(Request::new("GET", "/")).into_response().body(), Some(&br#"{"name":"Ada"}"#[..]));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// Anything a handler's `after` hook may return.
///
/// | returned value | response |
/// |----------------|----------|
/// | [`Response`] | itself |
/// | `&str`, `String` | 200, `text/plain; charset=utf-8` |
/// | `&[u8]`, `Vec<u8>` | 200, `application/octet-stream` |
/// | [`Json<T: Serialize>`](Json), `serde_json::Value` | 200, `application/json` (500 if serialization fails) |
/// | [`HttpError`](crate::HttpError) | its status, its message as text or JSON ([rule](crate::HttpError#text-or-json)) |
/// | `Result<T, E>` | `T`'s response or `E`'s response |
/// | `(u16, T)` | `T`'s response with this status |
/// | `Option<T>` | `T`'s response, or `404 Not Found` for `None` |
/// | `()` | `204 No Content` |
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be turned into an HTTP response",
    label = "this does not implement `IntoResponse`",
    note = "return a `Response`, `&str`, `String`, `Vec<u8>`, `Json<T>`, `HttpError`, `()`, or a \
            `Result`, `Option` or `(u16, _)` of those"
)]
pub trait IntoResponse {
    /// Converts the value into a response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &[u8] {
    fn into_response(self) -> Response {
        Response::bytes(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::bytes(self)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(&self.0)
    }
}

impl IntoResponse for serde_json::Value {
    fn into_response(self) -> Response {
        Response::json(&self)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(value) => value.into_response(),
            Err(error) => error.into_response(),
        }
    }
}

/// The response of `T` with the status replaced.
impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

/// `None` is `404 Not Found`.
impl<T: IntoResponse> IntoResponse for Option<T> {
    fn into_response(self) -> Response {
        match self {
            Some(value) => value.into_response(),
            None => Response::text("Not Found").with_status(404),
        }
    }
}

/// `204 No Content`.
impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::empty(204)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpError;

    #[test]
    fn constructors_set_content_types() {
        let cases = [
            (Response::text("a"), TEXT_PLAIN),
            (Response::html("a"), TEXT_HTML),
            (Response::json(&1), APPLICATION_JSON),
            (Response::bytes(vec![1]), OCTET_STREAM),
            (Response::chunked(Vec::<Vec<u8>>::new()), OCTET_STREAM),
            (Response::sized(0, Vec::<Vec<u8>>::new()), OCTET_STREAM),
            (Response::events(Vec::<Event>::new()), EVENT_STREAM),
        ];
        for (response, content_type) in cases {
            assert_eq!(response.header("Content-Type"), Some(content_type));
            assert_eq!(response.status(), 200);
        }
        assert_eq!(Response::empty(204).headers().count(), 0);
    }

    #[test]
    fn with_header_replaces_and_append_header_keeps() {
        let response = Response::text("a")
            .with_header("Content-Type", "text/csv")
            .append_header("set-cookie", "a=1")
            .append_header("Set-Cookie", "b=2");
        assert_eq!(response.header("content-type"), Some("text/csv"));
        assert_eq!(response.headers().count(), 3);
    }

    #[test]
    fn a_refused_response_stays_refused() {
        let response = Response::text("ok")
            .with_cookie(Cookie::new("a", "1").path("/\n"))
            .with_cookie(Cookie::new("b", "2"))
            .with_header("x-extra", "1")
            .append_header("set-cookie", "c=3")
            .with_status(200);
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers().map(|(name, _)| name).collect::<Vec<_>>(), ["content-type"]);
        let redirect = Response::redirect("/\r\n").with_cookie(Cookie::new("a", "1")).with_status(302);
        assert_eq!((redirect.status(), redirect.header("set-cookie")), (500, None));
        assert!(redirect.body().is_some_and(|body| body.starts_with(b"refusing to redirect")));
    }

    #[test]
    fn json_serialization_failure_is_a_500() {
        let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let response = Json(map).into_response();
        assert_eq!(response.status(), 500);
        assert_eq!(response.header("content-type"), Some(TEXT_PLAIN));
    }

    #[test]
    fn into_response_conversions() {
        assert_eq!(().into_response().status(), 204);
        assert_eq!(None::<String>.into_response().status(), 404);
        let created = (201, Json(serde_json::json!({"id": 1}))).into_response();
        assert_eq!(created.status(), 201);
        assert_eq!(created.body(), Some(&br#"{"id":1}"#[..]));
        let failed: Result<String, HttpError> = Err(HttpError::not_found("no such user"));
        let failed = failed.into_response();
        assert_eq!((failed.status(), failed.body()), (404, Some(&b"no such user"[..])));
        assert_eq!(b"raw"[..].into_response().header("content-type"), Some(OCTET_STREAM));
    }
}
