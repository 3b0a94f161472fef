//! One crate, three methods (`export!(get = .., post = .., delete = ..)`), placed once as
//! `ANY.wasm`: the host answers 405 with `Allow` for every other method.

use wasm_host_sdk::prelude::*;

fn list(_req: Request) -> &'static str {
    "listed"
}

fn create(req: Request) -> (u16, String) {
    (201, format!("created {}", req.text().unwrap_or("?")))
}

fn remove(_req: Request) {}

export!(get = list, post = create, delete = remove);
