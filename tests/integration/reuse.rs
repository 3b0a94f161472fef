//! `--instance-reuse N`: an instance serves up to N requests one after another; a failure, a
//! reload and the budget retire it. The `counter` guest answers `n heap`: the requests its
//! instance has served, counted in a static and in its heap.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use test_artifacts as a;

use crate::support::*;

/// Sends `GET path` on one keep-alive connection and returns each answer's status and text.
fn get_on(conn: &mut (impl Write, BufReader<std::net::TcpStream>), path: &str) -> (u16, String) {
    let (w, r) = conn;
    write!(w, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_response(r, false).expect("a response");
    (resp.status, resp.text())
}

fn keep_alive(s: &Server) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
    let c = s.connect();
    (c.try_clone().unwrap(), BufReader::new(c))
}

#[test]
fn with_reuse_globals_persist_for_n_requests_then_a_fresh_instance_starts() {
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &["--instance-reuse", "3"]);
    let mut c = keep_alive(&s);
    let answers: Vec<String> = (0..7).map(|_| get_on(&mut c, "/n").1).collect();
    assert_eq!(answers, ["1 1", "2 2", "3 3", "1 1", "2 2", "3 3", "1 1"]);
    // Separate connections share the idle instance too: reuse is per handler, not per socket.
    assert_eq!(get(&s, "/n"), (200, "2 2".into()));
}

#[test]
fn without_reuse_the_counter_never_grows() {
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &["--instance-reuse", "1"]);
    let mut c = keep_alive(&s);
    for _ in 0..20 {
        assert_eq!(get_on(&mut c, "/n"), (200, "1 1".into()));
    }
}

#[test]
fn a_failed_request_retires_its_instance() {
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &["--instance-reuse", "100"]);
    let mut c = keep_alive(&s);
    assert_eq!(get_on(&mut c, "/n").1, "1 1");
    assert_eq!(get_on(&mut c, "/n").1, "2 2");
    assert_eq!(get_on(&mut c, "/n?panic").0, 500, "the panic is the third request it served");
    let mut c = keep_alive(&s);
    assert_eq!(get_on(&mut c, "/n"), (200, "1 1".into()), "a new instance after the panic");
    assert_eq!(get_on(&mut c, "/n").1, "2 2");
}

#[test]
fn a_reload_never_serves_the_old_code_from_a_reused_instance() {
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &["--instance-reuse", "100"]);
    assert_eq!(get(&s, "/n").1, "1 1");
    assert_eq!(get(&s, "/n").1, "2 2");
    t.put("n/GET.wasm", a::VERSION2);
    assert!(eventually(Duration::from_secs(10), || get(&s, "/n").1 == "v2"), "{}", s.log());
    for _ in 0..10 {
        assert_eq!(get(&s, "/n").1, "v2");
    }
    // The same bytes as the first version again: still a new version, whose first request
    // must not meet the old instance (which had served two).
    t.put("n/GET.wasm", a::COUNTER);
    let mut seen = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            seen = get(&s, "/n").1;
            seen != "v2"
        }),
        "{}",
        s.log()
    );
    assert_eq!(seen, "1 1", "the reloaded handler starts from a fresh instance");
    assert_eq!(get(&s, "/n").1, "2 2");
}

#[test]
fn an_instance_is_back_for_reuse_before_its_answer_is_sent() {
    // The first answer is far larger than the socket buffers and its client does not read it
    // yet, so writing it waits; the instance that made it must already be idle, and serve the
    // request of another connection meanwhile.
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &["--instance-reuse", "1000"]);
    let pad = 20 << 20;
    let (mut w, mut r) = keep_alive(&s);
    write!(w, "GET /n?pad={pad} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 200 OK\r\n", "the answer has begun");
    let mut other = keep_alive(&s);
    assert_eq!(
        get_on(&mut other, "/n"),
        (200, "2 2".into()),
        "the stalled answer's instance served it\n{}",
        s.log()
    );
    let mut length = None;
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
        length = length
            .or_else(|| line.to_ascii_lowercase().strip_prefix("content-length: ")?.trim().parse().ok());
    }
    let mut body = vec![0; length.expect("a content-length")];
    r.read_exact(&mut body).unwrap();
    assert_eq!(body.len(), "1 1\n".len() + pad);
    assert!(body.starts_with(b"1 1\n"));
}

#[test]
fn idle_instances_give_way_to_requests_for_other_routes() {
    // Two permits, three routes: an idle instance of one route must never make another 503.
    let t = Tree::new(&[("a/GET.wasm", a::COUNTER), ("b/GET.wasm", a::COUNTER), ("c/GET.wasm", a::COUNTER)]);
    let s = Server::start(t.path(), &["--instance-reuse", "100", "--max-instances", "2"]);
    let mut c = keep_alive(&s);
    for round in 0..5 {
        for route in ["/a", "/b", "/c"] {
            let (status, text) = get_on(&mut c, route);
            assert_eq!(status, 200, "round {round} {route}: {text}\n{}", s.log());
        }
    }
    // Only one route: its instance keeps being reused.
    let first: u32 = get_on(&mut c, "/a").1.split(' ').next().unwrap().parse().unwrap();
    let second: u32 = get_on(&mut c, "/a").1.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(second, first + 1);
}

#[test]
fn a_burst_on_one_route_does_not_keep_another_from_reusing_its_instances() {
    // 80 sleeping requests at once leave 80 instances to go idle: more than the 64 kept.
    let t = Tree::new(&[("n/GET.wasm", a::COUNTER), ("slow/{secs}/{msg}/GET.wasm", a::EXAMPLE_HANG)]);
    let s = Server::start(t.path(), &["--instance-reuse", "1000"]);
    let burst: Vec<_> = (0..80)
        .map(|_| {
            let url = s.url("/slow/0.5/x");
            std::thread::spawn(move || client().get(&url).call().unwrap().status().as_u16())
        })
        .collect();
    for request in burst {
        assert_eq!(request.join().unwrap(), 200);
    }
    // The idle set is full of the burst's instances; another route's instance still gets in
    // (the oldest idle one makes room), so its next request is served by the same instance.
    let mut c = keep_alive(&s);
    assert_eq!(get_on(&mut c, "/n"), (200, "1 1".into()));
    assert_eq!(get_on(&mut c, "/n"), (200, "2 2".into()), "the instance was not kept");
}

#[test]
fn reused_instances_start_each_stream_afresh() {
    let s = Server::start(Path::new(a::EXAMPLE_ROUTES), &["--instance-reuse", "50"]);
    let mut c = s.connect();
    // A HEAD leaves the stream unpulled; the next request on the same instance must not see it.
    c.write_all(
        b"HEAD /numbers/3 HTTP/1.1\r\nHost: x\r\n\r\nGET /numbers/2 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /numbers/4 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(read_response(&mut r, true).unwrap().status, 200);
    assert_eq!(read_response(&mut r, false).unwrap().text(), "1\n2\n");
    assert_eq!(read_response(&mut r, false).unwrap().text(), "1\n2\n3\n4\n");
    for _ in 0..3 {
        assert_eq!(get(&s, "/numbers/3"), (200, "1\n2\n3\n".into()));
        assert_eq!(get(&s, "/hello-world"), (200, "Hello world!".into()));
    }
}
