//! The guest-fault suite: handlers that misbehave on purpose (the `hostile` guest and the
//! examples that spin or trap). For each: what the client gets, and that the host keeps serving
//! everyone else in bounded memory.

use std::io::Write as _;
use std::time::Duration;

use test_artifacts as a;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

fn hostile_tree() -> Tree {
    Tree::new(&[("h/GET.wasm", a::HOSTILE), ("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)])
}

#[test]
fn time_spent_inside_host_calls_counts_against_the_cpu_budget() {
    let t = hostile_tree();
    let s = Server::start(t.path(), &["--cpu-timeout", "200ms"]);
    // 10,000 host calls of 1 MiB of random bytes each are seconds of host-side work: the
    // budget, which counts the time inside them, cuts the request off long before.
    let url = s.url("/h?do=random&n=1048576&times=10000");
    let looping = std::thread::spawn(move || client().get(&url).call().unwrap().status().as_u16());
    assert_eq!(get(&s, "/hello").0, 200, "others are served meanwhile");
    assert_eq!(looping.join().unwrap(), 504);
    assert!(s.wait_for_log("cpu time limit", WAIT), "{}", s.log());
    // A few calls well within the budget answer.
    assert_eq!(get(&s, "/h?do=random&n=1024&times=3"), (200, "got 3072 random bytes\n".into()));
}

#[test]
fn a_random_bytes_request_past_the_host_limit_traps() {
    let t = hostile_tree();
    let s = Server::start(t.path(), &[]);
    // 64 MiB would be built outside the guest's memory limit: refused (1 MiB is the most).
    assert_eq!(get(&s, "/h?do=random&n=67108864").0, 500);
    assert!(s.wait_for_log("exceeds limit 1048576", WAIT), "{}", s.log());
    assert_eq!(get(&s, "/h?do=random&n=1048576").1, "got 1048576 random bytes\n");
}

#[test]
fn deep_recursion_traps_with_500_and_the_host_keeps_serving() {
    let t = hostile_tree();
    let s = Server::start(t.path(), &[]);
    let r = raw(&s, b"GET /h?do=recurse HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.expect("an answer").status, 500);
    // Rust's stack lives in linear memory: running off its end is an out-of-bounds access.
    assert!(s.wait_for_log("wasm trap: out of bounds memory access", WAIT), "{}", s.log());
    // One line says what happened; the wasm backtrace is for DEBUG (and `wasm-host dev`).
    let log = s.log();
    let line = log.lines().find(|l| l.contains("handler failed: guest trapped")).expect("the failure line");
    assert!(line.contains("out of bounds memory access") && !log.contains("wasm function"), "{log}");
    assert_eq!(get(&s, "/hello").0, 200);
}

#[test]
fn our_worlds_sandbox_grants_no_files_no_environment_and_no_sockets() {
    let t = hostile_tree();
    let s = Server::start(t.path(), &[]);
    let (status, text) = get(&s, "/h?do=sandbox");
    assert_eq!(status, 200);
    assert!(
        text.starts_with("files=Err(") && text.contains("env=0 ") && text.contains("socket=Err("),
        "{text}"
    );
}

#[test]
fn a_guest_flooding_its_output_while_the_log_is_stalled_cannot_grow_host_memory() {
    let t = hostile_tree();
    let (s, release) = Server::start_with_stalled_log(t.path(), &[]);
    // 32 requests print 8 MiB each without a newline while nobody reads the host's log: the
    // guest lines past the queue's byte bound are dropped, so the requests still complete
    // (the workers never wait on the stalled log) and the host does not hold the 256 MiB.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let floods: Vec<_> = (0..32)
        .map(|_| {
            let (agent, url) = (agent.clone(), s.url("/h?do=flood&bytes=8388608"));
            std::thread::spawn(move || agent.get(&url).call().map(|r| r.status().as_u16()))
        })
        .collect();
    for flood in floods {
        assert_eq!(flood.join().unwrap().expect("answered while the log is stalled"), 200);
    }
    let peak = peak_rss_kib(s.pid());
    assert!(peak < 96 * 1024, "the host held the flood: peak RSS {peak} KiB");
    drop(release);
    // The next guest line admitted after the drops is preceded by a count of them. Lines that
    // come while the writer is still catching up are dropped too, so ask until one gets in.
    assert!(
        eventually(WAIT, || {
            assert_eq!(get(&s, "/h?do=flood&bytes=10").0, 200);
            s.log().contains("guest output dropped while the log writer was behind")
        }),
        "{:.2000}",
        s.log()
    );
}

#[test]
fn one_route_cannot_take_the_whole_instance_pool_from_the_others() {
    // 20 slots: the slow route may hold half of them (the default share); the rest of its
    // requests get 503 at once, and a healthy route keeps being served meanwhile.
    let s = Server::start(std::path::Path::new(a::EXAMPLE_ROUTES), &["--max-instances", "20"]);
    let addr = s.addr;
    let slow: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                c.write_all(b"GET /hang/4/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                read_response(&mut std::io::BufReader::new(c), false).map(|r| r.status)
            })
        })
        .collect();
    assert!(
        s.wait_for_log("--route-max-instances 10 reached", WAIT),
        "the slow route was never held to its share: {}",
        s.log()
    );
    for _ in 0..20 {
        assert_eq!(get(&s, "/hello-world"), (200, "Hello world!".into()), "{}", s.log());
    }
    let mut statuses: Vec<u16> = slow.into_iter().map(|t| t.join().unwrap().expect("an answer")).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [[200; 10], [503; 10]].concat(), "{}", s.log());
    let out = std::process::Command::new(BIN)
        .args(["run", a::EXAMPLE_ROUTES, "--max-instances", "4", "--route-max-instances", "5"])
        .exits();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("invalid --route-max-instances: 5 is more than --max-instances (4)"), "{err}");
}

// The guest-fault matrix: the `faults` guest fails in each way (`FAULTS`) in each hook and in
// the first and a later pull of each kind of streaming response.

/// Every way the `faults` guest can fail.
const FAULTS: [&str; 6] = ["loop", "trap", "panic", "grow", "huge", "recurse"];

/// The hooks, which all run before the response head.
const HOOKS: [&str; 3] = ["before", "stream", "after"];

/// The pulls, which all run after the response head: (kind, pull number).
const PULLS: [(&str, u32); 4] = [("chunk", 1), ("chunk", 3), ("event", 1), ("event", 3)];

/// The matrix's host: two workers, so one spinning guest leaves the other free; a short CPU
/// budget; a small memory limit, so memory growth is cut off early and host RSS has a known
/// bound.
fn faults_server(t: &Tree) -> Server {
    Server::start(t.path(), &["--workers", "2", "--cpu-timeout", "300ms", "--max-memory", "16MiB"])
}

fn faults_tree() -> Tree {
    Tree::new(&[("f/ANY.wasm", a::FAULTS), ("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)])
}

/// The pipelined request sent after each faulting one, on the same connection.
const NEXT: &str = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";

/// A fault in a hook, before anything was sent: the CPU budget's 504 for a loop, 500 for the
/// traps; then the connection either serves the pipelined request or says `connection: close`
/// and closes (its body was not read to the end). Returns what went wrong.
/// The request that makes the `faults` guest fail in hook `at` (with a 5-byte body for
/// `stream`), with `fields` added to its head, followed by the pipelined [`NEXT`].
fn hook_fault_request(at: &str, fault: &str, version: &str, fields: &str) -> String {
    let (method, body) =
        if at == "stream" { ("POST", "Content-Length: 5\r\n\r\nhello") } else { ("GET", "\r\n") };
    format!("{method} /f?at={at}&fault={fault} {version}\r\nHost: x\r\n{fields}{body}{NEXT}")
}

/// What a fault before the head is answered with: the CPU budget's 504 for a loop, else 500.
fn hook_fault_status(fault: &str) -> u16 {
    if fault == "loop" { 504 } else { 500 }
}

fn check_hook_fault(s: &Server, at: &str, fault: &str) -> Result<(), String> {
    let case = format!("{fault} in {at}");
    let mut conn = std::io::BufReader::new(s.connect());
    conn.get_mut().write_all(hook_fault_request(at, fault, "HTTP/1.1", "").as_bytes()).unwrap();
    let first = read_response(&mut conn, false).ok_or(format!("{case}: no answer"))?;
    let want = hook_fault_status(fault);
    if first.status != want {
        return Err(format!("{case}: {} instead of {want}: {:?}", first.status, first.text()));
    }
    if first.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
        if at != "stream" {
            return Err(format!("{case}: a request without a body lost its connection"));
        }
        return if is_closed(&mut conn) {
            Ok(())
        } else {
            Err(format!("{case}: `close` sent, connection left open"))
        };
    }
    match read_response(&mut conn, false) {
        Some(next) if (next.status, next.text().as_str()) == (200, "Hello world!") => Ok(()),
        other => Err(format!("{case}: the pipelined request got {other:?}")),
    }
}

/// A fault in a pull, after the head: what the pulls before it handed out, properly framed,
/// then the connection closes without the last chunk (the client can tell the body is cut
/// short), and the pipelined request is never answered (nothing follows on the wire).
fn check_pull_fault(s: &Server, kind: &str, pull: u32, fault: &str) -> Result<(), String> {
    let case = format!("{fault} in {kind} pull {pull}");
    let mut conn = s.connect();
    let request = format!("GET /f?at={kind}&fault={fault}&pull={pull} HTTP/1.1\r\nHost: x\r\n\r\n{NEXT}");
    conn.write_all(request.as_bytes()).unwrap();
    let mut wire = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut wire).map_err(|e| format!("{case}: not closed: {e}"))?;
    let text = String::from_utf8_lossy(&wire);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(format!("{case}: no head: {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200 OK\r\n")
        || !head.to_ascii_lowercase().contains("transfer-encoding: chunked")
    {
        return Err(format!("{case}: head {head:?}"));
    }
    let (decoded, ended) = dechunk(body).map_err(|e| format!("{case}: {e}"))?;
    if ended {
        return Err(format!("{case}: the body was ended as if complete: {body:?}"));
    }
    let expected: String = (1..pull)
        .map(|k| if kind == "chunk" { format!("chunk {k}\n") } else { format!("data: {k}\n\n") })
        .collect();
    if decoded != expected {
        return Err(format!("{case}: body {decoded:?} instead of {expected:?}"));
    }
    Ok(())
}

/// Decodes a chunked body: its data, and whether it ended with the last chunk (then nothing
/// may follow it here: the tests close after it).
fn dechunk(body: &str) -> Result<(String, bool), String> {
    let (mut rest, mut decoded) = (body, String::new());
    while !rest.is_empty() {
        let (size, after) = rest.split_once("\r\n").ok_or(format!("a torn chunk line in {body:?}"))?;
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("not chunked: {body:?}"))?;
        if size == 0 {
            return if after == "\r\n" {
                Ok((decoded, true))
            } else {
                Err(format!("bytes after the end: {body:?}"))
            };
        }
        let data = after.get(..size).ok_or(format!("a short chunk in {body:?}"))?;
        decoded.push_str(data);
        rest = after
            .get(size..)
            .and_then(|r| r.strip_prefix("\r\n"))
            .ok_or(format!("bad chunk end in {body:?}"))?;
    }
    Ok((decoded, false))
}

#[test]
fn a_fault_in_any_hook_is_answered_with_its_status_and_the_connection_serves_the_next_request() {
    let t = faults_tree();
    let s = faults_server(&t);
    let failed: Vec<String> = HOOKS
        .iter()
        .flat_map(|at| FAULTS.iter().map(move |fault| (*at, *fault)))
        .filter_map(|(at, fault)| check_hook_fault(&s, at, fault).err())
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", s.log());
}

#[test]
fn a_fault_in_any_hook_honours_connection_close_and_http_1_0() {
    let t = faults_tree();
    let s = faults_server(&t);
    let mut failed = Vec::new();
    for (version, close) in [("HTTP/1.1", "Connection: close\r\n"), ("HTTP/1.0", "")] {
        for at in HOOKS {
            for fault in FAULTS {
                let case = format!("{fault} in {at}, {version} {close:?}");
                let mut conn = std::io::BufReader::new(s.connect());
                conn.get_mut().write_all(hook_fault_request(at, fault, version, close).as_bytes()).unwrap();
                match read_response(&mut conn, false) {
                    Some(r)
                        if r.status == hook_fault_status(fault)
                            && r.header("connection") == Some("close")
                            && is_closed(&mut conn) => {}
                    other => failed.push(format!("{case}: {other:?}, or the connection stayed open")),
                }
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn a_fault_in_any_pull_aborts_the_response_without_its_last_chunk_and_nothing_follows() {
    let t = faults_tree();
    let s = faults_server(&t);
    let failed: Vec<String> = PULLS
        .iter()
        .flat_map(|(kind, pull)| FAULTS.iter().map(move |fault| (*kind, *pull, *fault)))
        .filter_map(|(kind, pull, fault)| check_pull_fault(&s, kind, pull, fault).err())
        .collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", s.log());
}

/// Runs every case of the matrix at once, each on its own connection; the failures.
fn fault_storm(s: &Server) -> Vec<String> {
    std::thread::scope(|scope| {
        let hooks = HOOKS.iter().flat_map(|at| {
            FAULTS.iter().map(move |fault| scope.spawn(move || check_hook_fault(s, at, fault)))
        });
        let pulls = PULLS.iter().flat_map(|(kind, pull)| {
            FAULTS.iter().map(move |fault| scope.spawn(move || check_pull_fault(s, kind, *pull, fault)))
        });
        let cases: Vec<_> = hooks.chain(pulls).collect();
        // Meanwhile, another route answers every request.
        let mut failed: Vec<String> = (0..50)
            .map(|_| get(s, "/hello"))
            .filter(|answer| *answer != (200, "Hello world!".to_owned()))
            .map(|answer| format!("/hello during the storm: {answer:?}"))
            .collect();
        failed.extend(cases.into_iter().filter_map(|case| case.join().unwrap().err()));
        failed
    })
}

#[test]
fn faults_everywhere_at_once_leave_other_routes_served_and_host_memory_bounded_by_the_limit() {
    let t = faults_tree();
    let s = faults_server(&t);
    let start = memory_kib(s.pid(), "VmRSS:");
    let mut rss = Vec::new();
    for _ in 0..8 {
        let failed = fault_storm(&s);
        assert!(failed.is_empty(), "{failed:#?}\n{}", s.log());
        rss.push(memory_kib(s.pid(), "VmRSS:"));
    }
    // Guest memory is the only thing that grows with a fault: at most the 7 `grow` cases hold
    // 16 MiB each at once, and each of the pool's slots a storm used keeps up to 1 MiB
    // resident for its next instance (`MEMORY_KEEP_RESIDENT`), one slot per case at most.
    let places = (HOOKS.len() + PULLS.len()) as u64;
    let warm = places * FAULTS.len() as u64 * 1024;
    let peak = peak_rss_kib(s.pid());
    let bound = start + places * 16 * 1024 + warm + 32 * 1024;
    assert!(peak <= bound, "peak RSS {peak} KiB over {bound} KiB (started at {start} KiB)");
    // Nothing is kept per fault: the storms land on different slots, so the first ones warm
    // more of them (by the second storm or the fourth, as the machine schedules them), but five
    // more storms after three leave RSS where it was (a leak of even 64 KiB per failed request
    // would add 13 MiB).
    assert!(rss[7] <= rss[2] + 8 * 1024, "RSS {start} KiB at the start, then after each storm {rss:?}");
    assert!(
        rss[7] <= start + warm + 32 * 1024,
        "RSS {start} KiB at the start, then after each storm {rss:?}"
    );
}

// Responses that break the contract, from the `contract` guest (raw bindings, no SDK checks):
// what the host sends instead, and that the pipelined request after each is answered cleanly
// (a leaked body or a forged framing field would make it parse wrong).

fn contract_server() -> (Tree, Server) {
    let t = Tree::new(&[("c/GET.wasm", a::CONTRACT), ("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start(t.path(), &[]);
    (t, s)
}

/// Sends `GET /c?QUERY` and the pipelined [`NEXT`] on one connection; the first response, and
/// whether the second was the right answer (or the first said `connection: close` and the
/// connection closed).
fn contract_case(s: &Server, query: &str) -> (RawResponse, Result<(), String>) {
    let mut conn = std::io::BufReader::new(s.connect());
    conn.get_mut().write_all(format!("GET /c?{query} HTTP/1.1\r\nHost: x\r\n\r\n{NEXT}").as_bytes()).unwrap();
    let first = read_response(&mut conn, false).unwrap_or_else(|| panic!("{query}: no whole answer"));
    let next = if first.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
        if is_closed(&mut conn) {
            Ok(())
        } else {
            Err(format!("{query}: `close` sent, connection left open"))
        }
    } else {
        match read_response(&mut conn, false) {
            Some(next) if (next.status, next.text().as_str()) == (200, "Hello world!") => Ok(()),
            other => Err(format!("{query}: the pipelined request got {other:?}")),
        }
    };
    (first, next)
}

#[test]
fn framing_and_hop_by_hop_fields_from_a_handler_are_replaced_by_the_hosts() {
    let (_t, s) = contract_server();
    let (r, next) = contract_case(&s, "case=framing");
    assert_eq!((r.status, r.text().as_str()), (200, "framed by the host\n"));
    assert_eq!(r.header("content-length"), Some("19"), "{r:?}");
    for owned in ["transfer-encoding", "connection", "upgrade", "keep-alive", "trailer"] {
        assert_eq!(r.header(owned), None, "{owned} was sent: {r:?}");
    }
    assert!(r.header("date").is_some_and(|d| !d.contains("1970")), "{r:?}");
    assert_eq!(r.header("x-kept"), Some("yes"));
    assert_eq!(r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")).count(), 1);
    next.unwrap();
}

#[test]
fn a_body_on_204_205_or_304_is_never_sent_whatever_its_kind() {
    let (_t, s) = contract_server();
    for case in ["status", "chunked-status"] {
        for n in [204, 205, 304] {
            let (r, next) = contract_case(&s, &format!("case={case}&n={n}"));
            assert_eq!(r.status, n, "{case} {n}");
            assert!(r.body.is_empty(), "{case} {n}: {r:?}");
            assert_eq!(r.header("transfer-encoding"), None, "{case} {n}: {r:?}");
            // 205 says "no content" with a length of 0 (RFC 9110 §15.3.6); 204 and 304 none.
            let length = if n == 205 { Some("0") } else { None };
            assert_eq!(r.header("content-length"), length, "{case} {n}: {r:?}");
            next.unwrap();
        }
    }
}

#[test]
fn a_header_name_that_is_not_a_token_or_a_value_with_nul_is_a_500() {
    let (_t, s) = contract_server();
    for case in ["name", "nul"] {
        let (r, next) = contract_case(&s, &format!("case={case}"));
        assert_eq!(r.status, 500, "{case}: {r:?}");
        assert!(!r.text().contains("must not be sent"), "{case}: {r:?}");
        next.unwrap();
    }
}

#[test]
fn line_breaks_in_event_data_become_data_lines_and_in_other_fields_abort_the_stream() {
    let (_t, s) = contract_server();
    // In the data, every line ending starts another `data:` line: nothing the handler wrote
    // becomes a field of its own.
    let (r, next) = contract_case(&s, "case=data");
    let text = r.text();
    assert_eq!(
        text,
        "data: one\ndata: event: injected\ndata: two\ndata: id: injected\ndata: three\ndata: \ndata: retry: 1\n\n\
         data: after\n\n",
        "{r:?}"
    );
    next.unwrap();
    // In `event` or `id`, the stream is aborted before the event: the client gets the events
    // before it, no last chunk, and nothing more on the connection.
    for field in ["event", "id"] {
        for with in ["cr", "lf", "nul"] {
            if (field, with) == ("event", "nul") {
                continue; // a NUL is allowed in an event type
            }
            let query = format!("case={field}&with={with}");
            let wire =
                raw_until_closed(&s, format!("GET /c?{query} HTTP/1.1\r\nHost: x\r\n\r\n{NEXT}").as_bytes())
                    .unwrap_or_else(|| panic!("{query}: the connection stayed open"));
            let wire = String::from_utf8_lossy(&wire);
            let (head, body) = wire.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{query}: {wire:?}");
            assert_eq!(dechunk(body), Ok(("data: ok\n\n".to_owned(), false)), "{query}: {wire:?}");
        }
    }
    assert!(s.wait_for_log("response body aborted: handler returned an invalid event", WAIT), "{}", s.log());
}

// The same faults in a standard `wasi:http` component (the `proxy` guest).

#[test]
fn a_fault_in_a_wasi_http_component_is_a_500_and_the_connection_serves_the_next_request() {
    let t = Tree::new(&[("p/ANY.wasm", a::PROXY), ("hello/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = faults_server(&t);
    for (query, status) in
        [("trap", 500), ("panic", 500), ("grow", 500), ("huge", 500), ("recurse", 500), ("loop", 504)]
    {
        let mut conn = std::io::BufReader::new(s.connect());
        conn.get_mut()
            .write_all(format!("GET /p?{query} HTTP/1.1\r\nHost: x\r\n\r\n{NEXT}").as_bytes())
            .unwrap();
        let first = read_response(&mut conn, false).unwrap_or_else(|| panic!("{query}: no answer"));
        assert_eq!(first.status, status, "{query}: {}", s.log());
        assert_eq!(first.header("connection"), None, "{query}: {first:?}");
        let next = read_response(&mut conn, false).unwrap_or_else(|| panic!("{query}: no second answer"));
        assert_eq!((next.status, next.text().as_str()), (200, "Hello world!"), "{query}");
    }
    assert!(s.wait_for_log("ran out of memory", WAIT), "{}", s.log());
}

#[test]
fn a_wasi_http_component_cannot_set_framing_or_hop_by_hop_fields_or_split_a_head() {
    let t = Tree::new(&[("p/ANY.wasm", a::PROXY)]);
    let s = Server::start(t.path(), &[]);
    let (status, text) = get(&s, "/p?forbidden");
    assert_eq!(status, 200);
    for field in ["connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection", "host"] {
        assert!(text.contains(&format!("{field}: Err(HeaderError::Forbidden)")), "{field}: {text}");
    }
    for field in ["x bad", "x-split"] {
        assert!(text.contains(&format!("{field}: Err(HeaderError::InvalidSyntax)")), "{field}: {text}");
    }
}

/// How a long poll waits: in its instance (`Subscription::next_timeout`: the fiber suspends)
/// or parked (`Subscription::park`: no instance at all).
#[derive(Clone, Copy, Debug)]
enum Wait {
    InInstance,
    Parked,
}

/// Requests waiting now as `wait` does: instances alive (the `live=` of a hello-world access
/// line) or requests parked (`wasm_host_parked_requests`).
fn waiting(s: &Server, wait: Wait) -> usize {
    match wait {
        Wait::InInstance => {
            assert_eq!(get(s, "/hello-world"), (200, "Hello world!".into()));
            last_live(&s.log(), "/hello-world").unwrap_or(0)
        }
        Wait::Parked => s.parked_requests(),
    }
}

/// 3,000 long polls waiting at once as `wait` says, woken by one publish: all answered, the
/// host on two worker threads and a bounded blocking pool, its RSS at most `kib_each` per
/// waiter above the start.
fn three_thousand_waiters(wait: Wait, kib_each: u64) {
    const WAITERS: usize = 3000;
    let t = Tree::new(&[("kv/{op}/ANY.wasm", a::KV_PROBE), ("hello-world/GET.wasm", a::EXAMPLE_HELLO_WORLD)]);
    let s = Server::start_with_admin(
        t.path(),
        &["--workers", "2", "--state", "memory", "--max-instances", "4000", "--route-max-instances", "4000"],
    );
    let start = memory_kib(s.pid(), "VmRSS:");
    let op = match wait {
        Wait::InInstance => "next",
        Wait::Parked => "park",
    };
    // Long polls: each waits (up to a minute) for a message published after it arrived, so
    // none can finish before the publish below. Each request is written, then each answer
    // read, from this one thread.
    let request = format!("GET /kv/{op}?topic=wake&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut waiters: Vec<std::io::BufReader<std::net::TcpStream>> = (0..WAITERS)
        .map(|_| {
            let mut c = s.connect();
            c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            c.write_all(request.as_bytes()).unwrap();
            std::io::BufReader::new(c)
        })
        .collect();
    // All of them wait at once, on two worker threads, while another route is served.
    assert!(
        eventually(WAIT, || waiting(&s, wait) >= WAITERS),
        "the long polls never all waited ({wait:?}): {}",
        waiting(&s, wait)
    );
    let parked = memory_kib(s.pid(), "VmRSS:");
    // Threads: 2 workers, at most 32 of the blocking pool (which the subscriptions' store reads
    // use), the main thread, the epoch ticker, the log and store writers, the watcher: never
    // one per waiter.
    let threads = memory_kib(s.pid(), "Threads:");
    assert!(threads <= 2 + 32 + 8, "{threads} threads for {WAITERS} waiting requests ({wait:?})");
    let (status, id) = call_raw(&s, "POST /kv/publish?topic=wake", b"wake");
    assert_eq!((status, id.as_str()), (200, "1"));
    for (i, conn) in waiters.iter_mut().enumerate() {
        let r = read_response(conn, false).unwrap_or_else(|| panic!("waiter {i} got no answer ({wait:?})"));
        assert_eq!((r.status, r.text().as_str()), (200, r#"{"data":"wake","id":1}"#), "waiter {i}");
    }
    let bound = start + WAITERS as u64 * kib_each;
    assert!(
        parked <= bound,
        "RSS {parked} KiB with {WAITERS} waiting ({wait:?}), over {bound} KiB (started at {start})"
    );
    let peak = peak_rss_kib(s.pid());
    assert!(peak <= bound + 32 * 1024, "peak RSS {peak} KiB ({wait:?}), over {bound} KiB + 32 MiB");
}

/// (status, body) of `METHOD /path` with `body`, on a connection of its own.
fn call_raw(s: &Server, method_path: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "{method_path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let r = raw(s, &[head.as_bytes(), body].concat()).expect("an answer");
    (r.status, r.text())
}

#[test]
fn three_thousand_handlers_waiting_in_their_instances_cost_memory_not_threads() {
    // ≈50–60 KiB is what a request waiting in its instance costs (README, *Performance*);
    // 128 KiB each bounds it with room to spare, so a leak per request or a thread per waiter
    // would show.
    three_thousand_waiters(Wait::InInstance, 128);
}

#[test]
fn three_thousand_parked_requests_cost_no_instance_and_a_fraction_of_the_memory() {
    // A parked request holds no instance: ≈13–23 KiB each (README, *Shared state*); 32 KiB each
    // is a quarter of what waiting in an instance may cost, and a bound an instance per
    // parked request (≈50 KiB) would break.
    three_thousand_waiters(Wait::Parked, 32);
}
