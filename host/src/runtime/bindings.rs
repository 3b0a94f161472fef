//! The one place generated code lives: `bindgen!` for the `handler` world in `wit/`, with
//! curated re-exports of the types the rest of the host uses.
//!
//! Exports are async so a guest that blocks in WASI suspends only its own fiber.

mod generated {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit",
        exports: { default: async },
        // state: host imports (kv, topics) are async so a waiting guest suspends only its fiber
        imports: { default: async | trappable },
        with: { "wasm-host:http/topics.subscription": crate::runtime::services::GuestSubscription },
    });
}

/// The instantiated handler world: `call_before`, `call_stream`, `call_after`, `call_next_chunk`,
/// `call_next_event`.
pub use generated::Handler as HandlerWorld;
/// A handler component pre-linked against the host's linker, ready to instantiate cheaply.
pub use generated::HandlerPre;
/// The record and variant types of the contract (`request`, `response`, `flow`, `body`, `event`,
/// `header`).
pub use generated::wasm_host::http::types::{Body, Event, Flow, Header, Request, Response};
// state: the host-service imports, implemented in `runtime/services.rs`.
pub(crate) use generated::wasm_host::http::{kv, topics};
