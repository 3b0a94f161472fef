//! wasm-host: an HTTP/1.1 server whose route handlers are sandboxed WebAssembly components.
//!
//! The binary (`main.rs`) only wires this library: [`cli`] parses arguments into a validated
//! [`config::Config`]; [`site`] builds the route table from the routes directory (and rebuilds
//! it on change); [`server::Server`] binds and accepts; [`conn`] serves each connection,
//! joining the sans-IO [`http`] codec, the pure [`routes`] table and the wasm [`runtime`],
//! all reached through the shared [`app::App`]. [`dev`] is the build-serve-rebuild loop
//! (`wasm-host dev`) and [`scaffold`] creates handler crates (`wasm-host new`).

pub mod app;
pub mod cli;
pub mod config;
pub mod conn;
pub mod dev;
pub mod http;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod routes;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod services;
pub mod site;
pub mod static_files;
