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
    // The next guest line logged after the drops is preceded by a count of them.
    assert_eq!(get(&s, "/h?do=flood&bytes=10").0, 200);
    assert!(
        s.wait_for_log("guest output dropped while the log writer was behind", WAIT),
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
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("invalid --route-max-instances: 5 is more than --max-instances (4)"), "{err}");
}
