//! Typed extraction and JSON errors, served at `items/{id}/ANY.wasm`:
//!
//! - `GET /items/{id}?page=N[&q=TEXT][&deny]`: `{"id": .., "page": .., "q": ..}` from
//!   `params_as` (`id: u32`) and `query_as` (`page: u32`); `deny` answers a plain
//!   `HttpError` (403), text or JSON by the request's `Accept`.
//! - `POST /items/{id}`: the body read with `req.json::<NewItem>()` (415 unless JSON, 400
//!   naming the field), echoed back; with `?lenient` read with `json_ignoring_content_type`.

use wasm_host_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(crate = "wasm_host_sdk::serde")]
struct Params {
    id: u32,
}

#[derive(Deserialize)]
#[serde(crate = "wasm_host_sdk::serde")]
struct Query {
    page: u32,
    q: Option<String>,
    deny: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "wasm_host_sdk::serde")]
struct NewItem {
    name: String,
    price: u32,
}

fn handle(req: Request) -> Result<Response, HttpError> {
    let Params { id } = req.params_as()?;
    if req.method() == "POST" {
        let item: NewItem =
            if req.query("lenient").is_some() { req.json_ignoring_content_type()? } else { req.json()? };
        return Ok(Json(serde_json::json!({ "id": id, "item": item })).into_response().with_status(201));
    }
    let query: Query = req.query_as()?;
    if query.deny.is_some() {
        return Err(HttpError::forbidden(format!("item {id} is private")));
    }
    Ok(Json(serde_json::json!({ "id": id, "page": query.page, "q": query.q })).into_response())
}

use wasm_host_sdk::serde_json;

export!(handle);
