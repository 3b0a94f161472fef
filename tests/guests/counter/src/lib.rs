//! Counts the requests it has served in a static and in a heap buffer, and answers `n heap`.
//! With a fresh instance per request both read `1` every time; anything else means state leaked
//! between requests (for instance through a reused pool slot whose memory was not reset). With
//! `--instance-reuse` they count the requests this instance served. `?panic` panics after
//! counting (the instance must then be retired); `?pad=N` adds a line of N spaces to the answer
//! (large enough, it cannot all be written until the client reads); `?grow=N` first writes N
//! MiB more to the heap buffer (so tearing the instance down has that much memory to reset).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use wasm_host_sdk::prelude::*;

static COUNT: AtomicU32 = AtomicU32::new(0);
static HEAP: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn count(req: Request) -> String {
    let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    let mut heap = HEAP.lock().unwrap();
    heap.extend_from_slice(&[7; 4096]);
    if let Some(mib) = req.query("grow").and_then(|mib| mib.parse::<usize>().ok()) {
        let grown = heap.len() + (mib << 20);
        heap.resize(grown, 7);
    }
    assert!(req.query_string() != "panic", "asked to panic after {n} requests");
    let mut answer = format!("{n} {}", heap.len() / 4096);
    if let Some(pad) = req.query("pad").and_then(|pad| pad.parse().ok()) {
        answer.push('\n');
        answer.extend(std::iter::repeat_n(' ', pad));
    }
    answer
}

export!(count);
