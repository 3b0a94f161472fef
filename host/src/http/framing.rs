//! Response framing: the one decision of how a response is delimited on the wire
//! ([`plan_response`]), and the body encoder that frames and counts what follows its head
//! ([`BodyEncoder`]). Sans-IO: it hands out the byte slices to write, in order; the caller
//! writes them.

use super::head::Version;
use super::response::{
    CHUNK_TRAILER, ChunkHeader, LAST_CHUNK, ResponseFraming, chunk_header, status_allows_body,
};

/// What kind of body a response has, as its producer declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// The whole body is known now: this many bytes, sent with the head.
    Full(u64),
    /// A stream of exactly this many bytes (`Content-Length`), produced after the head.
    Sized(u64),
    /// A stream of unknown length (chunked for HTTP/1.1, until close for HTTP/1.0).
    Stream,
    /// A Server-Sent Events stream (`text/event-stream`), framed like [`BodyKind::Stream`].
    Events,
}

/// How one response goes on the wire, decided by [`plan_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponsePlan {
    /// The framing to write in the head.
    pub framing: ResponseFraming,
    /// Whether body bytes follow the head. False for HEAD requests and for statuses that
    /// cannot have content, whatever the producer declared.
    pub send_body: bool,
    /// Whether the connection can serve another request after this response.
    pub keep_alive: bool,
    /// Whether the response is an event stream (the head gets `content-type:
    /// text/event-stream` and `cache-control: no-cache`).
    pub event_stream: bool,
}

/// Decides how a response with `status` and a body of `kind` is framed for a request with
/// method HEAD (`head_request`) or not, of protocol `version`, on a connection that may
/// stay open (`keep_alive`).
///
/// - 1xx, 204 and 304 have no body and no framing header (RFC 9110 §6.4.1, RFC 9112 §6.1);
///   205 has an empty body (RFC 9110 §15.3.6).
/// - A response to HEAD carries no content (RFC 9110 §9.3.2); a known length is still
///   announced, a stream's is not.
/// - A stream of unknown length is chunked, except for HTTP/1.0, which cannot decode chunked:
///   then it runs until the connection closes (RFC 9112 §6.3 rule 8).
#[must_use]
pub fn plan_response(
    head_request: bool,
    version: Version,
    status: u16,
    kind: BodyKind,
    keep_alive: bool,
) -> ResponsePlan {
    let event_stream = matches!(kind, BodyKind::Events) && status_allows_body(status);
    let (framing, send_body, keep_alive) = match kind {
        _ if !status_allows_body(status) => (ResponseFraming::NoBody, false, keep_alive),
        _ if status == 205 => (ResponseFraming::Length(0), false, keep_alive),
        BodyKind::Full(n) | BodyKind::Sized(n) => (ResponseFraming::Length(n), !head_request, keep_alive),
        BodyKind::Stream | BodyKind::Events if head_request => (ResponseFraming::NoBody, false, keep_alive),
        BodyKind::Stream | BodyKind::Events if version == Version::Http10 => {
            (ResponseFraming::UntilClose, true, false)
        }
        BodyKind::Stream | BodyKind::Events => (ResponseFraming::Chunked, true, keep_alive),
    };
    ResponsePlan { framing, send_body, keep_alive, event_stream }
}

/// Why a streamed body cannot be completed correctly. After any of these the connection must
/// be aborted: the client cannot tell where the body ends.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// A sized body was given more bytes than it declared.
    #[error("sized body ran longer than its declared {declared} bytes")]
    TooLong {
        /// The declared length.
        declared: u64,
    },
    /// A sized body ended before its declared length.
    #[error("sized body ended after {sent} of its declared {declared} bytes")]
    TooShort {
        /// Bytes produced.
        sent: u64,
        /// The declared length.
        declared: u64,
    },
}

/// One piece of body data framed for the wire: write [`parts`](Self::parts) in order.
#[derive(Debug)]
pub struct Framed<'a> {
    header: Option<ChunkHeader>,
    data: &'a [u8],
    trailer: &'static [u8],
}

impl<'a> Framed<'a> {
    /// The chunk size line (if chunked), the data, and the chunk's CRLF (if chunked).
    #[must_use]
    pub fn parts(&self) -> [&[u8]; 3] {
        [self.header.as_ref().map_or(&[][..], ChunkHeader::as_bytes), self.data, self.trailer]
    }

    /// The number of bytes the parts add up to.
    #[must_use]
    pub fn wire_len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }
}

/// Frames the pieces of a streamed body according to its [`ResponseFraming`] and checks a
/// sized body's length: never an extra or a missing byte on the wire.
#[derive(Debug)]
pub struct BodyEncoder {
    framing: ResponseFraming,
    /// Body bytes framed so far (before framing overhead).
    sent: u64,
    /// A sized body was offered more than it declared: everything after is an error.
    overflowed: bool,
}

impl BodyEncoder {
    /// An encoder for a body framed as `framing`.
    #[must_use]
    pub fn new(framing: ResponseFraming) -> Self {
        Self { framing, sent: 0, overflowed: false }
    }

    /// Body bytes framed so far.
    #[must_use]
    pub fn body_bytes(&self) -> u64 {
        self.sent
    }

    /// Frames `data`. An empty `data` frames to nothing (a zero-size chunk would end a chunked
    /// body). For a sized body that `data` would overrun, only the bytes up to the declared
    /// length are framed; the next call (or [`finish`](Self::finish)) then fails.
    ///
    /// # Errors
    ///
    /// [`BodyError::TooLong`] once a sized body has been offered more than its length.
    pub fn frame<'a>(&mut self, data: &'a [u8]) -> Result<Framed<'a>, BodyError> {
        let empty = Framed { header: None, data: &[], trailer: &[] };
        match self.framing {
            ResponseFraming::Length(declared) => {
                if self.overflowed {
                    return Err(BodyError::TooLong { declared });
                }
                let room = declared - self.sent;
                let take = room.min(data.len() as u64) as usize;
                self.overflowed = take < data.len();
                self.sent += take as u64;
                Ok(Framed { data: &data[..take], ..empty })
            }
            _ if data.is_empty() => Ok(empty),
            ResponseFraming::Chunked => {
                self.sent += data.len() as u64;
                Ok(Framed { header: Some(chunk_header(data.len())), data, trailer: CHUNK_TRAILER })
            }
            ResponseFraming::UntilClose | ResponseFraming::NoBody => {
                self.sent += data.len() as u64;
                Ok(Framed { data, ..empty })
            }
        }
    }

    /// Ends the body: returns the bytes that close it (the last chunk for chunked, nothing
    /// otherwise).
    ///
    /// # Errors
    ///
    /// [`BodyError::TooShort`] if a sized body has fewer bytes than declared,
    /// [`BodyError::TooLong`] if it was offered more.
    pub fn finish(&mut self) -> Result<&'static [u8], BodyError> {
        match self.framing {
            ResponseFraming::Chunked => Ok(LAST_CHUNK),
            ResponseFraming::Length(declared) if self.overflowed => Err(BodyError::TooLong { declared }),
            ResponseFraming::Length(declared) if self.sent != declared => {
                Err(BodyError::TooShort { sent: self.sent, declared })
            }
            ResponseFraming::Length(_) | ResponseFraming::UntilClose | ResponseFraming::NoBody => Ok(&[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(f: &Framed<'_>) -> Vec<u8> {
        f.parts().concat()
    }

    #[test]
    fn head_requests_never_get_content() {
        for kind in [BodyKind::Full(5), BodyKind::Sized(5), BodyKind::Stream, BodyKind::Events] {
            let plan = plan_response(true, Version::Http11, 200, kind, true);
            assert!(!plan.send_body, "{kind:?}");
            assert!(plan.keep_alive, "{kind:?}");
        }
        assert_eq!(
            plan_response(true, Version::Http11, 200, BodyKind::Full(5), true).framing,
            ResponseFraming::Length(5)
        );
        assert_eq!(
            plan_response(true, Version::Http11, 200, BodyKind::Stream, true).framing,
            ResponseFraming::NoBody
        );
    }

    #[test]
    fn no_content_statuses_have_no_framing_and_no_body() {
        for status in [204, 304] {
            for kind in [BodyKind::Full(5), BodyKind::Sized(5), BodyKind::Stream, BodyKind::Events] {
                let plan = plan_response(false, Version::Http11, status, kind, true);
                assert_eq!(plan.framing, ResponseFraming::NoBody);
                assert!(!plan.send_body && !plan.event_stream);
            }
        }
    }

    #[test]
    fn reset_content_is_sent_with_an_empty_body() {
        let plan = plan_response(false, Version::Http11, 205, BodyKind::Full(5), true);
        assert_eq!(plan.framing, ResponseFraming::Length(0));
        assert!(!plan.send_body);
    }

    #[test]
    fn streams_are_chunked_for_http_1_1_and_until_close_for_http_1_0() {
        let p = plan_response(false, Version::Http11, 200, BodyKind::Stream, true);
        assert_eq!((p.framing, p.send_body, p.keep_alive), (ResponseFraming::Chunked, true, true));
        let p = plan_response(false, Version::Http10, 200, BodyKind::Events, true);
        assert_eq!((p.framing, p.send_body, p.keep_alive), (ResponseFraming::UntilClose, true, false));
        assert!(p.event_stream);
    }

    #[test]
    fn known_lengths_are_content_length() {
        let p = plan_response(false, Version::Http10, 200, BodyKind::Sized(7), true);
        assert_eq!((p.framing, p.send_body, p.keep_alive), (ResponseFraming::Length(7), true, true));
        let p = plan_response(false, Version::Http11, 404, BodyKind::Full(3), false);
        assert_eq!((p.framing, p.send_body, p.keep_alive), (ResponseFraming::Length(3), true, false));
    }

    #[test]
    fn chunked_encoder_frames_each_piece_and_skips_empty_ones() {
        let mut e = BodyEncoder::new(ResponseFraming::Chunked);
        assert_eq!(wire(&e.frame(b"hello").unwrap()), b"5\r\nhello\r\n");
        assert_eq!(e.frame(b"").unwrap().wire_len(), 0);
        assert_eq!(wire(&e.frame(&[b'x'; 16]).unwrap())[..4], *b"10\r\n");
        assert_eq!(e.body_bytes(), 21);
        assert_eq!(e.finish().unwrap(), b"0\r\n\r\n");
    }

    #[test]
    fn sized_encoder_accepts_exactly_its_length() {
        let mut e = BodyEncoder::new(ResponseFraming::Length(5));
        assert_eq!(wire(&e.frame(b"he").unwrap()), b"he");
        assert_eq!(wire(&e.frame(b"llo").unwrap()), b"llo");
        assert_eq!(e.finish().unwrap(), b"");
    }

    #[test]
    fn sized_encoder_finish_fails_on_a_short_body() {
        let mut e = BodyEncoder::new(ResponseFraming::Length(5));
        e.frame(b"abc").unwrap();
        assert_eq!(e.finish(), Err(BodyError::TooShort { sent: 3, declared: 5 }));
    }

    #[test]
    fn sized_encoder_never_frames_a_byte_past_its_length() {
        let mut e = BodyEncoder::new(ResponseFraming::Length(10));
        assert_eq!(e.frame(&[b'a'; 8]).unwrap().wire_len(), 8);
        // The piece crossing the limit is cut at the limit ...
        assert_eq!(wire(&e.frame(&[b'b'; 12]).unwrap()), b"bb");
        // ... and everything after it is an error, as is ending the body.
        assert_eq!(e.frame(b"c").unwrap_err(), BodyError::TooLong { declared: 10 });
        assert_eq!(e.finish(), Err(BodyError::TooLong { declared: 10 }));
        assert_eq!(e.body_bytes(), 10);
    }

    #[test]
    fn sized_encoder_with_an_exact_fit_is_not_an_overflow() {
        let mut e = BodyEncoder::new(ResponseFraming::Length(3));
        assert_eq!(e.frame(b"abc").unwrap().wire_len(), 3);
        assert_eq!(e.frame(b"").unwrap().wire_len(), 0);
        assert_eq!(e.finish().unwrap(), b"");
    }

    #[test]
    fn until_close_encoder_passes_data_through() {
        let mut e = BodyEncoder::new(ResponseFraming::UntilClose);
        assert_eq!(wire(&e.frame(b"abc").unwrap()), b"abc");
        assert_eq!(e.finish().unwrap(), b"");
    }

    #[test]
    fn body_error_messages_are_lower_case() {
        for e in [BodyError::TooLong { declared: 1 }, BodyError::TooShort { sent: 0, declared: 1 }] {
            let m = e.to_string();
            assert_eq!(m, m.to_lowercase());
        }
    }
}
