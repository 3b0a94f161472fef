//! `GET /hello-world`: answers `Hello world!` as `text/plain`.

use wasm_host_sdk::prelude::*;

fn hello(_req: Request) -> &'static str {
    "Hello world!"
}

export!(hello);
