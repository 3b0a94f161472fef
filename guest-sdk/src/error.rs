//! [`HttpError`]: an error that is also an answer, and [`OrStatus`] to make one from any error.

use std::fmt;

use crate::response::{IntoResponse, Response};

/// An HTTP error status with a message, answered as text or as JSON.
///
/// # Text or JSON
///
/// The message is sent as a `text/plain` body, except that it is sent as
/// `{"error": "<message>"}` with `Content-Type: application/json` when
///
/// - the error came from parsing a JSON body ([`Request::json`](crate::Request::json),
///   [`ParsedBody::Json`](crate::ParsedBody), `?` on a `serde_json::Error`), or
///   [`HttpError::as_json`] was called; or
/// - it answers a request whose `Accept` header prefers JSON: it lists `application/json` or
///   an `application/*+json` type with `q > 0`, and no `text/*` type with a higher `q`
///   (`Accept: application/json` does; a browser's `text/html,...,*/*;q=0.8` and curl's
///   `*/*` do not).
///
/// The second rule is applied by the SDK when the host takes the response (from any hook),
/// as long as the response still carries the error's own `Content-Type`; in a native test,
/// [`Response::negotiate`](crate::Response::negotiate) applies it.
///
/// Return it (or an `Err` holding it) from any hook; `?` converts the errors listed under
/// *Trait Implementations* (a malformed request body becomes a 400, an I/O error a 500), and
/// [`OrStatus::or_status`] converts any other error.
///
/// ```
/// use wasm_host_sdk::prelude::*;
///
/// fn handle(_req: Request) -> Result<String, HttpError> {
///     Err(HttpError::new(403, "Forbidden Access"))
/// }
///
/// let response = handle(Request::new("GET", "/")).into_response();
/// assert_eq!(response.status(), 403);
/// assert_eq!(response.body(), Some(&b"Forbidden Access"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status code of the response, e.g. 403.
    pub status: u16,
    /// The body of the response.
    pub message: String,
    /// Always answered as JSON.
    json: bool,
}

impl HttpError {
    /// An error answered with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), json: false }
    }

    /// The same error, always answered as `{"error": "<message>"}` (`application/json`),
    /// whatever the request accepts: for JSON APIs.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// let response = HttpError::not_found("no such user").as_json().into_response();
    /// assert_eq!(response.header("content-type"), Some("application/json"));
    /// assert_eq!(response.body(), Some(&br#"{"error":"no such user"}"#[..]));
    /// ```
    pub fn as_json(mut self) -> Self {
        self.json = true;
        self
    }

    /// Whether the error is always answered as JSON (see [`HttpError::as_json`]); errors
    /// from parsing JSON are.
    ///
    /// ```
    /// # use wasm_host_sdk::HttpError;
    /// let error: HttpError = serde_json::from_str::<u8>("x").unwrap_err().into();
    /// assert!(error.is_json() && !HttpError::bad_request("no").is_json());
    /// ```
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// `400 Bad Request`: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// `401 Unauthorized`: the request lacks valid credentials. Add a `WWW-Authenticate`
    /// header with `HttpError::unauthorized(..).into_response().with_header(..)`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }

    /// `403 Forbidden`: the credentials do not grant access.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    /// `500 Internal Server Error`: the handler failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

/// Its status, with the message as text or as JSON (see [*Text or JSON*](HttpError#text-or-json)).
impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.json {
            Response::error_json(self.status, &self.message)
        } else {
            Response::error_text(self.status, self.message)
        }
    }
}

/// Malformed JSON from the client: `400 Bad Request` with serde's message, answered as JSON.
impl From<serde_json::Error> for HttpError {
    fn from(error: serde_json::Error) -> Self {
        Self::bad_request(format!("invalid JSON: {error}")).as_json()
    }
}

/// Text that is not UTF-8: `400 Bad Request`.
impl From<std::str::Utf8Error> for HttpError {
    fn from(error: std::str::Utf8Error) -> Self {
        Self::bad_request(format!("invalid UTF-8: {error}"))
    }
}

/// Text that is not UTF-8: `400 Bad Request`.
impl From<std::string::FromUtf8Error> for HttpError {
    fn from(error: std::string::FromUtf8Error) -> Self {
        Self::bad_request(format!("invalid UTF-8: {error}"))
    }
}

/// A malformed integer, e.g. from a route parameter: `400 Bad Request`.
impl From<std::num::ParseIntError> for HttpError {
    fn from(error: std::num::ParseIntError) -> Self {
        Self::bad_request(format!("invalid integer: {error}"))
    }
}

/// A malformed number, e.g. from a route parameter: `400 Bad Request`.
impl From<std::num::ParseFloatError> for HttpError {
    fn from(error: std::num::ParseFloatError) -> Self {
        Self::bad_request(format!("invalid number: {error}"))
    }
}

/// A malformed boolean: `400 Bad Request`.
impl From<std::str::ParseBoolError> for HttpError {
    fn from(error: std::str::ParseBoolError) -> Self {
        Self::bad_request(format!("invalid boolean: {error}"))
    }
}

/// An I/O failure inside the handler: `500 Internal Server Error`.
impl From<std::io::Error> for HttpError {
    fn from(error: std::io::Error) -> Self {
        Self::internal(error.to_string())
    }
}

/// Turns the error of a `Result` into an [`HttpError`] with the status you choose and the
/// error's `Display` text as message.
///
/// ```
/// use wasm_host_sdk::prelude::*;
///
/// fn parse_id(text: &str) -> Result<u32, HttpError> {
///     let id = u32::from_str_radix(text, 16).or_status(404)?;
///     Ok(id)
/// }
///
/// assert_eq!(parse_id("zz").unwrap_err().status, 404);
/// ```
pub trait OrStatus<T> {
    /// Maps `Err(e)` to `Err(HttpError::new(status, e.to_string()))`.
    fn or_status(self, status: u16) -> Result<T, HttpError>;
}

impl<T, E: fmt::Display> OrStatus<T> for Result<T, E> {
    fn or_status(self, status: u16) -> Result<T, HttpError> {
        self.map_err(|error| HttpError::new(status, error.to_string()))
    }
}
