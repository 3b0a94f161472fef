//! `GET /http-error`: answers `403 Forbidden Access` by returning an [`HttpError`].

use wasm_host_sdk::prelude::*;

fn handle(_req: Request) -> Result<&'static str, HttpError> {
    Err(HttpError::new(403, "Forbidden Access"))
}

export!(handle);
