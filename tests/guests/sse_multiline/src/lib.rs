//! An events stream of two events, then the end of the stream:
//!
//! ```text
//! event: multi
//! id: 7
//! data: line one
//! data: line two
//!
//! data: end
//! ```

use wasm_host_sdk::prelude::*;

fn events(_req: Request) -> Response {
    Response::events([Event::data("line one\nline two").event("multi").id("7"), Event::data("end")])
}

export!(events);
