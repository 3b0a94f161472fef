//! `POST /count`: answers the length of the request body in bytes, as text, for `make bench`.
//! The `stream` hook only adds up chunk lengths and keeps nothing, so an upload measures the
//! host's body path, not the guest's work.

use wasm_host_sdk::prelude::*;

/// The bytes received so far.
#[derive(Default)]
struct Received(u64);

fn count_chunk(req: &mut Request, chunk: &[u8]) {
    req.state_mut::<Received>().0 += chunk.len() as u64;
}

fn answer(mut req: Request) -> String {
    req.take_state::<Received>().unwrap_or_default().0.to_string()
}

export!(stream = count_chunk, after = answer);
