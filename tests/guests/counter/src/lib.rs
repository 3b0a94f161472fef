//! Counts the requests it has served in a static and in a heap buffer. Every request gets a
//! fresh instance, so both must read `1` every time; anything else means state leaked between
//! requests (for instance through a reused pool slot whose memory was not reset).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use wasm_host_sdk::prelude::*;

static COUNT: AtomicU32 = AtomicU32::new(0);
static HEAP: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn count(_req: Request) -> String {
    let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    let mut heap = HEAP.lock().unwrap();
    heap.extend_from_slice(&[7; 4096]);
    format!("{n} {}", heap.len() / 4096)
}

export!(count);
