//! Server-Sent Events encoding (HTML standard §9.2.5, "event stream interpretation"): one
//! event in, its `text/event-stream` bytes out.

/// The head fields every event stream gets; a producer's own `content-type` and
/// `cache-control` are replaced by these.
pub const SSE_HEADERS: [(&str, &[u8]); 2] =
    [("content-type", b"text/event-stream"), ("cache-control", b"no-cache")];

/// A comment line sent on idle streams so proxies and clients keep the connection.
pub const SSE_KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// One event to encode; the fields borrow from whoever produced it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field (the event type); must not contain CR or LF.
    pub event: Option<&'a str>,
    /// The `id:` field; must not contain CR, LF or NUL.
    pub id: Option<&'a str>,
    /// The payload: each line becomes one `data:` line.
    pub data: &'a str,
    /// The `retry:` field, in milliseconds.
    pub retry: Option<u32>,
}

/// An event that cannot be encoded without changing its meaning on the wire.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// The event type holds a line break, which would start a new field.
    #[error("event name contains a line break")]
    BadEventName,
    /// The id holds a line break or NUL (a NUL makes clients ignore the id).
    #[error("event id contains a line break or NUL")]
    BadId,
}

/// Appends `event` to `out`. Multi-line data (split on CRLF, CR or LF, the three line endings
/// an event stream recognises) becomes several `data:` lines.
///
/// # Errors
///
/// [`SseError`] when the name or id would change the stream's framing; nothing is appended.
pub fn encode_event(out: &mut Vec<u8>, event: &SseEvent<'_>) -> Result<(), SseError> {
    let breaks = |s: &str| s.contains(['\r', '\n']);
    if event.event.is_some_and(breaks) {
        return Err(SseError::BadEventName);
    }
    if event.id.is_some_and(|id| breaks(id) || id.contains('\0')) {
        return Err(SseError::BadId);
    }
    out.reserve(event.data.len() + 16);
    if let Some(name) = event.event {
        push_field(out, b"event: ", name.as_bytes());
    }
    if let Some(id) = event.id {
        push_field(out, b"id: ", id.as_bytes());
    }
    if let Some(retry) = event.retry {
        push_field(out, b"retry: ", retry.to_string().as_bytes());
    }
    let mut rest = event.data.as_bytes();
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
            push_field(out, b"data: ", rest);
            break;
        };
        push_field(out, b"data: ", &rest[..end]);
        let skip = if rest[end..].starts_with(b"\r\n") { 2 } else { 1 };
        rest = &rest[end + skip..];
    }
    out.push(b'\n');
    Ok(())
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(event: &SseEvent<'_>) -> String {
        let mut out = Vec::new();
        encode_event(&mut out, event).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn multi_line_event_data_becomes_several_data_lines() {
        let e = SseEvent {
            event: Some("multi"),
            id: Some("7"),
            data: "one\ntwo\r\nthree\rfour",
            retry: Some(1500),
        };
        assert_eq!(
            encode(&e),
            "event: multi\nid: 7\nretry: 1500\ndata: one\ndata: two\ndata: three\ndata: four\n\n"
        );
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(encode(&SseEvent::default()), "data: \n\n");
        assert_eq!(encode(&SseEvent { data: "a\n", ..SseEvent::default() }), "data: a\ndata: \n\n");
    }

    #[test]
    fn event_name_with_a_line_break_is_rejected() {
        let mut out = b"kept".to_vec();
        let e = SseEvent { event: Some("a\nb"), ..SseEvent::default() };
        assert_eq!(encode_event(&mut out, &e), Err(SseError::BadEventName));
        let e = SseEvent { event: Some("a\rb"), ..SseEvent::default() };
        assert_eq!(encode_event(&mut out, &e), Err(SseError::BadEventName));
        assert_eq!(out, b"kept");
    }

    #[test]
    fn id_with_a_line_break_or_nul_is_rejected() {
        for id in ["a\0", "a\nb", "\r"] {
            let e = SseEvent { id: Some(id), ..SseEvent::default() };
            assert_eq!(encode_event(&mut Vec::new(), &e), Err(SseError::BadId), "{id:?}");
        }
    }

    #[test]
    fn keepalive_is_a_comment() {
        assert!(SSE_KEEPALIVE.starts_with(b":") && SSE_KEEPALIVE.ends_with(b"\n\n"));
    }
}
