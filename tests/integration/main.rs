//! Integration tests: the real `wasm-host` binary on port 0, guest components built from source
//! by the `test-artifacts` build script, real sockets. Run with `make test`.

mod admin;
mod basics;
mod cli;
mod dev;
mod errors;
mod framing;
mod hostile;
mod logs;
mod polyglot;
mod reload;
mod reuse;
mod sdk;
mod serving;
mod state;
mod streaming;
mod support;
mod wasi_http;
