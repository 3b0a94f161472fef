//! Write wasm-host route handlers as plain Rust functions.
//!
//! A handler is a WebAssembly component that wasm-host loads from a route file such as
//! `routes/hello-world/GET.wasm`. This crate hides the component plumbing: write functions,
//! name them in [`export!`], build with `cargo build --release --target wasm32-wasip2`.
//!
//! ```no_run
//! use wasm_host_sdk::prelude::*;
//!
//! fn hello(_req: Request) -> &'static str {
//!     "Hello world!"
//! }
//!
//! export!(hello);
//! ```
//!
//! The crate must be a `cdylib`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! wasm-host-sdk = { path = "../guest-sdk" }
//! ```
//!
//! # The three hooks
//!
//! The host creates a fresh instance of the component for every request, so nothing survives
//! from one request to the next, and calls up to three functions of yours:
//!
//! | hook | signature | when | default |
//! |------|-----------|------|---------|
//! | `before` | `fn(&Request) -> impl IntoFlow` | the request head has been read | proceed |
//! | `stream` | `fn(&mut Request, &[u8]) -> impl IntoFlow` | each chunk of the body, as it arrives | append the chunk to [`Request::body`] |
//! | `after`  | `fn(Request) -> impl IntoResponse` | the whole body has been received | — (required) |
//!
//! ```no_run
//! use wasm_host_sdk::prelude::*;
//! use wasm_host_sdk::serde_json::Value;
//!
//! fn auth(req: &Request) -> Result<(), HttpError> {
//!     match req.header("authorization") {
//!         Some("Bearer letmein") => Ok(()),
//!         _ => Err(HttpError::unauthorized("who are you?")),
//!     }
//! }
//!
//! fn handle(req: Request) -> Result<Json<Value>, HttpError> {
//!     let body: Value = req.json()?;
//!     Ok(Json(body))
//! }
//!
//! export!(before = auth, after = handle);
//! ```
//!
//! `before` and `stream` return anything implementing [`IntoFlow`]: `()` or [`Flow::proceed`]
//! goes on, [`Flow::respond`] (or an `Err` / `Some` holding a response) answers at once and
//! skips the remaining hooks, [`Flow::close`] drops the connection without an answer, and
//! [`Flow::begin`] (from `before`) starts a full-duplex exchange: the response streams out
//! while the request body streams in, each chunk passed to [`Request::send`] by `stream`.
//!
//! A custom `stream` hook sees every body chunk and the SDK no longer buffers the body: the
//! hook decides what to keep ([`Request::body_mut`]) and can carry its own state from chunk to
//! chunk and on to `after` ([`Request::state_mut`]). That is how a handler processes an upload
//! larger than its memory limit, e.g. hashing it on the fly.
//!
//! # Responses
//!
//! `after` returns anything implementing [`IntoResponse`]: `&str`/`String` (text), `Vec<u8>`
//! (bytes), [`Json`] or `serde_json::Value`, [`Response`] for full control, [`HttpError`],
//! `Result<impl IntoResponse, impl IntoResponse>`, `(u16, impl IntoResponse)` to change the
//! status, `Option<impl IntoResponse>` (`None` is a 404), `()` (204 No Content).
//!
//! Streaming bodies are iterators that the host pulls one item at a time, only when the client
//! can take more: [`Response::chunked`] (unknown length), [`Response::sized`] (known length) and
//! [`Response::events`] (Server-Sent Events, see [`Event`]). An iterator may block, e.g.
//! `std::thread::sleep` between events: only this request waits.
//!
//! # Errors and panics
//!
//! Return an [`HttpError`] (or any `Err` that converts into a response) for an expected
//! failure: it becomes a `text/plain` response with its status and message. A panic traps the
//! instance: the host answers `500 Internal Server Error` (or aborts the connection if the
//! response head was already sent) and logs the panic message, which Rust's standard library
//! prints to the handler's stderr. The host keeps serving other requests either way.
//!
//! # Testing handlers natively
//!
//! Handlers are ordinary functions: build a [`Request`] with [`Request::new`] and its `with_*`
//! methods, call the function, and inspect the result with [`IntoResponse::into_response`].

#![deny(unsafe_code)]

extern crate self as wasm_host_sdk;

mod error;
mod event;
mod flow;
pub mod kv; // state
mod request;
mod response;
pub mod topic; // state

#[doc(hidden)]
pub mod __private;

pub use error::{HttpError, OrStatus};
pub use event::Event;
pub use flow::{Flow, IntoFlow};
pub use request::Request;
pub use response::{IntoResponse, Json, Response};

/// Everything a handler usually needs: `use wasm_host_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::export;
    pub use crate::{Event, Flow, HttpError, IntoFlow, IntoResponse, Json, OrStatus, Request, Response};
}

/// The `serde_json` crate this SDK uses, re-exported so handlers can build JSON values
/// (`wasm_host_sdk::serde_json::json!`) without adding a dependency.
pub use serde_json;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The bindings generated from `wit/handler.wit`. Not part of the API: use [`export!`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler",
        // The user's crate expands the export macro, so it must be public; it is hidden behind
        // our own `export!`.
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "wasm_host_sdk::bindings",
        // Handler crates depend on this SDK only, not on wit-bindgen itself.
        runtime_path: "wasm_host_sdk::__wit_bindgen::rt",
    });
}

/// Exports your functions as the handler of this component.
///
/// Use it once, at the top level of the handler crate. `after` is required; `before` and
/// `stream` are optional and come in this order:
///
/// ```text
/// export!(handle);                                           // after only
/// export!(after = handle);                                   // the same
/// export!(before = auth, after = handle);
/// export!(stream = on_chunk, after = handle);
/// export!(before = auth, stream = on_chunk, after = handle);
/// ```
///
/// Each function may be a path or a closure, of these shapes:
///
/// - `before: fn(&Request) -> impl IntoFlow`, called once the request head is read;
/// - `stream: fn(&mut Request, &[u8]) -> impl IntoFlow`, called with each body chunk; without
///   it the SDK appends every chunk to the request body;
/// - `after: fn(Request) -> impl IntoResponse`, called once the body is complete.
///
/// The expansion holds wit-bindgen's `unsafe` export glue; it does not trip a handler crate's
/// `#![forbid(unsafe_code)]`.
///
/// ```no_run
/// use wasm_host_sdk::prelude::*;
///
/// /// Refuses uploads without a declared length.
/// fn require_length(req: &Request) -> Option<HttpError> {
///     req.header("content-length").is_none().then(|| HttpError::new(411, "Length Required"))
/// }
///
/// /// Counts the bytes instead of keeping them.
/// fn count(req: &mut Request, chunk: &[u8]) {
///     *req.state_mut::<usize>() += chunk.len();
/// }
///
/// export!(before = require_length, stream = count, after = |mut req: Request| {
///     format!("received {} bytes", req.take_state::<usize>().unwrap_or(0))
/// });
/// ```
///
/// ```no_run
/// # use wasm_host_sdk::prelude::*;
/// # fn auth(_: &Request) {}
/// export!(before = auth, after = |_req| "ok");
/// ```
///
/// ```no_run
/// # use wasm_host_sdk::prelude::*;
/// export!(stream = |_req: &mut Request, _chunk: &[u8]| Flow::close(), after = |_req| ());
/// ```
///
/// ```no_run
/// # use wasm_host_sdk::prelude::*;
/// export!(after = |req: Request| Json(req.query_pairs().collect::<Vec<_>>()),);
/// ```
#[macro_export]
macro_rules! export {
    (before = $before:expr, stream = $stream:expr, after = $after:expr $(,)?) => {
        $crate::__export_hooks!(($before)($stream)($after));
    };
    (before = $before:expr, after = $after:expr $(,)?) => {
        $crate::__export_hooks!(($before)()($after));
    };
    (stream = $stream:expr, after = $after:expr $(,)?) => {
        $crate::__export_hooks!(()($stream)($after));
    };
    (after = $after:expr $(,)?) => {
        $crate::__export_hooks!(()()($after));
    };
    (before = $before:expr $(, stream = $stream:expr)? $(,)?) => {
        ::std::compile_error!("export!: the `after` function is missing: `export!(before = .., after = ..)`");
    };
    (stream = $stream:expr $(,)?) => {
        ::std::compile_error!("export!: the `after` function is missing: `export!(stream = .., after = ..)`");
    };
    ($after:expr $(,)?) => {
        $crate::__export_hooks!(()()($after));
    };
    ($($unexpected:tt)*) => {
        ::std::compile_error!(
            "export! takes `after`, `after = ..`, `before = .., after = ..`, `stream = .., after = ..` \
             or `before = .., stream = .., after = ..`, in this order"
        );
    };
}

/// Implementation of [`export!`]: a hidden type implementing the generated `Guest` trait.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_hooks {
    (($($before:expr)?) ($($stream:expr)?) ($after:expr)) => {
        const _: () = {
            struct __WasmHostHandler;

            impl $crate::bindings::Guest for __WasmHostHandler {
                fn before(request: $crate::bindings::Request) -> $crate::bindings::Flow {
                    $crate::__private::before(request, $crate::__export_hooks!(@before $($before)?))
                }

                fn stream(chunk: ::std::vec::Vec<u8>) -> $crate::bindings::Flow {
                    $crate::__export_hooks!(@stream chunk $($stream)?)
                }

                fn after() -> $crate::bindings::Response {
                    $crate::__private::after($after)
                }

                fn next_chunk() -> ::std::option::Option<::std::vec::Vec<u8>> {
                    $crate::__private::next_chunk()
                }

                fn next_event() -> ::std::option::Option<$crate::bindings::Event> {
                    $crate::__private::next_event()
                }
            }

            $crate::bindings::__export_handler!(__WasmHostHandler with_types_in $crate::bindings);
        };
    };
    (@before) => { $crate::__private::proceed };
    (@before $before:expr) => { $before };
    (@stream $chunk:ident) => { $crate::__private::buffer($chunk) };
    (@stream $chunk:ident $stream:expr) => { $crate::__private::stream($chunk, $stream) };
}
