//! Topics: named logs that handlers publish to and wait on, shared by every handler of the host
//! (and, with Redis, of every host sharing it). Each message gets an id, one more than the
//! previous message of its topic; the host retains the latest messages (1000, for at most a
//! day) so that a subscriber can start after the last id it saw and miss nothing.
//!
//! A request can wait for a message in two ways:
//!
//! - [`Subscription::next_timeout`] waits inside the handler: only this request's instance
//!   suspends, never a host thread, but the instance (its memory, ≈50 KiB) is held all along.
//!   Right for a stream that sends message after message.
//! - [`Subscription::park`] answers later: the handler returns, the host waits without any
//!   instance (a few KiB per request) and runs the handler again, on the same request, when a
//!   message comes, or sends the response it parked with at the timeout. Right for a long poll
//!   that answers once; 10,000 of them fit in the memory of 1,000 waiting instances.
//!
//! Either wait ends with its own timeout or shortly before the request's deadline, whichever
//! comes first.
//!
//! A long poll that answers the messages newer than `after` at once, or else parks until the
//! next one comes (and answers 204 if none comes within 25 s):
//!
//! ```no_run
//! use std::time::Duration;
//! use wasm_host_sdk::prelude::*;
//! use wasm_host_sdk::topic;
//!
//! fn wait(req: Request) -> Result<Response, HttpError> {
//!     let after = req.query("after").map(|a| a.parse::<u64>()).transpose()?;
//!     let mut messages = topic::subscribe("jobs", after)?;
//!     let ready = messages.ready(100)?;
//!     if ready.is_empty() {
//!         // Runs `wait` again once a message comes: then `ready` has it.
//!         return Ok(messages.park(Duration::from_secs(25), Response::new(204)));
//!     }
//!     let texts: Vec<String> = ready.iter().map(|m| m.text()).collect();
//!     Ok(Response::text(texts.join("\n")))
//! }
//! # export!(wait);
//! ```
//!
//! A Server-Sent Events stream that resumes where the client's `Last-Event-ID` left off: a
//! [`Subscription`] is an iterator of [`Message`]s, and a message converts into an [`Event`]
//! with its id.
//!
//! ```no_run
//! use wasm_host_sdk::prelude::*;
//! use wasm_host_sdk::topic;
//!
//! fn events(req: Request) -> Result<Response, HttpError> {
//!     Ok(Response::events(topic::resume("chat", &req)?))
//! }
//! # export!(events);
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasm_host::http::topics as wit;
use crate::event::Event;
use crate::kv::StateError;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

/// A message of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id: 1 for a topic's first message, one more for each after it.
    pub id: u64,
    /// Its payload, as published.
    pub data: Vec<u8>,
}

impl Message {
    /// The payload as text (invalid UTF-8 replaced by U+FFFD).
    ///
    /// ```
    /// use wasm_host_sdk::topic::Message;
    ///
    /// assert_eq!(Message { id: 1, data: b"hi".to_vec() }.text(), "hi");
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The payload decoded from JSON (what [`publish`] writes).
    ///
    /// ```
    /// use wasm_host_sdk::topic::Message;
    ///
    /// let m = Message { id: 1, data: br#"{"n": 2}"#.to_vec() };
    /// let v: wasm_host_sdk::serde_json::Value = m.json().unwrap();
    /// assert_eq!(v["n"], 2);
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StateError> {
        serde_json::from_slice(&self.data)
            .map_err(|e| StateError::Decode(format!("message {} is not the JSON expected: {e}", self.id)))
    }
}

/// A message as a Server-Sent Event: the payload as data, the message id as event id (so a
/// reconnecting client's `Last-Event-ID` says where to resume).
///
/// ```
/// use wasm_host_sdk::Event;
/// use wasm_host_sdk::topic::Message;
///
/// let event = Event::from(Message { id: 7, data: b"hello".to_vec() });
/// assert_eq!(event, Event::data("hello").id("7"));
/// ```
impl From<Message> for Event {
    fn from(message: Message) -> Self {
        Event::data(message.text()).id(message.id.to_string())
    }
}

/// Appends `message`, as JSON, to `topic` and wakes its waiters; the message's id.
///
/// ```no_run
/// use wasm_host_sdk::topic;
/// use wasm_host_sdk::serde_json::json;
///
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// let id = topic::publish("orders", &json!({ "order": 42 }))?;
/// # Ok(()) }
/// ```
pub fn publish<T: Serialize + ?Sized>(topic: &str, message: &T) -> Result<u64, StateError> {
    let data = serde_json::to_vec(message)
        .map_err(|e| StateError::BadArgument(format!("cannot serialize the message: {e}")))?;
    publish_bytes(topic, &data)
}

/// Appends the raw bytes `data` to `topic` and wakes its waiters; the message's id.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// let id = wasm_host_sdk::topic::publish_bytes("chat", b"hello")?;
/// # Ok(()) }
/// ```
pub fn publish_bytes(topic: &str, data: &[u8]) -> Result<u64, StateError> {
    Ok(wit::publish(topic, data)?)
}

/// Starts reading `topic` after message `after`: retained messages with a larger id come
/// first, then new ones as they are published. With `None`, only messages published from now
/// on. Subscribe first, then wait: a message published in between is never lost.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// // Everything retained, then new messages.
/// let all = wasm_host_sdk::topic::subscribe("chat", Some(0))?;
/// # Ok(()) }
/// ```
pub fn subscribe(topic: &str, after: Option<u64>) -> Result<Subscription, StateError> {
    Ok(Subscription { inner: wit::subscribe(topic, after)?, timeout: None, error: None })
}

/// [`subscribe`] after the request's `Last-Event-ID` (what a reconnecting `EventSource` sends),
/// or to new messages only when there is none. A `Last-Event-ID` that is not a message id is
/// a [`StateError::BadArgument`] (400).
///
/// ```no_run
/// use wasm_host_sdk::prelude::*;
///
/// fn events(req: Request) -> Result<Response, HttpError> {
///     Ok(Response::events(wasm_host_sdk::topic::resume("news", &req)?))
/// }
/// # export!(events);
/// ```
pub fn resume(topic: &str, req: &Request) -> Result<Subscription, StateError> {
    subscribe(topic, last_event_id(req)?)
}

/// The request's `Last-Event-ID` as a message id, `None` when absent or empty.
///
/// ```
/// use wasm_host_sdk::Request;
/// use wasm_host_sdk::topic::last_event_id;
///
/// let req = Request::new("GET", "/events").with_header("last-event-id", "41");
/// assert_eq!(last_event_id(&req), Ok(Some(41)));
/// assert!(last_event_id(&Request::new("GET", "/").with_header("last-event-id", "x")).is_err());
/// ```
pub fn last_event_id(req: &Request) -> Result<Option<u64>, StateError> {
    match req.header("last-event-id").map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) => id
            .parse()
            .map(Some)
            .map_err(|_| StateError::BadArgument(format!("Last-Event-ID {id:?} is not a message id"))),
    }
}

/// A position in a topic. [`next_timeout`](Self::next_timeout) waits for the next message; as an
/// [`Iterator`] it yields messages until a wait ends without one ([`with_timeout`]
/// (Self::with_timeout), or the request's deadline) or the store fails ([`error`](Self::error)
/// says why).
#[derive(Debug)]
pub struct Subscription {
    inner: wit::Subscription,
    timeout: Option<Duration>,
    error: Option<StateError>,
}

impl Subscription {
    /// The next message, waiting up to `timeout` for one; `None` if none came (also when the
    /// request's deadline is near). `Duration::ZERO` only takes what is already there.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, StateError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.fetch(Some(ms))
    }

    /// The next message, waiting for as long as the request may run; `None` at its deadline.
    pub fn next_message(&mut self) -> Result<Option<Message>, StateError> {
        self.fetch(None)
    }

    fn fetch(&mut self, timeout_ms: Option<u64>) -> Result<Option<Message>, StateError> {
        Ok(self.inner.next(timeout_ms)?.map(|m| Message { id: m.id, data: m.data }))
    }

    /// As an iterator, end when no message came for `timeout` (instead of at the deadline).
    ///
    /// ```no_run
    /// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
    /// use std::time::Duration;
    /// let recent: Vec<_> = wasm_host_sdk::topic::subscribe("chat", Some(0))?
    ///     .with_timeout(Duration::ZERO)
    ///     .collect();
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The messages already there, up to `max`, oldest first, without waiting for any.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
    /// let mut news = wasm_host_sdk::topic::subscribe("news", Some(0))?;
    /// let first_ten = news.ready(10)?;
    /// # Ok(()) }
    /// ```
    pub fn ready(&mut self, max: usize) -> Result<Vec<Message>, StateError> {
        let mut ready = Vec::new();
        while ready.len() < max {
            match self.fetch(Some(0))? {
                Some(message) => ready.push(message),
                None => break,
            }
        }
        Ok(ready)
    }

    /// Parks the request until this topic has a message after this subscription's
    /// [`position`](Self::position), and returns `otherwise` for the handler to return.
    ///
    /// The host then drops this instance and waits without one. When a message comes, it runs
    /// the handler again, from the start, on the same request, in a fresh instance; there a
    /// subscription to this topic starts at this position (or later, if it asks for later), so
    /// the handler finds the message (with [`ready`](Self::ready), say) and answers. If
    /// `timeout` passes first, or the request's deadline comes near, or the host shuts down,
    /// the client gets `otherwise`. A handler run again may park again; its wait never ends
    /// later than this one's would.
    ///
    /// Only for a request without a body, with an `otherwise` of a whole body
    /// (not [`Response::chunked`] or [`Response::events`]): anything else is a 500. Whatever
    /// the handler did before parking it does again in the next run: park before writing
    /// anything.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use wasm_host_sdk::prelude::*;
    ///
    /// fn next_job(req: Request) -> Result<Response, HttpError> {
    ///     let mut jobs = wasm_host_sdk::topic::subscribe("jobs", None)?;
    ///     match jobs.ready(1)?.pop() {
    ///         Some(job) => Ok(Response::text(job.text())),
    ///         None => Ok(jobs.park(Duration::from_secs(25), Response::new(204))),
    ///     }
    /// }
    /// # export!(next_job);
    /// ```
    pub fn park(self, timeout: Duration, otherwise: impl IntoResponse) -> Response {
        self.inner.park(Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)));
        otherwise.into_response()
    }

    /// The id of the last message handed out, or the starting point before the first.
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// Why iteration ended, if it was an error rather than a timeout.
    pub fn error(&self) -> Option<&StateError> {
        self.error.as_ref()
    }
}

impl Iterator for Subscription {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        let result = match self.timeout {
            Some(timeout) => self.next_timeout(timeout),
            None => self.next_message(),
        };
        match result {
            Ok(message) => message,
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }
}
