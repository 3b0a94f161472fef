//! `POST /upload-hash`: answers `{"sha256": "<hex>", "bytes": <length>}` for the request body.
//!
//! The `stream` hook hashes each chunk as it arrives and keeps nothing else, so the upload may
//! be far larger than the handler's memory.

use sha2::{Digest, Sha256};
use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::json;

/// The hash state carried from chunk to chunk.
#[derive(Default)]
struct Upload {
    hasher: Sha256,
    bytes: u64,
}

fn hash_chunk(req: &mut Request, chunk: &[u8]) {
    let upload = req.state_mut::<Upload>();
    upload.hasher.update(chunk);
    upload.bytes += chunk.len() as u64;
}

fn answer(mut req: Request) -> Json<wasm_host_sdk::serde_json::Value> {
    let upload = req.take_state::<Upload>().unwrap_or_default();
    let hex: String = upload.hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    Json(json!({ "sha256": hex, "bytes": upload.bytes }))
}

export!(stream = hash_chunk, after = answer);
