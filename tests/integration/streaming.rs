//! Streaming both ways: large uploads through the `stream` hook, chunked / sized / SSE
//! responses, suspended requests, CPU deadlines and memory limits.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use test_artifacts as a;

use crate::support::*;

/// 64 KiB of deterministic, non-repeating-per-block bytes for block `n`.
fn block(n: u64) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const UPLOAD: u64 = 256 << 20;

/// Writes the 256 MiB upload (head + body) on `w`, returning the body's SHA-256.
fn send_upload(mut w: impl Write, path: &str) -> String {
    w.write_all(format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {UPLOAD}\r\n\r\n").as_bytes())
        .unwrap();
    let mut hash = Sha256::new();
    for n in 0..UPLOAD / (64 * 1024) {
        let b = block(n);
        hash.update(&b);
        w.write_all(&b).unwrap();
    }
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a response head, returning (status, headers).
fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let resp = read_response(r, true).expect("response head");
    (resp.status, resp.headers)
}

/// Decodes a chunked body as it arrives, hashing it; returns (bytes, sha256, chunk sizes).
fn read_chunked(r: &mut impl BufRead) -> (u64, String, usize) {
    let mut hash = Sha256::new();
    let (mut total, mut chunks) = (0u64, 0usize);
    let mut buf = vec![0; 64 * 1024];
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let mut size = usize::from_str_radix(line.trim_end(), 16).expect("chunk size");
        if size == 0 {
            let mut end = String::new();
            r.read_line(&mut end).unwrap();
            assert_eq!(end, "\r\n");
            return (total, hex(&hash.finalize()), chunks);
        }
        chunks += 1;
        total += size as u64;
        while size > 0 {
            let n = size.min(buf.len());
            r.read_exact(&mut buf[..n]).unwrap();
            hash.update(&buf[..n]);
            size -= n;
        }
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf).unwrap();
        assert_eq!(&crlf, b"\r\n");
    }
}

#[test]
fn upload_of_256_mib_is_hashed_chunk_by_chunk() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--max-body", "unlimited"]);
    let c = s.connect();
    let sent = send_upload(c.try_clone().unwrap(), "/upload-hash");
    let resp = read_response(&mut BufReader::new(c), false).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["bytes"], UPLOAD);
    assert_eq!(v["sha256"], sent);
}

#[test]
fn echo_streams_256_mib_back_while_it_arrives() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--max-body", "unlimited"]);
    let c = s.connect();
    let w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || send_upload(w, "/echo"));
    let mut r = BufReader::new(c);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"));
    let (bytes, digest, _) = read_chunked(&mut r);
    let sent = writer.join().unwrap();
    assert_eq!(bytes, UPLOAD);
    assert_eq!(digest, sent);
    // The echo never held the body: 256 MiB is four times the instance's default 64 MiB memory
    // limit, so buffering it would have trapped.
    assert!(s.wait_for_log("path=/echo query=- status=200", Duration::from_secs(10)));
}

#[test]
fn chunked_response_is_one_chunk_per_pull_and_decodes_in_a_real_client() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &[]);
    assert_eq!(get(&s, "/numbers/5"), (200, "1\n2\n3\n4\n5\n".into()));
    let out = raw_all(&s, b"GET /numbers/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.ends_with("\r\n\r\n2\r\n1\n\r\n2\r\n2\n\r\n2\r\n3\n\r\n0\r\n\r\n"), "{text}");
    // HEAD: the head only, and the connection stays usable.
    let mut c = s.connect();
    c.write_all(b"HEAD /numbers/3 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, true).unwrap().status, 200);
    assert_eq!(read_response(&mut r, false).unwrap().text(), "Hello world!");
}

#[test]
fn sized_stream_has_exact_length_and_wrong_lengths_abort() {
    let t = Tree::new(&[
        ("blob/{bytes}/GET.wasm", a::EXAMPLE_BLOB),
        ("short/GET.wasm", a::SHORT_SIZED),
        ("long/GET.wasm", a::LONG_SIZED),
    ]);
    let s = Server::start(t.path(), &[]);
    let mut resp = client().get(&s.url("/blob/200000")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    assert_eq!(body.len(), 200_000);
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));

    // Short: the declared length is sent, fewer bytes arrive, then the connection closes.
    let mut c = s.connect();
    c.write_all(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(n, v)| n == "content-length" && v == "100"));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.len() < 100, "incomplete body, then close ({} bytes)", rest.len());
    assert!(s.wait_for_log("ended after", Duration::from_secs(5)), "{}", s.log());

    // Long: exactly the declared 10 bytes, never one more, then the connection closes.
    let mut c = s.connect();
    c.write_all(b"GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /long HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (_, headers) = read_head(&mut r);
    assert!(headers.iter().any(|(n, v)| n == "content-length" && v == "10"));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest.len(), 10, "{:?}", String::from_utf8_lossy(&rest));
    assert!(s.wait_for_log("ran longer", Duration::from_secs(5)), "{}", s.log());
}

/// A minimal `text/event-stream` parser following the HTML standard's interpretation rules.
#[derive(Debug, Default, PartialEq)]
struct Sse {
    event: String,
    data: String,
    id: String,
}

fn parse_event_stream(text: &str) -> (Vec<Sse>, usize) {
    let (mut events, mut comments) = (Vec::new(), 0);
    let mut cur = Sse::default();
    let mut data_lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            if !data_lines.is_empty() {
                cur.data = data_lines.join("\n");
                if cur.event.is_empty() {
                    cur.event = "message".into();
                }
                events.push(std::mem::take(&mut cur));
            }
            data_lines.clear();
            continue;
        }
        if line.starts_with(':') {
            comments += 1;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => cur.event = value.into(),
            "data" => data_lines.push(value),
            "id" => cur.id = value.into(),
            _ => {}
        }
    }
    (events, comments)
}

#[test]
fn server_sent_events_parse_with_multi_line_data() {
    let t = Tree::new(&[("events/GET.wasm", a::SSE_MULTILINE)]);
    let s = Server::start(t.path(), &[]);
    let mut c = s.connect();
    c.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    let h = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(h("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(h("cache-control").as_deref(), Some("no-cache"));
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
        let mut data = vec![0; size + 2];
        r.read_exact(&mut data).unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&data[..size]);
    }
    let (events, _) = parse_event_stream(&String::from_utf8(body).unwrap());
    assert_eq!(
        events,
        [
            Sse { event: "multi".into(), data: "line one\nline two".into(), id: "7".into() },
            Sse { event: "message".into(), data: "end".into(), id: String::new() },
        ]
    );
}

#[test]
fn sse_clock_sends_keepalives_and_a_disconnect_frees_the_instance() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--sse-keepalive", "300ms"]);
    let mut c = s.connect();
    c.write_all(b"GET /server-sent-events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    let mut text = String::new();
    let mut chunk = [0u8; 256];
    while parse_event_stream(&text).0.len() < 2 {
        let n = r.read(&mut chunk).unwrap();
        assert!(n > 0, "stream ended early");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    let (events, comments) = parse_event_stream(&text);
    assert_eq!(events[0].event, "count");
    assert_eq!(events[0].data, r#"{"count":1}"#);
    assert_eq!(events[1].data, r#"{"count":2}"#);
    assert!(comments >= 1, "a keep-alive comment between one-second events: {text:?}");
    drop(r);
    // The stream ends as a normal end and no instance stays alive.
    assert!(
        s.wait_for_log("path=/server-sent-events query=- status=200", Duration::from_secs(10)),
        "{}",
        s.log()
    );
    let log = s.log();
    let line = log.lines().find(|l| l.contains("path=/server-sent-events")).unwrap();
    assert!(line.contains("live=0"), "{line}");
    assert!(log.contains("client went away"), "{log}");
}

#[test]
fn two_hundred_sleeping_requests_wait_together_on_two_workers() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--workers", "2"]);
    let start = Instant::now();
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                write!(c, "GET /hang/1/m{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                read_response(&mut BufReader::new(c), false).unwrap().text()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), format!("m{i}"));
    }
    // Served one after another they would take 200 s; together they take about one.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn spinning_handler_gets_504_while_others_are_served() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--workers", "1", "--cpu-timeout", "500ms"]);
    let addr = s.addr;
    let spinner = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_response(&mut BufReader::new(c), false).unwrap().status
    });
    // One worker thread, one spinning guest: other requests still get through.
    for _ in 0..10 {
        assert_eq!(get(&s, "/hello-world").0, 200);
    }
    assert_eq!(spinner.join().unwrap(), 504);
    assert!(s.wait_for_log("cpu time limit", Duration::from_secs(5)), "{}", s.log());
    assert_eq!(get(&s, "/hello-world").0, 200);
}

#[test]
fn allocating_past_the_memory_limit_is_500_and_the_host_goes_on() {
    let t = Tree::new(&[("bomb/GET.wasm", a::ALLOC_BOMB), ("ok/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &["--max-memory", "32MiB"]);
    assert_eq!(get(&s, "/bomb").0, 500);
    assert_eq!(get(&s, "/ok"), (200, "Hello world!".into()));
    assert_eq!(get(&s, "/bomb").0, 500);
    // The log names the limit and the flag that raises it.
    assert!(s.wait_for_log("--max-memory limit of 32 MiB", Duration::from_secs(5)), "{}", s.log());
}

#[test]
fn duplex_answers_while_the_body_arrives() {
    let t = Tree::new(&[("d/POST.wasm", a::DUPLEX)]);
    let s = Server::start(t.path(), &[]);
    let c = s.connect();
    let mut w = c.try_clone().unwrap();
    w.write_all(b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    // The first chunks arrive before the request body is complete.
    let mut line = String::new();
    let mut got = Vec::new();
    while got.len() < 2 {
        line.clear();
        r.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
        let mut data = vec![0; size + 2];
        r.read_exact(&mut data).unwrap();
        got.push(String::from_utf8_lossy(&data[..size]).into_owned());
    }
    assert_eq!(got, ["start\n", "ABC"]);
    w.write_all(b"2\r\nde\r\n0\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("2\r\nDE\r\n6\r\nend 5\n\r\n0\r\n\r\n"), "{rest:?}");

    // A sized duplex body that ends short aborts the connection.
    let out = raw_all(&s, b"POST /d?sized=100 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("content-length: 100"), "{text}");
    assert!(text.ends_with("start\nABend 2\n"), "{text:?}");
}

#[test]
fn guest_failure_after_the_head_closes_without_a_last_chunk() {
    let t = Tree::new(&[("p/GET.wasm", a::PANIC_MID_STREAM)]);
    let s = Server::start(t.path(), &[]);
    let out = raw_all(&s, b"GET /p HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    // One response only: its head and first chunk, then the connection is closed.
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    assert!(text.ends_with("5\r\nfirst\r\n"), "{text:?}");
    assert!(s.wait_for_log("response body aborted", Duration::from_secs(5)), "{}", s.log());
}

#[test]
fn request_over_its_wall_clock_deadline_is_504() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--request-timeout", "500ms"]);
    let start = Instant::now();
    let (status, _) = get(&s, "/hang/30/late");
    assert_eq!(status, 504);
    assert!(start.elapsed() < Duration::from_secs(25), "the 30 s sleep was cut short");
    assert_eq!(get(&s, "/hang/0/fine"), (200, "fine".into()));
    // The example takes decimal seconds (parsed without floats) and refuses anything else.
    assert_eq!(get(&s, "/hang/0.05/frac"), (200, "frac".into()));
    assert_eq!(get(&s, "/hang/.1/frac"), (200, "frac".into()));
    for bad in ["/hang/x/m", "/hang/-1/m", "/hang/1e3/m", "/hang/1.2.3/m"] {
        let (status, body) = get(&s, bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("is not a number of seconds"), "{bad}: {body}");
    }
}

#[test]
fn requests_past_the_instance_budget_get_503() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--max-instances", "1"]);
    let addr = s.addr;
    // The sleeper retries until it holds the only slot (a probe below may briefly hold it).
    let sleeper = std::thread::spawn(move || {
        loop {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /hang/2/done HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let resp = read_response(&mut BufReader::new(c), false).unwrap();
            if resp.status != 503 {
                return resp.text();
            }
        }
    });
    // While the only instance slot is held, others are refused with 503 and Retry-After, and
    // a request without a body keeps its connection: the pipelined next one is answered on it.
    let refused = eventually(Duration::from_secs(10), || {
        let mut c = s.connect();
        c.write_all(
            b"GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\nGET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        let mut r = BufReader::new(c);
        let first = read_response(&mut r, false).unwrap();
        first.status == 503
            && first.header("retry-after") == Some("1")
            && first.header("connection") != Some("close")
            && read_response(&mut r, false).is_some()
    });
    assert!(refused, "{}", s.log());
    assert_eq!(sleeper.join().unwrap(), "done");
    assert_eq!(get(&s, "/hello-world").0, 200);
}

#[test]
fn a_request_sent_as_soon_as_an_answer_is_read_is_never_refused_for_that_answers_instance() {
    // One instance slot, and instances with 32 MiB to reset when torn down, which is after
    // their answer is written: a client that reads an answer and at once sends its next
    // request (on a new connection) must get the slot, not a 503, for full, sized and chunked
    // answers alike.
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER), ("fill/{bytes}/GET.wasm", a::FILL)]);
    let s = Server::start(t.path(), &["--max-instances", "1", "--max-memory", "512MiB"]);
    for (path, length) in [
        ("/n?grow=32", None),
        ("/fill/100000?ballast=32", Some(100_000)),
        ("/fill/100000?ballast=32&chunked", Some(100_000)),
    ] {
        for round in 0..5 {
            let (status, body) = get(&s, path);
            assert_eq!(status, 200, "{path} round {round}: {body}\n{}", s.log());
            if let Some(length) = length {
                assert_eq!(body.len(), length, "{path} round {round}");
            }
            assert_eq!(
                get(&s, "/n"),
                (200, "1 1".into()),
                "{path} round {round}: the next request\n{}",
                s.log()
            );
        }
    }
}

#[test]
fn a_streamed_chunk_is_written_without_waiting_for_the_next() {
    // Four 64 KiB chunks, a minute apart. Writes gather only what the guest hands out without
    // waiting, so the first chunk must arrive while the guest sleeps before the second.
    let t = Tree::new(&[("fill/{bytes}/GET.wasm", a::FILL)]);
    let s = Server::start(t.path(), &[]);
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /fill/262144?pause_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(n, v)| n == "content-length" && v == "262144"), "{headers:?}");
    let mut first = vec![0; 64 * 1024];
    r.read_exact(&mut first).expect("the first chunk, sent before the guest's pause");
    assert!(first.iter().all(|&b| b == b'x'));
}

#[test]
fn gathered_writes_keep_every_byte_and_chunk_boundary() {
    // 200 chunks handed out at once (gathered into few writes), sized and chunked.
    let t = Tree::new(&[("fill/{bytes}/GET.wasm", a::FILL)]);
    let s = Server::start(t.path(), &[]);
    let length = 200 * 64 * 1024 + 123;
    let mut c = s.connect();
    write!(
        c,
        "GET /fill/{length}?chunked HTTP/1.1\r\nHost: x\r\n\r\nGET /fill/{length} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    let (total, sha, chunks) = read_chunked(&mut r);
    assert_eq!((total, chunks), (length as u64, 201), "one chunk on the wire per chunk of the guest");
    assert_eq!(sha, hex(&Sha256::digest(vec![b'x'; length])));
    let resp = read_response(&mut r, false).expect("the pipelined sized response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), length);
}

#[test]
fn a_stream_of_empty_chunks_waits_between_pulls_and_is_cut_off_at_the_pull_timeout() {
    let t = Tree::new(&[("fill/{bytes}/GET.wasm", a::FILL)]);
    let s = Server::start(t.path(), &["--pull-timeout", "1s"]);
    // A few "nothing yet" chunks in a row are fine: the body arrives whole.
    let length = 3 * 64 * 1024;
    let mut c = s.connect();
    write!(c, "GET /fill/{length}?chunked&empty=8 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    let (total, _, _) = read_chunked(&mut r);
    assert_eq!(total, length as u64);

    // Nothing but empty chunks after the first: the connection is aborted once the stream
    // has brought nothing for --pull-timeout (it used to spin a core for ever).
    let got = raw_until_closed(&s, b"GET /fill/1000000?chunked&empty=forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("the connection was closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && !text.ends_with("0\r\n\r\n"), "{:.200}", text);
    assert!(s.wait_for_log("response body aborted", Duration::from_secs(10)), "{}", s.log());
}

#[test]
fn a_client_that_leaves_a_stream_of_empty_chunks_is_noticed() {
    let t = Tree::new(&[("fill/{bytes}/GET.wasm", a::FILL)]);
    let s = Server::start(t.path(), &["--pull-timeout", "300s"]);
    let mut c = s.connect();
    c.write_all(b"GET /fill/1000000?chunked&empty=forever HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    drop(r);
    drop(c);
    assert!(
        s.wait_for_log("client went away during the response body", Duration::from_secs(20)),
        "the host never noticed: {}",
        s.log()
    );
}
