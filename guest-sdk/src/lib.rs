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
//! status, `Option<impl IntoResponse>` (`None` is a 404), `()` (204 No Content). Redirect
//! with [`Response::redirect`] (303) and its 301/302/307/308 siblings.
//!
//! Streaming bodies are iterators that the host pulls one item at a time, only when the client
//! can take more: [`Response::chunked`] (unknown length), [`Response::sized`] (known length) and
//! [`Response::events`] (Server-Sent Events, see [`Event`]). An iterator may block, e.g.
//! `std::thread::sleep` between events: only this request waits.
//!
//! # Reading requests
//!
//! - Route parameters and the query string into serde types: [`Request::params_as`],
//!   [`Request::query_as`] (a 400 names the field), or one at a time with
//!   [`Request::param`] and [`Request::query`].
//! - The body by its `Content-Type`: [`Request::json`] (415 unless JSON),
//!   [`Request::form`] / [`Request::form_fields`], [`Request::text`], [`Request::multipart`],
//!   [`Request::body`], or all at once with [`Request::parse_body`] ([`ParsedBody`]). A
//!   body that does not parse is a 400 saying why.
//! - Large uploads as they arrive: a `stream` hook with [`Request::multipart_events`] (an
//!   incremental [`MultipartParser`]) processes file parts in bounded memory.
//! - Cookies: [`Request::cookie`]; set them with [`Response::with_cookie`] and [`Cookie`].
//!
//! serde is re-exported ([`serde`](mod@serde)): derive with
//! `#[derive(Deserialize)] #[serde(crate = "wasm_host_sdk::serde")]`.
//!
//! # Errors and panics
//!
//! Return an [`HttpError`] (or any `Err` that converts into a response) for an expected
//! failure: it becomes a response with its status and message, as `text/plain`, or as
//! `{"error": "..."}` for a request that accepts JSON or an error raised while parsing JSON
//! (the rule: [*Text or JSON*](HttpError#text-or-json)). A panic traps the
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

mod body;
mod cookie;
mod error;
mod event;
mod flow;
pub mod kv; // state
mod media_type;
mod multipart;
mod request;
mod response;
pub mod topic; // state

#[doc(hidden)]
pub mod __private;

pub use body::ParsedBody;
pub use cookie::{Cookie, SameSite};
pub use error::{HttpError, OrStatus};
pub use event::Event;
pub use flow::{Flow, IntoFlow};
pub use multipart::{MAX_PART_HEAD, Multipart, MultipartParser, Part, PartEvent, PartHead};
pub use request::Request;
pub use response::{IntoResponse, Json, Response};

/// Everything a handler usually needs: `use wasm_host_sdk::prelude::*;`, serde's derive
/// macros included.
pub mod prelude {
    pub use crate::export;
    pub use crate::serde::{Deserialize, Serialize};
    pub use crate::{
        Cookie, Event, Flow, HttpError, IntoFlow, IntoResponse, Json, OrStatus, ParsedBody, PartEvent,
        PartHead, Request, Response, SameSite,
    };
}

/// The `serde_json` crate this SDK uses, re-exported so handlers can build JSON values
/// (`wasm_host_sdk::serde_json::json!`) without adding a dependency.
pub use serde_json;

/// The `serde` crate this SDK uses (with `derive`), re-exported so a handler needs no other
/// dependency. serde's derives look for a crate named `serde`, so point them here with
/// `#[serde(crate = "wasm_host_sdk::serde")]`:
///
/// ```
/// use wasm_host_sdk::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(crate = "wasm_host_sdk::serde")]
/// struct User {
///     name: String,
/// }
///
/// let user: User = wasm_host_sdk::serde_json::from_str(r#"{"name": "Ada"}"#).unwrap();
/// assert_eq!(Json(user).into_response().body(), Some(&br#"{"name":"Ada"}"#[..]));
/// ```
pub use serde;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The bindings generated from `wit/handler.wit`. Not part of the API: use [`export!`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all, reason = "generated by wit-bindgen")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "sdk-handler",
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
/// Or one function per method, as web.py's `do_GET`/`do_PUT`: the host learns the methods
/// when it loads the component as an `ANY.wasm` file, answers `405` with the right `Allow` to the others (HEAD is
/// served by `get`), and the SDK calls the function for the request's method. Build the crate
/// once and place it as `ANY.wasm`; a method file beside it still wins over it.
///
/// ```text
/// export!(get = list, post = create, delete = remove);
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
///
/// ```no_run
/// use wasm_host_sdk::prelude::*;
///
/// fn list(_req: Request) -> &'static str {
///     "all the items"
/// }
///
/// fn create(req: Request) -> (u16, String) {
///     (201, format!("created {}", req.text().unwrap_or("?")))
/// }
///
/// export!(get = list, post = create, delete = |_req| ());
/// ```
#[macro_export]
macro_rules! export {
    (before = $before:expr, stream = $stream:expr, after = $after:expr $(,)?) => {
        $crate::__export_hooks!(($before)($stream)($after)[]);
    };
    (before = $before:expr, after = $after:expr $(,)?) => {
        $crate::__export_hooks!(($before)()($after)[]);
    };
    (stream = $stream:expr, after = $after:expr $(,)?) => {
        $crate::__export_hooks!(()($stream)($after)[]);
    };
    (after = $after:expr $(,)?) => {
        $crate::__export_hooks!(()()($after)[]);
    };
    (before = $before:expr $(, stream = $stream:expr)? $(,)?) => {
        ::std::compile_error!("export!: the `after` function is missing: `export!(before = .., after = ..)`");
    };
    (stream = $stream:expr $(,)?) => {
        ::std::compile_error!("export!: the `after` function is missing: `export!(stream = .., after = ..)`");
    };
    ($($method:ident = $handler:expr),+ $(,)?) => {
        $crate::__export_methods!($($method = $handler),+);
    };
    ($after:expr $(,)?) => {
        $crate::__export_hooks!(()()($after)[]);
    };
    ($($unexpected:tt)*) => {
        ::std::compile_error!(
            "export! takes `after`, `after = ..`, `before = .., after = ..`, `stream = .., after = ..`, \
             `before = .., stream = .., after = ..` (in this order), or one function per method: \
             `get = .., post = .., delete = ..`"
        );
    };
}

/// Implementation of [`export!`]'s one-function-per-method form: a dispatching `after` and the
/// list of methods the host reads at load.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_methods {
    ($($method:ident = $handler:expr),+) => {
        const _: () = {
            fn __wasm_host_dispatch(req: $crate::Request) -> $crate::Response {
                let method = req.method().to_owned();
                $(
                    if method == $crate::__method_name!($method) {
                        return $crate::IntoResponse::into_response(($handler)(req));
                    }
                )+
                if method == "HEAD" {
                    $(
                        if "GET" == $crate::__method_name!($method) {
                            return $crate::IntoResponse::into_response(($handler)(req));
                        }
                    )+
                }
                $crate::__private::method_not_allowed(&[$($crate::__method_name!($method)),+])
            }
            $crate::__export_hooks!(()()(__wasm_host_dispatch)[$($crate::__method_name!($method)),+]);
        };
    };
}

/// The upper-case method name for an `export!` key.
#[doc(hidden)]
#[macro_export]
macro_rules! __method_name {
    (get) => {
        "GET"
    };
    (head) => {
        "HEAD"
    };
    (post) => {
        "POST"
    };
    (put) => {
        "PUT"
    };
    (patch) => {
        "PATCH"
    };
    (delete) => {
        "DELETE"
    };
    (options) => {
        "OPTIONS"
    };
    ($other:ident) => {
        ::std::compile_error!(::std::concat!(
            "export!: `",
            ::std::stringify!($other),
            "` is not a method; use get, head, post, put, patch, delete or options"
        ))
    };
}

/// Implementation of [`export!`]: a hidden type implementing the generated `Guest` trait.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_hooks {
    (($($before:expr)?) ($($stream:expr)?) ($after:expr) [$($method:expr),*]) => {
        const _: () = {
            struct __WasmHostHandler;

            impl $crate::bindings::Guest for __WasmHostHandler {
                fn before(request: $crate::bindings::Request) -> $crate::bindings::Flow {
                    $crate::__private::before(request, $crate::__export_hooks!(@before $($before)?), $after)
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

            impl $crate::bindings::exports::wasm_host::http::info::Guest for __WasmHostHandler {
                fn methods() -> ::std::vec::Vec<::std::string::String> {
                    ::std::vec![$(::std::string::String::from($method)),*]
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
