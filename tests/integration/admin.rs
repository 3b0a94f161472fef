//! The admin listener (`--admin-listen`): `/metrics` and `/healthz` on a port of their own,
//! counting exactly what the public port served.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_artifacts as a;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// The value of the sample `series` (`name{labels}` exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The `/metrics` text, checking the answer's status and content type.
fn scrape(s: &Server) -> String {
    let mut resp = client().get(&s.admin_url("/metrics")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    resp.body_mut().read_to_string().unwrap()
}

/// Every `wasm_host_requests_total` sample, in the order exposed.
fn request_counts(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("wasm_host_requests_total{")).collect()
}

/// Sends `request` on a fresh connection to the public port and reads until it closes;
/// returns the bytes received.
fn exchange(s: &Server, request: &[u8]) -> Vec<u8> {
    let out = raw_all(s, request);
    assert!(!out.is_empty(), "no answer to {}", String::from_utf8_lossy(request));
    out
}

#[test]
fn requests_on_the_public_port_are_counted_exactly_by_route_and_status() {
    let t = Tree::new(&[
        ("v/GET.wasm", a::VERSION),
        ("users/{id}/GET.wasm", a::INSPECT),
        ("q\"uote\\back/GET.wasm", a::VERSION),
    ]);
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("file.txt"), "static text\n").unwrap();
    let s = Server::start_with_admin(t.path(), &["--static", assets.path().to_str().unwrap()]);

    let close = |method: &str, path: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    };
    let mut requests: Vec<String> = Vec::new();
    requests.extend((0..3).map(|_| close("GET", "/v")));
    requests.extend((0..2).map(|i| close("GET", &format!("/users/{i}"))));
    requests.push(close("GET", "/q%22uote%5Cback"));
    requests.push(close("POST", "/v")); // 405: no handler for the method, route `-`
    requests.push(close("DELETE", "/nothing")); // 404, route `-` (static files are GET/HEAD only)
    requests.push(close("GET", "/file.txt")); // static 200
    requests.push(close("GET", "/missing.txt")); // static 404
    requests.push("GET / HTTP/1.1\r\n\r\n".to_owned()); // no Host: 400 before routing
    let (mut sent, mut received) = (0, 0);
    for request in &requests {
        sent += request.len();
        received += exchange(&s, request.as_bytes()).len();
    }

    let expected = [
        r#"wasm_host_requests_total{route="-",status="404"} 1"#,
        r#"wasm_host_requests_total{route="-",status="405"} 1"#,
        r#"wasm_host_requests_total{route="GET /q\"uote\\back",status="200"} 1"#,
        r#"wasm_host_requests_total{route="GET /users/{id}",status="200"} 2"#,
        r#"wasm_host_requests_total{route="GET /v",status="200"} 3"#,
        r#"wasm_host_requests_total{route="static",status="200"} 1"#,
        r#"wasm_host_requests_total{route="static",status="404"} 1"#,
    ];
    // Each request is counted just after its answer is written: wait until the last is in.
    let mut text = String::new();
    let counted = eventually(WAIT, || {
        text = scrape(&s);
        request_counts(&text) == expected
            && sample(&text, "wasm_host_connections_open") == Some(0.0)
            && sample(&text, r#"wasm_host_rejected_requests_total{status="400"}"#) == Some(1.0)
    });
    assert!(counted, "{text}");
    assert!(text.contains("# TYPE wasm_host_requests_total counter\n"), "{text}");
    assert!(text.contains("# TYPE wasm_host_request_duration_seconds histogram\n"), "{text}");
    assert!(text.contains("# HELP wasm_host_requests_total "), "{text}");

    // The histogram counts the same requests, in cumulative buckets.
    for (route, n) in [("-", 2.0), ("GET /users/{id}", 2.0), ("GET /v", 3.0), ("static", 2.0)] {
        let count = sample(&text, &format!("wasm_host_request_duration_seconds_count{{route=\"{route}\"}}"));
        assert_eq!(count, Some(n), "{route}: {text}");
        let inf = sample(
            &text,
            &format!("wasm_host_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}}"),
        );
        assert_eq!(inf, Some(n), "{route}: {text}");
        let sum =
            sample(&text, &format!("wasm_host_request_duration_seconds_sum{{route=\"{route}\"}}")).unwrap();
        assert!(sum > 0.0 && sum < 10.0 * n, "{route}: {sum}");
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!("wasm_host_request_duration_seconds_bucket{{route=\"{route}\","))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), 15, "{route}: {text}");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{route}: {buckets:?}");
    }

    // Bytes and connections of the public port, exactly.
    assert_eq!(sample(&text, "wasm_host_received_bytes_total"), Some(sent as f64), "{text}");
    assert_eq!(sample(&text, "wasm_host_sent_bytes_total"), Some(received as f64), "{text}");
    assert_eq!(sample(&text, "wasm_host_connections_accepted_total"), Some(requests.len() as f64), "{text}");

    // The gauges are there and say the pool is idle again.
    assert_eq!(sample(&text, "wasm_host_instances"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "wasm_host_instances_max"), Some(1000.0), "{text}");
    assert_eq!(sample(&text, "wasm_host_handlers"), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"wasm_host_pool_slots{kind="component_instances"}"#), Some(1001.0), "{text}");
    assert_eq!(
        sample(&text, r#"wasm_host_pool_slots_in_use{kind="component_instances"}"#),
        Some(0.0),
        "{text}"
    );

    // Scrapes are not requests of the site: nothing changed.
    let again = scrape(&s);
    assert_eq!(request_counts(&again), expected);
    assert_eq!(sample(&again, "wasm_host_received_bytes_total"), Some(sent as f64));
}

#[test]
fn a_live_instance_shows_and_healthz_turns_503_when_shutdown_begins() {
    let t = Tree::new(&[("slow/{secs}/{msg}/GET.wasm", a::EXAMPLE_HANG)]);
    let s = Server::start_with_admin(t.path(), &["--shutdown-grace", "20s"]);
    assert_eq!(s.admin_get("/healthz"), (200, "ok\n".into()));

    let mut slow = s.connect();
    slow.write_all(b"GET /slow/3/done HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    let live = eventually(WAIT, || {
        text = scrape(&s);
        sample(&text, "wasm_host_instances") == Some(1.0)
            && sample(&text, r#"wasm_host_pool_slots_in_use{kind="component_instances"}"#) == Some(1.0)
            && sample(&text, "wasm_host_connections_open") == Some(1.0)
    });
    assert!(live, "{text}");

    let status = Command::new("kill").args(["-TERM", &s.pid().to_string()]).status().unwrap();
    assert!(status.success());
    // The request in flight keeps the host in its grace period; the admin port says it is going.
    assert!(eventually(WAIT, || s.admin_get("/healthz") == (503, "shutting down\n".into())), "{}", s.log());
    let resp = read_response(&mut BufReader::new(slow), false).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "done".to_owned()));
    assert_eq!(resp.header("connection"), Some("close"));
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_admin_endpoints_are_not_on_the_public_port() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start_with_admin(t.path(), &[]);
    assert_ne!(s.admin, Some(s.addr));
    // On the public port they are ordinary paths, which no route has.
    assert_eq!(get(&s, "/metrics").0, 404);
    assert_eq!(get(&s, "/healthz").0, 404);

    // On the admin port: the two endpoints, GET and HEAD only.
    assert_eq!(s.admin_get("/nope").0, 404);
    assert_eq!(s.admin_get("/v").0, 404);
    let admin = || {
        let stream = TcpStream::connect(s.admin.unwrap()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream
    };
    let mut c = admin();
    c.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut r = BufReader::new(c);
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));
    // Keep-alive: the next request on the same connection, HEAD without a body.
    r.get_mut().write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_response(&mut r, true).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-length").unwrap().parse::<u64>().unwrap() > 0);
    r.get_mut().write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "ok\n".to_owned()));
    assert!(is_closed(&mut r));

    // Only the two public requests were counted (a request is counted just after its answer
    // is written, so the count may lag the client by a moment).
    let mut text = String::new();
    let counted = [r#"wasm_host_requests_total{route="-",status="404"} 2"#];
    assert!(
        eventually(WAIT, || {
            text = scrape(&s);
            request_counts(&text) == counted
        }),
        "{text}"
    );
}

/// Runs `wasm-host run` with `args` until it exits (at most 60 s); (success, stdout, stderr).
fn run_to_exit(routes: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(routes)
        .args(args)
        .args(["--no-cache", "--state", "memory"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running; stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_admin_address_in_use_fails_to_start_with_a_clear_message() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, out, err) = run_to_exit(t.path(), &["--listen", "127.0.0.1:0", "--admin-listen", &addr]);
    assert!(!ok, "{out}");
    assert!(!out.contains("listening on"), "{out}");
    assert!(err.contains(&format!("cannot listen on {addr} (--admin-listen)")), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");

    // The public address itself is refused before anything is loaded.
    let (ok, out, err) = run_to_exit(t.path(), &["--listen", &addr, "--admin-listen", &addr]);
    assert!(!ok, "{out}");
    assert!(err.contains("--admin-listen") && err.contains("needs one of its own"), "{err}");
    drop(taken);
}

#[test]
fn reloads_and_reload_failures_are_counted() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start_with_admin(t.path(), &[]);
    let text = scrape(&s);
    assert_eq!(sample(&text, "wasm_host_reloads_total"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "wasm_host_reload_failures_total"), Some(0.0), "{text}");

    t.put("v/GET.wasm", a::VERSION2);
    assert!(eventually(WAIT, || get(&s, "/v").1 == "v2"), "{}", s.log());
    let mut text = String::new();
    assert!(
        eventually(WAIT, || {
            text = scrape(&s);
            sample(&text, "wasm_host_reloads_total") == Some(1.0)
        }),
        "{text}"
    );
    assert_eq!(sample(&text, "wasm_host_reload_failures_total"), Some(0.0), "{text}");

    // A broken file is a failed reload; the previous version keeps serving.
    t.write("v/GET.wasm", b"\0asm\x0d\0\x01\0 truncated");
    assert!(
        eventually(WAIT, || {
            text = scrape(&s);
            sample(&text, "wasm_host_reload_failures_total") == Some(1.0)
        }),
        "{text}\n{}",
        s.log()
    );
    assert_eq!(sample(&text, "wasm_host_reloads_total"), Some(2.0), "{text}");
    assert_eq!(get(&s, "/v").1, "v2");
}

#[test]
fn handler_failures_are_counted_by_reason() {
    let t = Tree::new(&[("f/ANY.wasm", a::FAULTS), ("v/GET.wasm", a::VERSION)]);
    let s = Server::start_with_admin(t.path(), &["--cpu-timeout", "200ms", "--max-memory", "16MiB"]);
    let failing = [
        ("/f?at=after&fault=trap", 500),
        ("/f?at=after&fault=trap", 500),
        ("/f?at=before&fault=panic", 500),
        ("/f?at=after&fault=grow", 500),
        ("/f?at=before&fault=loop", 504),
        ("/f?at=chunk&fault=trap&pull=2", 200), // after the head: aborted, counted all the same
        ("/v", 200),                            // no failure
    ];
    for (path, status) in failing {
        let answer =
            exchange(&s, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(
            answer.starts_with(format!("HTTP/1.1 {status} ").as_bytes()),
            "{path}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let mut text = String::new();
    let counted = |text: &str, reason: &str| {
        sample(text, &format!("wasm_host_handler_failures_total{{reason=\"{reason}\"}}"))
    };
    assert!(
        eventually(WAIT, || {
            text = scrape(&s);
            counted(&text, "trap") == Some(3.0)
        }),
        "{text}"
    );
    for (reason, n) in
        [("panic", 1.0), ("out_of_memory", 1.0), ("cpu_timeout", 1.0), ("deadline", 0.0), ("busy", 0.0)]
    {
        assert_eq!(counted(&text, reason), Some(n), "{reason}: {text}");
    }
}
