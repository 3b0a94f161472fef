//! [`Event`]: one Server-Sent Event of a [`Response::events`](crate::Response::events) stream.

use serde::Serialize;

use crate::error::HttpError;

/// One Server-Sent Event: data, and optionally an event type, an id and a retry delay.
///
/// The host writes it in the `text/event-stream` format, one `data:` line per line of data.
///
/// ```
/// use wasm_host_sdk::Event;
///
/// let tick = Event::data("line one\nline two").event("tick").id("7").retry(1000);
/// assert_eq!(tick.event_type(), Some("tick"));
///
/// // Names and ids coming from outside: check them instead of panicking.
/// assert!(Event::data("x").try_event("bad\nname").is_err());
/// ```
///
/// Event types and ids are single lines: [`Event::event`] and [`Event::id`] panic when given
/// CR or LF (or NUL, for ids), like a bad literal would; [`Event::try_event`] and
/// [`Event::try_id`] return an error instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) event: Option<String>,
    pub(crate) data: String,
    pub(crate) id: Option<String>,
    pub(crate) retry: Option<u32>,
}

impl Event {
    /// An event of the default type (`message`) carrying `data`. The data may span several
    /// lines: the client receives them joined with `\n`.
    pub fn data(data: impl Into<String>) -> Self {
        Self { event: None, data: data.into(), id: None, retry: None }
    }

    /// An event whose data is `value` as compact JSON.
    ///
    /// # Panics
    ///
    /// If `value` cannot be serialized (a map with non-string keys, a failing `Serialize`
    /// implementation); see [`Event::try_json`].
    pub fn json(value: &impl Serialize) -> Self {
        match Self::try_json(value) {
            Ok(event) => event,
            Err(error) => panic!("cannot serialize the event data: {}", error.message),
        }
    }

    /// An event whose data is `value` as compact JSON, or a 500 error if it cannot be
    /// serialized.
    pub fn try_json(value: &impl Serialize) -> Result<Self, HttpError> {
        serde_json::to_string(value)
            .map(Self::data)
            .map_err(|error| HttpError::internal(format!("cannot serialize JSON: {error}")))
    }

    /// Sets the event type (the `event:` field), which selects the client's listener.
    ///
    /// # Panics
    ///
    /// If `name` contains CR or LF; see [`Event::try_event`].
    pub fn event(self, name: impl Into<String>) -> Self {
        self.try_event(name).unwrap_or_else(|error| panic!("{}", error.message))
    }

    /// Sets the event type, or fails with a 500 error if `name` contains CR or LF.
    pub fn try_event(mut self, name: impl Into<String>) -> Result<Self, HttpError> {
        let name = name.into();
        if name.contains(['\r', '\n']) {
            return Err(HttpError::internal(format!("an event type must not contain CR or LF: {name:?}")));
        }
        self.event = Some(name);
        Ok(self)
    }

    /// Sets the event id (the `id:` field), which the client sends back in `Last-Event-ID`
    /// when it reconnects.
    ///
    /// # Panics
    ///
    /// If `id` contains CR, LF or NUL; see [`Event::try_id`].
    pub fn id(self, id: impl Into<String>) -> Self {
        self.try_id(id).unwrap_or_else(|error| panic!("{}", error.message))
    }

    /// Sets the event id, or fails with a 500 error if `id` contains CR, LF or NUL.
    pub fn try_id(mut self, id: impl Into<String>) -> Result<Self, HttpError> {
        let id = id.into();
        if id.contains(['\r', '\n', '\0']) {
            return Err(HttpError::internal(format!("an event id must not contain CR, LF or NUL: {id:?}")));
        }
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the delay in milliseconds the client waits before reconnecting (the `retry:`
    /// field).
    pub fn retry(mut self, milliseconds: u32) -> Self {
        self.retry = Some(milliseconds);
        self
    }

    /// The data of the event.
    pub fn data_text(&self) -> &str {
        &self.data
    }

    /// The event type, if set (none means `message`).
    pub fn event_type(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The event id, if set.
    pub fn event_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The retry delay in milliseconds, if set.
    pub fn retry_ms(&self) -> Option<u32> {
        self.retry
    }
}

/// An event of the default type with this data.
impl From<String> for Event {
    fn from(data: String) -> Self {
        Self::data(data)
    }
}

/// An event of the default type with this data.
impl From<&str> for Event {
    fn from(data: &str) -> Self {
        Self::data(data)
    }
}
