//! Answers `v2`. Hot-reload tests replace a route's file with `version` or `version2` and
//! watch the answer change.

use wasm_host_sdk::prelude::*;

/// What this build answers.
const VERSION: &str = "v2";

fn version(_req: Request) -> &'static str {
    VERSION
}

export!(version);
