//! `GET|POST /params/{route}`: answers what the handler received, as JSON:
//!
//! ```text
//! curl -X POST -d '{"body": "A"}' 'http://localhost:8080/params/C?url=B'
//! {"urlParams":{"url":"B"},"bodyParams":{"body":"A"},"pathParams":{"route":"C"}}
//! ```
//!
//! `bodyParams` is `null` for an empty body; a body that is not JSON is a 400.

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::{Map, Value, json};

fn params(req: Request) -> Result<Json<Value>, HttpError> {
    let mut url_params = Map::new();
    for (name, value) in req.query_pairs() {
        // The first value wins, as with `Request::query`.
        url_params.entry(name).or_insert(Value::String(value));
    }
    let body_params = if req.body().is_empty() { Value::Null } else { req.json()? };
    let path_params: Map<String, Value> =
        req.params().map(|(name, value)| (name.to_owned(), Value::from(value))).collect();
    Ok(Json(json!({
        "urlParams": url_params,
        "bodyParams": body_params,
        "pathParams": path_params,
    })))
}

export!(params);
