//! A handler that misbehaves as `?do=` asks, for the guest-fault tests:
//! - `random&n=BYTES&times=K`: asks the host for `n` random bytes `k` times (time spent in a
//!   host call, which the CPU budget must count), then answers how many it got.
//! - `recurse`: recurses without end (the stack overflows: a trap).
//! - `flood&bytes=N`: writes `n` bytes to stderr without a newline, then answers.
//! - `sandbox`: tries files, environment and sockets and answers what it could reach.

use std::hint::black_box;
use std::io::Write as _;

use wasm_host_sdk::prelude::*;

fn hostile(req: Request) -> Result<String, HttpError> {
    let number = |name: &str, default: u64| -> Result<u64, HttpError> {
        Ok(req.query(name).map_or(Ok(default), |v| v.parse())?)
    };
    match req.query("do").as_deref() {
        Some("random") => {
            let (n, times) = (number("n", 1 << 20)?, number("times", 1)?);
            let mut got = 0u64;
            for _ in 0..times {
                got += black_box(wasip2::random::random::get_random_bytes(n)).len() as u64;
            }
            Ok(format!("got {got} random bytes\n"))
        }
        Some("recurse") => Ok(format!("{}\n", recurse(black_box(1)))),
        Some("flood") => {
            let piece = [b'x'; 64 * 1024];
            let mut left = number("bytes", 1 << 20)?;
            let mut stderr = std::io::stderr();
            while left > 0 {
                let n = left.min(piece.len() as u64) as usize;
                stderr.write_all(&piece[..n]).ok();
                left -= n as u64;
            }
            Ok("flooded\n".into())
        }
        Some("sandbox") => {
            let files = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.kind());
            let env = std::env::vars().count();
            let socket = std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| e.kind());
            Ok(format!("files={files:?} env={env} socket={:?}\n", socket.map(|_| ())))
        }
        _ => Err(HttpError::new(400, "unknown ?do=")),
    }
}

fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

export!(hostile);
