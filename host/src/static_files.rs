//! Static files (`--static DIR`): which file a request path names and how a GET or HEAD for it
//! is answered.
//!
//! Owns the traversal policy (nothing outside the root is ever opened; dotfiles are refused
//! unless allowed), content types, validators (`ETag`, `Last-Modified`), the precondition order
//! of RFC 9110 §13.2.2, byte ranges (RFC 9110 §14, `multipart/byteranges`) and the choice of a
//! precompressed sibling (`x.br`, `x.gz`). [`StaticDir::resolve`] touches the file system and
//! blocks: callers run it on a blocking thread. Everything else here is pure: [`request_path`]
//! turns a raw path into checked segments, [`plan`] turns a file's metadata and the request's
//! conditional headers into a status, head fields and the byte ranges to send.
//!
//! Knows nothing of sockets, wasm or the router; `conn` writes what this module decides.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;

/// The file served for a directory path ending in `/`.
pub const INDEX_FILE: &str = "index.html";

/// The one dot-named folder served without `--static-dotfiles`: RFC 8615 well-known URIs
/// (ACME challenges, `security.txt`) live there and are meant to be public.
pub const WELL_KNOWN: &str = ".well-known";

/// Most ranges one request may ask for before the whole file is sent instead (RFC 9110 §14.2
/// allows ignoring `Range`). Bounds the work and the response-head overhead a client can cause
/// with thousands of tiny ranges; real clients (media players, download resumers) ask for one.
pub const MAX_RANGES: usize = 16;

/// A content coding of a precompressed sibling file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `x.br`, `Content-Encoding: br`.
    Brotli,
    /// `x.gz`, `Content-Encoding: gzip`.
    Gzip,
}

impl Encoding {
    /// Every coding with a sibling file, in the order preferred when the client likes them
    /// equally (brotli is smaller).
    pub const ALL: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

    /// The `Content-Encoding` token.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The sibling file's extension, without the dot.
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gz",
        }
    }
}

/// Why a path is not served. Every refusal is answered 404: the client learns nothing about
/// what exists outside what is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The path is not of the form `/seg/seg…`, or has an empty segment in the middle.
    #[error("malformed path")]
    Malformed,
    /// A segment is `.` or `..` (raw or percent-encoded).
    #[error("dot segment")]
    DotSegment,
    /// A segment decodes to a `/`, a `\`, a NUL or invalid UTF-8.
    #[error("forbidden byte in a segment")]
    ForbiddenByte,
    /// A segment (or the real path behind a symlink) starts with `.`.
    #[error("dotfile")]
    Dotfile,
    /// The real path (symlinks followed) is outside the static directory.
    #[error("outside the static directory")]
    OutsideRoot,
    /// Nothing regular is there (missing, a device, a FIFO, a directory without index).
    #[error("no such file")]
    Missing,
}

/// A request path, checked: its decoded segments and whether it ended with `/`.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestPath {
    /// Decoded segments, none empty, none `.`/`..`, none holding `/`, `\` or NUL.
    pub segments: Vec<String>,
    /// The raw path ended with `/` (or is `/`).
    pub trailing_slash: bool,
}

/// Checks and decodes a raw (percent-encoded) request path. Decodes exactly once, so a
/// double-encoded `%252e%252e` is the literal name `%2e%2e`, never `..`. Refuses `.`/`..`
/// segments, empty segments other than a trailing one, segments that decode to `/`, `\`, NUL
/// or invalid UTF-8, and (unless `dotfiles`) segments starting with `.` other than
/// [`WELL_KNOWN`].
///
/// # Errors
///
/// The [`Refusal`] that applies first.
pub fn request_path(raw: &str, dotfiles: bool) -> Result<RequestPath, Refusal> {
    let rest = raw.strip_prefix('/').ok_or(Refusal::Malformed)?;
    let trailing_slash = rest.is_empty() || rest.ends_with('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = Vec::new();
    if rest.is_empty() {
        return Ok(RequestPath { segments, trailing_slash });
    }
    for raw_segment in rest.split('/') {
        if raw_segment.is_empty() {
            return Err(Refusal::Malformed);
        }
        let bytes: Vec<u8> = percent_decode_str(raw_segment).collect();
        if bytes.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) {
            return Err(Refusal::ForbiddenByte);
        }
        let segment = String::from_utf8(bytes).map_err(|_| Refusal::ForbiddenByte)?;
        if segment == "." || segment == ".." {
            return Err(Refusal::DotSegment);
        }
        if segment.starts_with('.') && !dotfiles && segment != WELL_KNOWN {
            return Err(Refusal::Dotfile);
        }
        segments.push(segment);
    }
    Ok(RequestPath { segments, trailing_slash })
}

/// The static directory, as configured.
#[derive(Clone, Debug)]
pub struct StaticDir {
    /// The directory as given (absolute). Resolved again for every request, so swapping a
    /// symlinked release directory takes effect at once.
    dir: PathBuf,
    dotfiles: bool,
}

/// The static directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve static files from {}: {reason}", .dir.display())]
pub struct StaticDirError {
    /// The directory given.
    pub dir: PathBuf,
    /// Why.
    pub reason: String,
}

/// What a request path resolves to.
#[derive(Debug)]
pub enum Resolution {
    /// Nothing to serve (answered 404).
    NotFound(Refusal),
    /// A directory named without its trailing slash: redirect to the path with one.
    AddSlash,
    /// A regular file inside the directory, opened.
    File(StaticFile),
}

/// An opened file to serve, with what [`plan`] needs to know about it.
#[derive(Debug)]
pub struct StaticFile {
    /// The open file (the precompressed sibling, if one was chosen).
    pub file: File,
    /// Its metadata and how it is described.
    pub representation: Representation,
}

/// The representation of a file that a response describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representation {
    /// Bytes in the file sent (the compressed one, if encoded).
    pub len: u64,
    /// Its modification time.
    pub modified: SystemTime,
    /// `Content-Type`, from the requested name's extension.
    pub content_type: String,
    /// The precompressed coding chosen, if any.
    pub encoding: Option<Encoding>,
    /// Some precompressed sibling exists, so responses for this path vary by
    /// `Accept-Encoding`.
    pub varies: bool,
}

impl StaticDir {
    /// Checks that `dir` is a readable directory. `dotfiles` serves names starting with `.`.
    ///
    /// # Errors
    ///
    /// A [`StaticDirError`] naming the directory.
    pub fn open(dir: &Path, dotfiles: bool) -> Result<Self, StaticDirError> {
        let fail = |reason: String| StaticDirError { dir: dir.to_path_buf(), reason };
        let absolute = std::path::absolute(dir).map_err(|e| fail(e.to_string()))?;
        let meta = std::fs::metadata(&absolute).map_err(|e| fail(e.to_string()))?;
        if !meta.is_dir() {
            return Err(fail("not a directory".into()));
        }
        std::fs::read_dir(&absolute).map_err(|e| fail(e.to_string()))?;
        Ok(Self { dir: absolute, dotfiles })
    }

    /// The directory as configured.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finds and opens the file `raw_path` names, choosing a precompressed sibling among
    /// `accepted` (in preference order, see [`accepted_encodings`]). Blocks on the file system.
    ///
    /// Every candidate's real path (symlinks followed) must lie inside the directory's real
    /// path, and no component of it may start with `.` unless dotfiles are served; only regular
    /// files are opened (never a FIFO or a device), without following a final symlink.
    #[must_use]
    pub fn resolve(&self, raw_path: &str, accepted: &[Encoding]) -> Resolution {
        match self.try_resolve(raw_path, accepted) {
            Ok(resolution) => resolution,
            Err(refusal) => Resolution::NotFound(refusal),
        }
    }

    fn try_resolve(&self, raw_path: &str, accepted: &[Encoding]) -> Result<Resolution, Refusal> {
        let path = request_path(raw_path, self.dotfiles)?;
        let root = std::fs::canonicalize(&self.dir).map_err(|_| Refusal::Missing)?;
        let mut candidate = root.clone();
        candidate.extend(&path.segments);
        let real = self.inside(&root, &candidate)?;
        let meta = std::fs::metadata(&real).map_err(|_| Refusal::Missing)?;
        let (real, name) = if meta.is_dir() {
            if !path.trailing_slash {
                return Ok(Resolution::AddSlash);
            }
            (self.inside(&root, &real.join(INDEX_FILE))?, INDEX_FILE)
        } else if path.trailing_slash {
            return Err(Refusal::Missing);
        } else {
            (real, path.segments.last().map_or(INDEX_FILE, String::as_str))
        };
        let content_type = content_type(name);
        let siblings: Vec<(Encoding, PathBuf)> = Encoding::ALL
            .into_iter()
            .filter_map(|e| {
                let mut sibling = real.clone().into_os_string();
                sibling.push(".");
                sibling.push(e.extension());
                let sibling = self.inside(&root, Path::new(&sibling)).ok()?;
                sibling.is_file().then_some((e, sibling))
            })
            .collect();
        let varies = !siblings.is_empty();
        for wanted in accepted {
            if let Some((e, sibling)) = siblings.iter().find(|(e, _)| e == wanted)
                && let Ok((file, len, modified)) = open_regular(sibling)
            {
                let representation =
                    Representation { len, modified, content_type, encoding: Some(*e), varies };
                return Ok(Resolution::File(StaticFile { file, representation }));
            }
        }
        let (file, len, modified) = open_regular(&real).map_err(|_| Refusal::Missing)?;
        let representation = Representation { len, modified, content_type, encoding: None, varies };
        Ok(Resolution::File(StaticFile { file, representation }))
    }

    /// The real path of `candidate` if it lies inside `root` (a real path) and passes the
    /// dotfile rule.
    fn inside(&self, root: &Path, candidate: &Path) -> Result<PathBuf, Refusal> {
        let real = std::fs::canonicalize(candidate).map_err(|_| Refusal::Missing)?;
        let relative = real.strip_prefix(root).map_err(|_| Refusal::OutsideRoot)?;
        if !self.dotfiles {
            let mut components = relative.components().enumerate();
            let dotted = components.any(|(i, c)| match c {
                Component::Normal(name) => {
                    let name = name.to_string_lossy();
                    name.starts_with('.') && !(i == 0 && name == WELL_KNOWN)
                }
                _ => true,
            });
            if dotted {
                return Err(Refusal::Dotfile);
            }
        }
        Ok(real)
    }
}

/// Opens a regular file for reading: non-blocking (so a FIFO swapped in cannot hang the
/// thread), not following a final symlink (the path is already real), and checks on the open
/// file that it is regular. Returns the file, its length and modification time.
fn open_regular(path: &Path) -> io::Result<(File, u64, SystemTime)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)))
}

/// The `Content-Type` for a file name: from its extension (`mime_guess`), with `charset=utf-8`
/// for text, JavaScript and JSON; `application/octet-stream` when unknown.
#[must_use]
pub fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json")
        || mime.suffix().is_some_and(|s| s == "json");
    if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// The precompressed codings the client accepts, most preferred first, from its
/// `Accept-Encoding` values (RFC 9110 §12.5.3): by `q` value, brotli before gzip on a tie;
/// `q=0` refuses a coding; `*` covers codings not named. No header: none (identity).
#[must_use]
pub fn accepted_encodings(accept_encoding: Option<&str>) -> Vec<Encoding> {
    let Some(header) = accept_encoding else {
        return Vec::new();
    };
    let mut named: Vec<(String, u16)> = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if coding.is_empty() {
            continue;
        }
        let mut q = 1000;
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = parse_qvalue(v.trim()).unwrap_or(0);
            }
        }
        named.push((coding, q));
    }
    let q_of = |e: Encoding| {
        let aliases: &[&str] = match e {
            Encoding::Brotli => &["br"],
            Encoding::Gzip => &["gzip", "x-gzip"],
        };
        named
            .iter()
            .find(|(c, _)| aliases.contains(&c.as_str()))
            .or_else(|| named.iter().find(|(c, _)| c == "*"))
            .map_or(0, |(_, q)| *q)
    };
    let mut out: Vec<(Encoding, u16)> =
        Encoding::ALL.into_iter().map(|e| (e, q_of(e))).filter(|(_, q)| *q > 0).collect();
    // Stable: equal q keeps the preference order of `ALL`.
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out.into_iter().map(|(e, _)| e).collect()
}

/// A `qvalue` (RFC 9110 §12.4.2) in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The request's conditional and range header values (each the comma-joined values of every
/// field of that name; `None` when absent or not UTF-8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<String>,
    /// `Range`.
    pub range: Option<String>,
    /// `If-Range`.
    pub if_range: Option<String>,
}

/// How a file is answered, decided by [`plan`].
#[derive(Debug, PartialEq, Eq)]
pub struct FilePlan {
    /// 200, 206 or 304.
    pub status: u16,
    /// Head fields besides the framing ones (`content-length` is the body's).
    pub headers: Vec<(&'static str, String)>,
    /// The body, in order; empty for 304.
    pub parts: Vec<Part>,
}

impl FilePlan {
    /// The body's length in bytes.
    #[must_use]
    pub fn body_len(&self) -> u64 {
        self.parts.iter().map(Part::len).sum()
    }
}

/// A piece of a file response's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Bytes made here (the part headers of a `multipart/byteranges` body).
    Bytes(Vec<u8>),
    /// This byte range of the file.
    File(Range<u64>),
}

impl Part {
    /// Its length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::File(r) => r.end - r.start,
        }
    }

    /// Whether it has no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file request that is answered with an error status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    PreconditionFailed,
    /// 416: no requested range overlaps the file; the file's length for `Content-Range:
    /// bytes */LEN`.
    RangeNotSatisfiable(u64),
}

/// The entity tag of a representation: strong, from its length, its modification time (in
/// nanoseconds) and its coding, so any change to the file, or a different coding, changes it.
#[must_use]
pub fn etag(r: &Representation) -> String {
    let nanos = r.modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    match r.encoding {
        Some(e) => format!("\"{:x}-{nanos:x}-{}\"", r.len, e.extension()),
        None => format!("\"{:x}-{nanos:x}\"", r.len),
    }
}

/// Decides the answer to a GET or HEAD of representation `r` (whose `etag` is given) under
/// the request's `conditions`, in the order of RFC 9110 §13.2.2:
///
/// 1. `If-Match` (strong comparison; `*` matches) fails → 412; else
/// 2. without `If-Match`, `If-Unmodified-Since` older than the file → 412;
/// 3. `If-None-Match` (weak comparison; `*` matches) matches → 304; else
/// 4. without `If-None-Match`, `If-Modified-Since` not older than the file → 304;
/// 5. `Range` is honoured unless `If-Range` is present and does not match (a strong entity
///    tag, or exactly the `Last-Modified` date); then the whole file.
///
/// Ranges (RFC 9110 §14): a syntactically invalid `Range` (or another unit) is ignored; ranges
/// that start past the end are dropped; none left → 416; one → 206 with `Content-Range`;
/// several → 206 `multipart/byteranges` with `boundary`, unless they overlap or there are more
/// than [`MAX_RANGES`]: then the whole file (200).
///
/// # Errors
///
/// [`PlanError`] for 412 and 416.
pub fn plan(r: &Representation, conditions: &Conditions, boundary: &str) -> Result<FilePlan, PlanError> {
    let tag = etag(r);
    let modified_secs = r.modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(modified_secs));
    let date_secs = |v: &str| {
        httpdate::parse_http_date(v.trim())
            .ok()
            .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    };

    if let Some(if_match) = &conditions.if_match {
        if !tag_list_matches(if_match, &tag, true) {
            return Err(PlanError::PreconditionFailed);
        }
    } else if let Some(since) = conditions.if_unmodified_since.as_deref().and_then(date_secs)
        && modified_secs > since
    {
        return Err(PlanError::PreconditionFailed);
    }

    let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(8);
    headers.push(("etag", tag.clone()));
    headers.push(("last-modified", last_modified.clone()));
    if r.varies {
        headers.push(("vary", "accept-encoding".into()));
    }

    let not_modified = match &conditions.if_none_match {
        Some(if_none_match) => tag_list_matches(if_none_match, &tag, false),
        None => conditions
            .if_modified_since
            .as_deref()
            .and_then(date_secs)
            .is_some_and(|since| modified_secs <= since),
    };
    if not_modified {
        return Ok(FilePlan { status: 304, headers, parts: Vec::new() });
    }

    headers.push(("accept-ranges", "bytes".into()));
    if let Some(e) = r.encoding {
        headers.push(("content-encoding", e.token().into()));
    }
    let range_applies = conditions.range.is_some()
        && conditions.if_range.as_deref().is_none_or(|v| if_range_matches(v.trim(), &tag, &last_modified));
    let ranges = match conditions.range.as_deref() {
        Some(range) if range_applies => satisfiable_ranges(range, r.len)?,
        _ => None,
    };
    let whole = || vec![Part::File(0..r.len)];
    let (status, parts) = match ranges {
        None => {
            headers.push(("content-type", r.content_type.clone()));
            (200, whole())
        }
        Some(ranges) if ranges.len() == 1 => {
            let range = ranges[0].clone();
            headers.push(("content-type", r.content_type.clone()));
            headers.push(("content-range", format!("bytes {}-{}/{}", range.start, range.end - 1, r.len)));
            (206, vec![Part::File(range)])
        }
        Some(ranges) => {
            headers.push(("content-type", format!("multipart/byteranges; boundary={boundary}")));
            (206, multipart(&ranges, r, boundary))
        }
    };
    Ok(FilePlan { status, headers, parts })
}

/// The parts of a `multipart/byteranges` body (RFC 9110 §14.6).
fn multipart(ranges: &[Range<u64>], r: &Representation, boundary: &str) -> Vec<Part> {
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    for (i, range) in ranges.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\ncontent-type: {}\r\ncontent-range: bytes {}-{}/{}\r\n\r\n",
            r.content_type,
            range.start,
            range.end - 1,
            r.len
        );
        parts.push(Part::Bytes(head.into_bytes()));
        parts.push(Part::File(range.clone()));
    }
    parts.push(Part::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    parts
}

/// The satisfiable ranges of a `Range` value for a file of `len` bytes, as half-open byte
/// ranges in the order asked. `Ok(None)`: serve the whole file (invalid syntax, another unit,
/// overlapping ranges, or too many of them).
fn satisfiable_ranges(value: &str, len: u64) -> Result<Option<Vec<Range<u64>>>, PlanError> {
    use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};
    let parsed = match http_range_header::parse_range_header(value.trim()) {
        Ok(parsed) => parsed,
        // `bytes=-0` is well-formed but selects nothing.
        Err(RangeUnsatisfiableError::ZeroSuffix) => return Err(PlanError::RangeNotSatisfiable(len)),
        Err(_) => return Ok(None),
    };
    let mut ranges = Vec::with_capacity(parsed.ranges.len());
    for range in &parsed.ranges {
        let (start, end) = match (range.start, range.end) {
            (StartPosition::Index(first), EndPosition::Index(last)) if first > last => return Ok(None),
            (StartPosition::Index(first), EndPosition::Index(last)) => {
                (first, last.saturating_add(1).min(len))
            }
            (StartPosition::Index(first), EndPosition::LastByte) => (first, len),
            (StartPosition::FromLast(n), _) => (len.saturating_sub(n), len),
        };
        if start < len && start < end {
            ranges.push(start..end);
        }
    }
    if ranges.is_empty() {
        return Err(PlanError::RangeNotSatisfiable(len));
    }
    if ranges.len() > MAX_RANGES {
        return Ok(None);
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    if sorted.windows(2).any(|w| w[1].start < w[0].end) {
        return Ok(None);
    }
    Ok(Some(ranges))
}

/// Whether an `If-Range` value matches: an entity tag by strong comparison, or a date equal
/// to `Last-Modified` (RFC 9110 §13.1.5).
fn if_range_matches(value: &str, tag: &str, last_modified: &str) -> bool {
    if value.starts_with('"') || value.starts_with("W/") {
        return strong_eq(value, tag);
    }
    match (httpdate::parse_http_date(value), httpdate::parse_http_date(last_modified)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether a list of entity tags (`If-Match` / `If-None-Match`) matches `tag`; `*` always
/// does. `strong`: weak tags never match (RFC 9110 §8.8.3.2).
fn tag_list_matches(list: &str, tag: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|candidate| {
        if strong {
            strong_eq(candidate, tag)
        } else {
            candidate.strip_prefix("W/").unwrap_or(candidate) == tag.strip_prefix("W/").unwrap_or(tag)
        }
    })
}

/// Strong comparison: both tags strong and equal.
fn strong_eq(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rep(len: u64) -> Representation {
        Representation {
            len,
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            content_type: "text/plain; charset=utf-8".into(),
            encoding: None,
            varies: false,
        }
    }

    fn header<'a>(p: &'a FilePlan, name: &str) -> Option<&'a str> {
        p.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn cond(f: impl FnOnce(&mut Conditions)) -> Conditions {
        let mut c = Conditions::default();
        f(&mut c);
        c
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    #[test]
    fn paths_decode_once_and_refuse_every_escape() {
        let ok = |p: &str| request_path(p, false).map(|r| r.segments);
        assert_eq!(ok("/"), Ok(vec![]));
        assert_eq!(ok("/a/b%20c.txt"), Ok(vec!["a".into(), "b c.txt".into()]));
        assert_eq!(ok("/%252e%252e/x"), Ok(vec!["%2e%2e".into(), "x".into()]), "decoded once only");
        assert_eq!(ok("/.."), Err(Refusal::DotSegment));
        assert_eq!(ok("/a/../b"), Err(Refusal::DotSegment));
        assert_eq!(ok("/%2e%2e/etc"), Err(Refusal::DotSegment));
        assert_eq!(ok("/%2E%2e/etc"), Err(Refusal::DotSegment));
        assert_eq!(ok("/a/./b"), Err(Refusal::DotSegment));
        assert_eq!(ok("/..%2fetc"), Err(Refusal::ForbiddenByte));
        assert_eq!(ok("/a%2Fb"), Err(Refusal::ForbiddenByte));
        assert_eq!(ok("/..%5cetc"), Err(Refusal::ForbiddenByte));
        assert_eq!(ok("/a\\b"), Err(Refusal::ForbiddenByte));
        assert_eq!(ok("/a%00.txt"), Err(Refusal::ForbiddenByte));
        assert_eq!(ok("/%ff"), Err(Refusal::ForbiddenByte));
        assert_eq!(ok("/a//b"), Err(Refusal::Malformed));
        assert_eq!(ok("*"), Err(Refusal::Malformed));
    }

    #[test]
    fn dotfiles_are_refused_unless_allowed_but_well_known_is_public() {
        assert_eq!(request_path("/.env", false), Err(Refusal::Dotfile));
        assert_eq!(request_path("/a/.git/config", false), Err(Refusal::Dotfile));
        assert_eq!(request_path("/%2eenv", false), Err(Refusal::Dotfile));
        assert!(request_path("/.well-known/security.txt", false).is_ok());
        assert!(request_path("/.env", true).is_ok());
        assert_eq!(request_path("/..", true), Err(Refusal::DotSegment), "never `..`");
    }

    #[test]
    fn trailing_slash_is_recorded() {
        assert!(request_path("/", false).unwrap().trailing_slash);
        assert!(request_path("/docs/", false).unwrap().trailing_slash);
        assert!(!request_path("/docs", false).unwrap().trailing_slash);
    }

    #[test]
    fn content_types_come_from_the_extension_with_utf8_for_text() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert!(content_type("app.js").ends_with("javascript; charset=utf-8"), "{}", content_type("app.js"));
        assert_eq!(content_type("data.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn accept_encoding_orders_by_q_and_prefers_brotli_on_ties() {
        use Encoding::*;
        assert_eq!(accepted_encodings(None), vec![]);
        assert_eq!(accepted_encodings(Some("gzip, deflate, br")), vec![Brotli, Gzip]);
        assert_eq!(accepted_encodings(Some("gzip")), vec![Gzip]);
        assert_eq!(accepted_encodings(Some("br;q=0.5, gzip;q=0.8")), vec![Gzip, Brotli]);
        assert_eq!(accepted_encodings(Some("br;q=0, gzip")), vec![Gzip]);
        assert_eq!(accepted_encodings(Some("*")), vec![Brotli, Gzip]);
        assert_eq!(accepted_encodings(Some("*;q=0.1, br;q=0")), vec![Gzip]);
        assert_eq!(accepted_encodings(Some("identity")), vec![]);
        assert_eq!(accepted_encodings(Some("GZIP;Q=1.0")), vec![Gzip]);
        assert_eq!(accepted_encodings(Some("gzip;q=2")), vec![], "invalid qvalue refuses");
    }

    #[test]
    fn a_plain_get_is_200_with_validators() {
        let p = plan(&rep(10), &Conditions::default(), "B").unwrap();
        assert_eq!(p.status, 200);
        assert_eq!(p.parts, vec![Part::File(0..10)]);
        assert_eq!(header(&p, "last-modified"), Some(LM));
        assert_eq!(header(&p, "etag"), Some(etag(&rep(10)).as_str()));
        assert_eq!(header(&p, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&p, "vary"), None);
    }

    #[test]
    fn etags_change_with_length_time_and_coding() {
        let a = etag(&rep(10));
        assert_ne!(a, etag(&rep(11)));
        assert_ne!(a, etag(&Representation { modified: UNIX_EPOCH + Duration::from_nanos(1), ..rep(10) }));
        assert_ne!(a, etag(&Representation { encoding: Some(Encoding::Gzip), ..rep(10) }));
        assert!(a.starts_with('"') && a.ends_with('"'));
    }

    #[test]
    fn if_match_failing_is_412_and_wins_over_if_none_match() {
        let c = cond(|c| {
            c.if_match = Some("\"other\"".into());
            c.if_none_match = Some("*".into());
        });
        assert_eq!(plan(&rep(10), &c, "B"), Err(PlanError::PreconditionFailed));
        let tag = etag(&rep(10));
        let c = cond(|c| c.if_match = Some(format!("\"x\", {tag}")));
        assert_eq!(plan(&rep(10), &c, "B").unwrap().status, 200);
        let c = cond(|c| c.if_match = Some(format!("W/{tag}")));
        assert_eq!(
            plan(&rep(10), &c, "B"),
            Err(PlanError::PreconditionFailed),
            "weak never matches strongly"
        );
        let c = cond(|c| c.if_match = Some("*".into()));
        assert_eq!(plan(&rep(10), &c, "B").unwrap().status, 200);
    }

    #[test]
    fn if_unmodified_since_is_ignored_when_if_match_is_present() {
        let c = cond(|c| c.if_unmodified_since = Some(EARLIER.into()));
        assert_eq!(plan(&rep(10), &c, "B"), Err(PlanError::PreconditionFailed));
        let c = cond(|c| c.if_unmodified_since = Some(LM.into()));
        assert_eq!(plan(&rep(10), &c, "B").unwrap().status, 200);
        let c = cond(|c| {
            c.if_match = Some("*".into());
            c.if_unmodified_since = Some(EARLIER.into());
        });
        assert_eq!(plan(&rep(10), &c, "B").unwrap().status, 200);
        let c = cond(|c| c.if_unmodified_since = Some("not a date".into()));
        assert_eq!(plan(&rep(10), &c, "B").unwrap().status, 200, "an invalid date is ignored");
    }

    #[test]
    fn if_none_match_is_304_with_validators_and_no_body() {
        let tag = etag(&rep(10));
        for value in [tag.clone(), format!("W/{tag}"), format!("\"a\", {tag}"), "*".into()] {
            let p = plan(&rep(10), &cond(|c| c.if_none_match = Some(value.clone())), "B").unwrap();
            assert_eq!(p.status, 304, "{value}");
            assert!(p.parts.is_empty());
            assert_eq!(header(&p, "etag"), Some(tag.as_str()));
            assert_eq!(header(&p, "content-type"), None);
        }
        let p = plan(&rep(10), &cond(|c| c.if_none_match = Some("\"a\"".into())), "B").unwrap();
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_modified_since_only_counts_without_if_none_match() {
        let p = plan(&rep(10), &cond(|c| c.if_modified_since = Some(LM.into())), "B").unwrap();
        assert_eq!(p.status, 304);
        let p = plan(&rep(10), &cond(|c| c.if_modified_since = Some(EARLIER.into())), "B").unwrap();
        assert_eq!(p.status, 200);
        let c = cond(|c| {
            c.if_none_match = Some("\"other\"".into());
            c.if_modified_since = Some(LM.into());
        });
        assert_eq!(plan(&rep(10), &c, "B").unwrap().status, 200);
    }

    #[test]
    fn a_single_range_is_206_with_content_range() {
        for (value, range, content_range) in [
            ("bytes=0-3", 0..4, "bytes 0-3/10"),
            ("bytes=5-", 5..10, "bytes 5-9/10"),
            ("bytes=-3", 7..10, "bytes 7-9/10"),
            ("bytes=8-100", 8..10, "bytes 8-9/10"),
            ("bytes=-100", 0..10, "bytes 0-9/10"),
            ("bytes=50-60, 2-2", 2..3, "bytes 2-2/10"),
        ] {
            let p = plan(&rep(10), &cond(|c| c.range = Some(value.into())), "B").unwrap();
            assert_eq!(p.status, 206, "{value}");
            assert_eq!(p.parts, vec![Part::File(range)], "{value}");
            assert_eq!(header(&p, "content-range"), Some(content_range), "{value}");
        }
    }

    #[test]
    fn unsatisfiable_ranges_are_416_and_invalid_ones_are_ignored() {
        for value in ["bytes=10-", "bytes=20-30", "bytes=-0", "bytes=10-20, 30-"] {
            let r = plan(&rep(10), &cond(|c| c.range = Some(value.into())), "B");
            assert_eq!(r, Err(PlanError::RangeNotSatisfiable(10)), "{value}");
        }
        assert_eq!(
            plan(&rep(0), &cond(|c| c.range = Some("bytes=0-".into())), "B"),
            Err(PlanError::RangeNotSatisfiable(0))
        );
        for value in ["bytes=5-3", "items=0-1", "bytes=a-b", "bytes=", "0-1"] {
            let p = plan(&rep(10), &cond(|c| c.range = Some(value.into())), "B").unwrap();
            assert_eq!(p.status, 200, "{value}");
        }
    }

    #[test]
    fn several_ranges_are_multipart_byteranges() {
        let p = plan(&rep(10), &cond(|c| c.range = Some("bytes=0-1, 5-6".into())), "XYZ").unwrap();
        assert_eq!(p.status, 206);
        assert_eq!(header(&p, "content-type"), Some("multipart/byteranges; boundary=XYZ"));
        assert_eq!(header(&p, "content-range"), None);
        let head0 = "--XYZ\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-range: bytes 0-1/10\r\n\r\n";
        let head1 =
            "\r\n--XYZ\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-range: bytes 5-6/10\r\n\r\n";
        assert_eq!(
            p.parts,
            vec![
                Part::Bytes(head0.into()),
                Part::File(0..2),
                Part::Bytes(head1.into()),
                Part::File(5..7),
                Part::Bytes(b"\r\n--XYZ--\r\n".to_vec()),
            ]
        );
        assert_eq!(p.body_len(), (head0.len() + 2 + head1.len() + 2 + 11) as u64);
    }

    #[test]
    fn overlapping_or_too_many_ranges_get_the_whole_file() {
        let p = plan(&rep(10), &cond(|c| c.range = Some("bytes=0-5, 3-8".into())), "B").unwrap();
        assert_eq!((p.status, p.parts), (200, vec![Part::File(0..10)]));
        let many = (0..=MAX_RANGES as u64).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(",");
        let p = plan(&rep(100), &cond(|c| c.range = Some(format!("bytes={many}"))), "B").unwrap();
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_range_gates_the_range() {
        let tag = etag(&rep(10));
        let with = |if_range: &str| {
            let c = cond(|c| {
                c.range = Some("bytes=0-0".into());
                c.if_range = Some(if_range.into());
            });
            plan(&rep(10), &c, "B").unwrap().status
        };
        assert_eq!(with(&tag), 206);
        assert_eq!(with(LM), 206);
        assert_eq!(with("\"stale\""), 200);
        assert_eq!(with(&format!("W/{tag}")), 200, "weak tags never match");
        assert_eq!(with(EARLIER), 200);
    }

    #[test]
    fn precompressed_representations_say_so_and_vary() {
        let r = Representation { encoding: Some(Encoding::Brotli), varies: true, ..rep(10) };
        let p = plan(&r, &Conditions::default(), "B").unwrap();
        assert_eq!(header(&p, "content-encoding"), Some("br"));
        assert_eq!(header(&p, "vary"), Some("accept-encoding"));
        let r = Representation { varies: true, ..rep(10) };
        let p = plan(&r, &cond(|c| c.if_none_match = Some(etag(&r))), "B").unwrap();
        assert_eq!((p.status, header(&p, "vary")), (304, Some("accept-encoding")));
    }

    #[test]
    fn resolve_serves_index_redirects_and_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/index.html"), b"<p>docs</p>").unwrap();
        std::fs::write(root.join("a.txt"), b"aaa").unwrap();
        std::fs::write(root.join("a.txt.gz"), b"gz").unwrap();
        std::fs::write(root.join(".env"), b"secret").unwrap();
        std::fs::write(dir.path().join("outside.txt"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(root.join(".env"), root.join("env.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("alias.txt")).unwrap();
        let s = StaticDir::open(&root, false).unwrap();
        let found = |p: &str, acc: &[Encoding]| match s.resolve(p, acc) {
            Resolution::File(f) => Some(f.representation),
            _ => None,
        };
        assert!(matches!(s.resolve("/docs", &[]), Resolution::AddSlash));
        assert_eq!(found("/docs/", &[]).unwrap().content_type, "text/html; charset=utf-8");
        let plain = found("/a.txt", &[]).unwrap();
        assert_eq!((plain.len, plain.encoding, plain.varies), (3, None, true));
        let gz = found("/a.txt", &[Encoding::Brotli, Encoding::Gzip]).unwrap();
        assert_eq!((gz.len, gz.encoding), (2, Some(Encoding::Gzip)));
        assert_eq!(gz.content_type, "text/plain; charset=utf-8", "the type of the original");
        assert_eq!(found("/alias.txt", &[]).unwrap().len, 3, "symlinks inside the root are fine");
        assert!(matches!(s.resolve("/escape.txt", &[]), Resolution::NotFound(Refusal::OutsideRoot)));
        assert!(matches!(s.resolve("/env.txt", &[]), Resolution::NotFound(Refusal::Dotfile)));
        assert!(matches!(s.resolve("/.env", &[]), Resolution::NotFound(Refusal::Dotfile)));
        assert!(matches!(s.resolve("/missing", &[]), Resolution::NotFound(Refusal::Missing)));
        assert!(matches!(s.resolve("/a.txt/", &[]), Resolution::NotFound(Refusal::Missing)));
        assert!(matches!(s.resolve("/", &[]), Resolution::NotFound(Refusal::Missing)), "no index.html");
        let open = StaticDir::open(&root, true).unwrap();
        assert!(matches!(open.resolve("/.env", &[]), Resolution::File(_)));
    }

    #[test]
    fn fifos_and_devices_are_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(dir.path().join("fifo")).status().unwrap();
        assert!(status.success());
        let s = StaticDir::open(dir.path(), false).unwrap();
        assert!(matches!(s.resolve("/zero", &[]), Resolution::NotFound(Refusal::OutsideRoot)));
        assert!(matches!(s.resolve("/fifo", &[]), Resolution::NotFound(Refusal::Missing)));
    }

    #[test]
    fn a_missing_or_non_directory_root_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = StaticDir::open(&dir.path().join("nope"), false).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let e = StaticDir::open(&dir.path().join("f"), false).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
