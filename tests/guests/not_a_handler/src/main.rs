//! A WASI command (it exports `wasi:cli/run`, not the handler world): the host must refuse to
//! load it, with a clear error.

fn main() {}
