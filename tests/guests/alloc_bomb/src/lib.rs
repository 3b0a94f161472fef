//! `after` allocates 1 GiB and touches every page, which must trap on the host's memory
//! limit rather than take the host down.

use std::hint::black_box;

use wasm_host_sdk::prelude::*;

fn bomb(_req: Request) -> String {
    let memory = black_box(vec![1u8; 1 << 30]);
    let sum: u64 = memory.iter().step_by(4096).map(|&byte| u64::from(byte)).sum();
    format!("allocated {} bytes (sum {sum})", memory.len())
}

export!(bomb);
