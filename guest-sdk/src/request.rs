//! [`Request`]: the request head the host sent, plus the body the SDK buffered.

use std::any::Any;
use std::collections::VecDeque;

use serde::de::DeserializeOwned;

use crate::bindings;
use crate::body::{self, Nouns, ParsedBody};
use crate::cookie::parse_cookie_header;
use crate::error::HttpError;
use crate::media_type;
use crate::multipart::{Multipart, MultipartParser, PartEvent};

/// The multipart parser a `stream` hook feeds through [`Request::multipart_events`].
#[derive(Default)]
struct StreamedMultipart(Option<MultipartParser>);

/// An HTTP request: method, path, query, headers, route parameters and body.
///
/// `before` sees it without a body; `after` gets it with the whole body (unless a custom
/// `stream` hook decided otherwise, see [`Request::body_mut`]).
///
/// ```
/// use wasm_host_sdk::Request;
///
/// let req = Request::new("POST", "/users/42")
///     .with_query("tag=a+b&tag=c&empty")
///     .with_header("Content-Type", "application/json")
///     .with_param("id", "42")
///     .with_body(r#"{"name": "Ada"}"#);
///
/// assert_eq!(req.query("tag").as_deref(), Some("a b"));
/// assert_eq!(req.header("content-type"), Some("application/json"));
/// assert_eq!(req.param("id"), Some("42"));
/// let body: serde_json::Value = req.json().unwrap();
/// assert_eq!(body["name"], "Ada");
/// ```
#[derive(Debug)]
pub struct Request {
    method: String,
    path: String,
    query: String,
    protocol: String,
    headers: Vec<(String, Vec<u8>)>,
    params: Vec<(String, String)>,
    remote_addr: String,
    body: Vec<u8>,
    /// Values the hooks keep for later hooks, at most one per type.
    state: Vec<Box<dyn Any>>,
    /// Response chunks queued by `send` in a full-duplex exchange, not yet pulled by the host.
    outbox: VecDeque<Vec<u8>>,
}

impl Request {
    /// A request with this method and path, as `HTTP/1.1` from `127.0.0.1:0`, without query,
    /// headers, parameters or body. Handlers receive their requests from the host; this is for
    /// testing them natively.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            protocol: "HTTP/1.1".to_owned(),
            headers: Vec::new(),
            params: Vec::new(),
            remote_addr: "127.0.0.1:0".to_owned(),
            body: Vec::new(),
            state: Vec::new(),
            outbox: VecDeque::new(),
        }
    }

    pub(crate) fn from_head(head: bindings::Request) -> Self {
        Self {
            method: head.method,
            path: head.path,
            query: head.query,
            protocol: head.protocol,
            headers: head.headers.into_iter().map(|header| (header.name, header.value)).collect(),
            params: head.params,
            remote_addr: head.remote_addr,
            body: Vec::new(),
            state: Vec::new(),
            outbox: VecDeque::new(),
        }
    }

    /// Replaces the raw query string (without `?`, not decoded).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a route parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Replaces the protocol version.
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = protocol.into();
        self
    }

    /// Replaces the client address.
    pub fn with_remote_addr(mut self, remote_addr: impl Into<String>) -> Self {
        self.remote_addr = remote_addr.into();
        self
    }

    /// The method, upper case as sent: `GET`, `POST`, ...
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, percent-decoded, starting with `/` (e.g. `/users/42`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The protocol version: `HTTP/1.1` or `HTTP/1.0`.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The client's address, e.g. `127.0.0.1:50432`.
    pub fn remote_addr(&self) -> &str {
        &self.remote_addr
    }

    /// The raw query string after `?`, not decoded; empty if none.
    pub fn query_string(&self) -> &str {
        &self.query
    }

    /// The first value of the query parameter `name`, percent-decoded with `+` as a space
    /// (invalid UTF-8 is replaced by U+FFFD). A parameter without `=` has the value `""`.
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// Every query parameter as decoded `(name, value)` pairs, in order, repeats included.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query_component(name), decode_query_component(value))
        })
    }

    /// The value of the first header named `name` (case-insensitive), or `None` if there is
    /// none or its value is not UTF-8 (see [`Request::header_bytes`]).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name).and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The raw value of the first header named `name` (case-insensitive).
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_slice())
    }

    /// Every header field as `(name, raw value)`, in the order received; names are as the
    /// client sent them.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// The value of the `Content-Type` header, parameters included (e.g.
    /// `text/plain; charset=utf-8`).
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The value captured by the `{name}` folder of the route, e.g. `id` for
    /// `routes/users/{id}/GET.wasm`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Every route parameter as `(name, value)`.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The body received so far: the whole body in `after`, nothing in `before`.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, for a custom `stream` hook that keeps some of the chunks: the SDK appends
    /// chunks to it only when no custom `stream` hook is exported.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// The value of type `T` kept with this request, inserted with `T::default()` on first
    /// use: how a `stream` hook carries its own state (a hasher, a counter, a parser) from chunk
    /// to chunk and on to `after`.
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// #[derive(Default)]
    /// struct Received(u64);
    ///
    /// let mut req = Request::new("POST", "/upload");
    /// for chunk in [&b"abc"[..], b"de"] {
    ///     req.state_mut::<Received>().0 += chunk.len() as u64;
    /// }
    /// assert_eq!(req.take_state::<Received>().map(|r| r.0), Some(5));
    /// assert!(req.take_state::<Received>().is_none());
    /// ```
    pub fn state_mut<T: Default + 'static>(&mut self) -> &mut T {
        let index = match self.state.iter().position(|value| value.is::<T>()) {
            Some(index) => index,
            None => {
                self.state.push(Box::new(T::default()));
                self.state.len() - 1
            }
        };
        self.state[index].downcast_mut().expect("the value at this index has type T")
    }

    /// The value of type `T` kept with this request, if any.
    pub fn state<T: 'static>(&self) -> Option<&T> {
        self.state.iter().find_map(|value| value.downcast_ref())
    }

    /// Removes the value of type `T` kept with this request and returns it.
    pub fn take_state<T: 'static>(&mut self) -> Option<T> {
        let index = self.state.iter().position(|value| value.is::<T>())?;
        self.state.swap_remove(index).downcast().ok().map(|value| *value)
    }

    /// Queues `chunk` as the next piece of the response body, in a full-duplex exchange
    /// started by [`Flow::begin`](crate::Flow::begin): the host sends it when the `stream`
    /// hook returns. Empty chunks are ignored. Outside such an exchange nothing is sent: use
    /// [`Response::chunked`](crate::Response::chunked) instead.
    pub fn send(&mut self, chunk: impl Into<Vec<u8>>) {
        let chunk = chunk.into();
        if !chunk.is_empty() {
            self.outbox.push_back(chunk);
        }
    }

    /// Takes the chunks queued by [`Request::send`] that the host has not pulled yet: what a
    /// native test of a `stream` hook inspects.
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.outbox.drain(..).collect()
    }

    pub(crate) fn next_sent(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Takes the body out of the request.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text, whatever the `Content-Type`, or `400 Bad Request` if it is not
    /// UTF-8. [`Request::parse_body`] honours a `text/plain` charset instead.
    pub fn text(&self) -> Result<&str, HttpError> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON into `T` (a serde type or `serde_json::Value`).
    ///
    /// - `415 Unsupported Media Type` if the `Content-Type` is not `application/json` (or
    ///   `application/*+json`), saying what was sent; [`Request::json_ignoring_content_type`]
    ///   skips this check.
    /// - `400 Bad Request` naming the field if the body does not parse (an empty body does
    ///   not); both errors are answered as `{"error": ...}`.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// #[derive(Debug, Deserialize)]
    /// #[serde(crate = "wasm_host_sdk::serde")]
    /// struct NewUser { name: String, age: u8 }
    ///
    /// let req = Request::new("POST", "/users").with_header("Content-Type", "application/json");
    /// let user: NewUser = req.with_body(r#"{"name": "Ada", "age": 36}"#).json().unwrap();
    /// assert_eq!((user.name.as_str(), user.age), ("Ada", 36));
    ///
    /// let req = Request::new("POST", "/users").with_header("Content-Type", "application/json");
    /// let error = req.with_body(r#"{"name": "Ada", "age": "old"}"#).json::<NewUser>().unwrap_err();
    /// assert_eq!(error.status, 400);
    /// assert!(error.message.starts_with("invalid JSON field `age`: invalid type"), "{}", error.message);
    ///
    /// let form = Request::new("POST", "/users").with_header("Content-Type", "text/plain").with_body("{}");
    /// assert_eq!(form.json::<serde_json::Value>().unwrap_err().status, 415);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        match self.content_type() {
            Some(content_type) if media_type::is_json(&body::essence(content_type)) => {}
            Some(content_type) => {
                return Err(HttpError::new(
                    415,
                    format!("expected a JSON body (Content-Type: application/json), got Content-Type: {content_type}"),
                )
                .as_json());
            }
            None => {
                return Err(HttpError::new(
                    415,
                    "expected a JSON body (Content-Type: application/json), got no Content-Type",
                )
                .as_json());
            }
        }
        self.json_ignoring_content_type()
    }

    /// The body parsed as JSON into `T` whatever the `Content-Type` says: for clients that
    /// send JSON without labelling it. Errors as [`Request::json`], without the 415.
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// let req = Request::new("POST", "/").with_body("[1, 2]");
    /// assert_eq!(req.json_ignoring_content_type::<Vec<u8>>().unwrap(), [1, 2]);
    /// ```
    pub fn json_ignoring_content_type<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        body::json_from_slice(&self.body)
    }

    /// The route parameters deserialized into `T`, numbers and booleans parsed from their
    /// text; `400 Bad Request` naming the parameter otherwise.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// #[derive(Debug, Deserialize)]
    /// #[serde(crate = "wasm_host_sdk::serde")]
    /// struct Path { user: String, post: u32 }   // routes/{user}/posts/{post}/GET.wasm
    ///
    /// let req = Request::new("GET", "/ada/posts/7").with_param("user", "ada").with_param("post", "7");
    /// let path: Path = req.params_as().unwrap();
    /// assert_eq!((path.user.as_str(), path.post), ("ada", 7));
    ///
    /// let req = Request::new("GET", "/ada/posts/x").with_param("user", "ada").with_param("post", "x");
    /// let error = req.params_as::<Path>().unwrap_err();
    /// assert_eq!(error.message, "invalid route parameter `post`: invalid digit found in string");
    /// ```
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let nouns = Nouns { whole: "route parameters", field: "route parameter" };
        body::from_pairs(self.params(), &nouns)
    }

    /// The query string deserialized into `T` (`Option` fields may be absent, numbers and
    /// booleans are parsed from their text); `400 Bad Request` naming the parameter
    /// otherwise.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// #[derive(Debug, Deserialize)]
    /// #[serde(crate = "wasm_host_sdk::serde")]
    /// struct Search { q: String, page: Option<u32> }
    ///
    /// let search: Search = Request::new("GET", "/").with_query("q=rust+wasm").query_as().unwrap();
    /// assert_eq!((search.q.as_str(), search.page), ("rust wasm", None));
    ///
    /// let error = Request::new("GET", "/").with_query("page=2").query_as::<Search>().unwrap_err();
    /// assert_eq!(error.message, "invalid query string: missing field `q`");
    /// let error = Request::new("GET", "/").with_query("q=a&page=-1").query_as::<Search>().unwrap_err();
    /// assert_eq!(error.message, "invalid query parameter `page`: invalid digit found in string");
    /// ```
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let nouns = Nouns { whole: "query string", field: "query parameter" };
        body::from_urlencoded(self.query.as_bytes(), &nouns)
    }

    /// The form fields deserialized into `T`, from an `application/x-www-form-urlencoded`
    /// body or the text fields of a `multipart/form-data` body (files are left out); `400`
    /// naming the field if they do not fit `T`, `415` for another `Content-Type`.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// #[derive(Deserialize)]
    /// #[serde(crate = "wasm_host_sdk::serde")]
    /// struct Login { user: String, remember: bool }
    ///
    /// let req = Request::new("POST", "/login")
    ///     .with_header("Content-Type", "application/x-www-form-urlencoded")
    ///     .with_body("user=ada&remember=true");
    /// let login: Login = req.form().unwrap();
    /// assert!(login.remember);
    /// ```
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let nouns = Nouns { whole: "form", field: "form field" };
        if self.is_multipart() {
            let fields = self.multipart()?.fields()?;
            return body::from_pairs(
                fields.iter().map(|(name, value)| (name.as_str(), value.as_str())),
                &nouns,
            );
        }
        self.check_form_content_type()?;
        body::from_urlencoded(&self.body, &nouns)
    }

    /// The form fields as decoded `(name, value)` pairs, in order, from an
    /// `application/x-www-form-urlencoded` body or the text fields of a `multipart/form-data`
    /// body; `415` for another `Content-Type`.
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// let req = Request::new("POST", "/")
    ///     .with_header("Content-Type", "application/x-www-form-urlencoded")
    ///     .with_body("tag=a&tag=b%26c");
    /// let tags: Vec<String> = req.form_fields().unwrap().into_iter().map(|(_, value)| value).collect();
    /// assert_eq!(tags, ["a", "b&c"]);
    /// ```
    pub fn form_fields(&self) -> Result<Vec<(String, String)>, HttpError> {
        if self.is_multipart() {
            return self.multipart()?.fields();
        }
        self.check_form_content_type()?;
        Ok(body::form_pairs(&self.body))
    }

    /// The body parsed as `multipart/form-data`: text fields and files. `415` for another
    /// `Content-Type`, `400` saying why for a malformed body. The whole body is in memory:
    /// for large uploads, parse it as it arrives with [`Request::multipart_events`].
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// let req = Request::new("POST", "/").with_header("Content-Type", "multipart/form-data; boundary=x");
    /// let error = req.with_body("--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1").multipart().unwrap_err();
    /// assert_eq!(error.message, "malformed multipart body: the body ended inside a part, before its closing boundary");
    /// ```
    pub fn multipart(&self) -> Result<Multipart, HttpError> {
        Multipart::parse(self.multipart_content_type()?, &self.body)
    }

    /// The `Content-Type`, or the 415 a multipart accessor answers without one.
    fn multipart_content_type(&self) -> Result<&str, HttpError> {
        self.content_type()
            .ok_or_else(|| HttpError::new(415, "expected a multipart/form-data body, got no Content-Type"))
    }

    /// From a `stream` hook: feeds this body chunk to a multipart parser kept with the
    /// request and returns the [`PartEvent`]s it completes, so file parts can be processed
    /// as they arrive, in bounded memory. The first call checks the `Content-Type` (415 if it
    /// is not `multipart/form-data`); a malformed body is a 400 saying why. Call
    /// [`Request::multipart_finish`] in `after` to check that the body was complete.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// /// Counts the bytes of every file, keeps the text fields.
    /// #[derive(Default)]
    /// struct Upload { fields: Vec<(String, String)>, file_bytes: u64, current: Option<PartHead>, text: Vec<u8> }
    ///
    /// fn on_chunk(req: &mut Request, chunk: &[u8]) -> Result<(), HttpError> {
    ///     for event in req.multipart_events(chunk)? {
    ///         let upload = req.state_mut::<Upload>();
    ///         match event {
    ///             PartEvent::Head(head) => upload.current = Some(head),
    ///             PartEvent::Data(bytes) if upload.current.as_ref().is_some_and(PartHead::is_file) => {
    ///                 upload.file_bytes += bytes.len() as u64;
    ///             }
    ///             PartEvent::Data(bytes) => upload.text.extend(bytes),
    ///             PartEvent::End => {
    ///                 let head = upload.current.take().expect("a part is open");
    ///                 let text = String::from_utf8_lossy(&std::mem::take(&mut upload.text)).into_owned();
    ///                 if !head.is_file() {
    ///                     upload.fields.push((head.name().to_owned(), text));
    ///                 }
    ///             }
    ///         }
    ///     }
    ///     Ok(())
    /// }
    ///
    /// fn done(mut req: Request) -> Result<String, HttpError> {
    ///     req.multipart_finish()?;
    ///     let upload = req.take_state::<Upload>().unwrap_or_default();
    ///     Ok(format!("{} fields, {} file bytes", upload.fields.len(), upload.file_bytes))
    /// }
    ///
    /// let mut req = Request::new("POST", "/")
    ///     .with_header("Content-Type", "multipart/form-data; boundary=B");
    /// let body = b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n12345\r\n--B--";
    /// for chunk in body.chunks(4) {
    ///     on_chunk(&mut req, chunk).unwrap();
    /// }
    /// assert_eq!(done(req).unwrap(), "0 fields, 5 file bytes");
    /// # export!(stream = on_chunk, after = done);
    /// ```
    pub fn multipart_events(&mut self, chunk: &[u8]) -> Result<Vec<PartEvent>, HttpError> {
        let parser = self.streamed_multipart()?;
        parser.feed(chunk)
    }

    /// From `after`, once a `stream` hook fed the body to [`Request::multipart_events`]:
    /// `Ok` if the body ended with its closing boundary, a 400 saying what is missing
    /// otherwise (an empty body included), a 415 if it is not `multipart/form-data`.
    pub fn multipart_finish(&mut self) -> Result<(), HttpError> {
        self.streamed_multipart()?.finish()
    }

    fn streamed_multipart(&mut self) -> Result<&mut MultipartParser, HttpError> {
        if self.state::<StreamedMultipart>().is_none_or(|streamed| streamed.0.is_none()) {
            let parser = MultipartParser::for_content_type(self.multipart_content_type()?)?;
            self.state_mut::<StreamedMultipart>().0 = Some(parser);
        }
        Ok(self.state_mut::<StreamedMultipart>().0.as_mut().expect("the parser was just set"))
    }

    /// The body converted by its `Content-Type`: nothing, JSON, form fields, text,
    /// multipart fields and files, or bytes (see [`ParsedBody`]); `400` saying why if it
    /// does not parse as its declared type.
    ///
    /// ```
    /// use wasm_host_sdk::prelude::*;
    ///
    /// fn describe(req: Request) -> Result<String, HttpError> {
    ///     Ok(match req.parse_body()? {
    ///         ParsedBody::Empty => "nothing".to_owned(),
    ///         ParsedBody::Json(value) => format!("JSON {value}"),
    ///         ParsedBody::Form(fields) => format!("{} form fields", fields.len()),
    ///         ParsedBody::Text(text) => format!("text {text:?}"),
    ///         ParsedBody::Multipart(form) => format!("{} parts", form.parts().len()),
    ///         ParsedBody::Bytes(bytes) => format!("{} bytes", bytes.len()),
    ///     })
    /// }
    ///
    /// let req = Request::new("POST", "/").with_header("Content-Type", "text/plain").with_body("hi");
    /// assert_eq!(describe(req).unwrap(), "text \"hi\"");
    /// ```
    pub fn parse_body(&self) -> Result<ParsedBody<'_>, HttpError> {
        body::parse(self.content_type(), &self.body)
    }

    /// The value of the cookie `name` the client sent (`Cookie` header), percent-decoded, or
    /// `None`. The first one wins if the name repeats.
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// let req = Request::new("GET", "/").with_header("Cookie", "theme=dark; session=a%20b");
    /// assert_eq!(req.cookie("session").as_deref(), Some("a b"));
    /// assert_eq!(req.cookie("missing"), None);
    /// ```
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// Every cookie the client sent as decoded `(name, value)` pairs, in order.
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// let req = Request::new("GET", "/").with_header("Cookie", "a=1; b=2");
    /// assert_eq!(req.cookies().map(|(name, _)| name).collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn cookies(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(parse_cookie_header)
    }

    /// Whether the `Accept` header prefers JSON to text: the rule by which an
    /// [`HttpError`] is answered as `{"error": ...}` (see
    /// [*Text or JSON*](HttpError#text-or-json)).
    ///
    /// ```
    /// # use wasm_host_sdk::Request;
    /// assert!(Request::new("GET", "/").with_header("Accept", "application/json").accepts_json());
    /// assert!(!Request::new("GET", "/").with_header("Accept", "*/*").accepts_json());
    /// ```
    pub fn accepts_json(&self) -> bool {
        self.header("accept").is_some_and(media_type::accept_prefers_json)
    }

    fn is_multipart(&self) -> bool {
        self.content_type().is_some_and(|content_type| body::essence(content_type) == "multipart/form-data")
    }

    fn check_form_content_type(&self) -> Result<(), HttpError> {
        match self.content_type() {
            Some(content_type) if body::essence(content_type) == "application/x-www-form-urlencoded" => {
                Ok(())
            }
            other => Err(HttpError::new(
                415,
                format!(
                    "expected a form body (Content-Type: application/x-www-form-urlencoded or \
                     multipart/form-data), got {}",
                    other.map_or_else(|| "no Content-Type".to_owned(), |ct| format!("Content-Type: {ct}"))
                ),
            )),
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` name or value: `+` is a space, `%XX` a byte;
/// a `%` not followed by two hex digits is kept as is.
fn decode_query_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match (hex_at(bytes, i + 1), hex_at(bytes, i + 2)) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 2;
                }
                _ => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The value of the hex digit at `bytes[index]`, if there is one.
fn hex_at(bytes: &[u8], index: usize) -> Option<u8> {
    let digit = char::from(*bytes.get(index)?).to_digit(16)?;
    u8::try_from(digit).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_plus_and_percent_escapes() {
        let req = Request::new("GET", "/").with_query("q=a+b%20c%2B&x=%E2%82%AC");
        assert_eq!(req.query("q").as_deref(), Some("a b c+"));
        assert_eq!(req.query("x").as_deref(), Some("€"));
    }

    #[test]
    fn query_keeps_invalid_escapes_and_replaces_invalid_utf8() {
        let req = Request::new("GET", "/").with_query("a=%zz%4&b=%ff&c=100%");
        assert_eq!(req.query("a").as_deref(), Some("%zz%4"));
        assert_eq!(req.query("b").as_deref(), Some("\u{fffd}"));
        assert_eq!(req.query("c").as_deref(), Some("100%"));
    }

    #[test]
    fn query_returns_first_value_and_empty_for_bare_names() {
        let req = Request::new("GET", "/").with_query("a=1&&a=2&flag&b=");
        assert_eq!(req.query("a").as_deref(), Some("1"));
        assert_eq!(req.query("flag").as_deref(), Some(""));
        assert_eq!(req.query("b").as_deref(), Some(""));
        assert_eq!(req.query("missing"), None);
        let pairs: Vec<_> = req.query_pairs().collect();
        assert_eq!(pairs.len(), 4);
    }

    #[test]
    fn decoded_name_matches() {
        let req = Request::new("GET", "/").with_query("my%20key=v");
        assert_eq!(req.query("my key").as_deref(), Some("v"));
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_utf8_only() {
        let req = Request::new("GET", "/")
            .with_header("X-Bin", vec![0xff, 0x41])
            .with_header("Accept", "text/html")
            .with_header("accept", "second");
        assert_eq!(req.header("ACCEPT"), Some("text/html"));
        assert_eq!(req.header("x-bin"), None);
        assert_eq!(req.header_bytes("x-bin"), Some(&[0xff, 0x41][..]));
        assert_eq!(req.headers().count(), 3);
    }

    #[test]
    fn text_and_json_errors_are_bad_requests() {
        let req = Request::new("POST", "/").with_body(vec![0xff]);
        assert_eq!(req.text().unwrap_err().status, 400);
        let json =
            || Request::new("POST", "/").with_header("content-type", "application/json; charset=utf-8");
        let error = json().with_body("{").json::<serde_json::Value>().unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("EOF"), "{}", error.message);
        assert!(error.is_json());
        assert_eq!(json().with_body("").json::<serde_json::Value>().unwrap_err().status, 400);
    }

    #[test]
    fn json_checks_the_content_type() {
        let error = Request::new("POST", "/").with_body("{}").json::<serde_json::Value>().unwrap_err();
        assert_eq!(error.status, 415);
        assert!(error.message.contains("got no Content-Type"), "{}", error.message);
        let req = Request::new("POST", "/").with_header("Content-Type", "text/plain").with_body("{}");
        let error = req.json::<serde_json::Value>().unwrap_err();
        assert!(error.message.ends_with("got Content-Type: text/plain"), "{}", error.message);
        assert!(req.json_ignoring_content_type::<serde_json::Value>().is_ok());
        let problem = Request::new("POST", "/").with_header("Content-Type", "application/merge-patch+json");
        assert!(problem.with_body("{}").json::<serde_json::Value>().is_ok());
    }

    #[test]
    fn form_reads_urlencoded_and_multipart_fields() {
        #[derive(Debug, serde::Deserialize)]
        struct Form {
            a: u8,
            b: String,
        }
        let urlencoded = Request::new("POST", "/")
            .with_header("Content-Type", "application/x-www-form-urlencoded")
            .with_body("a=1&b=x+y");
        let form: Form = urlencoded.form().unwrap();
        assert_eq!((form.a, form.b.as_str()), (1, "x y"));
        let multipart = Request::new("POST", "/")
            .with_header("Content-Type", "multipart/form-data; boundary=q")
            .with_body(
                "--q\r\nContent-Disposition: form-data; name=a\r\n\r\n300\r\n--q\r\n\
                 Content-Disposition: form-data; name=f; filename=x\r\n\r\nFILE\r\n\
                 --q\r\nContent-Disposition: form-data; name=b\r\n\r\nz\r\n--q--",
            );
        assert_eq!(multipart.form_fields().unwrap().len(), 2, "files are not fields");
        let error = multipart.form::<Form>().unwrap_err();
        assert_eq!(error.message, "invalid form field `a`: number too large to fit in target type");
        let json = Request::new("POST", "/").with_header("Content-Type", "application/json");
        assert_eq!(json.form::<Form>().unwrap_err().status, 415);
    }

    #[test]
    fn streamed_multipart_needs_its_content_type_and_an_end() {
        let mut req = Request::new("POST", "/").with_header("Content-Type", "text/plain");
        assert_eq!(req.multipart_events(b"x").unwrap_err().status, 415);
        let error = Request::new("POST", "/").multipart().unwrap_err();
        assert_eq!(
            (error.status, error.message.as_str()),
            (415, "expected a multipart/form-data body, got no Content-Type")
        );
        let mut req =
            Request::new("POST", "/").with_header("Content-Type", "multipart/form-data; boundary=b");
        assert_eq!(req.multipart_finish().unwrap_err().status, 400, "an empty body is not a form");
        let events = req.multipart_events(b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1").unwrap();
        assert!(matches!(events.as_slice(), [PartEvent::Head(_)]), "{events:?}");
        assert!(req.multipart_finish().is_err());
        req.multipart_events(b"\r\n--b--").unwrap();
        req.multipart_finish().unwrap();
    }

    #[test]
    fn cookies_from_every_cookie_header() {
        let req =
            Request::new("GET", "/").with_header("Cookie", "a=1; b=2").with_header("cookie", "c=3; a=4");
        assert_eq!(req.cookie("a").as_deref(), Some("1"));
        assert_eq!(req.cookie("c").as_deref(), Some("3"));
        assert_eq!(req.cookies().count(), 4);
    }
}
