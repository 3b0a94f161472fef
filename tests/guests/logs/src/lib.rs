//! Writes `hello from stdout` to stdout and `hello from stderr` to stderr, then answers
//! `logged`: the host should log both lines, prefixed by the route.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what this guest tests")]

use wasm_host_sdk::prelude::*;

fn log(_req: Request) -> &'static str {
    println!("hello from stdout");
    eprintln!("hello from stderr");
    "logged"
}

export!(log);
