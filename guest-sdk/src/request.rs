//! [`Request`]: the request head the host sent, plus the body the SDK buffered.

use std::any::Any;
use std::collections::VecDeque;

use serde::de::DeserializeOwned;

use crate::bindings;
use crate::error::HttpError;

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

    /// The body as text, or `400 Bad Request` if it is not UTF-8.
    pub fn text(&self) -> Result<&str, HttpError> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON, or `400 Bad Request` with serde's message. An empty body is
    /// an error too: check [`Request::body`] first if it is allowed.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        Ok(serde_json::from_slice(&self.body)?)
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
        let error = Request::new("POST", "/").with_body("{").json::<serde_json::Value>().unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("EOF"), "{}", error.message);
    }
}
