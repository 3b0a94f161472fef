//! `multipart/form-data` bodies (RFC 7578 on RFC 2046 §5.1): an incremental parser that a
//! `stream` hook feeds chunk by chunk ([`MultipartParser`], [`PartEvent`]), and the buffered
//! [`Multipart`] built on it for `after`.
//!
//! The parser holds at most one part head (≤ [`MAX_PART_HEAD`]) or a delimiter's length of
//! bytes between calls, whatever the size of the parts: a file part's content goes out as
//! [`PartEvent::Data`] as soon as it cannot be the start of a boundary.

use memchr::memmem;

use crate::error::HttpError;
use crate::media_type::Parameterized;

/// The largest head (header block) of one part: a longer one is a 400.
pub const MAX_PART_HEAD: usize = 16 * 1024;
/// The most header fields in one part head.
const MAX_PART_HEADERS: usize = 32;
/// The most bytes of transport padding (spaces, tabs) accepted after a boundary.
const MAX_PADDING: usize = 256;
/// The longest boundary RFC 2046 §5.1.1 allows.
const MAX_BOUNDARY: usize = 70;

/// What the parser found in the bytes fed to it, in order: for each part a `Head`, its
/// content as any number of `Data`, then `End`.
///
/// ```
/// use wasm_host_sdk::{MultipartParser, PartEvent};
///
/// let mut parser = MultipartParser::new("b").unwrap();
/// let events = parser.feed(b"--b\r\nContent-Disposition: form-data; name=n\r\n\r\nv\r\n--b--").unwrap();
/// assert!(matches!(&events[..], [PartEvent::Head(h), PartEvent::Data(d), PartEvent::End] if h.name() == "n" && d == b"v"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartEvent {
    /// A part begins; its content follows as `Data` events, then `End`.
    Head(PartHead),
    /// The next bytes of the current part's content (never empty).
    Data(Vec<u8>),
    /// The current part is complete.
    End,
}

/// The head of one part: its field name, file name, content type and every header.
///
/// ```
/// use wasm_host_sdk::{MultipartParser, PartEvent};
///
/// let mut parser = MultipartParser::new("XyZ").unwrap();
/// let events = parser
///     .feed(b"--XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n\
///             Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n")
///     .unwrap();
/// let PartEvent::Head(head) = &events[0] else { panic!() };
/// assert_eq!((head.name(), head.filename(), head.content_type()), ("doc", Some("a.txt"), Some("text/plain")));
/// assert!(head.is_file());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
}

impl PartHead {
    /// The form field name (`Content-Disposition: form-data; name="..."`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file name the client gave (`filename*=UTF-8''...` preferred over `filename=`), if
    /// this part is a file. It is chosen by the client: never use it as a path as is.
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// Whether the part is a file upload (it has a file name).
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }

    /// The part's `Content-Type`, if it has one (RFC 7578 defaults it to `text/plain`).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The value of the part's first header named `name` (case-insensitive), if UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Every header of the part as `(name, raw value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    fn parse(block: &[u8]) -> Result<Self, HttpError> {
        let mut storage = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
        let headers = match httparse::parse_headers(block, &mut storage) {
            Ok(httparse::Status::Complete((_, headers))) => headers,
            Ok(httparse::Status::Partial) => return Err(malformed("a part head is incomplete")),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(malformed(format!("a part has more than {MAX_PART_HEADERS} headers")));
            }
            Err(error) => return Err(malformed(format!("a part head is invalid ({error})"))),
        };
        let headers: Vec<(String, Vec<u8>)> =
            headers.iter().map(|header| (header.name.to_owned(), header.value.to_vec())).collect();
        let find = |name: &str| headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name));
        let Some((_, disposition)) = find("content-disposition") else {
            return Err(malformed("a part has no Content-Disposition header"));
        };
        let disposition = std::str::from_utf8(disposition)
            .ok()
            .and_then(Parameterized::parse)
            .ok_or_else(|| malformed("a part's Content-Disposition header is not valid"))?;
        if disposition.value != "form-data" {
            return Err(malformed(format!(
                "a part's Content-Disposition is `{}`, expected `form-data`",
                disposition.value
            )));
        }
        let name = disposition
            .param("name")
            .ok_or_else(|| malformed("a part's Content-Disposition has no `name`"))?
            .to_owned();
        let filename = disposition
            .param("filename*")
            .and_then(decode_ext_value)
            .or_else(|| disposition.param("filename").map(str::to_owned));
        let content_type = match find("content-type") {
            Some((_, value)) => Some(
                String::from_utf8(value.clone())
                    .map_err(|_| malformed(format!("the Content-Type of part `{name}` is not UTF-8")))?,
            ),
            None => None,
        };
        Ok(Self { name, filename, content_type, headers })
    }
}

/// Decodes an RFC 8187 `ext-value` in UTF-8 (`UTF-8'lang'percent%20encoded`).
fn decode_ext_value(value: &str) -> Option<String> {
    let mut pieces = value.splitn(3, '\'');
    let (charset, _language, encoded) = (pieces.next()?, pieces.next()?, pieces.next()?);
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    percent_encoding::percent_decode_str(encoded).decode_utf8().ok().map(|text| text.into_owned())
}

/// A 400 for a body that is not the multipart body it claims to be.
fn malformed(reason: impl std::fmt::Display) -> HttpError {
    HttpError::bad_request(format!("malformed multipart body: {reason}"))
}

/// Where the parser is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary (the preamble is skipped).
    Preamble,
    /// Just after `--boundary`: `--` ends the body, padding + CRLF starts a part.
    AfterBoundary,
    /// Reading a part's header block.
    Head,
    /// Reading a part's content up to the next `CRLF--boundary`.
    Content,
    /// After the closing boundary: the epilogue is ignored.
    Done,
}

/// An incremental `multipart/form-data` parser: feed it the body in pieces of any size, get
/// [`PartEvent`]s back. Memory stays bounded whatever the size of the parts, which is how a
/// `stream` hook handles an upload larger than the handler's memory (see
/// [`Request::multipart_events`](crate::Request::multipart_events) for the usual way to use
/// it from a hook).
///
/// ```
/// use wasm_host_sdk::{MultipartParser, PartEvent};
///
/// let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n";
/// let mut parser = MultipartParser::for_content_type("multipart/form-data; boundary=b").unwrap();
/// let mut content = Vec::new();
/// for piece in body.chunks(3) {
///     for event in parser.feed(piece).unwrap() {
///         if let PartEvent::Data(bytes) = event {
///             content.extend(bytes);
///         }
///     }
/// }
/// parser.finish().unwrap();
/// assert_eq!(content, b"1");
/// ```
#[derive(Debug)]
pub struct MultipartParser {
    /// `CRLF--boundary`.
    delimiter: Vec<u8>,
    state: State,
    /// Bytes received but not yet turned into events.
    pending: Vec<u8>,
    /// The first error, returned again by every later call.
    failed: Option<HttpError>,
}

impl MultipartParser {
    /// A parser for parts separated by `boundary` (1 to 70 characters, RFC 2046 §5.1.1), or
    /// a 400 for an invalid boundary.
    pub fn new(boundary: &str) -> Result<Self, HttpError> {
        if boundary.is_empty()
            || boundary.len() > MAX_BOUNDARY
            || boundary.bytes().any(|b| b.is_ascii_control())
        {
            return Err(HttpError::bad_request(format!(
                "invalid multipart boundary {boundary:?}: it must be 1 to {MAX_BOUNDARY} characters"
            )));
        }
        let delimiter = [b"\r\n--", boundary.as_bytes()].concat();
        // The first boundary may open the body: parse as if a CRLF came before it.
        Ok(Self { delimiter, state: State::Preamble, pending: b"\r\n".to_vec(), failed: None })
    }

    /// A parser for a request with this `Content-Type`: `415 Unsupported Media Type` if it
    /// is not `multipart/form-data`, 400 if its boundary is missing or invalid.
    pub fn for_content_type(content_type: &str) -> Result<Self, HttpError> {
        let media = Parameterized::parse(content_type)
            .filter(|media| media.value == "multipart/form-data")
            .ok_or_else(|| {
            HttpError::new(
                415,
                format!("expected a multipart/form-data body, got Content-Type: {content_type}"),
            )
        })?;
        let boundary = media
            .param("boundary")
            .ok_or_else(|| HttpError::bad_request("the multipart/form-data Content-Type has no boundary"))?;
        Self::new(boundary)
    }

    /// Parses the next piece of the body and returns the events it completes. Bytes that
    /// could be the start of a boundary are kept for the next call. After an error every call
    /// returns the same error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<PartEvent>, HttpError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut events = Vec::new();
        if self.state == State::Done {
            return Ok(events);
        }
        self.pending.extend_from_slice(bytes);
        match self.parse(&mut events) {
            Ok(()) => Ok(events),
            Err(error) => {
                self.failed = Some(error.clone());
                self.pending = Vec::new();
                Err(error)
            }
        }
    }

    /// Whether the closing boundary has been seen.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done && self.failed.is_none()
    }

    /// Checks that the body ended properly: `Ok` after the closing boundary, a 400 saying
    /// what is missing otherwise.
    pub fn finish(&self) -> Result<(), HttpError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.state {
            State::Done => Ok(()),
            State::Preamble => Err(malformed("no boundary found (is the boundary right?)")),
            State::Content => Err(malformed("the body ended inside a part, before its closing boundary")),
            State::Head | State::AfterBoundary => {
                Err(malformed("the body ended after a boundary, before the closing `--`"))
            }
        }
    }

    fn parse(&mut self, events: &mut Vec<PartEvent>) -> Result<(), HttpError> {
        // Every turn either consumes bytes and changes state, or returns for more input.
        loop {
            match self.state {
                State::Preamble => match memmem::find(&self.pending, &self.delimiter) {
                    Some(at) => {
                        self.pending.drain(..at + self.delimiter.len());
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        let drop = self.pending.len().saturating_sub(keep);
                        self.pending.drain(..drop);
                        return Ok(());
                    }
                },
                State::AfterBoundary => {
                    if self.pending.starts_with(b"--") {
                        self.state = State::Done;
                        self.pending = Vec::new();
                        return Ok(());
                    }
                    let padding = self.pending.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
                    let rest = &self.pending[padding..];
                    if rest.starts_with(b"\r\n") {
                        self.pending.drain(..padding + 2);
                        self.state = State::Head;
                    } else if (rest.is_empty() || rest == b"\r" || self.pending == b"-")
                        && padding <= MAX_PADDING
                    {
                        return Ok(());
                    } else {
                        return Err(malformed("unexpected bytes after a boundary"));
                    }
                }
                State::Head => {
                    let end = if self.pending.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        memmem::find(&self.pending, b"\r\n\r\n").map(|at| at + 4)
                    };
                    match end {
                        Some(end) if end <= MAX_PART_HEAD => {
                            let head = PartHead::parse(&self.pending[..end])?;
                            self.pending.drain(..end);
                            events.push(PartEvent::Head(head));
                            self.state = State::Content;
                        }
                        None if self.pending.len() <= MAX_PART_HEAD => return Ok(()),
                        _ => {
                            return Err(malformed(format!(
                                "a part head is longer than {MAX_PART_HEAD} bytes"
                            )));
                        }
                    }
                }
                State::Content => match memmem::find(&self.pending, &self.delimiter) {
                    Some(at) => {
                        if at > 0 {
                            events.push(PartEvent::Data(self.pending[..at].to_vec()));
                        }
                        events.push(PartEvent::End);
                        self.pending.drain(..at + self.delimiter.len());
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        let ready = self.pending.len().saturating_sub(self.delimiter.len() - 1);
                        if ready > 0 {
                            events.push(PartEvent::Data(self.pending[..ready].to_vec()));
                            self.pending.drain(..ready);
                        }
                        return Ok(());
                    }
                },
                State::Done => return Ok(()),
            }
        }
    }
}

/// One part of a buffered multipart body: its head and its content.
///
/// ```
/// # use wasm_host_sdk::Multipart;
/// let body = b"--b\r\nContent-Disposition: form-data; name=doc; filename=a.txt\r\n\r\nhi\r\n--b--";
/// let form = Multipart::parse("multipart/form-data; boundary=b", body).unwrap();
/// let part = &form.parts()[0];
/// assert_eq!((part.name(), part.filename(), part.text().unwrap()), ("doc", Some("a.txt"), "hi"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    head: PartHead,
    data: Vec<u8>,
}

impl Part {
    /// The head: name, file name, content type, headers.
    pub fn head(&self) -> &PartHead {
        &self.head
    }

    /// The form field name.
    pub fn name(&self) -> &str {
        self.head.name()
    }

    /// The client's file name, if the part is a file (see [`PartHead::filename`]).
    pub fn filename(&self) -> Option<&str> {
        self.head.filename()
    }

    /// The part's `Content-Type`, if given.
    pub fn content_type(&self) -> Option<&str> {
        self.head.content_type()
    }

    /// The content.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The content as text, or 400 if it is not UTF-8.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.data)
            .map_err(|_| HttpError::bad_request(format!("multipart field `{}` is not UTF-8", self.head.name)))
    }

    /// Takes the content out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
}

/// A whole `multipart/form-data` body: text fields and files, in the order sent.
///
/// ```
/// use wasm_host_sdk::Request;
///
/// let req = Request::new("POST", "/upload")
///     .with_header("Content-Type", "multipart/form-data; boundary=XX")
///     .with_body(
///         b"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHoliday\r\n\
///          --XX\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\n\
///          Content-Type: image/jpeg\r\n\r\n\xff\xd8\r\n--XX--\r\n".to_vec(),
///     );
/// let form = req.multipart().unwrap();
/// assert_eq!(form.field("title"), Some("Holiday"));
/// let photo = form.file("photo").unwrap();
/// assert_eq!((photo.filename(), photo.bytes()), (Some("a.jpg"), &b"\xff\xd8"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multipart {
    parts: Vec<Part>,
}

impl Multipart {
    /// Parses a whole body sent with this `Content-Type` (415 if it is not
    /// `multipart/form-data`, 400 if the body is malformed).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, HttpError> {
        let mut parser = MultipartParser::for_content_type(content_type)?;
        let mut parts = Vec::new();
        for event in parser.feed(body)? {
            match event {
                PartEvent::Head(head) => parts.push(Part { head, data: Vec::new() }),
                PartEvent::Data(bytes) => {
                    parts.last_mut().expect("data follows a head").data.extend_from_slice(&bytes);
                }
                PartEvent::End => {}
            }
        }
        parser.finish()?;
        Ok(Self { parts })
    }

    /// Every part, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Takes the parts out.
    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }

    /// The value of the first text field (a part without a file name) called `name`, if it
    /// is UTF-8.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|part| !part.head.is_file() && part.name() == name)
            .and_then(|part| part.text().ok())
    }

    /// The first file part called `name`.
    pub fn file(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|part| part.head.is_file() && part.name() == name)
    }

    /// Every file part.
    pub fn files(&self) -> impl Iterator<Item = &Part> + '_ {
        self.parts.iter().filter(|part| part.head.is_file())
    }

    /// Every text field as `(name, value)`, or 400 naming the first one that is not UTF-8.
    pub fn fields(&self) -> Result<Vec<(String, String)>, HttpError> {
        self.parts
            .iter()
            .filter(|part| !part.head.is_file())
            .map(|part| Ok((part.name().to_owned(), part.text()?.to_owned())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--frontier  \r\n\
        Content-Disposition: form-data; name=\"title\"\r\n\r\nA\r\n--not the end\r\n\
        --frontier\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E2%82%AC.bin\r\n\
        Content-Type: application/octet-stream\r\n\r\n\r\n--frontie\r\n\r\n--frontier--\r\nepilogue";

    /// Parses `body` fed in pieces of `size` bytes into (head, content) pairs.
    fn parse_in_pieces(body: &[u8], size: usize) -> Vec<(PartHead, Vec<u8>)> {
        let mut parser = MultipartParser::new("frontier").unwrap();
        let mut parts: Vec<(PartHead, Vec<u8>)> = Vec::new();
        let mut open = false;
        for piece in body.chunks(size) {
            for event in parser.feed(piece).unwrap() {
                match event {
                    PartEvent::Head(head) => {
                        assert!(!open);
                        open = true;
                        parts.push((head, Vec::new()));
                    }
                    PartEvent::Data(bytes) => {
                        assert!(open && !bytes.is_empty());
                        parts.last_mut().unwrap().1.extend(bytes);
                    }
                    PartEvent::End => {
                        assert!(open);
                        open = false;
                    }
                }
            }
        }
        parser.finish().unwrap();
        parts
    }

    #[test]
    fn every_split_gives_the_same_parts() {
        let whole = parse_in_pieces(BODY, BODY.len());
        assert_eq!(whole.len(), 2);
        assert_eq!((whole[0].0.name(), whole[0].1.as_slice()), ("title", &b"A\r\n--not the end"[..]));
        assert_eq!(whole[1].0.filename(), Some("€.bin"));
        assert_eq!(whole[1].0.content_type(), Some("application/octet-stream"));
        assert_eq!(whole[1].1, b"\r\n--frontie\r\n");
        for size in 1..BODY.len() {
            assert_eq!(parse_in_pieces(BODY, size), whole, "pieces of {size} bytes");
        }
    }

    #[test]
    fn memory_stays_bounded_for_a_large_part() {
        let mut parser = MultipartParser::new("b").unwrap();
        parser.feed(b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n").unwrap();
        let mut total = 0;
        for _ in 0..1000 {
            for event in parser.feed(&[b'x'; 4096]).unwrap() {
                if let PartEvent::Data(bytes) = event {
                    total += bytes.len();
                }
            }
            assert!(parser.pending.len() < 8, "{} bytes held", parser.pending.len());
        }
        for event in parser.feed(b"\r\n--b--").unwrap() {
            if let PartEvent::Data(bytes) = event {
                total += bytes.len();
            }
        }
        parser.finish().unwrap();
        assert_eq!(total, 4096 * 1000);
    }

    #[test]
    fn empty_form_and_leading_boundary() {
        let mut parser = MultipartParser::new("b").unwrap();
        assert_eq!(parser.feed(b"--b--\r\n").unwrap(), []);
        assert!(parser.is_complete());
    }

    fn error_of(body: &[u8]) -> String {
        let mut parser = MultipartParser::new("b").unwrap();
        let error = match parser.feed(body) {
            Ok(_) => parser.finish().unwrap_err(),
            Err(error) => {
                assert_eq!(parser.feed(b"more").map(|_| ()), Err(error.clone()), "errors are sticky");
                assert_eq!(parser.finish(), Err(error.clone()));
                error
            }
        };
        assert_eq!(error.status, 400);
        error.message
    }

    #[test]
    fn malformed_bodies_are_400_saying_why() {
        assert!(error_of(b"no boundary here").contains("no boundary found"));
        assert!(
            error_of(b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc")
                .contains("inside a part")
        );
        assert!(error_of(b"--b\r\n\r\nabc\r\n--b--").contains("no Content-Disposition"));
        assert!(error_of(b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\n").contains("`attachment`"));
        assert!(error_of(b"--b\r\nContent-Disposition: form-data\r\n\r\n").contains("no `name`"));
        assert!(error_of(b"--bx\r\n").contains("after a boundary"));
        assert!(error_of(b"--b\r\nbad header line\r\n\r\n").contains("part head is invalid"));
        let long = [&b"--b\r\nX: "[..], &[b'a'; MAX_PART_HEAD], b"\r\n\r\n"].concat();
        assert!(error_of(&long).contains("longer than"));
        assert!(
            error_of(b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b\r\n")
                .contains("closing")
        );
    }

    #[test]
    fn content_type_is_checked() {
        assert_eq!(MultipartParser::for_content_type("application/json").unwrap_err().status, 415);
        assert_eq!(MultipartParser::for_content_type("multipart/form-data").unwrap_err().status, 400);
        assert_eq!(MultipartParser::new(&"x".repeat(71)).unwrap_err().status, 400);
        assert!(MultipartParser::for_content_type("Multipart/Form-Data; boundary=\"a b\"").is_ok());
    }
}
