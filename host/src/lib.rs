//! wasm-host: an HTTP/1.1 server whose route handlers are sandboxed WebAssembly components.
//!
//! The binary (`main.rs`) only wires this library: [`cli`] parses arguments into a validated
//! [`config::Config`], [`server::Server`] binds and accepts, `conn` runs each connection's
//! keep-alive loop, joining the sans-IO [`http`] codec, the [`routes`] table and the wasm
//! [`runtime`].

pub mod cli;
pub mod config;
mod conn;
pub mod http;
pub mod reload;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod services;
