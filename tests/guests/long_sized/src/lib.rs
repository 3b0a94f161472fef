//! Announces a 10-byte body (`Response::sized(10, ..)`) but its stream yields 20 bytes, in two
//! chunks (8 + 12, so the second one crosses the limit): the host must not send more than 10
//! bytes, and must abort the connection.

use wasm_host_sdk::prelude::*;

fn long(_req: Request) -> Response {
    Response::sized(10, [vec![b'a'; 8], vec![b'b'; 12]])
}

export!(long);
