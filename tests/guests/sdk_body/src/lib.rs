//! Answers, as JSON, the request body converted by `req.parse_body()`:
//!
//! `{"kind": "empty" | "json" | "form" | "text" | "multipart" | "bytes", ...}` with the value,
//! the fields, the text, the parts (`name`, `filename`, `content_type`, `len`, `sha256`, and
//! `text` for text fields) or the length. With `?typed`, the form is read with
//! `req.form::<Signup>()` instead (`user: String`, `age: u8`). A body that does not parse is
//! the SDK's 400.

use sha2::{Digest, Sha256};
use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::{Value, json};

#[derive(Serialize, Deserialize)]
#[serde(crate = "wasm_host_sdk::serde")]
struct Signup {
    user: String,
    age: u8,
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn describe(req: Request) -> Result<Json<Value>, HttpError> {
    if req.query("typed").is_some() {
        let signup: Signup = req.form()?;
        return Ok(Json(json!({ "kind": "typed-form", "value": signup })));
    }
    Ok(Json(match req.parse_body()? {
        ParsedBody::Empty => json!({ "kind": "empty" }),
        ParsedBody::Json(value) => json!({ "kind": "json", "value": value }),
        ParsedBody::Form(fields) => json!({ "kind": "form", "fields": fields }),
        ParsedBody::Text(text) => json!({ "kind": "text", "text": text }),
        ParsedBody::Multipart(form) => {
            let parts: Vec<Value> = form
                .parts()
                .iter()
                .map(|part| {
                    json!({
                        "name": part.name(),
                        "filename": part.filename(),
                        "content_type": part.content_type(),
                        "len": part.bytes().len(),
                        "sha256": sha256(part.bytes()),
                        "text": part.filename().is_none().then(|| part.text().ok()).flatten(),
                    })
                })
                .collect();
            json!({ "kind": "multipart", "parts": parts })
        }
        ParsedBody::Bytes(bytes) => json!({ "kind": "bytes", "len": bytes.len(), "sha256": sha256(bytes) }),
    }))
}

export!(describe);
