//! Paths of the guest components built for wasm-host's tests.
//!
//! The build script compiles both guest workspaces, `tests/guests/` (test-only guests) and
//! `examples/` (the example handlers), for `wasm32-wasip2`, in
//! `${CARGO_TARGET_DIR:-<repo>/target}/guests`, the directory `examples/build.sh` uses too.
//! It then defines one constant per component, holding its absolute path:
//!
//! - `tests/guests/<crate>` becomes `<CRATE>`, e.g. [`INSPECT`] for `tests/guests/inspect`;
//! - `examples/handlers/<crate>` becomes `EXAMPLE_<CRATE>`, e.g. [`EXAMPLE_HELLO_WORLD`];
//! - [`EXAMPLE_ROUTES`] is a routes directory laid out from `examples/routes.txt`.
//!
//! The components are built in release mode whatever the profile of the tests.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
