//! Hot reload: handler files replaced, added, corrupted or removed under a running server.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use test_artifacts as a;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn replaced_handler_serves_the_new_version() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION), ("other/GET.wasm", a::INSPECT)]);
    let s = Server::start(t.path(), &[]);
    assert_eq!(get(&s, "/v"), (200, "v1".into()));
    t.put("v/GET.wasm", a::VERSION2);
    assert!(eventually(WAIT, || get(&s, "/v").1 == "v2"), "{}", s.log());
    // Touching a file without changing its content reloads nothing.
    t.put("other/GET.wasm", a::INSPECT);
    t.put("v/GET.wasm", a::VERSION2);
    t.put("w/GET.wasm", a::VERSION);
    assert!(eventually(WAIT, || get(&s, "/w").0 == 200), "{}", s.log());
    let log = s.log();
    // Only the changed handlers were compiled: v once, then w; never `other`.
    let reloads: Vec<&str> = log.lines().filter(|l| l.contains("handler reloaded")).collect();
    assert_eq!(reloads.len(), 2, "{log}");
    assert!(reloads[1].contains("route=/w") && reloads[1].contains("old=none"), "{log}");
    let line = reloads[0];
    assert!(
        line.contains("route=/v")
            && line.contains("old=")
            && line.contains("new=")
            && line.contains("millis="),
        "{line}"
    );
}

#[test]
fn in_flight_requests_and_streams_finish_on_the_old_version() {
    let t =
        Tree::new(&[("slow/{secs}/{msg}/GET.wasm", a::EXAMPLE_HANG), ("events/GET.wasm", a::EXAMPLE_SSE)]);
    let s = Server::start(t.path(), &[]);

    // A slow request and an SSE stream, both started on the old versions.
    let mut slow = s.connect();
    slow.write_all(b"GET /slow/2/old HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut sse = s.connect();
    sse.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut sse = BufReader::new(sse);
    assert_eq!(read_response(&mut sse, true).unwrap().status, 200);
    let mut first = String::new();
    while !first.contains("data: ") {
        sse.read_line(&mut first).unwrap();
    }
    assert!(first.contains(r#"{"count":1}"#), "{first}");

    // Swap both handlers.
    t.put("slow/{secs}/{msg}/GET.wasm", a::VERSION);
    t.put("events/GET.wasm", a::SSE_MULTILINE);
    assert!(eventually(WAIT, || get(&s, "/slow/2/new").1 == "v1"), "{}", s.log());
    let fresh = raw_all(&s, b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&fresh).contains("line one"), "new requests get the new stream");

    // The old ones carry on with the old code.
    let resp = read_response(&mut BufReader::new(slow), false).unwrap();
    assert_eq!(resp.text(), "old");
    let mut next = String::new();
    while !next.contains("data: ") {
        sse.read_line(&mut next).unwrap();
    }
    assert!(next.contains(r#"{"count":2}"#), "{next}");
}

#[test]
fn corrupt_file_keeps_the_old_version_and_is_retried() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &[]);
    assert_eq!(get(&s, "/v").1, "v1");
    t.write("v/GET.wasm", b"\0asm\x0d\0\x01\0 truncated");
    assert!(s.wait_for_log("keeping the previous version", WAIT), "{}", s.log());
    let log = s.log();
    assert!(log.contains("v/GET.wasm"), "the error names the file: {log}");
    assert_eq!(get(&s, "/v"), (200, "v1".into()));
    // Fixed on the next change.
    t.put("v/GET.wasm", a::VERSION2);
    assert!(eventually(WAIT, || get(&s, "/v").1 == "v2"), "{}", s.log());
}

#[test]
fn one_misnamed_file_never_freezes_the_reloads_of_the_others() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &[]);
    t.write("w/get.wasm", b"misnamed");
    assert!(s.wait_for_log("w/get.wasm", WAIT), "{}", s.log());
    t.put("v/GET.wasm", a::VERSION2);
    t.put("x/GET.wasm", a::VERSION);
    assert!(eventually(WAIT, || get(&s, "/v").1 == "v2"), "{}", s.log());
    assert!(eventually(WAIT, || get(&s, "/x").1 == "v1"), "{}", s.log());
    // A new file that does not load answers 503 (as at start-up), then serves once fixed.
    t.write("y/GET.wasm", b"\0asm\x01\0\0\0");
    assert!(eventually(WAIT, || get(&s, "/y").0 == 503), "{}", s.log());
    assert!(s.wait_for_log("core WebAssembly module", WAIT), "{}", s.log());
    t.put("y/GET.wasm", a::VERSION2);
    assert!(eventually(WAIT, || get(&s, "/y").1 == "v2"), "{}", s.log());
}

#[test]
fn removed_files_and_new_folders_change_the_routes() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION), ("v/PUT.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &[]);
    let put = |s: &Server| client().put(&s.url("/v")).send("").unwrap().status().as_u16();
    assert_eq!(put(&s), 200);
    std::fs::remove_file(t.file("v/PUT.wasm")).unwrap();
    assert!(eventually(WAIT, || put(&s) == 405), "{}", s.log());
    std::fs::remove_file(t.file("v/GET.wasm")).unwrap();
    assert!(eventually(WAIT, || get(&s, "/v").0 == 404), "{}", s.log());
    assert!(s.log().contains("handler removed"));

    t.put("brand/new/{x}/GET.wasm", a::VERSION2);
    assert!(eventually(WAIT, || get(&s, "/brand/new/1") == (200, "v2".into())), "{}", s.log());
}

#[test]
fn two_hundred_rapid_rewrites_end_on_the_last_version() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &[]);
    let addr = s.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut failures = 0;
            let mut served = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && served < 100_000 {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(b"GET /v HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                let mut out = Vec::new();
                let _ = c.read_to_end(&mut out);
                let text = String::from_utf8_lossy(&out);
                if !(text.starts_with("HTTP/1.1 200") && (text.ends_with("v1") || text.ends_with("v2"))) {
                    failures += 1;
                }
                served += 1;
            }
            (served, failures)
        })
    };
    for i in 0..200 {
        t.put("v/GET.wasm", if i % 2 == 0 { a::VERSION2 } else { a::VERSION });
    }
    t.put("v/GET.wasm", a::VERSION2);
    assert!(eventually(WAIT, || get(&s, "/v").1 == "v2"), "{}", s.log());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (served, failures) = load.join().unwrap();
    assert!(served > 0);
    assert_eq!(failures, 0, "requests failed during rewrites");
    // Still the last version after the dust settles.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&s, "/v").1, "v2");
}

#[test]
fn sighup_rescans_when_watching_is_off() {
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &["--no-watch"]);
    t.put("v/GET.wasm", a::VERSION2);
    assert_eq!(get(&s, "/v").1, "v1", "not watching: nothing changes by itself");
    let ok = std::process::Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().unwrap();
    assert!(ok.success());
    assert!(eventually(WAIT, || get(&s, "/v").1 == "v2"), "{}", s.log());
}

#[test]
fn restart_with_a_warm_cache_does_not_recompile() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tree::new(&[("v/GET.wasm", a::VERSION), ("w/GET.wasm", a::VERSION2)]);
    let dir = cache.path().to_str().unwrap();
    let s = Server::start(t.path(), &["--cache-dir", dir]);
    assert!(s.wait_for_log("compiled=2 from_cache=0", WAIT), "{}", s.log());
    drop(s);
    let s = Server::start(t.path(), &["--cache-dir", dir]);
    assert!(s.wait_for_log("compiled=0 from_cache=2", WAIT), "{}", s.log());
    assert_eq!(get(&s, "/w").1, "v2");
    // A corrupt cache entry is never trusted: it is recompiled.
    for entry in walk(cache.path()) {
        std::fs::write(entry, b"garbage").unwrap();
    }
    drop(s);
    let s = Server::start(t.path(), &["--cache-dir", dir]);
    assert!(s.wait_for_log("compiled=2 from_cache=0", WAIT), "{}", s.log());
    assert_eq!(get(&s, "/v").1, "v1");
}

#[test]
fn a_cache_directory_that_cannot_be_written_is_warned_about_once_and_handlers_still_load() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("cache");
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &["--cache-dir", dir.to_str().unwrap()]);
    assert!(s.wait_for_log("compiled=1 from_cache=0", WAIT), "{}", s.log());
    // A file where the directory was: no entry can be written (whatever the user's rights).
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    t.put("a/GET.wasm", a::VERSION2);
    t.put("b/GET.wasm", a::COUNTER);
    t.put("c/GET.wasm", a::INSPECT);
    let served = eventually(WAIT, || {
        get(&s, "/a") == (200, "v2".into()) && get(&s, "/b").0 == 200 && get(&s, "/c").0 == 200
    });
    assert!(served, "compiled in memory and served\n{}", s.log());
    let warnings = s.log().matches("cannot write to the compile cache").count();
    assert_eq!(warnings, 1, "{}", s.log());
}

#[test]
fn a_cache_entry_with_one_changed_byte_is_recompiled_not_run() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let dir = cache.path().to_str().unwrap();
    let s = Server::start(t.path(), &["--cache-dir", dir]);
    assert!(s.wait_for_log("compiled=1 from_cache=0", WAIT), "{}", s.log());
    drop(s);
    // A byte in the middle of the compiled code: same size, wasmtime's header still valid.
    let code: Vec<_> =
        walk(cache.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect();
    assert_eq!(code.len(), 1, "{code:?}");
    let mut bytes = std::fs::read(&code[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&code[0], bytes).unwrap();
    let s = Server::start(t.path(), &["--cache-dir", dir]);
    assert!(s.wait_for_log("compiled=1 from_cache=0", WAIT), "{}", s.log());
    assert_eq!(get(&s, "/v"), (200, "v1".into()));
    drop(s);
    // The entry was replaced with a good one: the next start uses it.
    let s = Server::start(t.path(), &["--cache-dir", dir]);
    assert!(s.wait_for_log("compiled=0 from_cache=1", WAIT), "{}", s.log());
}

#[test]
fn cached_code_is_mapped_from_its_file_not_copied_into_the_host() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tree::new(&[("v/GET.wasm", a::VERSION)]);
    let dir = cache.path().to_str().unwrap();
    for run in ["compiled=1 from_cache=0", "compiled=0 from_cache=1"] {
        let s = Server::start(t.path(), &["--cache-dir", dir]);
        assert!(s.wait_for_log(run, WAIT), "{}", s.log());
        assert_eq!(get(&s, "/v"), (200, "v1".into()));
        // Both a fresh compile and a cache hit run the code from the entry's file.
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", s.pid())).unwrap();
        let mapped: Vec<&str> = maps.lines().filter(|l| l.contains(dir) && l.ends_with(".cwasm")).collect();
        assert!(
            mapped.iter().any(|l| l.split_whitespace().nth(1).is_some_and(|perms| perms.contains('x'))),
            "{run}: {maps}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
    out
}

/// The resident KiB and the size in KiB of the host binary's code mapping (its `r-xp` one).
fn code_pages(pid: u32) -> (u64, u64) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut mapping = None;
    let (mut rss, mut size) = (0, 0);
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            mapping =
                Some(fields.get(1) == Some(&"r-xp") && fields.get(5).map(std::path::Path::new) == Some(&exe));
        } else if mapping == Some(true) {
            match fields.first() {
                Some(&"Rss:") => rss += fields[1].parse::<u64>().unwrap(),
                Some(&"Size:") => size += fields[1].parse::<u64>().unwrap(),
                _ => {}
            }
        }
    }
    assert!(size > 0, "no code mapping of {} in the host's smaps", exe.display());
    (rss, size)
}

#[test]
fn code_only_loading_ran_is_given_back_after_start_up_and_after_a_reload() {
    // Compiling touches much of the binary's code (cranelift) that serving never runs again.
    let t = Tree::new(&[("a/GET.wasm", a::VERSION)]);
    let s = Server::start(t.path(), &["--no-cache"]);
    let mut seen = (0, 0);
    let given_back = eventually(Duration::from_secs(10), || {
        seen = code_pages(s.pid());
        seen.0 * 3 < seen.1
    });
    assert!(given_back, "after start-up {} KiB of the {} KiB of code are resident", seen.0, seen.1);
    assert_eq!(get(&s, "/a"), (200, "v1".into()));
    t.put("b/GET.wasm", a::VERSION2);
    assert!(eventually(Duration::from_secs(10), || get(&s, "/b").1 == "v2"), "{}", s.log());
    let given_back = eventually(Duration::from_secs(10), || {
        seen = code_pages(s.pid());
        seen.0 * 3 < seen.1
    });
    assert!(given_back, "after the reload {} KiB of the {} KiB of code are resident", seen.0, seen.1);
    assert_eq!(get(&s, "/a"), (200, "v1".into()));
}
