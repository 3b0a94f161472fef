//! Answers, as JSON, everything the handler received:
//!
//! ```json
//! {"method": "POST", "path": "/a b", "query": "x=1", "query_pairs": [["x", "1"]],
//!  "protocol": "HTTP/1.1", "headers": [["Host", "..."]], "params": {"id": "7"},
//!  "remote_addr": "127.0.0.1:50432", "body_len": 3, "body_sha256": "<hex>"}
//! ```
//!
//! Header values are decoded lossily (invalid UTF-8 becomes U+FFFD). The body goes through the
//! SDK's default buffering, so this also checks that chunks arrive complete and in order.

use sha2::{Digest, Sha256};
use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::{Map, Value, json};

fn inspect(req: Request) -> Json<Value> {
    let headers: Vec<[String; 2]> = req
        .headers()
        .map(|(name, value)| [name.to_owned(), String::from_utf8_lossy(value).into_owned()])
        .collect();
    let params: Map<String, Value> =
        req.params().map(|(name, value)| (name.to_owned(), Value::from(value))).collect();
    let query_pairs: Vec<[String; 2]> = req.query_pairs().map(|(name, value)| [name, value]).collect();
    let sha256: String = Sha256::digest(req.body()).iter().map(|byte| format!("{byte:02x}")).collect();
    Json(json!({
        "method": req.method(),
        "path": req.path(),
        "query": req.query_string(),
        "query_pairs": query_pairs,
        "protocol": req.protocol(),
        "headers": headers,
        "params": params,
        "remote_addr": req.remote_addr(),
        "body_len": req.body().len(),
        "body_sha256": sha256,
    }))
}

export!(inspect);
