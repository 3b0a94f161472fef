//! Shared state over real sockets through the real binary: the key-value store and topics on
//! the embedded backend (durable across restarts and `kill -9`), in memory, and on a Redis
//! server shared by two hosts (started here, on a free port, with a temporary directory), plus
//! the chat example in a real headless Chromium.
//!
//! Tools: `redis-server`, `chromium` and `chromedriver` come from Debian packages that
//! `make test` installs (`scripts/ensure-tools.sh`); a test whose tool is missing fails and
//! says how to install it.

#![allow(
    clippy::print_stdout,
    reason = "tests print the latencies they observe instead of asserting on them"
)]

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_artifacts as a;

use crate::support::{Server, Tree, client, eventually};

/// A routes tree with the state examples, the probe guest and hello world.
fn state_routes() -> Tree {
    Tree::new(&[
        ("store/{key}/GET.wasm", a::EXAMPLE_STORE),
        ("store/{key}/PUT.wasm", a::EXAMPLE_STORE),
        ("store/{key}/DELETE.wasm", a::EXAMPLE_STORE),
        ("messages/POST.wasm", a::EXAMPLE_MESSAGES),
        ("messages/wait/GET.wasm", a::EXAMPLE_MESSAGES),
        ("chat/GET.wasm", a::EXAMPLE_CHAT),
        ("chat/POST.wasm", a::EXAMPLE_CHAT),
        ("chat/events/GET.wasm", a::EXAMPLE_CHAT),
        ("counter/POST.wasm", a::EXAMPLE_ATOMIC_COUNTER),
        ("kv/{op}/ANY.wasm", a::KV_PROBE),
        ("hello-world/GET.wasm", a::EXAMPLE_HELLO_WORLD),
    ])
}

/// (status, body) of one request with a real client.
fn call(server: &Server, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    call_at(server.addr, method, path, body, &[])
}

fn call_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    let agent = client();
    let mut response = match method {
        "GET" | "DELETE" => {
            let mut req = if method == "GET" { agent.get(&url) } else { agent.delete(&url) };
            for (n, v) in headers {
                req = req.header(*n, *v);
            }
            req.call()
        }
        _ => {
            let mut req = match method {
                "PUT" => agent.put(&url),
                "POST" => agent.post(&url),
                other => panic!("no method {other}"),
            };
            for (n, v) in headers {
                req = req.header(*n, *v);
            }
            // `POST /messages` takes JSON, declared as such (the SDK's `req.json()` checks).
            if path.starts_with("/messages")
                && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/json");
            }
            req.send(body)
        }
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default();
    (status, text)
}

fn state_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// The store example, durability

#[test]
fn store_put_get_delete_and_404s() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    assert_eq!(call(&s, "GET", "/store/greeting", b"").0, 404);
    assert_eq!(call(&s, "PUT", "/store/greeting", b"hello").0, 204);
    assert_eq!(call(&s, "GET", "/store/greeting", b""), (200, "hello".into()));
    assert_eq!(call(&s, "PUT", "/store/greeting", b"hello again").0, 204);
    assert_eq!(call(&s, "GET", "/store/greeting", b""), (200, "hello again".into()));
    assert_eq!(call(&s, "DELETE", "/store/greeting", b"").0, 204);
    assert_eq!(call(&s, "GET", "/store/greeting", b"").0, 404);
    assert_eq!(call(&s, "DELETE", "/store/greeting", b"").0, 404);
}

#[test]
fn a_value_set_before_a_restart_is_read_after_it() {
    let routes = state_routes();
    let state = state_dir();
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    assert_eq!(call(&s, "PUT", "/store/kept", b"across restarts").0, 204);
    assert!(s.terminate().success());
    assert!(state.path().join("state.redb").is_file(), "the state file is in --state DIR");
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    assert_eq!(call(&s, "GET", "/store/kept", b""), (200, "across restarts".into()));
}

#[test]
fn puts_acknowledged_just_before_kill_9_are_there_after_the_restart() {
    let routes = state_routes();
    let state = state_dir();
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    for i in 0..50 {
        assert_eq!(call(&s, "PUT", &format!("/store/k{i}"), format!("v{i}").as_bytes()).0, 204);
    }
    // Dropping the server kills it with SIGKILL right after the last acknowledgement.
    let pid = s.pid();
    drop(s);
    assert!(!Path::new(&format!("/proc/{pid}/status")).exists() || !is_running(pid), "killed");
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    for i in 0..50 {
        assert_eq!(call(&s, "GET", &format!("/store/k{i}"), b""), (200, format!("v{i}")));
    }
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains("Z")))
        .unwrap_or(false)
}

#[test]
fn a_state_dir_used_by_another_host_answers_503_naming_the_lock() {
    let routes = state_routes();
    let state = state_dir();
    let first = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    assert_eq!(call(&first, "PUT", "/store/a", b"1").0, 204);
    let second = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    let (status, body) = call(&second, "GET", "/store/a", b"");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("in use by another process"), "{body}");
    // The second host still serves everything else.
    assert_eq!(call(&second, "GET", "/hello-world", b"").0, 200);
}

// ---------------------------------------------------------------------------------------------
// Concurrency: increments and compare-and-swap

fn concurrent_increments(addr: SocketAddr, threads: usize, per_thread: usize) -> Vec<i64> {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| {
                        let (status, body) = call_at(addr, "POST", "/counter", b"", &[]);
                        assert_eq!(status, 200, "{body}");
                        body.trim().parse::<i64>().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_thousand_concurrent_increments_end_at_exactly_a_thousand() {
    let routes = state_routes();
    let state = state_dir();
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    let started = Instant::now();
    let values = concurrent_increments(s.addr, 50, 20);
    println!("1000 increments from 50 clients (embedded): {:?}", started.elapsed());
    // Each answer is a distinct count: no increment was lost or applied twice.
    let distinct: BTreeSet<i64> = values.iter().copied().collect();
    assert_eq!(distinct, (1..=1000).collect::<BTreeSet<_>>());
    assert_eq!(call(&s, "GET", "/kv/get?key=counter", b""), (200, "1000".into()));
}

fn one_winner(addr: SocketAddr, key: &str, contenders: usize) {
    let barrier = Arc::new(Barrier::new(contenders));
    let handles: Vec<_> = (0..contenders)
        .map(|i| {
            let barrier = barrier.clone();
            let key = key.to_owned();
            std::thread::spawn(move || {
                barrier.wait();
                let (status, body) =
                    call_at(addr, "POST", &format!("/kv/cas?key={key}"), format!("c{i}").as_bytes(), &[]);
                assert_eq!(status, 200, "{body}");
                (i, body == "true")
            })
        })
        .collect();
    let winners: Vec<usize> =
        handles.into_iter().map(|h| h.join().unwrap()).filter(|(_, won)| *won).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        call_at(addr, "GET", &format!("/kv/get?key={key}"), b"", &[]),
        (200, format!("c{}", winners[0]))
    );
    // Swapping from the winner's value works once more, from a stale one not at all.
    let swap =
        |expect: &str| call_at(addr, "POST", &format!("/kv/cas?key={key}&expect={expect}"), b"next", &[]).1;
    assert_eq!(swap("stale"), "false");
    assert_eq!(swap(&format!("c{}", winners[0])), "true");
}

#[test]
fn concurrent_compare_and_swap_has_exactly_one_winner() {
    let routes = state_routes();
    let state = state_dir();
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    for round in 0..3 {
        one_winner(s.addr, &format!("lock{round}"), 40);
    }
}

// ---------------------------------------------------------------------------------------------
// Long polls

/// Waits until at least `n` requests wait for a message: those waiting in a live instance
/// (the `live=` of a cheap request's access line counts instances alive after it) plus, on a
/// host with an admin listener, the parked ones (`wasm_host_parked_requests`).
fn wait_for_waiters(s: &Server, n: usize) {
    let parked = eventually(Duration::from_secs(20), || waiting(s) >= n);
    assert!(parked, "the long poll never parked ({} waiting); log:\n{}", waiting(s), s.log());
}

/// Requests waiting now: the instances alive after a hello-world request (its own is gone by
/// its access line) plus parked requests, if the host has an admin listener.
fn waiting(s: &Server) -> usize {
    live(s) + s.admin.map_or(0, |_| s.parked_requests())
}

/// How long a parked poll's client waits for its answer. The polls wait up to 25 s for a
/// message, so an answer within this bound means the publish woke them (a poll that was not
/// woken would answer only when its own wait ended, after this bound: the client then fails).
const WOKEN_WITHIN: Duration = Duration::from_secs(15);

/// Starts a long poll in a thread; it yields (status, body) and when the answer came, or
/// panics if no answer came within [`WOKEN_WITHIN`].
fn spawn_poll(addr: SocketAddr, path: String) -> std::thread::JoinHandle<((u16, String), Instant)> {
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(WOKEN_WITHIN))
            .build()
            .into();
        let mut response = agent.get(&format!("http://{addr}{path}")).call().unwrap_or_else(|e| {
            panic!("GET {path} was not answered within {WOKEN_WITHIN:?} (not woken?): {e}")
        });
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        ((status, body), Instant::now())
    })
}

#[test]
fn a_parked_long_poll_is_woken_by_a_post() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let poll = spawn_poll(s.addr, "/messages/wait?after=0&timeout=25".into());
    wait_for_waiters(&s, 1);
    let (status, body) = call(&s, "POST", "/messages", br#"{"text": "wake up"}"#);
    assert_eq!((status, body.as_str()), (200, r#"{"id":1}"#));
    let posted = Instant::now();
    let ((status, body), answered) = poll.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list, json!([{ "id": 1, "body": { "text": "wake up" } }]));
    println!("long poll answered {:?} after the POST", answered.saturating_duration_since(posted));
}

#[test]
fn a_long_poll_after_the_post_is_answered_at_once() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    call(&s, "POST", "/messages", br#""first""#);
    call(&s, "POST", "/messages", br#""second""#);
    // timeout=0: a poll that had to wait would answer 204; the messages are already there.
    let (status, body) = call(&s, "GET", "/messages/wait?after=0&timeout=0", b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!([{"id": 1, "body": "first"}, {"id": 2, "body": "second"}])
    );
    let (status, body) = call(&s, "GET", "/messages/wait?after=1&timeout=0", b"");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (200, json!([{"id": 2, "body": "second"}]))
    );
    // Without `after`, only what is published after the request arrived counts.
    assert_eq!(call(&s, "GET", "/messages/wait?timeout=0", b"").0, 204);
}

#[test]
fn a_long_poll_with_a_one_second_timeout_answers_204() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    let started = Instant::now();
    let (status, body) = call(&s, "GET", "/messages/wait?timeout=1", b"");
    assert_eq!((status, body.as_str()), (204, ""));
    println!("1 s long poll answered after {:?}", started.elapsed());
}

#[test]
fn a_long_poll_longer_than_the_request_deadline_ends_with_204_not_504() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory", "--request-timeout", "2s"]);
    let (status, _) = call(&s, "GET", "/messages/wait?timeout=60", b"");
    assert_eq!(status, 204);
}

#[test]
fn many_parked_polls_are_all_woken_by_one_post() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let polls: Vec<_> =
        (0..200).map(|_| spawn_poll(s.addr, "/messages/wait?after=0&timeout=25".into())).collect();
    wait_for_waiters(&s, 200);
    call(&s, "POST", "/messages", br#""all""#);
    for poll in polls {
        let ((status, body), _) = poll.join().unwrap();
        assert_eq!(
            (status, serde_json::from_str::<Value>(&body).unwrap()),
            (200, json!([{"id": 1, "body": "all"}]))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Parked requests (`subscription.park`), through the probe's `park` operation

/// How often the probe's `park` operation ran for `topic` (its key `runs:TOPIC`).
fn runs(s: &Server, topic: &str) -> u64 {
    let (status, body) = call(s, "GET", &format!("/kv/get?key=runs:{topic}"), b"");
    if status == 404 { 0 } else { body.parse().unwrap_or_else(|_| panic!("runs:{topic} = {body:?}")) }
}

/// `live=` of a fresh hello-world request's access line: the instances alive after it (its
/// own is gone by then). Waits for that line: the log is written by a thread of its own.
fn live(s: &Server) -> usize {
    let hello_lines = |log: &str| log.lines().filter(|l| l.contains(" path=/hello-world ")).count();
    let before = hello_lines(&s.log());
    let _ = call(s, "GET", "/hello-world", b"");
    let mut live = None;
    let logged = eventually(Duration::from_secs(10), || {
        let log = s.log();
        if hello_lines(&log) <= before {
            return false;
        }
        live = crate::support::last_live(&log, "/hello-world");
        true
    });
    assert!(logged, "no access line for /hello-world; log:\n{}", s.log());
    live.expect("live= in the access line")
}

#[test]
fn a_parked_request_holds_no_instance_and_runs_again_in_a_fresh_one_when_woken() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let poll = spawn_poll(s.addr, "/kv/park?topic=p&timeout_ms=25000".into());
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1), "never parked: {}", s.log());
    assert_eq!(live(&s), 0, "a parked request holds no instance");
    assert_eq!(runs(&s, "p"), 1);
    assert_eq!(call(&s, "POST", "/kv/publish?topic=p", b"go"), (200, "1".into()));
    let ((status, body), _) = poll.join().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"data":"go","id":1}"#));
    assert_eq!(runs(&s, "p"), 2, "woken, the handler ran once more");
    assert_eq!(s.parked_requests(), 0);
}

#[test]
fn a_parked_request_woken_by_a_message_it_skips_parks_again_without_spinning() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let poll = spawn_poll(s.addr, "/kv/park?topic=q&until=mine&timeout_ms=25000".into());
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1));
    call(&s, "POST", "/kv/publish?topic=q", b"other");
    // The run after the wake-up skips "other" and parks again, after it.
    assert!(eventually(Duration::from_secs(20), || runs(&s, "q") == 2), "runs: {}", runs(&s, "q"));
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1));
    for _ in 0..20 {
        let _ = call(&s, "GET", "/hello-world", b"");
    }
    assert_eq!(runs(&s, "q"), 2, "parked again, it is not run again until the next message");
    call(&s, "POST", "/kv/publish?topic=q", b"mine");
    let ((status, body), _) = poll.join().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"data":"mine","id":2}"#));
    assert_eq!(runs(&s, "q"), 3);
}

#[test]
fn a_reused_instance_keeps_no_resume_point_of_the_parked_request_it_served() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory", "--instance-reuse", "100"]);
    let poll = spawn_poll(s.addr, "/kv/park?topic=r&timeout_ms=25000".into());
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1));
    call(&s, "POST", "/kv/publish?topic=r", b"one");
    let ((status, body), _) = poll.join().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"data":"one","id":1}"#));
    // The instance that ran the woken request serves the next ones: they subscribe from now
    // on (no `after`), so message 1 is not theirs, whatever the last request resumed at.
    for _ in 0..3 {
        assert_eq!(call(&s, "GET", "/kv/park?topic=r&timeout_ms=100", b""), (204, String::new()));
    }
}

#[test]
fn a_parked_request_gets_the_response_it_parked_with_at_its_timeout() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let started = Instant::now();
    assert_eq!(call(&s, "GET", "/kv/park?topic=t&timeout_ms=300", b""), (204, String::new()));
    assert!(started.elapsed() >= Duration::from_millis(300), "answered before its timeout");
    assert_eq!(runs(&s, "t"), 1, "a timeout does not run the handler again");
    assert_eq!(s.parked_requests(), 0);
}

#[test]
fn only_a_request_without_a_body_and_with_a_whole_body_answer_can_be_parked() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let (status, body) = call(&s, "POST", "/kv/park?topic=b&timeout_ms=5000", b"a body");
    assert_eq!((status, body.as_str()), (500, "internal server error\n"));
    assert!(
        s.wait_for_log("only a request without a body can be parked", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    let (status, _) = call(&s, "GET", "/kv/park?topic=b&stream&timeout_ms=5000", b"");
    assert_eq!(status, 500);
    assert!(
        s.wait_for_log("a parked request's response must have a whole", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    assert_eq!(s.parked_requests(), 0);
}

#[test]
fn a_parked_request_whose_client_leaves_is_let_go() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let mut c = s.connect();
    c.write_all(b"GET /kv/park?topic=gone&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1));
    drop(c);
    assert!(
        eventually(Duration::from_secs(20), || s.parked_requests() == 0),
        "still parked after the client left"
    );
}

#[test]
fn a_request_pipelined_behind_a_parked_one_is_answered_after_it() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(
        b"GET /kv/park?topic=pipe&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hello-world HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1));
    call(&s, "POST", "/kv/publish?topic=pipe", b"first");
    let mut reader = BufReader::new(c);
    let first = crate::support::read_response(&mut reader, false).expect("the parked request's answer");
    assert_eq!((first.status, first.text().as_str()), (200, r#"{"data":"first","id":1}"#));
    let second = crate::support::read_response(&mut reader, false).expect("the pipelined request's answer");
    assert_eq!((second.status, second.text().as_str()), (200, "Hello world!"));
}

#[test]
fn a_parked_request_is_answered_with_its_timeout_response_when_the_host_shuts_down() {
    let routes = state_routes();
    let s = Server::start_with_admin(routes.path(), &["--state", "memory"]);
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /kv/park?topic=stop&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(eventually(Duration::from_secs(20), || s.parked_requests() == 1));
    let started = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    let r = crate::support::read_response(&mut BufReader::new(c), false).expect("an answer before exit");
    assert_eq!((r.status, r.header("connection")), (204, Some("close")));
    println!("parked request answered and host exited {:?} after SIGTERM", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

/// Reads Server-Sent Events off a raw socket (chunked or not), skipping comments.
struct SseClient {
    reader: BufReader<TcpStream>,
    chunked: bool,
    pending: String,
}

impl SseClient {
    fn connect(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let extra = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n{extra}\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "closed during the head: {head}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        SseClient { reader, chunked, pending: String::new() }
    }

    fn more(&mut self) {
        if self.chunked {
            let mut size = String::new();
            assert!(self.reader.read_line(&mut size).unwrap() > 0, "stream closed");
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            assert!(size > 0, "stream ended");
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).unwrap();
            self.pending.push_str(std::str::from_utf8(&data[..size]).unwrap());
        } else {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "stream closed");
            self.pending.push_str(&line);
        }
    }

    /// The next event as (id, data).
    fn next(&mut self) -> (Option<String>, String) {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let (mut id, mut data) = (None, Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if data.is_empty() && id.is_none() {
                    continue; // a comment (keep-alive)
                }
                return (id, data.join("\n"));
            }
            self.more();
        }
    }
}

fn chat_post(addr: SocketAddr, text: &str) {
    let body = format!("message={}", text.replace(' ', "+"));
    let (status, _) = call_at(
        addr,
        "POST",
        "/chat",
        body.as_bytes(),
        &[("content-type", "application/x-www-form-urlencoded"), ("x-requested-with", "test")],
    );
    assert_eq!(status, 204);
}

#[test]
fn sse_reconnecting_with_last_event_id_gets_exactly_what_it_missed() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    chat_post(s.addr, "one");
    chat_post(s.addr, "two");
    let mut first = SseClient::connect(s.addr, "/chat/events", None);
    assert_eq!(first.next(), (Some("1".into()), "one".into()));
    assert_eq!(first.next(), (Some("2".into()), "two".into()));
    chat_post(s.addr, "three");
    assert_eq!(first.next(), (Some("3".into()), "three".into()), "a live stream is woken by a POST");
    drop(first);
    chat_post(s.addr, "four");
    chat_post(s.addr, "five");
    let mut again = SseClient::connect(s.addr, "/chat/events", Some("3"));
    assert_eq!(again.next(), (Some("4".into()), "four".into()));
    assert_eq!(again.next(), (Some("5".into()), "five".into()));
    chat_post(s.addr, "six");
    // Nothing repeated or skipped: the next event is the new one.
    assert_eq!(again.next(), (Some("6".into()), "six".into()));
}

#[test]
fn the_chat_page_and_form_post_without_javascript() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    let (status, page) = call(&s, "GET", "/chat", b"");
    assert_eq!(status, 200);
    assert!(page.contains("new EventSource(\"/chat/events\")") && page.contains("<form"), "{page}");
    let response = crate::support::raw(
        &s,
        b"POST /chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 21\r\n\r\nmessage=caf%C3%A9+ok!",
    )
    .unwrap();
    assert_eq!((response.status, response.header("location")), (303, Some("/chat")));
    let mut events = SseClient::connect(s.addr, "/chat/events", None);
    assert_eq!(events.next(), (Some("1".into()), "café ok!".into()));
    assert_eq!(call(&s, "POST", "/chat", b"message=").0, 400);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_keys_values_and_ids_are_clear_errors() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    let long_key = "k".repeat(600);
    let (status, body) = call(&s, "PUT", &format!("/store/{long_key}"), b"x");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad key") && body.contains("over the limit of 512 bytes"), "{body}");

    let big = vec![b'v'; (1 << 20) + 1];
    let (status, body) = call(&s, "PUT", "/store/big", &big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too large") && body.contains("1048576"), "{body}");

    let (status, body) = call(&s, "GET", "/kv/get?key=a%00b", b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("NUL"), "{body}");
    assert_eq!(call(&s, "GET", "/kv/get?key=", b"").0, 400);

    let (status, body) = call(&s, "GET", "/messages/wait?after=abc&timeout=0", b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("abc"), "{body}");

    let (status, body) = call_at(s.addr, "GET", "/chat/events", b"", &[("last-event-id", "yesterday")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Last-Event-ID"), "{body}");

    assert_eq!(call(&s, "PUT", "/kv/set?key=word", b"hello").0, 204);
    let (status, body) = call(&s, "POST", "/kv/incr?key=word", b"");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not an integer"), "{body}");

    let (status, body) = call(&s, "GET", "/kv/list?prefix=a&cursor=b", b"");
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(&s, "GET", "/kv/list?limit=100000", b"");
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(&s, "POST", "/messages", b"not json");
    assert_eq!(status, 400);
    let (status, body) = call(&s, "POST", "/kv/publish?topic=t", &vec![b'm'; (256 << 10) + 1]);
    assert_eq!(status, 413, "{body}");
    // The host is fine after all of that.
    assert_eq!(call(&s, "GET", "/hello-world", b"").0, 200);
}

// ---------------------------------------------------------------------------------------------
// The key-value contract, on every backend

/// Lists, existence, expiry, increments and topic replay through the probe guest.
fn kv_contract(addr: SocketAddr) {
    let go = |method: &str, path: &str, body: &[u8]| call_at(addr, method, path, body, &[]);
    for key in ["users/3", "users/1", "users/2", "other"] {
        assert_eq!(go("PUT", &format!("/kv/set?key={key}"), key.as_bytes()).0, 204);
    }
    assert_eq!(go("GET", "/kv/exists?key=users/1", b"").1, "true");
    assert_eq!(go("GET", "/kv/exists?key=users/9", b"").1, "false");
    let page: Value = serde_json::from_str(&go("GET", "/kv/list?prefix=users/&limit=2", b"").1).unwrap();
    assert_eq!(page, json!({ "keys": ["users/1", "users/2"], "cursor": "users/2" }));
    let page: Value =
        serde_json::from_str(&go("GET", "/kv/list?prefix=users/&limit=2&cursor=users/2", b"").1).unwrap();
    assert_eq!(page, json!({ "keys": ["users/3"], "cursor": null }));
    assert_eq!(go("GET", "/kv/delete?key=users/2", b"").1, "true");
    assert_eq!(go("GET", "/kv/delete?key=users/2", b"").1, "false");

    assert_eq!(go("PUT", "/kv/set?key=brief&ttl_ms=300", b"soon gone").0, 204);
    assert_eq!(go("GET", "/kv/get?key=brief", b"").0, 200);
    assert!(eventually(Duration::from_secs(10), || go("GET", "/kv/get?key=brief", b"").0 == 404));
    let page: Value = serde_json::from_str(&go("GET", "/kv/list?prefix=brief", b"").1).unwrap();
    assert_eq!(page["keys"], json!([]));

    assert_eq!(go("POST", "/kv/incr?key=n&by=5", b"").1, "5");
    assert_eq!(go("POST", "/kv/incr?key=n&by=-7", b"").1, "-2");
    assert_eq!(go("GET", "/kv/get?key=n", b"").1, "-2");

    assert_eq!(go("POST", "/kv/publish?topic=log", b"a").1, "1");
    assert_eq!(go("POST", "/kv/publish?topic=log", b"b").1, "2");
    let next: Value =
        serde_json::from_str(&go("GET", "/kv/next?topic=log&after=1&timeout_ms=0", b"").1).unwrap();
    assert_eq!(next, json!({ "id": 2, "data": "b" }));
    assert_eq!(go("GET", "/kv/next?topic=log&after=2&timeout_ms=0", b"").0, 204);
}

#[test]
fn the_key_value_contract_holds_on_the_embedded_store() {
    let routes = state_routes();
    let state = state_dir();
    let s = Server::start(routes.path(), &["--state", &dir_arg(state.path())]);
    kv_contract(s.addr);
}

#[test]
fn the_key_value_contract_holds_in_memory() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    kv_contract(s.addr);
}

// ---------------------------------------------------------------------------------------------
// Redis: two hosts, one server

/// A `redis-server` of our own on a free loopback port, data in a temporary directory, killed by
/// its PID when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Self::spawn(port, dir.path());
        RedisServer { child, port, dir }
    }

    fn spawn(port: u16, dir: &Path) -> Child {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}). It comes from the Debian package redis-server: \
                     run `sh scripts/ensure-tools.sh redis` (make test does)"
                )
            });
        let up = eventually(Duration::from_secs(20), || ping(port));
        assert!(up, "redis-server did not answer PING on port {port}");
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        assert!(eventually(Duration::from_secs(10), || !ping(self.port)));
    }

    fn restart(&mut self) {
        self.child = Self::spawn(self.port, self.dir.path());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

#[test]
fn two_hosts_share_state_and_wake_ups_through_one_redis() {
    let mut redis = RedisServer::start();
    let routes = state_routes();
    let url = redis.url();
    let one = Server::start(routes.path(), &["--state", &url]);
    let two = Server::start_with_admin(routes.path(), &["--state", &url]);

    assert_eq!(call(&one, "PUT", "/store/shared", b"from host one").0, 204);
    assert_eq!(call(&two, "GET", "/store/shared", b""), (200, "from host one".into()));
    assert_eq!(call(&two, "DELETE", "/store/shared", b"").0, 204);
    assert_eq!(call(&one, "GET", "/store/shared", b"").0, 404);

    // A long poll parked on host two is woken by a POST to host one.
    let poll = spawn_poll(two.addr, "/messages/wait?after=0&timeout=25".into());
    wait_for_waiters(&two, 1);
    assert_eq!(call(&one, "POST", "/messages", br#"{"from": "one"}"#).0, 200);
    let posted = Instant::now();
    let ((status, body), answered) = poll.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!([{ "id": 1, "body": { "from": "one" } }])
    );
    println!("cross-host long poll answered {:?} after the POST", answered.saturating_duration_since(posted));

    // Increments and compare-and-swap stay atomic across hosts.
    let (a, b) = (one.addr, two.addr);
    let left = std::thread::spawn(move || concurrent_increments(a, 10, 20));
    let right = concurrent_increments(b, 10, 20);
    let mut all = left.join().unwrap();
    all.extend(right);
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), (1..=400).collect::<BTreeSet<_>>());
    one_winner(one.addr, "redis-lock", 20);

    // Redis goes away: state routes answer 503, the rest 200.
    redis.stop();
    let (status, body) = call(&one, "PUT", "/store/during", b"x");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unavailable"), "{body}");
    assert_eq!(call(&two, "GET", "/store/shared", b"").0, 503);
    assert_eq!(call(&two, "POST", "/counter", b"").0, 503);
    assert_eq!(call(&one, "GET", "/hello-world", b"").0, 200);
    assert_eq!(call(&two, "GET", "/hello-world", b"").0, 200);

    // It comes back: both hosts recover without a restart.
    redis.restart();
    assert!(eventually(Duration::from_secs(30), || call(&one, "PUT", "/store/after", b"back").0 == 204));
    assert!(eventually(Duration::from_secs(30), || call(&two, "GET", "/store/after", b"")
        == (200, "back".into())));
    let poll = spawn_poll(one.addr, "/kv/next?topic=again&after=0&timeout_ms=25000".into());
    wait_for_waiters(&one, 1);
    assert!(
        eventually(Duration::from_secs(30), || call(&two, "POST", "/kv/publish?topic=again", b"hi").0 == 200)
    );
    let ((status, body), _) = poll.join().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"data":"hi","id":1}"#));
}

#[test]
fn the_key_value_contract_holds_on_redis() {
    let redis = RedisServer::start();
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", &redis.url()]);
    kv_contract(s.addr);
    let (status, body) = call(&s, "GET", &format!("/store/{}", "k".repeat(600)), b"");
    assert_eq!(status, 400, "{body}");
}

// ---------------------------------------------------------------------------------------------
// The chat page in a real browser

/// The Chromium binary chromedriver should start (Debian's `/usr/bin/chromium` is a wrapper
/// script; the real binary is beside its libraries).
fn chromium_binary() -> PathBuf {
    for candidate in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("chromium is not installed: run `sh scripts/ensure-tools.sh chromium` (make test does)");
}

/// chromedriver on a free loopback port, killed by PID when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}): run `sh scripts/ensure-tools.sh chromium` (make test does)")
            });
        let driver = Driver { child, port };
        assert!(
            eventually(Duration::from_secs(20), || driver.send("GET", "/status", None).is_some()),
            "chromedriver did not start"
        );
        driver
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, body) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        }
        .ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        serde_json::from_str::<Value>(&text).ok().map(|v| v["value"].clone())
    }

    fn session(&self, profile: &Path) -> Browser<'_> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args },
            "timeouts": { "script": 10000, "pageLoad": 20000 },
        }}});
        let value = self.send("POST", "/session", Some(caps)).expect("chromedriver answers");
        let id = value["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {value}")).to_owned();
        Browser { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    fn go(&self, url: &str) {
        self.driver.send("POST", &format!("/session/{}/url", self.id), Some(json!({ "url": url }))).unwrap();
    }

    fn script(&self, code: &str) -> Value {
        self.driver
            .send(
                "POST",
                &format!("/session/{}/execute/sync", self.id),
                Some(json!({ "script": code, "args": [] })),
            )
            .unwrap_or(Value::Null)
    }

    fn element(&self, css: &str) -> String {
        let value = self
            .driver
            .send(
                "POST",
                &format!("/session/{}/element", self.id),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .unwrap();
        value
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {css}: {value}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.driver
            .send(
                "POST",
                &format!("/session/{}/element/{element}/value", self.id),
                Some(json!({ "text": text })),
            )
            .unwrap();
    }

    fn click(&self, css: &str) {
        let element = self.element(css);
        self.driver
            .send("POST", &format!("/session/{}/element/{element}/click", self.id), Some(json!({})))
            .unwrap();
    }

    fn messages(&self) -> Vec<String> {
        let value =
            self.script("return [...document.querySelectorAll('#messages li')].map(li => li.textContent);");
        value
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.driver.send("DELETE", &format!("/session/{}", self.id), None);
    }
}

#[test]
fn a_message_posted_in_one_browser_page_appears_in_another() {
    let routes = state_routes();
    let s = Server::start(routes.path(), &["--state", "memory"]);
    let driver = Driver::start();
    let (profile_a, profile_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = driver.session(profile_a.path());
    let bob = driver.session(profile_b.path());
    for browser in [&alice, &bob] {
        browser.go(&s.url("/chat"));
        // EventSource.OPEN: the page is listening.
        let open =
            eventually(Duration::from_secs(20), || browser.script("return events.readyState;") == json!(1));
        assert!(open, "the page's EventSource did not open; log:\n{}", s.log());
    }
    alice.type_into("#message", "hello from alice");
    alice.click("button[type=submit]");
    let seen = eventually(Duration::from_secs(20), || bob.messages() == ["hello from alice"]);
    assert!(seen, "bob sees {:?}", bob.messages());
    assert!(eventually(Duration::from_secs(20), || alice.messages() == ["hello from alice"]));
    bob.type_into("#message", "hi alice");
    bob.click("button[type=submit]");
    let seen = eventually(Duration::from_secs(20), || alice.messages() == ["hello from alice", "hi alice"]);
    assert!(seen, "alice sees {:?}", alice.messages());
    // A page opened later gets the history from the retained log.
    let (profile_c, _) = (tempfile::tempdir().unwrap(), ());
    let carol = driver.session(profile_c.path());
    carol.go(&s.url("/chat"));
    assert!(eventually(Duration::from_secs(20), || carol.messages() == ["hello from alice", "hi alice"]));
}
