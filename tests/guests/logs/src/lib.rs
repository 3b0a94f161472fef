//! Writes `hello from stdout` to stdout and `hello from stderr` to stderr, then answers
//! `logged`: the host should log both lines, prefixed by the route. With `?hostile` it writes a
//! line full of control characters instead, which the host must log escaped.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what this guest tests")]

use wasm_host_sdk::prelude::*;

fn log(req: Request) -> &'static str {
    if req.query("hostile").is_some() {
        // A carriage return to hide the prefix, a colour, a C1 CSI, a NUL, a bell and a tab.
        println!("covered\rhidden \x1b[31mred\x1b[0m \u{9b}2J nul\0 bell\x07 tab\tend");
        return "logged";
    }
    println!("hello from stdout");
    eprintln!("hello from stderr");
    "logged"
}

export!(log);
