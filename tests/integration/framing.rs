//! Malformed and oversized requests over a real socket: each gets its status and the connection
//! closes. (Every rule also has a byte-literal unit test in `host/src/http`.)

use std::io::{BufReader, Write};
use std::time::Duration;

use test_artifacts as a;

use crate::support::*;

fn server() -> (Tree, Server) {
    let t = Tree::new(&[("x/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &["--max-body", "1KiB", "--header-timeout", "500ms"]);
    (t, s)
}

/// Sends `request`, expects `status`, then expects the server to close the connection.
fn rejects(s: &Server, request: &[u8], status: u16) {
    let mut c = s.connect();
    c.write_all(request).unwrap();
    let mut r = BufReader::new(c);
    let resp = read_response(&mut r, false)
        .unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(request)));
    assert_eq!(resp.status, status, "for {:?}: {}", String::from_utf8_lossy(request), resp.text());
    assert!(is_closed(&mut r), "connection left open after {status}");
}

#[test]
fn malformed_requests_get_their_status_and_close() {
    let (_t, s) = server();
    let cases: &[(&[u8], u16)] = &[
        (b"GET /x HTTP/1.1\r\n\r\n", 400),                       // no Host
        (b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400), // two Hosts
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", 400), // obs-fold
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),          // bare CR
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: \x01\r\n\r\n", 400),          // control byte
        (b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400), // empty chunk size
        (b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;=\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET /x HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n", 413),
    ];
    for (request, status) in cases {
        rejects(&s, request, *status);
    }
}

#[test]
fn a_later_http_1_minor_version_is_served_as_http_1_1_with_keep_alive() {
    let (_t, s) = server();
    let mut c = s.connect();
    // RFC 9110 §2.5; pipelined, so the second answer shows the connection was kept.
    c.write_all(b"GET /x HTTP/1.2\r\nHost: a\r\n\r\nGET /x HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(c);
    for _ in 0..2 {
        let resp = read_response(&mut r, false).expect("a response");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.text().contains("HTTP/1.1"), "the handler sees HTTP/1.1: {}", resp.text());
    }
    assert!(is_closed(&mut r), "connection: close was honoured");
    // Without Host, HTTP/1.1's rule applies.
    rejects(&s, b"GET /x HTTP/1.3\r\n\r\n", 400);
}

#[test]
fn chunk_extensions_over_16_kib_in_one_body_are_400_though_each_line_is_short() {
    let (_t, s) = server();
    let chunk = format!("1;{}\r\nx\r\n", "e".repeat(1023));
    let body = |chunks: usize| format!("{}0\r\n\r\n", chunk.repeat(chunks));
    let request = |chunks: usize| {
        format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{}", body(chunks))
    };
    // 16 KiB in total is accepted (16 body bytes arrive), one more chunk is not.
    let ok = raw(&s, request(16).as_bytes()).expect("a response");
    assert_eq!(ok.status, 200, "{}", ok.text());
    rejects(&s, request(17).as_bytes(), 400);
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let (_t, s) = server();
    let mut req = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend(b"200\r\n");
        req.extend(std::iter::repeat_n(b'z', 0x200));
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    rejects(&s, &req, 413);
}

#[test]
fn long_request_line_is_414_and_big_head_is_431() {
    let (_t, s) = server();
    let mut line = b"GET /".to_vec();
    line.extend(std::iter::repeat_n(b'a', 9000));
    line.extend(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    rejects(&s, &line, 414);

    let mut many = b"GET /x HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..150 {
        many.extend(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    rejects(&s, &many, 431);

    let mut big = b"GET /x HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..40 {
        big.extend(format!("X-{i}: {}\r\n", "v".repeat(2000)).as_bytes());
    }
    big.extend(b"\r\n");
    rejects(&s, &big, 431);
}

#[test]
fn slow_header_gets_408() {
    let (_t, s) = server();
    rejects(&s, b"GET /x HTTP/1.1\r\nHo", 408);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let t = Tree::new(&[("x/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &["--idle-timeout", "300ms"]);
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    assert!(is_closed(&mut r), "idle connection closed by the server");
}

#[test]
fn the_idle_timeout_counts_from_the_end_of_the_last_request() {
    // Requests 1 s apart under a 2 s idle timeout: the timer armed after the first answer
    // comes due while the connection waits after the second, which must not close it.
    let t = Tree::new(&[("x/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &["--idle-timeout", "2s"]);
    let c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    for i in 0..3 {
        w.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let status = read_response(&mut r, false).map(|resp| resp.status);
        assert_eq!(status, Some(200), "request {i}, 1 s after the answer before it\n{}", s.log());
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(is_closed(&mut r), "closed once idle for the whole timeout");
}

#[test]
fn stalled_body_gets_408_and_close() {
    let t = Tree::new(&[("x/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &["--body-timeout", "300ms"]);
    rejects(&s, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 408);
}

#[test]
fn connections_past_the_limit_wait_for_a_free_slot() {
    let t = Tree::new(&[("x/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &["--max-connections", "1"]);
    // The only slot is taken by an idle keep-alive connection.
    let mut first = s.connect();
    first.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut first_r = BufReader::new(first.try_clone().unwrap());
    assert_eq!(read_response(&mut first_r, false).unwrap().status, 200);
    // A second connection is queued by the kernel, not served.
    let mut second = s.connect();
    second.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    second.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    let mut byte = [0u8; 1];
    assert!(std::io::Read::read(&mut second, &mut byte).is_err(), "served past the connection limit");
    // Once the first goes away, the second is served.
    drop(first_r);
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let resp = read_response(&mut BufReader::new(second), false).expect("served after the slot freed");
    assert_eq!(resp.status, 200);
}

#[test]
fn a_body_trickled_below_the_minimum_rate_gets_408_though_no_read_times_out() {
    let t = Tree::new(&[("x/ANY.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &["--body-timeout", "1s"]);
    let mut c = s.connect();
    c.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n").unwrap();
    // A byte every 300 ms never leaves a read waiting for --body-timeout, but is far below
    // the default --min-rate of 1 KiB/s: after about a second of waiting the host answers 408
    // and closes, long before the 100 bytes (30 s) are in.
    let mut sent = 0;
    let writer = c.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut w = writer;
        while sent < 100 && w.write_all(b"x").is_ok() {
            sent += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        sent
    });
    let mut r = BufReader::new(c);
    let resp = read_response(&mut r, false).expect("an answer before the body is complete");
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert!(is_closed(&mut r), "connection left open after 408");
    assert!(trickle.join().unwrap() < 100, "the whole body was taken");
}

#[test]
fn a_client_that_stops_reading_the_response_is_cut_off_at_the_send_timeout() {
    let s = Server::start(std::path::Path::new(a::EXAMPLE_ROUTES), &["--send-timeout", "1s"]);
    let mut c = s.connect();
    // 1 GiB, and the client never reads: once the socket buffers are full, no write makes
    // progress for a second and the host closes the connection (freeing the instance).
    c.write_all(b"GET /blob/1073741824 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert!(s.wait_for_log("client read the response too slowly", Duration::from_secs(30)), "{}", s.log());
    // What was sent is readable, then the connection ends (EOF or reset, not a read timeout)
    // without the rest.
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut c, &mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the connection was left open after {got} bytes")
            }
            Err(_) => break,
        }
    }
    assert!(got < 1 << 30, "the whole body arrived");
    assert_eq!(get(&s, "/hello-world").0, 200);
}
