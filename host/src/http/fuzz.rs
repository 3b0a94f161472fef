//! Fuzzing of the HTTP/1.1 request codec on stable Rust: [`parse_head`] and [`BodyDecoder`]
//! under a fast raw-bytes driver, proptest properties over generated messages, and a
//! differential check against h11, an independent parser (PyPI).
//!
//! Properties, each a test named after its rule:
//!
//! - [`arbitrary_bytes_never_panic_loop_or_depend_on_splits`]: random, token-soup and mutated
//!   bytes through both parsers, under default and tiny limits. No panic (overflow checks are
//!   on in the test build), no decoder call that neither makes progress nor asks for more, and
//!   the same answer for a prefix as the whole buffer allows. A hand-written loop with its own
//!   PRNG (about 10^6 inputs a second); a failing case is shrunk and printed with its seed.
//! - [`heads_parse_the_same_in_any_split`] and [`bodies_decode_the_same_in_any_split`]:
//!   generated messages (mostly valid, some with one odd part) fed whole, byte by byte and in
//!   random pieces give one answer; a message built only from valid parts is accepted and
//!   parses as it was written.
//! - [`parser_agrees_with_h11_or_differs_for_a_stated_reason`]: every generated message goes
//!   to both parsers; where they differ the difference must be one of the [`Category`]s below,
//!   each a deliberate choice citing its RFC section, and is counted.
//!
//! Budget, from the environment (`make fuzz` sets them; `make test` runs the short default):
//! `WASM_HOST_FUZZ_CASES` cases per property, and/or `WASM_HOST_FUZZ_SECONDS` of wall time
//! shared among the properties; `WASM_HOST_FUZZ_SEED` fixes the seed (otherwise random and
//! printed). A failure prints what to set to replay it. `WASM_HOST_H11_PYTHON` is the python
//! of the venv `scripts/ensure-fuzz.sh` makes; without it the differential test fails.
//!
//! Test code only: this module depends on the codec's public surface and nothing else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

use super::body::{BodyDecoder, Decoded};
use super::head::{BodyFraming, RequestHead, Version, parse_head};
use super::{DEFAULT_MAX_BODY, DEFAULT_MAX_HEAD_BYTES, HttpLimits, RequestError};

// ---- budget ----

/// Cases of the raw-bytes driver in the default (`make test`) run: well under a second.
const DEFAULT_RAW_CASES: u64 = 100_000;
/// Cases of each proptest property in the default run.
const DEFAULT_CASES: u64 = 2_000;
/// Proptest cases per runner: a failure names its batch, which replays alone.
const BATCH: u64 = 1_000;
/// Most messages sent to h11 in one round trip (one proptest case of the differential test).
const DIFF_BATCH: usize = 64;

/// Shares of `WASM_HOST_FUZZ_SECONDS`; the properties run one after another under `make fuzz`.
const RAW_SHARE: f64 = 0.35;
const HEAD_SHARE: f64 = 0.15;
const BODY_SHARE: f64 = 0.15;
const DIFF_SHARE: f64 = 0.35;

/// How much one property runs: at most `cases` cases and, when set, until `deadline`.
#[derive(Clone, Copy, Debug)]
struct Budget {
    cases: u64,
    deadline: Option<Instant>,
    seed: u64,
    /// `WASM_HOST_FUZZ_BATCH`: replay this proptest batch only.
    batch: Option<u64>,
}

impl Budget {
    /// The budget from the environment: `WASM_HOST_FUZZ_CASES` cases, `share` of
    /// `WASM_HOST_FUZZ_SECONDS`, or `default_cases` when neither is set.
    fn from_env(default_cases: u64, share: f64) -> Self {
        let cases = env_u64("WASM_HOST_FUZZ_CASES");
        let seconds = env_u64("WASM_HOST_FUZZ_SECONDS");
        let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s as f64 * share));
        let cases = match (cases, seconds) {
            (Some(n), _) => n,
            (None, Some(_)) => u64::MAX,
            (None, None) => default_cases,
        };
        let seed = env_u64("WASM_HOST_FUZZ_SEED").unwrap_or_else(|| {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
            Rng::new((nanos as u64) ^ u64::from(std::process::id())).next()
        });
        Self { cases, deadline, seed, batch: env_u64("WASM_HOST_FUZZ_BATCH") }
    }

    /// Whether `done` cases exhaust the budget.
    fn spent(&self, done: u64) -> bool {
        done >= self.cases || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Whether the run is larger than the default one (worth more threads or processes).
    fn is_long(&self) -> bool {
        self.deadline.is_some() || self.cases > DEFAULT_RAW_CASES
    }
}

/// A decimal (or `0x` hex) variable; unset or empty is `None`, anything else is a mistake.
fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    let v = value.trim().replace('_', "");
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

/// Counts of outcomes by name, printed at the end of a property.
#[derive(Default, Debug)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, key: &str, n: u64) {
        if let Some(v) = self.0.get_mut(key) {
            *v += n;
        } else {
            self.0.insert(key.to_owned(), n);
        }
    }

    fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }

    /// The counts whose key starts with `prefix`, one per line.
    fn lines(&self, prefix: &str) -> String {
        let mut out = String::new();
        for (k, v) in self.0.range(prefix.to_owned()..).take_while(|(k, _)| k.starts_with(prefix)) {
            let _ = writeln!(out, "    {:>10}  {}", v, &k[prefix.len()..]);
        }
        out
    }
}

#[allow(
    clippy::print_stdout,
    reason = "the coverage report of a fuzz run; cargo test shows it with --nocapture"
)]
fn report(text: &str) {
    println!("{text}");
}

/// A short name for an error, as counted in the reports.
fn error_key(e: &RequestError) -> String {
    match e {
        RequestError::BadRequest(m) => format!("400 {m}"),
        RequestError::NotImplemented(m) => format!("501 {m}"),
        other => format!("{} {other}", other.status()),
    }
}

/// `bytes` as a Rust byte-string literal, for pasting into a unit test.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::from("b\"");
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    s
}

// ---- the two parsers, driven the way a connection drives them ----

/// How a body decoding run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// [`Decoded::Done`].
    Done,
    /// The input ran out with the decoder asking for more.
    Incomplete,
    /// The decoder refused the body.
    Failed(RequestError),
}

/// What a [`BodyDecoder`] made of some input.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BodyRun {
    body: Vec<u8>,
    /// Bytes the decoder consumed in all.
    consumed: usize,
    end: End,
}

/// Decodes `input` as a connection would, handing the decoder the unconsumed bytes plus the
/// next piece whenever it asks for more; a piece ends at each of `cuts` (ascending, the last
/// is `input.len()`). `Err` when the decoder breaks its contract: a call that neither makes
/// progress nor asks for more input (a connection would spin on it), `NeedMore` that leaves
/// bytes unconsumed, a data range outside the input, or an error that is not returned again.
fn drive_body(
    framing: BodyFraming,
    max_body: Option<u64>,
    input: &[u8],
    cuts: &[usize],
) -> Result<BodyRun, String> {
    let mut decoder = BodyDecoder::new(framing, max_body);
    let mut pending: Vec<u8> = Vec::new();
    let mut start = 0; // pending[start..] is unconsumed
    let mut fed = 0;
    let mut next_cut = 0;
    let mut run = BodyRun { body: Vec::new(), consumed: 0, end: End::Incomplete };
    // Each Data call consumes a byte at least and each NeedMore is followed by a new piece.
    let max_calls = input.len() + cuts.len() + 2;
    for _ in 0..=max_calls {
        let unconsumed = &pending[start..];
        match decoder.decode(unconsumed) {
            Err(e) => {
                if decoder.decode(b"0\r\n\r\n") != Err(e) {
                    return Err(format!("decoder: error {e:?} is not returned again"));
                }
                // An error reports no consumed count (the connection closes), so what the
                // calls before it consumed depends on the pieces: not part of the answer.
                run.consumed = 0;
                run.end = End::Failed(e);
                return Ok(run);
            }
            Ok((consumed, what)) => {
                let need_more = what == Decoded::NeedMore;
                if consumed > unconsumed.len() {
                    return Err(format!("decoder: consumed {consumed} of {} bytes", unconsumed.len()));
                }
                match what {
                    Decoded::Data(range) => {
                        if range.is_empty() || range.end > consumed {
                            return Err(format!(
                                "decoder: no progress: Data({range:?}) with {consumed} consumed of {:?}",
                                escape(unconsumed)
                            ));
                        }
                        run.body.extend_from_slice(&unconsumed[range]);
                        if decoder.received() != run.body.len() as u64 {
                            return Err(format!(
                                "decoder: received() = {} after {} body bytes",
                                decoder.received(),
                                run.body.len()
                            ));
                        }
                    }
                    Decoded::NeedMore => {
                        if consumed != unconsumed.len() {
                            return Err(format!(
                                "decoder: NeedMore with {} of {:?} unconsumed",
                                unconsumed.len() - consumed,
                                escape(unconsumed)
                            ));
                        }
                    }
                    Decoded::Done => {
                        if !decoder.is_done() {
                            return Err("decoder: Done but is_done() is false".to_owned());
                        }
                        run.consumed += consumed;
                        run.end = End::Done;
                        return Ok(run);
                    }
                }
                run.consumed += consumed;
                start += consumed;
                if need_more {
                    let Some(&cut) = cuts.get(next_cut) else {
                        return Ok(run);
                    };
                    pending.drain(..start);
                    start = 0;
                    pending.extend_from_slice(&input[fed..cut]);
                    fed = cut;
                    next_cut += 1;
                }
            }
        }
    }
    Err(format!("decoder: loops, more than {max_calls} calls for {} bytes", input.len()))
}

/// Feeds `input` to [`parse_head`] the way a connection reads it: the buffer grows by one
/// piece at a time (ending at each of `cuts`) and is parsed again after each, until the head
/// is complete or refused. The answer for the buffer that ended the loop.
fn feed_head(
    input: &[u8],
    cuts: &[usize],
    limits: &HttpLimits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    let mut last = Ok(None);
    for &cut in cuts {
        last = parse_head(&input[..cut], limits);
        if !matches!(last, Ok(None)) {
            break;
        }
    }
    last
}

/// Sorted piece ends for `len` bytes: `len` itself plus `extra` random positions.
fn cuts_from(len: usize, positions: &[usize]) -> Vec<usize> {
    let mut cuts: Vec<usize> = positions.iter().map(|p| p % (len + 1)).collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Every position: one byte at a time.
fn byte_cuts(len: usize) -> Vec<usize> {
    (1..=len.max(1)).map(|c| c.min(len)).collect()
}

// ---- the raw-bytes driver ----

/// SplitMix64: fast, seedable and good enough to choose bytes (not for anything else).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seed of case `index` of a run seeded `seed`; replays alone with `WASM_HOST_FUZZ_CASE`.
fn case_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03)).next()
}

/// Bytes that matter to the grammar, drawn more often than others.
const INTERESTING: &[u8] = b"\r\n \t:;=,\"\\/?#*%0189afAF-_.\x00\x01\x7f\x80\xff";

/// Pieces of requests for the token soup and for insertions.
const TOKENS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"OPTIONS",
    b"HEAD",
    b" ",
    b"  ",
    b"\t",
    b"/",
    b"/a?b=c",
    b"*",
    b"http://h:80/p",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/1.2",
    b"HTTP/2.0",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"Host: h",
    b"Host:",
    b"Content-Length: ",
    b"Content-Length: 5",
    b"Content-Length: 5, 5",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Expect: 100-continue",
    b"Connection: close",
    b": ",
    b":",
    b"0",
    b"5",
    b"ffffffffffffffff",
    b"00000000000000000",
    b"18446744073709551616",
    b"16777217",
    b";",
    b";a=b",
    b";a=\"q\\\"\"",
    b" ;",
    b"=",
    b"\"",
    b"hello",
    b"0\r\n\r\n",
    b"3\r\nabc\r\n",
    b"0\r\nT: v\r\n\r\n",
    b"\x80",
    b"\xff",
];

/// Valid requests to mutate.
const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /hello/w%20rld?a=1&b=2 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  v a l  \r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6 ; c = \"d\\\"e\" ;f\r\n world\r\n0\r\nExpires: never\r\nX: \xff\r\n\r\nNEXT",
    b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc",
    b"\r\n\nOPTIONS * HTTP/1.0\nConnection: keep-alive\n\n",
    b"GET http://example.com:8080/p/q?x=1 HTTP/1.2\r\nHost: example.com:8080\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: , chunked ,\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0000\r\n\r\n",
    b"GET / HTTP/1.0\r\nA: \t\xff\xfe\tx\t \r\nB:\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0;x\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
];

/// One input of the raw driver: bytes over a biased alphabet, uniform bytes, a token soup, or
/// (most often) a valid request with a few mutations.
fn raw_input(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    match rng.below(10) {
        0 | 1 => {
            let len = rng.below(97);
            let bytes = (0..len)
                .map(|_| if rng.one_in(2) { *rng.pick(INTERESTING) } else { b'a' + rng.below(26) as u8 })
                .collect();
            ("biased", bytes)
        }
        2 => ("uniform", (0..rng.below(65)).map(|_| rng.next() as u8).collect()),
        3 | 4 => {
            let mut bytes = Vec::new();
            for _ in 0..=rng.below(24) {
                let token: &&[u8] = rng.pick(TOKENS);
                bytes.extend_from_slice(token);
            }
            ("tokens", bytes)
        }
        _ => {
            let mut bytes = rng.pick(SEEDS).to_vec();
            for _ in 0..*rng.pick(&[1, 1, 1, 2, 2, 3, 4, 6]) {
                mutate(rng, &mut bytes);
            }
            ("mutated", bytes)
        }
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let at = rng.below(bytes.len() + 1);
    match rng.below(8) {
        0 if at < bytes.len() => bytes[at] = rng.next() as u8,
        1 if at < bytes.len() => bytes[at] = *rng.pick(INTERESTING),
        2 => {
            let token = rng.pick(TOKENS);
            bytes.splice(at..at, token.iter().copied());
        }
        3 => {
            let end = (at + 1 + rng.below(8)).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        4 => {
            let from = rng.below(bytes.len() + 1);
            let end = (from + 1 + rng.below(16)).min(bytes.len());
            let piece = bytes[from..end].to_vec();
            bytes.splice(at..at, piece);
        }
        5 => bytes.truncate(at),
        6 => {
            // A run of one byte: long lines, many digits, many empty lines.
            let b = *rng.pick(INTERESTING);
            let most = if rng.one_in(8) { 300 } else { 20 };
            let n = 1 + rng.below(most);
            bytes.splice(at..at, std::iter::repeat_n(b, n));
        }
        _ => {
            let b = *rng.pick(INTERESTING);
            bytes.insert(at, b);
        }
    }
}

/// Limits for one raw case: mostly the defaults, sometimes tiny ones so the limit paths run.
fn raw_limits(rng: &mut Rng) -> HttpLimits {
    if rng.below(4) > 0 {
        return HttpLimits::default();
    }
    HttpLimits {
        max_request_line: rng.below(48),
        max_head_bytes: rng.below(160),
        max_headers: rng.below(6),
        max_body: if rng.one_in(3) { None } else { Some(rng.below(64) as u64) },
    }
}

/// Checks one raw input: panics are caught by the caller, broken rules are `Err`.
fn check_raw(input: &[u8], rng: &mut Rng, tally: &mut Tally) -> Result<(), String> {
    let limits = raw_limits(rng);
    let whole = parse_head(input, &limits);
    check_head(input, &limits, &whole)?;
    for _ in 0..2 {
        let k = rng.below(input.len() + 1);
        check_prefix(input, k, &limits, &whole)?;
    }
    tally.add(
        &match &whole {
            Ok(Some(_)) => "head: complete".to_owned(),
            Ok(None) => "head: incomplete".to_owned(),
            Err(e) => format!("head: {}", error_key(e)),
        },
        1,
    );

    // The same bytes as a chunked body and as a Content-Length body, and the body that
    // follows the head when there is one: one piece, then random pieces.
    let max_body = match rng.below(3) {
        0 => None,
        1 => Some(rng.below(48) as u64),
        _ => DEFAULT_MAX_BODY,
    };
    let mut runs = vec![
        ("chunked", BodyFraming::Chunked, max_body, input),
        ("length", BodyFraming::Length(1 + rng.below(input.len() + 8) as u64), max_body, input),
    ];
    if let Ok(Some((head, n))) = &whole {
        runs.push(("after head", head.framing, limits.max_body, &input[*n..]));
    }
    for (name, framing, max_body, bytes) in runs {
        let one = drive_body(framing, max_body, bytes, &[bytes.len()])?;
        let positions: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(bytes.len() + 1)).collect();
        let split = drive_body(framing, max_body, bytes, &cuts_from(bytes.len(), &positions))?;
        if split != one {
            return Err(format!(
                "{name} body split: {one:?} whole, {split:?} in pieces ending at {positions:?}"
            ));
        }
        check_body_run(framing, max_body, bytes, &one)?;
        tally.add(
            &match &one.end {
                End::Done => format!("body {name}: done"),
                End::Incomplete => format!("body {name}: incomplete"),
                End::Failed(e) => format!("body {name}: {}", error_key(e)),
            },
            1,
        );
    }
    Ok(())
}

/// What must hold for any answer of [`parse_head`].
fn check_head(
    input: &[u8],
    limits: &HttpLimits,
    whole: &Result<Option<(RequestHead, usize)>, RequestError>,
) -> Result<(), String> {
    let Ok(Some((head, n))) = whole else { return Ok(()) };
    let n = *n;
    let fail = |what: &str| Err(format!("head {what}: {head:?} ({n} bytes)"));
    if n == 0 || n > input.len() || n > limits.max_head_bytes || input[n - 1] != b'\n' {
        return fail("length");
    }
    if head.method.is_empty() || !head.method.bytes().all(is_token_byte) {
        return fail("method");
    }
    let path_ok = head.path.starts_with('/') || (head.path == "*" && head.method == "OPTIONS");
    let clean = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if !path_ok || !clean(&head.path) || !clean(&head.query) {
        return fail("target");
    }
    if head.headers.len() > limits.max_headers {
        return fail("header count");
    }
    for (name, value) in &head.headers {
        let trimmed =
            !matches!(value.first(), Some(b' ' | b'\t')) && !matches!(value.last(), Some(b' ' | b'\t'));
        if name.is_empty()
            || !name.bytes().all(is_token_byte)
            || !trimmed
            || !value.iter().all(|&b| is_field_byte(b))
        {
            return fail("field");
        }
    }
    match head.framing {
        BodyFraming::Length(0) => return fail("framing Length(0)"),
        BodyFraming::Length(len) if limits.max_body.is_some_and(|m| len > m) => {
            return fail("framing over max_body");
        }
        BodyFraming::Chunked if head.version == Version::Http10 => return fail("chunked in http/1.0"),
        _ => {}
    }
    if head.expect_continue && head.version != Version::Http11 {
        return fail("expect_continue");
    }
    if parse_head(&input[..n], limits) != *whole {
        return fail("differs when parsed alone");
    }
    Ok(())
}

/// A prefix of the input says incomplete, or what the whole says: complete heads are complete
/// exactly from their last byte on, and an error does not go away with more bytes.
fn check_prefix(
    input: &[u8],
    k: usize,
    limits: &HttpLimits,
    whole: &Result<Option<(RequestHead, usize)>, RequestError>,
) -> Result<(), String> {
    let prefix = parse_head(&input[..k], limits);
    let ok = match whole {
        Ok(Some((_, n))) if k < *n => matches!(prefix, Ok(None)),
        Ok(Some(_)) => prefix == *whole,
        Ok(None) => matches!(prefix, Ok(None)),
        Err(_) => matches!(prefix, Ok(None)) || prefix == *whole,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("head prefix: {k} bytes give {prefix:?}, the whole input {whole:?}"))
    }
}

/// What must hold for any body run.
fn check_body_run(
    framing: BodyFraming,
    max_body: Option<u64>,
    input: &[u8],
    run: &BodyRun,
) -> Result<(), String> {
    let fail = |what: &str| Err(format!("body {what}: {run:?} for {framing:?}"));
    let failed = matches!(run.end, End::Failed(_));
    if run.consumed > input.len() || (!failed && run.body.len() > run.consumed) {
        return fail("consumed");
    }
    if max_body.is_some_and(|m| run.body.len() as u64 > m) {
        return fail("over max_body");
    }
    match (framing, &run.end) {
        (_, End::Incomplete) if run.consumed != input.len() => return fail("incomplete before the end"),
        (_, End::Failed(_)) if run.consumed != 0 => return fail("consumed before an error"),
        (BodyFraming::Length(n), End::Done) if run.body.len() as u64 != n || run.consumed as u64 != n => {
            return fail("length");
        }
        (BodyFraming::Length(n), _) if run.body.len() as u64 > n => return fail("length"),
        (BodyFraming::Chunked, End::Done) if run.consumed < 5 => return fail("chunked end"),
        (BodyFraming::None, end) if *end != End::Done || run.consumed != 0 => return fail("none"),
        _ => {}
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte of a field value (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB.
fn is_field_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=0x7e | 0x80..=0xff)
}

/// Removes bytes from a failing input while it still fails: a shorter case to report.
fn shrink_raw(mut input: Vec<u8>, fails: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut width = input.len().max(1);
    while width > 0 {
        let mut at = 0;
        while at < input.len() {
            let mut candidate = input.clone();
            candidate.drain(at..(at + width).min(input.len()));
            if fails(&candidate) {
                input = candidate;
            } else {
                at += width;
            }
        }
        width /= 2;
    }
    input
}

/// Runs one raw case; `Err` holds the failure (a broken rule or a panic).
fn raw_case(seed: u64, tally: &mut Tally) -> Result<(), (Vec<u8>, String)> {
    let mut rng = Rng::new(seed);
    let (kind, input) = raw_input(&mut rng);
    tally.add(&format!("input: {kind}"), 1);
    let check_rng = rng.clone();
    let check = |input: &[u8], tally: &mut Tally| -> Result<(), String> {
        let mut rng = check_rng.clone();
        match catch_unwind(AssertUnwindSafe(|| check_raw(input, &mut rng, tally))) {
            Ok(result) => result,
            Err(panic) => Err(format!(
                "panic: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(not a string)")
            )),
        }
    };
    match check(&input, tally) {
        Ok(()) => Ok(()),
        Err(why) => {
            // Shrink to the same kind of failure (the words before the first colon).
            let kind = |why: &str| why.split(':').next().unwrap_or_default().to_owned();
            let small = shrink_raw(input.clone(), |i| {
                check(i, &mut Tally::default()).is_err_and(|w| kind(&w) == kind(&why))
            });
            let small_why = check(&small, &mut Tally::default()).err().unwrap_or_default();
            Err((input, format!("{why}\n  shrunk to {} ({small_why})", escape(&small))))
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic_loop_or_depend_on_splits() {
    let budget = Budget::from_env(DEFAULT_RAW_CASES, RAW_SHARE);
    if let Some(case) = env_u64("WASM_HOST_FUZZ_CASE") {
        // Replay one case of a failed run (the seed is in its message).
        let mut tally = Tally::default();
        if let Err((input, why)) = raw_case(case_seed(budget.seed, case), &mut tally) {
            panic!("case {case}: {why}\n  input {}", escape(&input));
        }
        return;
    }
    let workers =
        if budget.is_long() { std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) } else { 1 };
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let total = Mutex::new(Tally::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut tally = Tally::default();
                while !stop.load(Ordering::Relaxed) {
                    let first = next.fetch_add(256, Ordering::Relaxed);
                    if budget.spent(first) {
                        break;
                    }
                    for index in first..(first + 256).min(budget.cases) {
                        if let Err((input, why)) = raw_case(case_seed(budget.seed, index), &mut tally) {
                            stop.store(true, Ordering::Relaxed);
                            *failure.lock().unwrap() = Some(format!(
                                "raw case {index} of seed {seed:#x}: {why}\n  input {}\n  replay: \
                                 WASM_HOST_FUZZ_SEED={seed:#x} WASM_HOST_FUZZ_CASE={index} cargo test --release \
                                 -p wasm-host --lib http::fuzz::arbitrary_bytes",
                                escape(&input),
                                seed = budget.seed,
                            ));
                            break;
                        }
                    }
                }
                total.lock().unwrap().merge(&tally);
            });
        }
    });
    if let Some(failure) = failure.into_inner().unwrap() {
        panic!("{failure}");
    }
    let tally = total.into_inner().unwrap();
    let cases: u64 =
        ["biased", "uniform", "tokens", "mutated"].iter().map(|k| tally.get(&format!("input: {k}"))).sum();
    let secs = started.elapsed().as_secs_f64();
    report(&format!(
        "fuzz arbitrary_bytes: {cases} cases in {secs:.1} s ({:.0}/s, {workers} thread(s), seed {:#x})\n  \
         inputs\n{}  head outcomes\n{}  body outcomes\n{}",
        cases as f64 / secs,
        budget.seed,
        tally.lines("input: "),
        tally.lines("head: "),
        tally.lines("body "),
    ));
    assert!(cases > 0, "no case ran");
    // The driver is useless if nothing gets through: require complete heads and bodies.
    assert!(tally.get("head: complete") * 50 > cases, "too few complete heads: {tally:?}");
    assert!(tally.get("body chunked: done") * 200 > cases, "too few complete chunked bodies: {tally:?}");
}

// ---- the message model and its generators ----

/// A line ending as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eol {
    CrLf,
    /// A bare LF: a line end in the head (RFC 9112 §2.2), an error in chunked framing.
    Lf,
    /// A CR without LF: never valid.
    BareCr,
    /// None at all: the line runs into the next.
    Missing,
}

impl Eol {
    fn bytes(self) -> &'static [u8] {
        match self {
            Self::CrLf => b"\r\n",
            Self::Lf => b"\n",
            Self::BareCr => b"\r",
            Self::Missing => b"",
        }
    }
}

/// A header or trailer field line.
#[derive(Clone, Debug)]
struct Field {
    name: Vec<u8>,
    /// Whitespace between name and colon: invalid (RFC 9112 §5.1).
    before_colon: &'static [u8],
    lead: &'static [u8],
    /// The value without surrounding whitespace.
    value: Vec<u8>,
    trail: &'static [u8],
    /// An obs-fold continuation (CRLF, then SP or HTAB and more value): RFC 9112 §5.2.
    fold: Option<&'static [u8]>,
    eol: Eol,
}

impl Field {
    fn new(name: &str, value: &str) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            before_colon: b"",
            lead: b" ",
            value: value.as_bytes().to_vec(),
            trail: b"",
            fold: None,
            eol: Eol::CrLf,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.name);
        out.extend_from_slice(self.before_colon);
        out.push(b':');
        out.extend_from_slice(self.lead);
        out.extend_from_slice(&self.value);
        if let Some(fold) = self.fold {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(fold);
        }
        out.extend_from_slice(self.trail);
        out.extend_from_slice(self.eol.bytes());
    }

    fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// Valid as a field line of a head (`head`, where LF ends a line) or a trailer section.
    fn is_valid(&self, head: bool) -> bool {
        !self.name.is_empty()
            && self.name.iter().all(|&b| is_token_byte(b))
            && self.before_colon.is_empty()
            && self.fold.is_none()
            && self.value.iter().all(|&b| is_field_byte(b))
            && (self.eol == Eol::CrLf || (head && self.eol == Eol::Lf))
    }

    fn value_has_ctl(&self) -> bool {
        self.value.iter().any(|&b| !is_field_byte(b))
    }
}

/// The request-target.
#[derive(Clone, Debug)]
enum Target {
    Origin {
        path: Vec<u8>,
        query: Option<Vec<u8>>,
    },
    Absolute {
        scheme: &'static str,
        authority: Vec<u8>,
        path: Vec<u8>,
        query: Option<Vec<u8>>,
    },
    Asterisk,
    /// A target we refuse: authority-form, relative, a fragment, non-ASCII, userinfo...
    Odd(&'static [u8]),
}

impl Target {
    fn write(&self, out: &mut Vec<u8>) {
        let query = |out: &mut Vec<u8>, q: &Option<Vec<u8>>| {
            if let Some(q) = q {
                out.push(b'?');
                out.extend_from_slice(q);
            }
        };
        match self {
            Self::Origin { path, query: q } => {
                out.extend_from_slice(path);
                query(out, q);
            }
            Self::Absolute { scheme, authority, path, query: q } => {
                out.extend_from_slice(scheme.as_bytes());
                out.extend_from_slice(authority);
                out.extend_from_slice(path);
                query(out, q);
            }
            Self::Asterisk => out.push(b'*'),
            Self::Odd(t) => out.extend_from_slice(t),
        }
    }
}

/// The size of a chunk as written.
#[derive(Clone, Copy, Debug)]
enum SizeRepr {
    Lower,
    Upper,
    /// With this many leading zeros (at most 3: at most 16 digits in all).
    Zeros(u8),
    /// More than 16 digits, all but the last few zeros.
    TooManyDigits,
    /// Off by this much from the data that follows.
    Wrong(i8),
}

/// A chunk extension.
#[derive(Clone, Debug)]
enum Ext {
    /// `*( BWS ";" BWS name [ BWS "=" BWS value ] )` of RFC 9112 §7.1.1.
    Grammar(Vec<ExtItem>),
    /// Bytes outside that grammar.
    Junk(&'static [u8]),
}

#[derive(Clone, Debug)]
struct ExtItem {
    before_semi: &'static [u8],
    after_semi: &'static [u8],
    name: Vec<u8>,
    value: Option<(&'static [u8], &'static [u8], ExtValue)>,
}

#[derive(Clone, Debug)]
enum ExtValue {
    Token(Vec<u8>),
    /// The content of a quoted-string, already escaped.
    Quoted(Vec<u8>),
}

/// The rest of a chunk-size line after the size.
#[derive(Clone, Debug)]
struct SizeLine {
    /// Whitespace before the line end: outside the grammar (RFC 9112 §7.1).
    ws: &'static [u8],
    ext: Ext,
    eol: Eol,
}

impl SizeLine {
    fn write(&self, out: &mut Vec<u8>) {
        match &self.ext {
            Ext::Grammar(items) => {
                for item in items {
                    out.extend_from_slice(item.before_semi);
                    out.push(b';');
                    out.extend_from_slice(item.after_semi);
                    out.extend_from_slice(&item.name);
                    if let Some((before, after, value)) = &item.value {
                        out.extend_from_slice(before);
                        out.push(b'=');
                        out.extend_from_slice(after);
                        match value {
                            ExtValue::Token(t) => out.extend_from_slice(t),
                            ExtValue::Quoted(q) => {
                                out.push(b'"');
                                out.extend_from_slice(q);
                                out.push(b'"');
                            }
                        }
                    }
                }
            }
            Ext::Junk(junk) => out.extend_from_slice(junk),
        }
        out.extend_from_slice(self.ws);
        out.extend_from_slice(self.eol.bytes());
    }

    fn is_valid(&self) -> bool {
        self.ws.is_empty() && matches!(self.ext, Ext::Grammar(_)) && self.eol == Eol::CrLf
    }
}

#[derive(Clone, Debug)]
struct Chunk {
    data: Vec<u8>,
    size: SizeRepr,
    line: SizeLine,
    data_eol: Eol,
}

/// A chunked body (RFC 9112 §7.1).
#[derive(Clone, Debug)]
struct ChunkedBody {
    chunks: Vec<Chunk>,
    /// `0`s of the last chunk (1 to 3).
    last_zeros: usize,
    last_line: SizeLine,
    trailers: Vec<Field>,
    end: Eol,
}

impl ChunkedBody {
    fn write(&self, out: &mut Vec<u8>) {
        for chunk in &self.chunks {
            let len = chunk.data.len();
            let size = match chunk.size {
                SizeRepr::Lower => format!("{len:x}"),
                SizeRepr::Upper => format!("{len:X}"),
                SizeRepr::Zeros(z) => format!("{}{len:x}", "0".repeat(usize::from(z))),
                SizeRepr::TooManyDigits => format!("{len:017x}"),
                SizeRepr::Wrong(d) => format!("{:x}", len.saturating_add_signed(isize::from(d))),
            };
            out.extend_from_slice(size.as_bytes());
            chunk.line.write(out);
            out.extend_from_slice(&chunk.data);
            out.extend_from_slice(chunk.data_eol.bytes());
        }
        out.extend(std::iter::repeat_n(b'0', self.last_zeros));
        self.last_line.write(out);
        for field in &self.trailers {
            field.write(out);
        }
        out.extend_from_slice(self.end.bytes());
    }

    fn data(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|c| c.data.iter().copied()).collect()
    }

    /// Built only of valid parts: must decode to [`data`](Self::data).
    fn is_valid(&self) -> bool {
        self.chunks.iter().all(|c| {
            matches!(c.size, SizeRepr::Lower | SizeRepr::Upper | SizeRepr::Zeros(0..=3))
                && c.line.is_valid()
                && c.data_eol == Eol::CrLf
        }) && self.last_line.is_valid()
            && self.trailers.iter().all(|t| t.is_valid(false))
            && self.end == Eol::CrLf
    }
}

/// What follows the head.
#[derive(Clone, Debug)]
enum Body {
    Empty,
    Raw(Vec<u8>),
    Chunked(ChunkedBody),
}

/// The framing header fields of a message and its body. `expect` is `Some` (the framing the
/// head must get) when both are valid and agree.
#[derive(Clone, Debug)]
struct Framing {
    fields: Vec<Field>,
    body: Body,
    expect: Option<BodyFraming>,
}

/// A generated request: a value that shrinks part by part, written out by [`Message::bytes`].
#[derive(Clone, Debug)]
struct Message {
    leading: Vec<Eol>,
    method: Vec<u8>,
    sep: (&'static [u8], &'static [u8]),
    target: Target,
    version: &'static str,
    line_eol: Eol,
    /// All header fields in order, the framing ones among them.
    fields: Vec<Field>,
    end: Eol,
    framing: Framing,
    /// Bytes after the message (the next request, or nothing).
    next: &'static [u8],
}

impl Message {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        for eol in &self.leading {
            out.extend_from_slice(eol.bytes());
        }
        out.extend_from_slice(&self.method);
        out.extend_from_slice(self.sep.0);
        self.target.write(&mut out);
        out.extend_from_slice(self.sep.1);
        out.extend_from_slice(self.version.as_bytes());
        out.extend_from_slice(self.line_eol.bytes());
        for field in &self.fields {
            field.write(&mut out);
        }
        out.extend_from_slice(self.end.bytes());
        match &self.framing.body {
            Body::Empty => {}
            Body::Raw(data) => out.extend_from_slice(data),
            Body::Chunked(chunked) => chunked.write(&mut out),
        }
        out.extend_from_slice(self.next);
        out
    }

    fn fields_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(move |f| f.is_named(name))
    }

    /// The head and body this message must parse to, when every part of it is valid: our
    /// parser must then accept it exactly as written.
    fn expected(&self) -> Option<(RequestHead, Vec<u8>)> {
        let http10 = match self.version {
            "HTTP/1.0" => true,
            "HTTP/1.1" => false,
            _ => return None,
        };
        let method = std::str::from_utf8(&self.method).ok()?;
        let valid_line = !method.is_empty()
            && method.bytes().all(is_token_byte)
            && self.sep == (b" ", b" ")
            && matches!(self.line_eol, Eol::CrLf | Eol::Lf)
            && matches!(self.end, Eol::CrLf | Eol::Lf);
        let (path, query) = match &self.target {
            Target::Origin { path, query } => (path.clone(), query.clone().unwrap_or_default()),
            Target::Absolute { authority, path, query, .. } if is_authority(authority) => (
                if path.is_empty() { b"/".to_vec() } else { path.clone() },
                query.clone().unwrap_or_default(),
            ),
            Target::Asterisk if method == "OPTIONS" => (b"*".to_vec(), Vec::new()),
            _ => return None,
        };
        let hosts: Vec<&Field> = self.fields_named("host").collect();
        let host_ok = match hosts.as_slice() {
            [] => http10,
            [host] => is_authority(&host.value),
            _ => false,
        };
        let expect_ok = self.fields_named("expect").all(|f| {
            f.value
                .split(|&b| b == b',')
                .map(trim)
                .all(|e| e.is_empty() || e.eq_ignore_ascii_case(b"100-continue"))
        });
        let framing = self.framing.expect?;
        let framing_fields =
            self.fields_named("content-length").count() + self.fields_named("transfer-encoding").count();
        let body = match &self.framing.body {
            Body::Empty => Vec::new(),
            Body::Raw(data) => data.clone(),
            Body::Chunked(chunked) if chunked.is_valid() && !http10 => chunked.data(),
            Body::Chunked(_) => return None,
        };
        let valid = valid_line
            && host_ok
            && expect_ok
            && framing_fields == self.framing.fields.len()
            && self.fields.iter().all(|f| f.is_valid(true));
        valid.then(|| {
            let head = RequestHead {
                method: method.to_owned(),
                path: String::from_utf8(path).unwrap_or_default(),
                query: String::from_utf8(query).unwrap_or_default(),
                version: if http10 { Version::Http10 } else { Version::Http11 },
                headers: self
                    .fields
                    .iter()
                    .map(|f| (String::from_utf8_lossy(&f.name).into_owned(), f.value.clone()))
                    .collect(),
                framing,
                keep_alive: false,
                expect_continue: false,
            };
            (head, body)
        })
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &s[start..end]
}

/// `uri-host [ ":" port ]` by its alphabet (RFC 9110 §7.2, §4.2.4: no userinfo).
fn is_authority(value: &[u8]) -> bool {
    value.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

/// Heads equal for the properties: `keep_alive` and `expect_continue` are not modelled.
fn same_head(a: &RequestHead, b: &RequestHead) -> bool {
    (&a.method, &a.path, &a.query, a.version, &a.headers, a.framing)
        == (&b.method, &b.path, &b.query, b.version, &b.headers, b.framing)
}

/// The generators. `edge` (1 to 100) is how often, in percent, an odd alternative is taken at
/// each choice; most messages then have one odd part or none.
mod generate {
    use super::*;

    /// Visible ASCII and some obs-text: bytes of a field value word.
    const VCHAR_OBS: [u8; 100] = {
        let mut t = [0u8; 100];
        let mut i = 0;
        while i < 94 {
            t[i] = 0x21 + i as u8;
            i += 1;
        }
        let obs = [0x80, 0x9f, 0xa0, 0xc3, 0xe9, 0xff];
        let mut j = 0;
        while j < obs.len() {
            t[94 + j] = obs[j];
            j += 1;
        }
        t
    };
    const TCHAR: &[u8] = b"abcxyzABCXYZ0189!#$%&'*+-.^_`|~";
    const PCHAR: &[u8] = b"abczABCZ0189-._~!$&'()*+,;=:@%";
    const CTL: &[u8] = b"\x00\x01\x08\x0b\x0c\x1b\x1f\x7f\r\n";

    fn pick(items: &'static [&'static [u8]]) -> BoxedStrategy<&'static [u8]> {
        select(items).boxed()
    }

    fn sometimes<T: Clone + std::fmt::Debug + 'static>(
        edge: u32,
        plain: BoxedStrategy<T>,
        odd: BoxedStrategy<T>,
    ) -> BoxedStrategy<T> {
        prop_oneof![100 - edge.min(99) => plain, edge => odd].boxed()
    }

    pub fn head_eol(edge: u32) -> BoxedStrategy<Eol> {
        sometimes(
            edge,
            prop_oneof![9 => Just(Eol::CrLf), 1 => Just(Eol::Lf)].boxed(),
            prop_oneof![Just(Eol::BareCr), Just(Eol::Missing)].boxed(),
        )
    }

    pub fn chunked_eol(edge: u32) -> BoxedStrategy<Eol> {
        sometimes(
            edge / 2 + 1,
            Just(Eol::CrLf).boxed(),
            select(&[Eol::Lf, Eol::BareCr, Eol::Missing][..]).boxed(),
        )
    }

    fn token(len: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Vec<u8>> {
        vec(select(TCHAR), len).boxed()
    }

    /// A field value: words of VCHAR / obs-text with SP / HTAB between them, sometimes with
    /// a control byte (or CR, LF) somewhere.
    pub fn value(edge: u32) -> BoxedStrategy<Vec<u8>> {
        let words = vec((vec(select(&VCHAR_OBS[..]), 1..6), pick(&[b" ", b"  ", b"\t", b" \t "])), 0..4)
            .prop_map(|parts| {
                let mut v = Vec::new();
                for (i, (word, sep)) in parts.iter().enumerate() {
                    if i > 0 {
                        v.extend_from_slice(sep);
                    }
                    v.extend_from_slice(word);
                }
                v
            });
        let ctl = prop_oneof![100 - edge.min(99) => Just(None), edge => (any::<usize>(), select(CTL)).prop_map(Some)];
        (words, ctl)
            .prop_map(|(mut v, ctl)| {
                if let Some((at, b)) = ctl {
                    v.insert(at % (v.len() + 1), b);
                }
                v
            })
            .boxed()
    }

    fn ows() -> BoxedStrategy<&'static [u8]> {
        prop_oneof![4 => Just(&b""[..]), 3 => Just(&b" "[..]), 1 => Just(&b"\t"[..]), 1 => Just(&b" \t "[..])]
            .boxed()
    }

    /// A field line with this name and value, odd around them sometimes.
    pub fn field(
        edge: u32,
        name: BoxedStrategy<Vec<u8>>,
        value: BoxedStrategy<Vec<u8>>,
        eol: BoxedStrategy<Eol>,
    ) -> BoxedStrategy<Field> {
        let before_colon = sometimes(edge, Just(&b""[..]).boxed(), pick(&[b" ", b"\t"]));
        let fold = sometimes(
            edge,
            Just(None).boxed(),
            pick(&[b" folded", b"\tmore", b"  x y"]).prop_map(Some).boxed(),
        );
        (name, before_colon, ows(), value, ows(), fold, eol)
            .prop_map(|(name, before_colon, lead, value, trail, fold, eol)| Field {
                name,
                before_colon,
                lead,
                value,
                trail,
                fold,
                eol,
            })
            .boxed()
    }

    fn other_name(edge: u32) -> BoxedStrategy<Vec<u8>> {
        sometimes(
            edge,
            prop_oneof![
                pick(&[
                    b"Accept",
                    b"User-Agent",
                    b"Cookie",
                    b"Content-Type",
                    b"Cache-Control",
                    b"x-request-id",
                    b"Via",
                    b"TE",
                ])
                .prop_map(<[u8]>::to_vec),
                token(1..=10),
            ]
            .boxed(),
            pick(&[b"A(b", b"A b", b"", b"\xc3\x84", b"A\x01", b"A\"b", b"{x}"])
                .prop_map(<[u8]>::to_vec)
                .boxed(),
        )
    }

    fn fixed(items: &'static [&'static [u8]]) -> BoxedStrategy<Vec<u8>> {
        pick(items).prop_map(<[u8]>::to_vec).boxed()
    }

    fn authority(edge: u32) -> BoxedStrategy<Vec<u8>> {
        sometimes(
            edge,
            (
                fixed(&[
                    b"example.com",
                    b"h",
                    b"localhost",
                    b"127.0.0.1",
                    b"[::1]",
                    b"a-b.c_d~",
                    b"xn--bcher-kva.ch",
                ]),
                pick(&[b"", b"", b":8080", b":0", b":"]),
            )
                .prop_map(|(mut host, port)| {
                    host.extend_from_slice(port);
                    host
                })
                .boxed(),
            fixed(&[b"a b", b"a/b", b"user@h", b"\xc3\xa9", b"h?x", b"a\"b"]),
        )
    }

    fn host_fields(edge: u32) -> BoxedStrategy<Vec<Field>> {
        let host = || {
            field(
                edge,
                fixed(&[b"Host", b"host", b"HOST"]),
                prop_oneof![20 => authority(edge), 1 => Just(Vec::new())].boxed(),
                head_eol(edge),
            )
        };
        sometimes(
            edge,
            host().prop_map(|h| vec![h]).boxed(),
            prop_oneof![Just(Vec::new()), (host(), host()).prop_map(|(a, b)| vec![a, b])].boxed(),
        )
    }

    fn path() -> BoxedStrategy<Vec<u8>> {
        vec(vec(select(PCHAR), 0..6), 0..4)
            .prop_map(|segments| {
                let mut p = b"/".to_vec();
                p.extend_from_slice(&segments.join(&b'/'));
                p
            })
            .boxed()
    }

    fn query() -> BoxedStrategy<Option<Vec<u8>>> {
        prop_oneof![2 => Just(None), 1 => vec(select(b"az09=&/?%+:@"), 0..8).prop_map(Some)].boxed()
    }

    fn target(edge: u32) -> BoxedStrategy<Target> {
        sometimes(
            edge,
            prop_oneof![
                8 => (path(), query()).prop_map(|(path, query)| Target::Origin { path, query }),
                1 => (
                    select(&["http://", "https://", "HTTP://"][..]),
                    authority(edge),
                    prop_oneof![Just(Vec::new()), path()],
                    query()
                )
                    .prop_map(|(scheme, authority, path, query)| Target::Absolute { scheme, authority, path, query }),
                1 => Just(Target::Asterisk),
            ]
            .boxed(),
            select(vec![
                    &b"example.com:443"[..],
                    b"a/b",
                    b"?q",
                    b"/a#frag",
                    b"/\xc3\xa9",
                    b"/a\x7fb",
                    b"/a b",
                    b"http:///p",
                    b"http://u@h/p",
                    b"ftp://h/p",
                    b"*x",
                    b"http:/h",
                    b"",
                ])
            .prop_map(Target::Odd)
            .boxed(),
        )
    }

    fn method(edge: u32) -> BoxedStrategy<Vec<u8>> {
        sometimes(
            edge,
            prop_oneof![
                5 => fixed(&[b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"get"]),
                1 => token(1..=8),
            ]
            .boxed(),
            fixed(&[b"G(T", b"", b"GET\x00", b"G\xc3\xa9T", b"G/T"]),
        )
    }

    fn version(edge: u32) -> BoxedStrategy<&'static str> {
        sometimes(
            edge,
            prop_oneof![3 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0")].boxed(),
            select(
                &[
                    "HTTP/1.2",
                    "HTTP/1.9",
                    "HTTP/2.0",
                    "HTTP/3.0",
                    "HTTP/0.9",
                    "http/1.1",
                    "HTTP/1.10",
                    "HTTP/1",
                    "HTTP/1.1 ",
                    "HTTP/11",
                ][..],
            )
            .boxed(),
        )
    }

    fn simple_field(name: &'static str, value: BoxedStrategy<String>) -> BoxedStrategy<Field> {
        value.prop_map(move |v| Field::new(name, &v)).boxed()
    }

    pub fn chunked_body(edge: u32) -> BoxedStrategy<ChunkedBody> {
        let ext = || {
            let item = (
                prop_oneof![3 => Just(&b""[..]), 1 => pick(&[b" ", b"\t"])],
                prop_oneof![3 => Just(&b""[..]), 1 => pick(&[b" ", b"\t "])],
                token(1..=6),
                prop_oneof![
                    1 => Just(None),
                    1 => (
                        prop_oneof![3 => Just(&b""[..]), 1 => Just(&b" "[..])],
                        prop_oneof![3 => Just(&b""[..]), 1 => Just(&b" "[..])],
                        prop_oneof![
                            token(1..=6).prop_map(ExtValue::Token),
                            vec(
                                prop_oneof![
                                    4 => select(b"ab ;=,\t\x80\xff").prop_map(|b| vec![b]),
                                    1 => select(b"\"\\a").prop_map(|b| vec![b'\\', b]),
                                ],
                                0..6
                            )
                            .prop_map(|parts| ExtValue::Quoted(parts.concat())),
                        ]
                    )
                        .prop_map(Some),
                ],
            )
                .prop_map(|(before_semi, after_semi, name, value)| ExtItem {
                    before_semi,
                    after_semi,
                    name,
                    value,
                });
            sometimes(
                edge,
                prop_oneof![2 => Just(Ext::Grammar(Vec::new())), 1 => vec(item, 1..3).prop_map(Ext::Grammar)]
                    .boxed(),
                pick(&[
                    b";",
                    b"; ",
                    b";a ",
                    b";a=",
                    b";=b",
                    b";a=\"b",
                    b";a b",
                    b";a=b c",
                    b";a=\xff",
                    b" a",
                    b";a=b=c",
                    b";a\x00",
                    b";a=\"\x01\"",
                    b";a;",
                    b"\t",
                ])
                .prop_map(Ext::Junk)
                .boxed(),
            )
        };
        let line = move || {
            (sometimes(edge, Just(&b""[..]).boxed(), pick(&[b" ", b"\t"])), ext(), chunked_eol(edge))
                .prop_map(|(ws, ext, eol)| SizeLine { ws, ext, eol })
        };
        let size = sometimes(
            edge,
            prop_oneof![3 => Just(SizeRepr::Lower), 1 => Just(SizeRepr::Upper), 1 => (0u8..=3).prop_map(SizeRepr::Zeros)]
                .boxed(),
            prop_oneof![Just(SizeRepr::TooManyDigits), select(&[-1i8, 1][..]).prop_map(SizeRepr::Wrong)].boxed(),
        );
        let chunk = (vec(any::<u8>(), 1..24), size, line(), chunked_eol(edge))
            .prop_map(|(data, size, line, data_eol)| Chunk { data, size, line, data_eol });
        let trailer_name = sometimes(
            edge,
            prop_oneof![fixed(&[b"Expires", b"X-Sum", b"Server-Timing"]), token(1..=8)].boxed(),
            fixed(&[b"Content-Length", b"Transfer-Encoding", b"Host"]),
        );
        let trailer = field(edge, trailer_name, value(edge), chunked_eol(edge));
        (
            vec(chunk, 0..4),
            1usize..=3,
            line(),
            prop_oneof![3 => Just(Vec::new()), 1 => vec(trailer, 1..3)],
            chunked_eol(edge),
        )
            .prop_map(|(chunks, last_zeros, last_line, trailers, end)| ChunkedBody {
                chunks,
                last_zeros,
                last_line,
                trailers,
                end,
            })
            .boxed()
    }

    pub fn framing(edge: u32) -> BoxedStrategy<Framing> {
        let data = || vec(any::<u8>(), 0..40);
        let cl_name = || select(&["Content-Length", "content-length"][..]);
        let plain = prop_oneof![
            2 => Just(Framing { fields: Vec::new(), body: Body::Empty, expect: Some(BodyFraming::None) }),
            2 => (cl_name(), data()).prop_map(|(name, data)| {
                let n = data.len() as u64;
                Framing {
                    fields: vec![Field::new(name, &n.to_string())],
                    body: Body::Raw(data),
                    expect: Some(if n == 0 { BodyFraming::None } else { BodyFraming::Length(n) }),
                }
            }),
            2 => (select(&["chunked", "Chunked", "CHUNKED"][..]), chunked_body(edge)).prop_map(|(coding, body)| Framing {
                fields: vec![Field::new("Transfer-Encoding", coding)],
                body: Body::Chunked(body),
                expect: Some(BodyFraming::Chunked),
            }),
        ];
        // Odd Content-Length values: lists, leading zeros, conflicts, junk, a short body,
        // lengths over the body limit or u64.
        let odd_length = (data(), 0usize..7, select(&["+5", "5a", "", "0x5", "5 5", "-1", "5,,5"][..]))
            .prop_map(|(data, kind, junk)| {
                let n = data.len();
                let values: Vec<String> = match kind {
                    0 => vec![format!("{n}, {n}")],
                    1 => vec![n.to_string(), n.to_string()],
                    2 => vec![format!("{n:0>23}")],
                    3 => vec![n.to_string(), (n + 1).to_string()],
                    4 => vec![junk.to_owned()],
                    5 => vec![(n + 3).to_string()],
                    _ => vec![if n % 2 == 0 {
                        "16777217".to_owned()
                    } else {
                        "99999999999999999999999".to_owned()
                    }],
                };
                Framing {
                    fields: values.iter().map(|v| Field::new("Content-Length", v)).collect(),
                    body: Body::Raw(data),
                    expect: None,
                }
            });
        let odd_coding = (
            select(vec![
                &[", chunked"][..],
                &["chunked , "],
                &["chunked, chunked"],
                &["gzip, chunked"],
                &["identity"],
                &["gzip"],
                &["chunked", "chunked"],
                &["gzip", "chunked"],
                &["chunked;q=1"],
                &["x;q=\"a,b\", chunked"],
                &["chunked", ""],
            ]),
            chunked_body(edge),
        )
            .prop_map(|(codings, body)| Framing {
                fields: codings.iter().map(|c| Field::new("Transfer-Encoding", c)).collect(),
                body: Body::Chunked(body),
                expect: None,
            });
        let both = (chunked_body(edge), any::<bool>()).prop_map(|(body, cl_first)| {
            let mut fields =
                vec![Field::new("Transfer-Encoding", "chunked"), Field::new("Content-Length", "5")];
            if cl_first {
                fields.reverse();
            }
            Framing { fields, body: Body::Chunked(body), expect: None }
        });
        sometimes(edge, plain.boxed(), prop_oneof![odd_length, odd_coding, both].boxed())
    }

    /// Messages of which about half are plain (an odd part in one of three) and half have
    /// odd parts `edge` percent of the time.
    pub fn mixed(edge: u32) -> BoxedStrategy<Message> {
        prop_oneof![message(1), message(edge)].boxed()
    }

    fn message(edge: u32) -> BoxedStrategy<Message> {
        let leading = prop_oneof![12 => Just(Vec::new()), 1 => vec(select(&[Eol::CrLf, Eol::Lf][..]), 1..3)];
        let sep = || sometimes(edge, Just(&b" "[..]).boxed(), pick(&[b"  ", b"\t"]));
        let others = vec(field(edge, other_name(edge), value(edge), head_eol(edge)), 0..5);
        let expect = prop_oneof![
            80 => Just(None),
            20 => simple_field("Expect", select(&["100-continue", "100-Continue"][..]).prop_map(str::to_owned).boxed())
                .prop_map(Some),
            edge => simple_field("Expect", select(&["200-ok", "100-continue, x", ""][..]).prop_map(str::to_owned).boxed())
                .prop_map(Some),
        ];
        let connection = prop_oneof![
            4 => Just(None),
            1 => simple_field(
                "Connection",
                select(&["close", "keep-alive", "Upgrade, close", "foo , Keep-Alive"][..]).prop_map(str::to_owned).boxed()
            )
            .prop_map(Some),
        ];
        let line = (leading, method(edge), sep(), target(edge), sep(), version(edge), head_eol(edge));
        let rest = (
            host_fields(edge),
            framing(edge),
            others,
            expect,
            connection,
            vec(any::<u8>(), 8),
            head_eol(edge),
            select(vec![&b""[..], b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n"]),
        );
        (line, rest)
            .prop_map(
                |(
                    (leading, method, sep1, target, sep2, version, line_eol),
                    (hosts, framing, mut fields, expect, connection, positions, end, next),
                )| {
                    let specials = hosts
                        .into_iter()
                        .chain(framing.fields.iter().cloned())
                        .chain(expect)
                        .chain(connection);
                    for (field, pos) in specials.zip(positions.iter().cycle()) {
                        let at = usize::from(*pos) % (fields.len() + 1);
                        fields.insert(at, field);
                    }
                    Message {
                        leading,
                        method,
                        sep: (sep1, sep2),
                        target,
                        version,
                        line_eol,
                        fields,
                        end,
                        framing,
                        next,
                    }
                },
            )
            .boxed()
    }
}

/// Runs `test` on `strategy` within `budget`, in batches of [`BATCH`] cases with seeds derived
/// from the budget's; `cases_per_value` converts values into counted cases. Panics with the
/// minimal failing value and how to replay it.
fn run_property<S: Strategy>(
    name: &str,
    budget: &Budget,
    cases_per_value: u64,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64
where
    S::Value: std::fmt::Debug,
{
    let mut done = 0u64;
    let batches: Box<dyn Iterator<Item = u64>> = match budget.batch {
        Some(b) => Box::new(std::iter::once(b)),
        None => Box::new(0..),
    };
    for batch in batches {
        if budget.batch.is_none() && budget.spent(done) {
            break;
        }
        let values = BATCH.min(budget.cases.saturating_sub(done).div_ceil(cases_per_value)).max(1);
        let mut seed = [0u8; 32];
        for (i, word) in seed.chunks_mut(8).enumerate() {
            word.copy_from_slice(&case_seed(budget.seed, batch * 4 + i as u64).to_le_bytes());
        }
        let config = Config {
            cases: u32::try_from(values).unwrap_or(u32::MAX),
            failure_persistence: None,
            max_shrink_iters: 4096,
            // A differential case is a batch: each shrink step is a round trip to h11.
            max_shrink_time: 120_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        match runner.run(strategy, &test) {
            Ok(()) => {}
            Err(TestError::Fail(reason, value)) => panic!(
                "{name}: {reason}\n  minimal input: {value:?}\n  replay: WASM_HOST_FUZZ_SEED={:#x} \
                 WASM_HOST_FUZZ_BATCH={batch} cargo test --release -p wasm-host --lib http::fuzz::{name}",
                budget.seed
            ),
            Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
        }
        done += values * cases_per_value;
    }
    done
}

/// Random piece ends for a proptest case.
fn positions() -> impl Strategy<Value = Vec<usize>> {
    vec(any::<usize>(), 0..8)
}

#[test]
fn heads_parse_the_same_in_any_split() {
    let budget = Budget::from_env(DEFAULT_CASES, HEAD_SHARE);
    let tally = Mutex::new(Tally::default());
    let limits = HttpLimits::default();
    let started = Instant::now();
    let cases = run_property(
        "heads_parse_the_same_in_any_split",
        &budget,
        1,
        &(generate::mixed(8), positions()),
        |(message, positions)| {
            let bytes = message.bytes();
            let whole = parse_head(&bytes, &limits);
            let split = feed_head(&bytes, &cuts_from(bytes.len(), &positions), &limits);
            let bytewise = feed_head(&bytes, &byte_cuts(bytes.len()), &limits);
            let shown = escape(&bytes);
            prop_assert_eq!(&split, &whole, "pieces ending at {:?} of {}", positions, shown);
            prop_assert_eq!(&bytewise, &whole, "byte by byte: {}", shown);
            check_head(&bytes, &limits, &whole).map_err(TestCaseError::fail)?;
            let mut t = tally.lock().unwrap();
            match (&whole, message.expected()) {
                (Ok(Some((head, n))), Some((expected, _))) => {
                    prop_assert!(
                        same_head(head, &expected),
                        "{} parsed as {:?}, written as {:?}",
                        shown,
                        head,
                        expected
                    );
                    prop_assert!(bytes[*n..].len() >= message.next.len(), "head of {} ends at {}", shown, n);
                    t.add("valid: accepted as written", 1);
                }
                (other, Some(_)) => {
                    return Err(TestCaseError::fail(format!("valid message {shown} refused: {other:?}")));
                }
                (Ok(Some(_)), None) => t.add("odd: accepted", 1),
                (Ok(None), None) => t.add("odd: incomplete", 1),
                (Err(e), None) => t.add(&format!("odd: {}", error_key(e)), 1),
            }
            Ok(())
        },
    );
    let tally = tally.into_inner().unwrap();
    report(&format!(
        "fuzz heads_parse_the_same_in_any_split: {cases} cases in {:.1} s (seed {:#x})\n{}",
        started.elapsed().as_secs_f64(),
        budget.seed,
        tally.lines(""),
    ));
    assert!(tally.get("valid: accepted as written") * 4 > cases, "too few valid messages: {tally:?}");
}

/// A body for the body property: a chunked body or Content-Length data, and what follows.
fn body_case(edge: u32) -> impl Strategy<Value = (Body, &'static [u8], Vec<usize>)> {
    (
        prop_oneof![3 => generate::chunked_body(edge).prop_map(Body::Chunked), 1 => vec(any::<u8>(), 0..64).prop_map(Body::Raw)],
        select(vec![&b""[..], b"GET / HTTP/1.1\r\n"]),
        positions(),
    )
}

#[test]
fn bodies_decode_the_same_in_any_split() {
    let budget = Budget::from_env(DEFAULT_CASES, BODY_SHARE);
    let tally = Mutex::new(Tally::default());
    let started = Instant::now();
    let cases = run_property(
        "bodies_decode_the_same_in_any_split",
        &budget,
        1,
        &body_case(5),
        |(body, next, positions)| {
            let (framing, mut bytes, expected) = match &body {
                Body::Chunked(chunked) => {
                    let mut bytes = Vec::new();
                    chunked.write(&mut bytes);
                    (BodyFraming::Chunked, bytes, chunked.is_valid().then(|| chunked.data()))
                }
                Body::Raw(data) if data.is_empty() => (BodyFraming::None, Vec::new(), Some(Vec::new())),
                Body::Raw(data) => (BodyFraming::Length(data.len() as u64), data.clone(), Some(data.clone())),
                Body::Empty => (BodyFraming::None, Vec::new(), Some(Vec::new())),
            };
            bytes.extend_from_slice(next);
            let shown = escape(&bytes);
            let max_body = DEFAULT_MAX_BODY;
            let whole = drive_body(framing, max_body, &bytes, &[bytes.len()]).map_err(TestCaseError::fail)?;
            let bytewise = drive_body(framing, max_body, &bytes, &byte_cuts(bytes.len()))
                .map_err(TestCaseError::fail)?;
            let split = drive_body(framing, max_body, &bytes, &cuts_from(bytes.len(), &positions))
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(&bytewise, &whole, "byte by byte: {}", shown);
            prop_assert_eq!(&split, &whole, "pieces ending at {:?} of {}", positions, shown);
            check_body_run(framing, max_body, &bytes, &whole).map_err(TestCaseError::fail)?;
            let mut t = tally.lock().unwrap();
            if let Some(expected) = expected {
                prop_assert_eq!(&whole.end, &End::Done, "valid body {} not done", shown);
                prop_assert_eq!(&whole.body, &expected, "valid body {}", shown);
                prop_assert_eq!(&bytes[whole.consumed..], next, "valid body {} left", shown);
                let kind = if framing == BodyFraming::Chunked { "chunked" } else { "length" };
                t.add(&format!("valid {kind}: decoded as written"), 1);
            } else {
                t.add(
                    &match &whole.end {
                        End::Done => "odd chunked: done".to_owned(),
                        End::Incomplete => "odd chunked: incomplete".to_owned(),
                        End::Failed(e) => format!("odd chunked: {}", error_key(e)),
                    },
                    1,
                );
            }
            Ok(())
        },
    );
    let tally = tally.into_inner().unwrap();
    report(&format!(
        "fuzz bodies_decode_the_same_in_any_split: {cases} cases in {:.1} s (seed {:#x})\n{}",
        started.elapsed().as_secs_f64(),
        budget.seed,
        tally.lines(""),
    ));
    assert!(
        tally.get("valid chunked: decoded as written") * 4 > cases,
        "too few valid chunked bodies: {tally:?}"
    );
}

// ---- the differential check against h11 ----

/// The h11 oracle (`scripts/h11_oracle.py`): one process per core, kept for the whole test,
/// each parsing its share of every batch while the others do theirs.
struct Oracle {
    workers: Vec<OracleProcess>,
}

struct OracleProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// What to do when the oracle is missing.
const ORACLE_HELP: &str = "run `make fuzz-tools` (or `sh scripts/ensure-fuzz.sh`, which prints python=PATH) and set \
                           WASM_HOST_H11_PYTHON to that python; `make test` and `make fuzz` do both";

impl Oracle {
    fn spawn(processes: usize) -> Self {
        let Some(python) = std::env::var_os("WASM_HOST_H11_PYTHON").filter(|p| !p.is_empty()) else {
            panic!(
                "WASM_HOST_H11_PYTHON is not set, so the differential test has no h11 to compare with: {ORACLE_HELP}"
            );
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/h11_oracle.py");
        let workers = (0..processes.max(1))
            .map(|_| {
                let mut child = Command::new(&python)
                    .arg(script)
                    .arg(DEFAULT_MAX_HEAD_BYTES.to_string())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {python:?} {script}: {e}; {ORACLE_HELP}"));
                let stdin = child.stdin.take();
                let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
                OracleProcess { child, stdin, stdout }
            })
            .collect();
        Self { workers }
    }

    /// h11's answer for each request, parsed alone.
    fn parse(&mut self, requests: &[Vec<u8>]) -> Vec<Theirs> {
        let share = requests.len().div_ceil(self.workers.len()).max(1);
        let shares: Vec<&[Vec<u8>]> = requests.chunks(share).collect();
        // Every process gets its whole share before any answer is read: each reads a whole
        // batch before it writes, so no pipe fills up while the other side waits.
        for (worker, share) in self.workers.iter_mut().zip(&shares) {
            worker.send(share);
        }
        let mut answers = Vec::with_capacity(requests.len());
        for (worker, share) in self.workers.iter_mut().zip(&shares) {
            worker.receive(share.len(), &mut answers);
        }
        answers
    }
}

impl OracleProcess {
    fn send(&mut self, requests: &[Vec<u8>]) {
        let mut frame = Vec::with_capacity(4 + requests.iter().map(|r| r.len() + 4).sum::<usize>());
        frame.extend_from_slice(&u32::try_from(requests.len()).unwrap().to_be_bytes());
        for r in requests {
            frame.extend_from_slice(&u32::try_from(r.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(r);
        }
        let stdin = self.stdin.as_mut().expect("oracle stdin");
        if let Err(e) = stdin.write_all(&frame).and_then(|()| stdin.flush()) {
            panic!("the h11 oracle stopped reading ({e}); its error is above; {ORACLE_HELP}");
        }
    }

    fn receive(&mut self, count: usize, answers: &mut Vec<Theirs>) {
        let mut line = String::new();
        for _ in 0..count {
            line.clear();
            match self.stdout.read_line(&mut line) {
                Ok(n) if n > 0 => {}
                other => {
                    panic!("the h11 oracle stopped answering ({other:?}); its error is above; {ORACLE_HELP}")
                }
            }
            let json: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad oracle line {line:?}: {e}"));
            answers.push(Theirs::from_json(&json));
        }
    }
}

impl Drop for OracleProcess {
    fn drop(&mut self) {
        drop(self.stdin.take()); // end of input ends the oracle
        let _ = self.child.wait();
    }
}

/// h11's head.
#[derive(Clone, Debug)]
struct TheirHead {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, Vec<u8>)>,
    /// `none`, `chunked` or `length:N`.
    framing: String,
}

/// How h11's body reading ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TheirBody {
    Complete,
    Incomplete,
    Error,
}

/// What h11 made of a request.
#[derive(Clone, Debug)]
enum Theirs {
    HeadError(String),
    HeadIncomplete,
    /// h11 raised something other than a protocol error: its bug, not a verdict.
    Crash(String),
    Parsed {
        head: TheirHead,
        body: TheirBody,
        data: Vec<u8>,
        consumed: Option<usize>,
        error: Option<String>,
    },
}

/// A JSON string of latin-1 chars back to bytes.
fn latin1(v: &serde_json::Value) -> Vec<u8> {
    v.as_str().unwrap_or_default().chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect()
}

fn text(v: &serde_json::Value) -> String {
    String::from_utf8_lossy(&latin1(v)).into_owned()
}

impl Theirs {
    fn from_json(json: &serde_json::Value) -> Self {
        if let Some(crash) = json.get("crash").and_then(|c| c.as_str()) {
            return Self::Crash(crash.to_owned());
        }
        let head = &json["head"];
        if head.is_null() {
            return match json["error"].as_str() {
                Some(e) => Self::HeadError(e.to_owned()),
                None => Self::HeadIncomplete,
            };
        }
        let headers = head["headers"]
            .as_array()
            .map(|hs| hs.iter().map(|h| (text(&h[0]), latin1(&h[1]))).collect())
            .unwrap_or_default();
        Self::Parsed {
            head: TheirHead {
                method: text(&head["method"]),
                target: text(&head["target"]),
                version: text(&head["version"]),
                headers,
                framing: text(&head["framing"]),
            },
            body: match json["body"].as_str() {
                Some("complete") => TheirBody::Complete,
                Some("incomplete") => TheirBody::Incomplete,
                _ => TheirBody::Error,
            },
            data: latin1(&json["data"]),
            consumed: json["consumed"].as_u64().and_then(|c| usize::try_from(c).ok()),
            error: json["error"].as_str().map(str::to_owned),
        }
    }

    fn head_error_contains(&self, text: &str) -> bool {
        matches!(self, Self::HeadError(e) if e.contains(text))
    }

    fn accepts_head(&self) -> bool {
        matches!(self, Self::Parsed { .. })
    }

    /// The head was accepted and the body not refused (complete or still arriving).
    fn body_not_refused(&self) -> bool {
        matches!(self, Self::Parsed { body: TheirBody::Complete | TheirBody::Incomplete, .. })
    }
}

/// What our codec made of a request, parsed alone with the default limits.
#[derive(Clone, Debug)]
enum Ours {
    HeadError(RequestError),
    HeadIncomplete,
    Parsed { head: RequestHead, head_len: usize, body: BodyRun },
}

impl Ours {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let limits = HttpLimits::default();
        Ok(match parse_head(bytes, &limits) {
            Err(e) => Self::HeadError(e),
            Ok(None) => Self::HeadIncomplete,
            Ok(Some((head, n))) => {
                let rest = &bytes[n..];
                let body = drive_body(head.framing, limits.max_body, rest, &[rest.len()])?;
                Self::Parsed { head, head_len: n, body }
            }
        })
    }

    /// The head was refused with one of these errors (as [`error_key`] names them).
    fn head_error_in(&self, keys: &[&str]) -> bool {
        matches!(self, Self::HeadError(e) if keys.contains(&error_key(e).as_str()))
    }

    /// The head was accepted and the body refused with one of these errors.
    fn body_error_in(&self, keys: &[&str]) -> bool {
        matches!(self, Self::Parsed { body: BodyRun { end: End::Failed(e), .. }, .. } if keys.contains(&error_key(e).as_str()))
    }

    fn summary(&self) -> String {
        match self {
            Self::HeadError(e) => format!("head {}", error_key(e)),
            Self::HeadIncomplete => "head incomplete".to_owned(),
            Self::Parsed { body, .. } => match &body.end {
                End::Done => "accepted".to_owned(),
                End::Incomplete => "head accepted, body incomplete".to_owned(),
                End::Failed(e) => format!("head accepted, body {}", error_key(e)),
            },
        }
    }
}

/// The odd parts of a message that explain a difference between the parsers.
#[derive(Clone, Copy, Debug, Default)]
struct Features {
    leading_empty_lines: bool,
    head_unterminated: bool,
    trailers_unterminated: bool,
    obs_fold: bool,
    ctl_in_value: bool,
    odd_target: bool,
    odd_host: bool,
    later_minor_version: bool,
    other_version: bool,
    odd_expectation: bool,
    length_and_chunked: bool,
    chunked_in_http10: bool,
    odd_coding_list: bool,
    long_length: bool,
    length_over_limit: bool,
    size_line_odd: bool,
    ext_space_before_semicolon: bool,
    size_too_many_digits: bool,
    trailer_odd: bool,
    trailer_framing_field: bool,
}

impl Features {
    /// The odd parts of `m`, as generated and, where h11 accepted the head, as h11 read it
    /// (a line that lost its end runs into the next one, making a value odd).
    fn of(m: &Message, bytes: &[u8], ours: &Ours, theirs: &Theirs) -> Self {
        let method_is_options = m.method == b"OPTIONS";
        let lengths: Vec<&[u8]> = m
            .fields_named("content-length")
            .flat_map(|f| f.value.split(|&b| b == b',').map(trim).collect::<Vec<_>>())
            .collect();
        let codings: Vec<&Field> = m.fields_named("transfer-encoding").collect();
        let version = m.version.as_bytes();
        let later_minor = matches!(version, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9']);
        let mut f = Self {
            leading_empty_lines: !m.leading.is_empty(),
            head_unterminated: [m.line_eol, m.end]
                .into_iter()
                .chain(m.fields.iter().map(|f| f.eol))
                .any(|e| matches!(e, Eol::BareCr | Eol::Missing)),
            // Also a line that starts with whitespace because its name is empty.
            obs_fold: bytes.windows(2).any(|w| w[0] == b'\n' && matches!(w[1], b' ' | b'\t')),
            ctl_in_value: m.fields.iter().any(Field::value_has_ctl),
            odd_target: match &m.target {
                Target::Odd(_) => true,
                Target::Asterisk => !method_is_options,
                Target::Absolute { authority, .. } => !is_authority(authority) || authority.is_empty(),
                Target::Origin { .. } => false,
            },
            odd_host: m.fields_named("host").any(|h| !is_authority(&h.value)),
            later_minor_version: later_minor,
            other_version: !later_minor && !matches!(m.version, "HTTP/1.0" | "HTTP/1.1"),
            odd_expectation: m.fields_named("expect").any(|f| {
                f.value
                    .split(|&b| b == b',')
                    .map(trim)
                    .any(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"100-continue"))
            }),
            length_and_chunked: !lengths.is_empty() && !codings.is_empty(),
            chunked_in_http10: !codings.is_empty() && m.version == "HTTP/1.0",
            odd_coding_list: codings.len() > 1
                || codings.iter().any(|c| !c.value.eq_ignore_ascii_case(b"chunked")),
            long_length: lengths.iter().any(|l| l.len() > 20),
            length_over_limit: lengths.iter().any(|l| {
                std::str::from_utf8(l)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_none_or(|n| Some(n) > DEFAULT_MAX_BODY)
            }),
            ..Self::default()
        };
        if let Theirs::Parsed { head, .. } = theirs {
            let named =
                |name: &'static str| head.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name));
            f.ctl_in_value |= head.headers.iter().any(|(_, v)| !v.iter().all(|&b| is_field_byte(b)));
            f.odd_host |= named("host").any(|(_, v)| !is_authority(v));
            f.odd_expectation |= named("expect").any(|(_, v)| {
                v.split(|&b| b == b',')
                    .map(trim)
                    .any(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"100-continue"))
            });
            let has_length = named("content-length").next().is_some();
            let has_coding = named("transfer-encoding").next().is_some();
            f.length_and_chunked |= has_length && has_coding;
            f.chunked_in_http10 |= has_coding && head.version == "1.0";
            f.odd_target |= !is_served_target(&head.method, &head.target);
        }
        if let Ours::Parsed { head: RequestHead { framing: BodyFraming::Chunked, .. }, head_len, .. } = ours {
            // From the bytes, as h11 reads them, not from the model: a chunk whose size is
            // wrong makes the rest of the body read differently from how it was generated.
            let (lines, rest) = chunked_parts(&bytes[*head_len..]);
            for line in &lines {
                let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                let after = &line[digits..];
                f.size_line_odd |= !after.is_empty();
                f.ext_space_before_semicolon |=
                    matches!(after.first(), Some(b' ' | b'\t')) && trim(after).first() == Some(&b';');
                f.size_too_many_digits |= digits > 16;
            }
            if let Some((section, ended)) = rest.map(trailer_section) {
                f.trailers_unterminated = !ended;
                let bare_lf = section
                    .iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'\n' && (i == 0 || section[i - 1] != b'\r'));
                let bare_cr = section
                    .iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'\r' && section.get(i + 1) != Some(&b'\n'));
                let fold = section.windows(2).any(|w| w[0] == b'\n' && matches!(w[1], b' ' | b'\t'));
                let ctl = section.iter().any(|&b| !is_field_byte(b) && b != b'\r' && b != b'\n');
                f.trailer_odd |= bare_lf || bare_cr || fold || ctl;
                f.trailer_framing_field |= section.split(|&b| b == b'\n').any(|line| {
                    let name = &line[..line.iter().position(|&b| b == b':').unwrap_or(0)];
                    name.eq_ignore_ascii_case(b"content-length")
                        || name.eq_ignore_ascii_case(b"transfer-encoding")
                });
            }
        }
        f
    }
}

/// The chunk-size lines of a chunked body and what follows its last chunk, read the lenient
/// way h11 reads them (a line ends at CRLF, the size is its leading hex digits; the last line
/// may be unfinished); `None` for the rest when the body ends before its last chunk or is
/// framed wrong even so.
fn chunked_parts(body: &[u8]) -> (Vec<&[u8]>, Option<&[u8]>) {
    let mut lines = Vec::new();
    let mut i = 0;
    loop {
        let Some(end) = body[i..].windows(2).position(|w| w == b"\r\n") else {
            // The line h11 still waits to see the end of.
            if i < body.len() {
                lines.push(&body[i..]);
            }
            return (lines, None);
        };
        let line = &body[i..i + end];
        lines.push(line);
        i += end + 2;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let Some(size) =
            std::str::from_utf8(&line[..digits]).ok().and_then(|d| u128::from_str_radix(d, 16).ok())
        else {
            return (lines, None);
        };
        if size == 0 {
            return (lines, Some(&body[i..]));
        }
        let Some(data_end) = usize::try_from(size).ok().and_then(|n| i.checked_add(n)) else {
            return (lines, None);
        };
        if body.get(data_end..data_end + 2) != Some(b"\r\n") {
            return (lines, None);
        }
        i = data_end + 2;
    }
}

/// The trailer section at the start of `rest`, up to its empty line as h11 finds it (a line
/// of LF or CRLF), or all of `rest` when there is none; and whether there is one.
fn trailer_section(rest: &[u8]) -> (&[u8], bool) {
    if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
        return (&rest[..if rest[0] == b'\n' { 1 } else { 2 }], true);
    }
    let end = (0..rest.len()).find_map(|i| {
        if rest[i] != b'\n' {
            return None;
        }
        match rest.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    });
    (&rest[..end.unwrap_or(rest.len())], end.is_some())
}

/// A known difference between our codec and h11, each a deliberate choice of ours (or a
/// normalization of h11's) with the RFC section that allows it. A difference that is none of
/// these fails the differential test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    /// A head or trailer section whose empty line never came (a line ended by a bare CR, or
    /// by nothing): we refuse it at the first line that is wrong, h11 looks at the section
    /// only once its empty line has arrived and so is still waiting. No verdict to compare;
    /// the same lines in complete sections are compared elsewhere. RFC 9112 §2.2, §5, §7.1.2.
    RefusedBeforeTheEnd,
    /// We skip empty lines before the request line, h11 refuses them ("no request line
    /// received"). RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF)
    /// received prior to the request-line.
    LeadingEmptyLines,
    /// h11 unfolds obs-fold into a space, we refuse it with 400. RFC 9112 §5.2: a server that
    /// receives an obs-fold in a request message MUST either reject it with 400 or replace
    /// it with SP; we choose to reject, as every header-smuggling advisory recommends.
    ObsFold,
    /// h11 accepts control bytes other than NUL and whitespace in field values (h11 issue 57),
    /// we refuse them. RFC 9110 §5.5: field-vchar is VCHAR / obs-text; other CTLs are invalid,
    /// and a recipient MAY retain them only "for the sake of robustness".
    ControlInFieldValue,
    /// h11 takes any run of VCHAR as the target, we take the forms we serve: origin-form,
    /// absolute-form with an http(s) scheme and a valid authority, and asterisk-form for
    /// OPTIONS only (RFC 9112 §3.2, §3.2.4); authority-form is for CONNECT, which we do not
    /// serve (§3.2.3), and a fragment is not part of a request-target (RFC 9110 §7.1).
    RequestTargetForm,
    /// h11 does not check the Host value, we do. RFC 9112 §3.2: a server MUST respond with
    /// 400 to a request whose Host field has an invalid value (uri-host [":" port],
    /// RFC 9110 §7.2, without userinfo, §4.2.4).
    HostValue,
    /// h11 reports `HTTP/1.x` (x >= 2) as it was sent and then asks for Host only when the
    /// version is exactly 1.1; we process it as HTTP/1.1 (RFC 9110 §2.5: a recipient of a
    /// higher minor version processes it as the highest minor version it implements), Host
    /// rule included (RFC 9112 §3.2).
    LaterMinorVersion,
    /// h11 accepts any `HTTP/D.D`, we answer 505 to a major version of 2 or more (RFC 9110
    /// §15.6.6) and 400 to `HTTP/0.x` (not HTTP/1 framing at all, RFC 9112 §2.3).
    UnsupportedVersion,
    /// h11 ignores Expect, we answer 417 to an expectation other than 100-continue (RFC 9110
    /// §10.1.1: a server that receives an Expect value other than 100-continue MAY respond
    /// with 417).
    Expectation,
    /// h11 frames a request with both Content-Length and Transfer-Encoding by the latter, we
    /// refuse it: RFC 9112 §6.1 lets a server reject such a request (rather than process it
    /// by Transfer-Encoding alone), and §6.3 rule 3 calls it a likely smuggling attempt.
    LengthWithTransferEncoding,
    /// h11 reads a chunked HTTP/1.0 request, we refuse it: RFC 9112 §6.1, a server that
    /// receives Transfer-Encoding in an HTTP/1.0 message MUST treat the framing as faulty.
    TransferEncodingInHttp10,
    /// A Content-Length over our body limit is a 413 before any body byte is read; h11 has no
    /// limit and waits for the body. RFC 9110 §15.5.14.
    LengthOverBodyLimit,
    /// h11 compares the whole Transfer-Encoding value with `chunked` and refuses a second
    /// Transfer-Encoding line; we read the codings as one list across lines, empty elements
    /// ignored (RFC 9110 §5.6.1: a recipient MUST accept empty list elements; §5.3: lines of a
    /// list field combine), so `, chunked ,` or `chunked` plus an empty line is chunked.
    CodingListElements,
    /// h11 refuses a Content-Length of more than 20 digits, we accept any `1*DIGIT` that fits
    /// in 64 bits, leading zeros included (RFC 9110 §8.6).
    LongContentLength,
    /// h11 accepts whitespace before the CRLF of a chunk-size line and anything but LF after
    /// `;` (a bare CR included), and waits for a CRLF past a bare LF; we hold the line to the
    /// grammar `chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] )`
    /// of RFC 9112 §7.1.1 (no trailing whitespace, tokens or quoted-strings only), so a
    /// line two parsers might read differently is refused.
    ChunkSizeLineGrammar,
    /// We accept whitespace before the `;` of a chunk extension, h11 refuses it (its pattern
    /// is `chunk-size [";" anything] OWS CRLF`). RFC 9112 §7.1.1: `chunk-ext = *( BWS ";" BWS
    /// chunk-ext-name ... )`, and a recipient MUST parse and remove BWS (RFC 9110 §5.6.3).
    ChunkExtensionSpace,
    /// h11 takes up to 20 hex digits of chunk size, we up to 16 (leading zeros count): RFC
    /// 9112 §7.1 asks recipients to anticipate large numerals and prevent overflow; 16 digits
    /// hold every u64.
    ChunkSizeDigits,
    /// h11 reads a trailer section like a header section (bare LF line ends, obs-fold, control
    /// bytes); we hold trailers, which we discard, to CRLF field lines (RFC 9112 §7.1.2 with
    /// the field-line grammar of §5; a bare LF is only a MAY of §2.2, which we take for the
    /// head alone).
    TrailerSyntax,
    /// h11 validates trailer fields like header fields and refuses framing fields there (an
    /// odd Transfer-Encoding or Content-Length); we discard trailers without interpreting them
    /// (RFC 9110 §6.5.1: trailers are not merged into the header section, and framing fields
    /// have no meaning there, §6.5.2).
    TrailerFieldSemantics,
}

impl Category {
    const ALL: [Self; 19] = [
        Self::RefusedBeforeTheEnd,
        Self::LeadingEmptyLines,
        Self::ObsFold,
        Self::ControlInFieldValue,
        Self::RequestTargetForm,
        Self::HostValue,
        Self::LaterMinorVersion,
        Self::UnsupportedVersion,
        Self::Expectation,
        Self::LengthWithTransferEncoding,
        Self::TransferEncodingInHttp10,
        Self::LengthOverBodyLimit,
        Self::CodingListElements,
        Self::LongContentLength,
        Self::ChunkSizeLineGrammar,
        Self::ChunkExtensionSpace,
        Self::ChunkSizeDigits,
        Self::TrailerSyntax,
        Self::TrailerFieldSemantics,
    ];

    /// The section each category relies on, for the report.
    fn rfc(self) -> &'static str {
        match self {
            Self::RefusedBeforeTheEnd => "RFC 9112 §2.2, §7.1.2",
            Self::LeadingEmptyLines => "RFC 9112 §2.2",
            Self::ObsFold => "RFC 9112 §5.2",
            Self::ControlInFieldValue => "RFC 9110 §5.5",
            Self::RequestTargetForm => "RFC 9112 §3.2",
            Self::HostValue => "RFC 9112 §3.2",
            Self::LaterMinorVersion => "RFC 9110 §2.5",
            Self::UnsupportedVersion => "RFC 9110 §15.6.6",
            Self::Expectation => "RFC 9110 §10.1.1",
            Self::LengthWithTransferEncoding => "RFC 9112 §6.1, §6.3",
            Self::TransferEncodingInHttp10 => "RFC 9112 §6.1",
            Self::LengthOverBodyLimit => "RFC 9110 §15.5.14",
            Self::CodingListElements => "RFC 9110 §5.6.1",
            Self::LongContentLength => "RFC 9110 §8.6",
            Self::ChunkSizeLineGrammar => "RFC 9112 §7.1.1",
            Self::ChunkExtensionSpace => "RFC 9112 §7.1.1",
            Self::ChunkSizeDigits => "RFC 9112 §7.1",
            Self::TrailerSyntax => "RFC 9112 §7.1.2",
            Self::TrailerFieldSemantics => "RFC 9110 §6.5",
        }
    }

    /// Whether this category explains `ours` against `theirs` for a message with `f`.
    fn explains(self, f: &Features, ours: &Ours, theirs: &Theirs) -> bool {
        match self {
            Self::RefusedBeforeTheEnd => {
                (f.head_unterminated
                    && matches!(ours, Ours::HeadError(_))
                    && matches!(theirs, Theirs::HeadIncomplete))
                    || (f.trailers_unterminated
                        && ours.body_error_in(&[
                            "400 chunked: invalid trailer field",
                            "400 chunked: cr without lf",
                        ])
                        && matches!(theirs, Theirs::Parsed { body: TheirBody::Incomplete, .. }))
            }
            Self::LeadingEmptyLines => {
                f.leading_empty_lines && theirs.head_error_contains("no request line received")
            }
            Self::ObsFold => {
                f.obs_fold
                    && ours
                        .head_error_in(&["400 invalid header field name", "400 invalid header field value"])
                    && theirs.accepts_head()
            }
            Self::ControlInFieldValue => {
                f.ctl_in_value
                    && ours.head_error_in(&["400 invalid header field value"])
                    && theirs.accepts_head()
            }
            Self::RequestTargetForm => {
                f.odd_target
                    && ours.head_error_in(&[
                        "400 invalid request target",
                        "400 fragment in request target",
                        "400 asterisk-form target without options",
                        "400 invalid authority in request target",
                    ])
                    && theirs.accepts_head()
            }
            Self::HostValue => {
                f.odd_host && ours.head_error_in(&["400 invalid host header"]) && theirs.accepts_head()
            }
            Self::LaterMinorVersion => {
                f.later_minor_version
                    && match (ours, theirs) {
                        (Ours::Parsed { head, .. }, Theirs::Parsed { head: their, .. }) => {
                            head.version == Version::Http11 && their.version.starts_with("1.")
                        }
                        (
                            Ours::HeadError(RequestError::BadRequest("missing host")),
                            Theirs::Parsed { .. },
                        ) => true,
                        _ => false,
                    }
            }
            Self::UnsupportedVersion => {
                f.other_version
                    && ours.head_error_in(&["505 http version not supported", "400 invalid http version"])
                    && theirs.accepts_head()
            }
            Self::Expectation => {
                f.odd_expectation
                    && matches!(ours, Ours::HeadError(RequestError::ExpectationFailed))
                    && theirs.accepts_head()
            }
            Self::LengthWithTransferEncoding => {
                f.length_and_chunked
                    && ours.head_error_in(&["400 content-length with transfer-encoding"])
                    && theirs.accepts_head()
            }
            Self::TransferEncodingInHttp10 => {
                f.chunked_in_http10
                    && ours.head_error_in(&["400 transfer-encoding in http/1.0 request"])
                    && theirs.accepts_head()
            }
            Self::LengthOverBodyLimit => {
                f.length_over_limit
                    && matches!(ours, Ours::HeadError(RequestError::PayloadTooLarge))
                    && theirs.body_not_refused()
            }
            Self::CodingListElements => {
                f.odd_coding_list
                    && matches!(
                        ours,
                        Ours::Parsed { head: RequestHead { framing: BodyFraming::Chunked, .. }, .. }
                    )
                    && (theirs.head_error_contains("Transfer-Encoding"))
            }
            Self::LongContentLength => {
                f.long_length
                    && matches!(ours, Ours::Parsed { .. })
                    && theirs.head_error_contains("bad Content-Length")
            }
            Self::ChunkSizeLineGrammar => {
                f.size_line_odd
                    && ours.body_error_in(&[
                        "400 chunked: invalid chunk size",
                        "400 chunked: invalid chunk extension",
                        "400 chunked: cr without lf",
                    ])
                    && theirs.body_not_refused()
            }
            Self::ChunkExtensionSpace => {
                f.ext_space_before_semicolon
                    && matches!(
                        ours,
                        Ours::Parsed { body: BodyRun { end: End::Done | End::Incomplete, .. }, .. }
                    )
                    && matches!(theirs, Theirs::Parsed { body: TheirBody::Error, error: Some(e), .. } if e.contains("illegal chunk header"))
            }
            Self::ChunkSizeDigits => {
                f.size_too_many_digits
                    && ours.body_error_in(&["400 chunked: chunk size too long"])
                    && theirs.body_not_refused()
            }
            Self::TrailerSyntax => {
                f.trailer_odd
                    && ours
                        .body_error_in(&["400 chunked: invalid trailer field", "400 chunked: cr without lf"])
                    && theirs.body_not_refused()
            }
            Self::TrailerFieldSemantics => {
                f.trailer_framing_field
                    && matches!(ours, Ours::Parsed { body: BodyRun { end: End::Done, .. }, .. })
                    && matches!(theirs, Theirs::Parsed { body: TheirBody::Error, .. })
            }
        }
    }
}

/// How the two parsers compare on one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Same answer: both accept the same request and body, both refuse, or both wait.
    Agree(&'static str),
    /// A known difference.
    Explained(Category),
}

/// A target of a form we serve (RFC 9112 §3.2): origin-form, absolute-form with an http(s)
/// scheme and a non-empty authority, asterisk-form for OPTIONS; no fragment.
fn is_served_target(method: &str, target: &str) -> bool {
    if target == "*" {
        return method == "OPTIONS";
    }
    if target.contains('#') {
        return false;
    }
    if target.starts_with('/') {
        return true;
    }
    ["http://", "https://"].iter().any(|scheme| {
        target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) && {
            let after = &target[scheme.len()..];
            let authority = &after[..after.find(['/', '?']).unwrap_or(after.len())];
            !authority.is_empty() && is_authority(authority.as_bytes())
        }
    })
}

/// (path, query) of a raw target, split independently of `head.rs`: what our `RequestHead`
/// must hold for a target h11 accepted.
fn split_target(target: &str) -> (String, String) {
    if target == "*" {
        return ("*".to_owned(), String::new());
    }
    let mut rest = target;
    for scheme in ["http://", "https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = &target[scheme.len()..];
            rest = &after[after.find(['/', '?']).unwrap_or(after.len())..];
        }
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (if path.is_empty() { "/".to_owned() } else { path.to_owned() }, query.to_owned())
}

/// Header fields but the framing ones, which h11 rewrites (merging equal Content-Lengths,
/// lower-casing Transfer-Encoding) and which are compared as the framing instead.
fn plain_fields(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case("content-length") && !n.eq_ignore_ascii_case("transfer-encoding")
        })
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect()
}

fn framing_name(f: BodyFraming) -> String {
    match f {
        BodyFraming::None => "none".to_owned(),
        BodyFraming::Chunked => "chunked".to_owned(),
        BodyFraming::Length(n) => format!("length:{n}"),
    }
}

/// Compares the parsers on one message; `Err` says how they differ when no [`Category`]
/// explains it.
fn judge(f: &Features, ours: &Ours, theirs: &Theirs) -> Result<Verdict, String> {
    let explain = |what: String| {
        Category::ALL.into_iter().find(|c| c.explains(f, ours, theirs)).map(Verdict::Explained).ok_or(what)
    };
    match (ours, theirs) {
        (_, Theirs::Crash(crash)) => Err(format!("h11 crashed: {crash}")),
        (Ours::HeadError(_), Theirs::HeadError(_)) => Ok(Verdict::Agree("both refuse the head")),
        (Ours::HeadIncomplete, Theirs::HeadIncomplete) => {
            Ok(Verdict::Agree("both wait for the rest of the head"))
        }
        (
            Ours::Parsed { head, head_len, body },
            Theirs::Parsed { head: their, body: their_body, data, consumed, .. },
        ) => {
            let (path, query) = split_target(&their.target);
            let version_same = match head.version {
                Version::Http10 => their.version == "1.0",
                Version::Http11 => their.version == "1.1",
            };
            let mut differences = Vec::new();
            if head.method != their.method {
                differences.push("method");
            }
            if (head.path.as_str(), head.query.as_str()) != (path.as_str(), query.as_str()) {
                differences.push("target");
            }
            if plain_fields(&head.headers) != plain_fields(&their.headers) {
                differences.push("header fields");
            }
            if framing_name(head.framing) != their.framing {
                differences.push("framing");
            }
            let body_same = match (&body.end, their_body) {
                (End::Done, TheirBody::Complete) => {
                    body.body == *data && Some(head_len + body.consumed) == *consumed
                }
                (End::Incomplete, TheirBody::Incomplete) => body.body == *data,
                (End::Failed(_), TheirBody::Error) => true,
                _ => false,
            };
            if !body_same {
                differences.push("body");
            }
            match (differences.is_empty(), version_same) {
                (true, true) => Ok(Verdict::Agree(match body.end {
                    End::Done => "both accept the same request",
                    End::Incomplete => "both accept the head and wait for the body",
                    End::Failed(_) => "both accept the head and refuse the body",
                })),
                (true, false) => explain("version".to_owned()),
                (false, _) => explain(differences.join(", ")),
            }
        }
        _ => explain("one accepts what the other refuses".to_owned()),
    }
}

/// A short name of h11's answer, for the report.
fn their_summary(theirs: &Theirs) -> String {
    match theirs {
        Theirs::HeadError(e) => format!("head refused: {}", e.split(':').next().unwrap_or(e)),
        Theirs::HeadIncomplete => "head incomplete".to_owned(),
        Theirs::Crash(_) => "crash".to_owned(),
        Theirs::Parsed { body: TheirBody::Complete, .. } => "accepted".to_owned(),
        Theirs::Parsed { body: TheirBody::Incomplete, .. } => "head accepted, body incomplete".to_owned(),
        Theirs::Parsed { body: TheirBody::Error, error, .. } => format!(
            "head accepted, body refused: {}",
            error.as_deref().unwrap_or("").split(':').next().unwrap_or_default()
        ),
    }
}

#[test]
fn parser_agrees_with_h11_or_differs_for_a_stated_reason() {
    let budget = Budget::from_env(DEFAULT_CASES, DIFF_SHARE);
    // Python is the slow side: in a long run, one h11 process per core.
    let processes =
        if budget.is_long() { std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) } else { 1 };
    let oracle = Mutex::new(Oracle::spawn(processes));
    let tally = Mutex::new(Tally::default());
    let started = Instant::now();
    let strategy = vec(generate::mixed(8), 1..=DIFF_BATCH);
    run_property(
        "parser_agrees_with_h11_or_differs_for_a_stated_reason",
        &budget,
        (DIFF_BATCH as u64).div_ceil(2),
        &strategy,
        |messages| {
            let requests: Vec<Vec<u8>> = messages.iter().map(Message::bytes).collect();
            let answers = oracle.lock().unwrap().parse(&requests);
            let mut t = tally.lock().unwrap();
            for ((message, bytes), theirs) in messages.iter().zip(&requests).zip(&answers) {
                let ours = Ours::parse(bytes).map_err(TestCaseError::fail)?;
                let features = Features::of(message, bytes, &ours, theirs);
                match judge(&features, &ours, theirs) {
                    Ok(verdict) => {
                        t.add("messages", 1);
                        t.add(&format!("ours: {}", ours.summary()), 1);
                        t.add(&format!("h11: {}", their_summary(theirs)), 1);
                        match verdict {
                            Verdict::Agree(kind) => t.add(&format!("agree: {kind}"), 1),
                            Verdict::Explained(c) => t.add(&format!("explained: {c:?} ({})", c.rfc()), 1),
                        }
                    }
                    Err(difference) => {
                        return Err(TestCaseError::fail(format!(
                            "our codec and h11 differ ({difference}) on {}\n  ours: {ours:?}\n  h11: {theirs:?}\n  \
                             odd parts: {features:?}\n  (fix the codec if it is wrong per RFC 9110/9112, else add a \
                             Category that says why we differ)",
                            escape(bytes)
                        )));
                    }
                }
            }
            Ok(())
        },
    );
    drop(oracle);
    let tally = tally.into_inner().unwrap();
    let messages = tally.get("messages");
    report(&format!(
        "fuzz parser_agrees_with_h11_or_differs_for_a_stated_reason: {messages} messages in {:.1} s (seed {:#x})\n  \
         agreements\n{}  explained differences\n{}  our answers\n{}  h11's answers\n{}",
        started.elapsed().as_secs_f64(),
        budget.seed,
        tally.lines("agree: "),
        tally.lines("explained: "),
        tally.lines("ours: "),
        tally.lines("h11: "),
    ));
    // Not vacuous: most messages must be compared in full.
    assert!(
        tally.get("agree: both accept the same request") * 4 > messages,
        "too few accepted by both: {tally:?}"
    );
}
