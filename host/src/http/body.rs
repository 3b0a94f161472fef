//! Request body decoding: `Content-Length` and `chunked` (RFC 9112 §6–§7), bytes in, body
//! data out.
//!
//! [`BodyDecoder`] is a strict state machine fed with whatever bytes the connection has
//! read. It hands back zero-copy ranges of its input, never buffers, never reads a socket,
//! and rejects every deviation from the chunked grammar instead of guessing.

use std::ops::Range;

use super::RequestError;
use super::head::BodyFraming;
use super::syntax::{is_field_value_byte, is_qdtext, is_tchar};

/// Longest chunk-size line accepted (size and extensions, without CRLF): 4 KiB.
///
/// A size needs at most 16 hex digits; the rest is chunk extensions, which we ignore, so a
/// client sending more than this is wasting our time or probing for parser differences.
pub const MAX_CHUNK_SIZE_LINE: usize = 4 * 1024;

/// Most bytes of chunk extensions accepted in one body, all size lines together: 16 KiB
/// (RFC 9112 §7.1.1: a server ought to limit them). Each line may hold up to
/// [`MAX_CHUNK_SIZE_LINE`], but a client repeating tiny chunks with long extensions would
/// otherwise make the host parse bytes that carry no body without end.
pub const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;

/// Largest trailer section accepted after the last chunk, in bytes: 8 KiB.
///
/// Trailers are validated and discarded; the cap keeps a client from streaming an endless
/// trailer section after the body limit has been checked.
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// What [`BodyDecoder::decode`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// `input[range]` is body data; `range.end` <= the consumed count.
    Data(Range<usize>),
    /// Everything useful was consumed; read more bytes and call again.
    NeedMore,
    /// The body is complete; bytes after the consumed count belong to the next request.
    Done,
}

/// Incremental decoder for a request body (Content-Length or chunked), bytes in, body data
/// out.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    /// Body bytes handed out so far.
    received: u64,
    /// Bytes of chunk extensions seen so far (see [`MAX_CHUNK_EXTENSIONS`]).
    extension_bytes: usize,
    max_body: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// This many body bytes are still to come (Content-Length).
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunked),
    /// The body is complete.
    Done,
    /// An error was returned; it is returned again on every call.
    Failed(RequestError),
}

/// Position in the chunked grammar (RFC 9112 §7.1):
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size   = 1*HEXDIG
/// last-chunk   = 1*("0") [ chunk-ext ] CRLF
/// chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// trailer-section = *( field-line CRLF )
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    /// Reading the hex digits of a chunk size. `line` counts the bytes of the size line.
    Size { size: u64, digits: u8, line: usize },
    /// In the size line after the size. `size` is final.
    Line { size: u64, line: usize, at: Ext },
    /// After the CR of the size line.
    SizeLf { size: u64 },
    /// In chunk data, this many bytes left (never 0).
    Data { left: u64 },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// In the trailer section; `bytes` counts it.
    Trailer { bytes: usize, at: TrailerAt },
}

/// Position inside the chunk extensions of a size line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// BWS after the size: only `;` may follow.
    AfterSizeWs,
    /// After `;`, BWS before the name.
    BeforeName,
    /// In the extension name.
    Name,
    /// BWS after the name: `=` or `;` may follow.
    AfterNameWs,
    /// After `=`, BWS before the value.
    BeforeValue,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    QuotedPair,
    /// Right after a value: `;`, BWS or the CR may follow.
    AfterValue,
    /// BWS after a value: only `;` may follow.
    AfterValueWs,
}

/// Position inside the trailer section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrailerAt {
    /// At the start of a line: a field name or the final CRLF.
    LineStart,
    /// In a field name.
    Name,
    /// In a field value.
    Value,
    /// After the CR of a field line.
    LineLf,
    /// After the CR of the final empty line.
    EndLf,
}

const BARE_CR: RequestError = RequestError::BadRequest("chunked: cr without lf");

impl BodyDecoder {
    /// A decoder for a body framed as `framing`, refusing more than `max_body` bytes
    /// (`None`: unlimited). [`BodyFraming::None`] is done at once; a length over `max_body`
    /// fails on the first [`decode`](Self::decode).
    #[must_use]
    pub fn new(framing: BodyFraming, max_body: Option<u64>) -> Self {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) if max_body.is_some_and(|max| n > max) => {
                State::Failed(RequestError::PayloadTooLarge)
            }
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(Chunked::new_size()),
        };
        Self { state, received: 0, extension_bytes: 0, max_body }
    }

    /// Examines `input` (the bytes received and not yet consumed). Returns
    /// `(consumed, what)`:
    ///
    /// - [`Decoded::Data`]`(range)`: `input[range]` is body data (`range.end <= consumed`);
    ///   call again with `input[consumed..]`.
    /// - [`Decoded::NeedMore`]: everything useful was consumed; read more bytes from the
    ///   socket, then call again with the unconsumed rest plus the new bytes.
    /// - [`Decoded::Done`]: the body is complete (for chunked: after the last chunk and the
    ///   trailer section). `consumed` bytes belong to this body; the rest of `input` is the
    ///   next request.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] when the chunked framing is malformed (400), the trailer section
    /// is too large (431) or the body exceeds `max_body` (413). The connection must then be
    /// closed; later calls return the same error.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), RequestError> {
        let result = match self.state {
            State::Done => Ok((0, Decoded::Done)),
            State::Failed(e) => Err(e),
            State::Length(left) => Ok(self.length(left, input)),
            State::Chunked(state) => self.chunked(state, input),
        };
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }

    /// The body is complete.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes decoded so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received
    }

    fn length(&mut self, left: u64, input: &[u8]) -> (usize, Decoded) {
        if input.is_empty() {
            return (0, Decoded::NeedMore);
        }
        let n = clamp(left, input.len());
        self.received += n as u64;
        let left = left - n as u64;
        self.state = if left == 0 { State::Done } else { State::Length(left) };
        (n, Decoded::Data(0..n))
    }

    fn chunked(&mut self, mut state: Chunked, input: &[u8]) -> Result<(usize, Decoded), RequestError> {
        let mut pos = 0;
        loop {
            if let Chunked::Data { left } = state {
                if pos == input.len() {
                    self.state = State::Chunked(state);
                    return Ok((pos, Decoded::NeedMore));
                }
                let n = clamp(left, input.len() - pos);
                self.received += n as u64;
                let left = left - n as u64;
                self.state = State::Chunked(if left == 0 { Chunked::DataCr } else { Chunked::Data { left } });
                return Ok((pos + n, Decoded::Data(pos..pos + n)));
            }
            let Some(&b) = input.get(pos) else {
                self.state = State::Chunked(state);
                return Ok((pos, Decoded::NeedMore));
            };
            pos += 1;
            // Every byte of a size line after the size is chunk extensions (or BWS before them).
            let in_extensions = match state {
                Chunked::Line { .. } => b != b'\r',
                Chunked::Size { digits, .. } => digits > 0 && matches!(b, b';' | b' ' | b'\t'),
                _ => false,
            };
            if in_extensions {
                self.extension_bytes += 1;
                if self.extension_bytes > MAX_CHUNK_EXTENSIONS {
                    return Err(RequestError::BadRequest("chunked: chunk extensions too large in total"));
                }
            }
            match self.step(state, b)? {
                Some(next) => state = next,
                None => {
                    self.state = State::Done;
                    return Ok((pos, Decoded::Done));
                }
            }
        }
    }

    /// One byte of chunked framing. `Ok(None)`: the body is complete.
    fn step(&self, state: Chunked, b: u8) -> Result<Option<Chunked>, RequestError> {
        Ok(Some(match state {
            Chunked::Size { size, digits, line } => {
                let line = if b == b'\r' { line } else { size_line_len(line)? };
                match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == 16 {
                            return Err(RequestError::BadRequest("chunked: chunk size too long"));
                        }
                        let size = (size << 4) | u64::from(hex_value(b));
                        // Reject as soon as the declared size cannot fit the body limit.
                        if self.max_body.is_some_and(|max| size > max.saturating_sub(self.received)) {
                            return Err(RequestError::PayloadTooLarge);
                        }
                        Chunked::Size { size, digits: digits + 1, line }
                    }
                    _ if digits == 0 => {
                        return Err(RequestError::BadRequest("chunked: missing chunk size"));
                    }
                    b'\r' => Chunked::SizeLf { size },
                    b';' => Chunked::Line { size, line, at: Ext::BeforeName },
                    b' ' | b'\t' => Chunked::Line { size, line, at: Ext::AfterSizeWs },
                    _ => return Err(RequestError::BadRequest("chunked: invalid chunk size")),
                }
            }
            Chunked::Line { size, line, at } => {
                if b == b'\r' {
                    if !matches!(at, Ext::Name | Ext::Token | Ext::AfterValue) {
                        return Err(RequestError::BadRequest("chunked: invalid chunk extension"));
                    }
                    Chunked::SizeLf { size }
                } else {
                    Chunked::Line { size, line: size_line_len(line)?, at: ext_step(at, b)? }
                }
            }
            Chunked::SizeLf { size } => {
                if b != b'\n' {
                    return Err(BARE_CR);
                }
                if size == 0 {
                    Chunked::Trailer { bytes: 0, at: TrailerAt::LineStart }
                } else {
                    Chunked::Data { left: size }
                }
            }
            Chunked::Data { .. } => unreachable!("chunk data is not decoded byte by byte"),
            Chunked::DataCr => match b {
                b'\r' => Chunked::DataLf,
                _ => return Err(RequestError::BadRequest("chunked: missing crlf after chunk data")),
            },
            Chunked::DataLf => match b {
                b'\n' => Chunked::new_size(),
                _ => return Err(BARE_CR),
            },
            Chunked::Trailer { bytes, at } => {
                let bytes = bytes + 1;
                if bytes > MAX_TRAILER_BYTES {
                    return Err(RequestError::HeaderFieldsTooLarge);
                }
                let at = match (at, b) {
                    (TrailerAt::LineStart, b'\r') => TrailerAt::EndLf,
                    (TrailerAt::LineStart, b) if is_tchar(b) => TrailerAt::Name,
                    (TrailerAt::Name, b':') => TrailerAt::Value,
                    (TrailerAt::Name, b) if is_tchar(b) => TrailerAt::Name,
                    (TrailerAt::Value, b'\r') => TrailerAt::LineLf,
                    (TrailerAt::Value, b) if is_field_value_byte(b) => TrailerAt::Value,
                    (TrailerAt::LineLf, b'\n') => TrailerAt::LineStart,
                    (TrailerAt::EndLf, b'\n') => return Ok(None),
                    (TrailerAt::LineLf | TrailerAt::EndLf, _) => return Err(BARE_CR),
                    _ => return Err(RequestError::BadRequest("chunked: invalid trailer field")),
                };
                Chunked::Trailer { bytes, at }
            }
        }))
    }
}

impl Chunked {
    const fn new_size() -> Self {
        Self::Size { size: 0, digits: 0, line: 0 }
    }
}

/// Counts one more byte of a size line (not its CRLF) against [`MAX_CHUNK_SIZE_LINE`].
fn size_line_len(line: usize) -> Result<usize, RequestError> {
    if line >= MAX_CHUNK_SIZE_LINE {
        return Err(RequestError::BadRequest("chunked: chunk size line too long"));
    }
    Ok(line + 1)
}

/// One byte of chunk extensions (not the CR that ends the line).
fn ext_step(at: Ext, b: u8) -> Result<Ext, RequestError> {
    let ws = matches!(b, b' ' | b'\t');
    Ok(match at {
        Ext::AfterSizeWs if ws => Ext::AfterSizeWs,
        Ext::BeforeName if ws => Ext::BeforeName,
        Ext::BeforeName | Ext::Name if is_tchar(b) => Ext::Name,
        Ext::Name | Ext::AfterNameWs if ws => Ext::AfterNameWs,
        Ext::Name | Ext::AfterNameWs if b == b'=' => Ext::BeforeValue,
        Ext::BeforeValue if ws => Ext::BeforeValue,
        Ext::BeforeValue if b == b'"' => Ext::Quoted,
        Ext::BeforeValue | Ext::Token if is_tchar(b) => Ext::Token,
        Ext::Quoted if b == b'"' => Ext::AfterValue,
        Ext::Quoted if b == b'\\' => Ext::QuotedPair,
        Ext::Quoted if is_qdtext(b) => Ext::Quoted,
        Ext::QuotedPair if matches!(b, b'\t' | b' '..=0x7e | 0x80..=0xff) => Ext::Quoted,
        Ext::Token | Ext::AfterValue | Ext::AfterValueWs if ws => Ext::AfterValueWs,
        Ext::AfterSizeWs
        | Ext::Name
        | Ext::AfterNameWs
        | Ext::Token
        | Ext::AfterValue
        | Ext::AfterValueWs
            if b == b';' =>
        {
            Ext::BeforeName
        }
        _ => return Err(RequestError::BadRequest("chunked: invalid chunk extension")),
    })
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// `min(left, available)` as a usize.
fn clamp(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of at most `step` bytes, the way a connection would:
    /// unconsumed bytes are kept and new ones appended. Returns the body, the bytes left
    /// after it, and the decoder.
    fn run(
        framing: BodyFraming,
        max: Option<u64>,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), RequestError> {
        let mut d = BodyDecoder::new(framing, max);
        let mut body = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut fed = 0;
        loop {
            let (consumed, what) = d.decode(&pending)?;
            assert!(consumed <= pending.len());
            match what {
                Decoded::Data(r) => {
                    assert!(r.end <= consumed && !r.is_empty());
                    body.extend_from_slice(&pending[r]);
                    pending.drain(..consumed);
                }
                Decoded::NeedMore => {
                    assert_eq!(consumed, pending.len(), "NeedMore consumes everything");
                    pending.clear();
                    if fed == input.len() {
                        return Err(RequestError::BadRequest("test: input ended early"));
                    }
                    let end = (fed + step).min(input.len());
                    pending.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Decoded::Done => {
                    assert!(d.is_done());
                    assert_eq!(d.received(), body.len() as u64);
                    pending.drain(..consumed);
                    pending.extend_from_slice(&input[fed..]);
                    return Ok((body, pending));
                }
            }
        }
    }

    /// Decodes `input` at once, then one byte at a time, then split at every boundary,
    /// checking that all give the same answer.
    fn decode_all(
        framing: BodyFraming,
        max: Option<u64>,
        input: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), RequestError> {
        let whole = run(framing, max, input, usize::MAX);
        assert_eq!(run(framing, max, input, 1), whole, "byte at a time");
        for split in 1..input.len() {
            let mut d = BodyDecoder::new(framing, max);
            let mut body = Vec::new();
            let mut buf = input[..split].to_vec();
            let mut rest_fed = false;
            let result = loop {
                match d.decode(&buf) {
                    Err(e) => break Err(e),
                    Ok((c, Decoded::Data(r))) => {
                        body.extend_from_slice(&buf[r]);
                        buf.drain(..c);
                    }
                    Ok((c, Decoded::NeedMore)) => {
                        buf.drain(..c);
                        if rest_fed {
                            break Err(RequestError::BadRequest("test: input ended early"));
                        }
                        buf.extend_from_slice(&input[split..]);
                        rest_fed = true;
                    }
                    Ok((c, Decoded::Done)) => {
                        buf.drain(..c);
                        if !rest_fed {
                            buf.extend_from_slice(&input[split..]);
                        }
                        break Ok((body, buf));
                    }
                }
            };
            assert_eq!(result, whole, "split at {split}");
        }
        whole
    }

    fn chunked(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), RequestError> {
        decode_all(BodyFraming::Chunked, None, input)
    }

    fn body(input: &[u8]) -> Vec<u8> {
        let (body, rest) = chunked(input).unwrap();
        assert!(rest.is_empty(), "left over: {rest:?}");
        body
    }

    fn bad(input: &[u8]) {
        assert!(
            matches!(chunked(input), Err(RequestError::BadRequest(_))),
            "{:?}: {:?}",
            String::from_utf8_lossy(input),
            chunked(input)
        );
    }

    // ---- no body and Content-Length ----

    #[test]
    fn no_body_is_done_at_once() {
        let mut d = BodyDecoder::new(BodyFraming::None, Some(0));
        assert!(d.is_done());
        assert_eq!(d.decode(b"GET / HTTP/1.1\r\n"), Ok((0, Decoded::Done)));
        assert_eq!(d.received(), 0);
        assert!(BodyDecoder::new(BodyFraming::Length(0), None).is_done());
    }

    #[test]
    fn content_length_yields_exactly_that_many_bytes() {
        let (b, rest) = decode_all(BodyFraming::Length(5), None, b"helloGET /").unwrap();
        assert_eq!(b, b"hello");
        assert_eq!(rest, b"GET /");
    }

    #[test]
    fn content_length_data_is_zero_copy_and_done_after() {
        let mut d = BodyDecoder::new(BodyFraming::Length(4), None);
        assert_eq!(d.decode(b""), Ok((0, Decoded::NeedMore)));
        assert_eq!(d.decode(b"ab"), Ok((2, Decoded::Data(0..2))));
        assert!(!d.is_done());
        assert_eq!(d.decode(b"cdef"), Ok((2, Decoded::Data(0..2))));
        assert!(d.is_done());
        assert_eq!(d.received(), 4);
        assert_eq!(d.decode(b"ef"), Ok((0, Decoded::Done)));
    }

    #[test]
    fn content_length_short_body_needs_more() {
        assert_eq!(
            decode_all(BodyFraming::Length(6), None, b"hello"),
            Err(RequestError::BadRequest("test: input ended early"))
        );
    }

    #[test]
    fn content_length_over_max_body_fails() {
        let mut d = BodyDecoder::new(BodyFraming::Length(11), Some(10));
        assert_eq!(d.decode(b"x"), Err(RequestError::PayloadTooLarge));
        assert_eq!(d.decode(b"x"), Err(RequestError::PayloadTooLarge));
        let (b, _) = decode_all(BodyFraming::Length(10), Some(10), b"0123456789").unwrap();
        assert_eq!(b.len(), 10);
    }

    // ---- chunked: valid bodies ----

    #[test]
    fn chunked_simple() {
        assert_eq!(body(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), b"hello world");
    }

    #[test]
    fn chunked_empty_body() {
        assert_eq!(body(b"0\r\n\r\n"), b"");
        assert_eq!(body(b"000\r\n\r\n"), b"");
    }

    #[test]
    fn chunked_leaves_the_next_request() {
        let (b, rest) = chunked(b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n").unwrap();
        assert_eq!(b, b"abc");
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn chunked_hex_sizes_any_case() {
        let data = [b'x'; 0x1a];
        let input = [&b"1a\r\n"[..], &data, b"\r\n1A\r\n", &data, b"\r\n0\r\n\r\n"].concat();
        assert_eq!(body(&input).len(), 0x34);
        let input = [&b"00000000000000F\r\n"[..], &data[..15], b"\r\n0\r\n\r\n"].concat();
        assert_eq!(body(&input).len(), 15);
    }

    #[test]
    fn chunked_data_ranges_are_slices_of_the_input() {
        let input = b"5\r\nhello\r\n0\r\n\r\nnext";
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        assert_eq!(d.decode(input), Ok((8, Decoded::Data(3..8))));
        assert_eq!(d.decode(&input[8..]), Ok((7, Decoded::Done)));
        assert_eq!(d.received(), 5);
        assert!(d.is_done());
        assert_eq!(d.decode(&input[15..]), Ok((0, Decoded::Done)));
    }

    #[test]
    fn chunked_partial_data_is_handed_out_as_it_comes() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        assert_eq!(d.decode(b"a\r\nhel"), Ok((6, Decoded::Data(3..6))));
        assert_eq!(d.decode(b""), Ok((0, Decoded::NeedMore)));
        assert_eq!(d.decode(b"lo wo"), Ok((5, Decoded::Data(0..5))));
        assert_eq!(d.decode(b"rlXX"), Ok((2, Decoded::Data(0..2))));
        assert_eq!(d.decode(b"\r"), Ok((1, Decoded::NeedMore)));
        assert_eq!(d.received(), 10);
        assert_eq!(d.decode(b"\n0\r\n\r\nGET"), Ok((6, Decoded::Done)));
    }

    #[test]
    fn chunk_extensions_are_validated_and_ignored() {
        for ext in [
            &b";a"[..],
            b";a=b",
            b" ;a",
            b"\t; a",
            b";a ;b",
            b";a = b",
            b";a=\"q \\\" ; x\"",
            b";a=\"\" ;b=c;d",
            b";a=b ;c",
        ] {
            let input = [&b"3"[..], ext, b"\r\nabc\r\n0", ext, b"\r\n\r\n"].concat();
            assert_eq!(body(&input), b"abc", "{:?}", String::from_utf8_lossy(ext));
        }
    }

    #[test]
    fn trailers_are_validated_and_discarded() {
        assert_eq!(body(b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:\t12 \r\nEmpty:\r\n\r\n"), b"abc");
        assert_eq!(body(b"0\r\nX: \xff\r\n\r\n"), b"");
    }

    // ---- chunked: size line ----

    #[test]
    fn empty_chunk_size_is_400() {
        bad(b"\r\nabc\r\n0\r\n\r\n");
        bad(b";a\r\nabc\r\n0\r\n\r\n");
        bad(b"3\r\nabc\r\n\r\n\r\n");
    }

    #[test]
    fn spaces_around_chunk_size_are_400() {
        bad(b" 3\r\nabc\r\n0\r\n\r\n");
        bad(b"3 \r\nabc\r\n0\r\n\r\n");
        bad(b"3\t\r\nabc\r\n0\r\n\r\n");
        bad(b"3 3\r\nabc\r\n0\r\n\r\n");
    }

    #[test]
    fn non_hex_chunk_size_is_400() {
        bad(b"0x3\r\nabc\r\n0\r\n\r\n");
        bad(b"+3\r\nabc\r\n0\r\n\r\n");
        bad(b"-3\r\nabc\r\n0\r\n\r\n");
        bad(b"g\r\n");
    }

    #[test]
    fn chunk_size_of_16_hex_digits_is_the_maximum() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        assert_eq!(d.decode(b"ffffffffffffffff\r\nab"), Ok((20, Decoded::Data(18..20))));
        assert_eq!(
            chunked(b"00000000000000001\r\na\r\n0\r\n\r\n"),
            Err(RequestError::BadRequest("chunked: chunk size too long"))
        );
        assert_eq!(
            chunked(b"10000000000000000\r\n"),
            Err(RequestError::BadRequest("chunked: chunk size too long"))
        );
    }

    #[test]
    fn size_line_needs_crlf() {
        assert_eq!(
            chunked(b"3\nabc\r\n0\r\n\r\n"),
            Err(RequestError::BadRequest("chunked: invalid chunk size"))
        );
        assert_eq!(chunked(b"3\rabc\r\n0\r\n\r\n"), Err(BARE_CR));
        bad(b"3;a\nabc\r\n0\r\n\r\n");
        bad(b"0\n\r\n");
    }

    #[test]
    fn malformed_chunk_extensions_are_400() {
        for ext in [
            &b";"[..],
            b"; ",
            b";a ",
            b";a=",
            b";a= ",
            b";a=b ",
            b";=b",
            b";a=\"b",
            b";a=\"b\"c",
            b";a=\"\x01\"",
            b";a=b=c",
            b";a;",
            b" a",
            b";a b",
            b";a=b c",
            b";a\x00",
            b";a=\"\\\x01\"",
            b";a=\xff",
        ] {
            let input = [&b"3"[..], ext, b"\r\nabc\r\n0\r\n\r\n"].concat();
            assert!(
                matches!(chunked(&input), Err(RequestError::BadRequest("chunked: invalid chunk extension"))),
                "{:?}: {:?}",
                String::from_utf8_lossy(ext),
                chunked(&input)
            );
        }
    }

    #[test]
    fn chunk_extensions_are_bounded_in_total_not_only_per_line() {
        // 1 KiB of extensions per chunk, each line well under MAX_CHUNK_SIZE_LINE.
        let ext = [&b";"[..], &vec![b'e'; 1023]].concat();
        let body = |chunks: usize| {
            let mut input = Vec::new();
            for _ in 0..chunks {
                input.extend_from_slice(&[&b"1"[..], &ext, b"\r\nx\r\n"].concat());
            }
            input.extend_from_slice(b"0\r\n\r\n");
            input
        };
        let at_limit = MAX_CHUNK_EXTENSIONS / ext.len();
        assert_eq!(chunked(&body(at_limit)).map(|(data, _)| data.len()), Ok(at_limit));
        assert_eq!(
            chunked(&body(at_limit + 1)),
            Err(RequestError::BadRequest("chunked: chunk extensions too large in total"))
        );
    }

    #[test]
    fn size_line_at_the_limit_is_accepted() {
        // "3;" + name filling the line to exactly MAX_CHUNK_SIZE_LINE bytes.
        let name = vec![b'a'; MAX_CHUNK_SIZE_LINE - 2];
        let input = [&b"3;"[..], &name, b"\r\nabc\r\n0\r\n\r\n"].concat();
        assert_eq!(body(&input), b"abc");
    }

    #[test]
    fn size_line_over_the_limit_is_400() {
        let name = vec![b'a'; MAX_CHUNK_SIZE_LINE - 1];
        let input = [&b"3;"[..], &name, b"\r\nabc\r\n0\r\n\r\n"].concat();
        let e = RequestError::BadRequest("chunked: chunk size line too long");
        assert_eq!(run(BodyFraming::Chunked, None, &input, usize::MAX), Err(e));
        assert_eq!(run(BodyFraming::Chunked, None, &input, 1), Err(e));
        // Detected without waiting for the line end.
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        assert_eq!(d.decode(&input[..MAX_CHUNK_SIZE_LINE + 1]), Err(e));
    }

    // ---- chunked: data and the end ----

    #[test]
    fn chunk_data_must_end_with_crlf() {
        assert_eq!(
            chunked(b"3\r\nabcd\r\n0\r\n\r\n"),
            Err(RequestError::BadRequest("chunked: missing crlf after chunk data"))
        );
        assert_eq!(
            chunked(b"3\r\nabc\n0\r\n\r\n"),
            Err(RequestError::BadRequest("chunked: missing crlf after chunk data"))
        );
        assert_eq!(chunked(b"3\r\nabc\rx0\r\n\r\n"), Err(BARE_CR));
        bad(b"3\r\nab\r\n0\r\n\r\n");
    }

    #[test]
    fn final_crlf_is_required() {
        assert_eq!(chunked(b"0\r\n\rx"), Err(BARE_CR));
        bad(b"0\r\n\n");
        assert_eq!(chunked(b"0\r\n"), Err(RequestError::BadRequest("test: input ended early")));
        assert_eq!(chunked(b"0\r\n\r"), Err(RequestError::BadRequest("test: input ended early")));
    }

    #[test]
    fn malformed_trailers_are_400() {
        for trailer in [
            &b" X: y\r\n"[..],
            b"X : y\r\n",
            b": y\r\n",
            b"X\r\n",
            b"X: y\n",
            b"X: y\rz\r\n",
            b"X: a\x00b\r\n",
            b"X: a\x7fb\r\n",
            b"X(: y\r\n",
        ] {
            let input = [&b"0\r\n"[..], trailer, b"\r\n"].concat();
            assert!(
                matches!(chunked(&input), Err(RequestError::BadRequest(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(trailer),
                chunked(&input)
            );
        }
    }

    #[test]
    fn trailer_section_at_the_limit_is_accepted() {
        // One field line "X: vvv…\r\n" plus the final CRLF, MAX_TRAILER_BYTES in all.
        let value = vec![b'v'; MAX_TRAILER_BYTES - 7];
        let input = [&b"0\r\nX: "[..], &value, b"\r\n\r\n"].concat();
        assert_eq!(input.len() - 3, MAX_TRAILER_BYTES);
        assert_eq!(run(BodyFraming::Chunked, None, &input, usize::MAX).unwrap().0, b"");
    }

    #[test]
    fn trailer_section_over_the_limit_is_431() {
        let value = vec![b'v'; MAX_TRAILER_BYTES - 6];
        let input = [&b"0\r\nX: "[..], &value, b"\r\n\r\n"].concat();
        assert_eq!(
            run(BodyFraming::Chunked, None, &input, usize::MAX),
            Err(RequestError::HeaderFieldsTooLarge)
        );
        assert_eq!(run(BodyFraming::Chunked, None, &input, 7), Err(RequestError::HeaderFieldsTooLarge));
    }

    // ---- chunked: max_body ----

    #[test]
    fn chunked_at_max_body_is_accepted() {
        let (b, _) = decode_all(BodyFraming::Chunked, Some(6), b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n").unwrap();
        assert_eq!(b, b"abcdef");
    }

    #[test]
    fn chunked_over_max_body_is_413_at_the_size_line() {
        assert_eq!(
            decode_all(BodyFraming::Chunked, Some(5), b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"),
            Err(RequestError::PayloadTooLarge)
        );
        // Detected before any data of the offending chunk arrives, even before its CRLF.
        let mut d = BodyDecoder::new(BodyFraming::Chunked, Some(16));
        assert_eq!(d.decode(b"11"), Err(RequestError::PayloadTooLarge));
        assert_eq!(d.decode(b"0\r\n\r\n"), Err(RequestError::PayloadTooLarge));
        let mut d = BodyDecoder::new(BodyFraming::Chunked, Some(16));
        assert_eq!(d.decode(b"10\r\n").unwrap(), (4, Decoded::NeedMore));
    }

    #[test]
    fn chunked_unlimited_accepts_huge_sizes() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        assert_eq!(d.decode(b"7fffffffffffffff\r\n"), Ok((18, Decoded::NeedMore)));
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, None);
        assert!(d.decode(b"x").is_err());
        assert!(d.decode(b"0\r\n\r\n").is_err());
        assert!(!d.is_done());
    }

    #[test]
    fn many_chunks_byte_by_byte() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 1..40u8 {
            input.extend_from_slice(format!("{i:x};n=\"{i}\"\r\n").as_bytes());
            let data: Vec<u8> = (0..i).map(|j| b'a' + (i + j) % 26).collect();
            input.extend_from_slice(&data);
            input.extend_from_slice(b"\r\n");
            expected.extend_from_slice(&data);
        }
        input.extend_from_slice(b"0\r\nT: v\r\n\r\nNEXT");
        let (b, rest) = chunked(&input).unwrap();
        assert_eq!(b, expected);
        assert_eq!(rest, b"NEXT");
    }
}
