//! The shared key-value store: one keyspace for every handler of the host (and, with Redis, of
//! every host sharing it). Values outlive the request; with the default embedded store they
//! survive restarts and crashes too, since [`set`] returns only once the write is durable.
//!
//! Typed values travel as JSON ([`get`], [`set`]); [`get_bytes`] and [`set_bytes`] store raw
//! bytes. Every function returns a [`StateError`], which `?` turns into an [`HttpError`]: 503
//! when the store is unavailable, 400 for a bad key or argument, 413 for a value that is too
//! large.
//!
//! ```no_run
//! use wasm_host_sdk::prelude::*;
//! use wasm_host_sdk::kv;
//!
//! // PUT /store/{key}: keep the body; GET answers it, 404 when absent.
//! fn put(req: Request) -> Result<(), HttpError> {
//!     let key = format!("store/{}", req.param("key").unwrap_or_default());
//!     kv::set_bytes(&key, req.body())?;
//!     Ok(())
//! }
//!
//! fn get(req: Request) -> Result<Option<Vec<u8>>, HttpError> {
//!     let key = format!("store/{}", req.param("key").unwrap_or_default());
//!     Ok(kv::get_bytes(&key)?)
//! }
//! # export!(put);
//! ```

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasm_host::http::kv as wit;
use crate::error::HttpError;

/// Why a key-value or topic call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The store cannot be reached right now (Redis is down, the disk failed); retrying later
    /// may work. Answered as 503.
    Unavailable(String),
    /// The key or topic name is empty, too long, or contains NUL. Answered as 400.
    BadKey(String),
    /// The value or message is larger than the host allows. Answered as 413.
    TooLarge(String),
    /// [`increment`] on a value that is not an integer, or the sum overflows. Answered as 409.
    NotAnInteger(String),
    /// Another argument is unusable (a cursor, a page size, a zero time-to-live). Answered as 400.
    BadArgument(String),
    /// The stored value is not JSON of the type asked for. Answered as 500: the data does not
    /// match the program.
    Decode(String),
}

impl StateError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            StateError::Unavailable(_) => 503,
            StateError::BadKey(_) | StateError::BadArgument(_) => 400,
            StateError::TooLarge(_) => 413,
            StateError::NotAnInteger(_) => 409,
            StateError::Decode(_) => 500,
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Unavailable(m) => write!(f, "state store unavailable: {m}"),
            StateError::BadKey(m) => write!(f, "bad key: {m}"),
            StateError::TooLarge(m) => write!(f, "too large: {m}"),
            StateError::NotAnInteger(m) => write!(f, "not an integer: {m}"),
            StateError::BadArgument(m) => write!(f, "bad argument: {m}"),
            StateError::Decode(m) => write!(f, "stored value does not decode: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

/// The error's [`status`](StateError::status) with its message.
///
/// ```
/// use wasm_host_sdk::HttpError;
/// use wasm_host_sdk::kv::StateError;
///
/// let error: HttpError = StateError::Unavailable("redis is down".into()).into();
/// assert_eq!(error.status, 503);
/// ```
impl From<StateError> for HttpError {
    fn from(error: StateError) -> Self {
        HttpError::new(error.status(), error.to_string())
    }
}

impl From<wit::Error> for StateError {
    fn from(error: wit::Error) -> Self {
        match error {
            wit::Error::Unavailable(m) => StateError::Unavailable(m),
            wit::Error::BadKey(m) => StateError::BadKey(m),
            wit::Error::TooLarge(m) => StateError::TooLarge(m),
            wit::Error::NotAnInteger(m) => StateError::NotAnInteger(m),
            wit::Error::BadArgument(m) => StateError::BadArgument(m),
        }
    }
}

/// The value of `key` decoded from JSON, or `None` if it is not set.
///
/// ```no_run
/// use wasm_host_sdk::kv;
/// use wasm_host_sdk::serde_json::Value;
///
/// # fn f() -> Result<(), kv::StateError> {
/// let settings: Option<Value> = kv::get("users/42/settings")?;
/// # Ok(()) }
/// ```
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StateError> {
    match get_bytes(key)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Decode(format!("the value of {key:?} is not the JSON expected: {e}"))),
        None => Ok(None),
    }
}

/// Sets `key` to `value` as JSON.
///
/// ```no_run
/// use wasm_host_sdk::kv;
/// use wasm_host_sdk::serde_json::json;
///
/// # fn f() -> Result<(), kv::StateError> {
/// kv::set("users/42/settings", &json!({ "theme": "dark" }))?;
/// # Ok(()) }
/// ```
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StateError> {
    set_bytes(key, &to_json(value)?)
}

/// Sets `key` to `value` as JSON, expiring after `ttl`.
///
/// ```no_run
/// use std::time::Duration;
/// use wasm_host_sdk::kv;
///
/// # fn f() -> Result<(), kv::StateError> {
/// kv::set_with_ttl("sessions/abc", &"user 42", Duration::from_secs(3600))?;
/// # Ok(()) }
/// ```
pub fn set_with_ttl<T: Serialize + ?Sized>(key: &str, value: &T, ttl: Duration) -> Result<(), StateError> {
    set_bytes_with_ttl(key, &to_json(value)?, ttl)
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|e| StateError::BadArgument(format!("cannot serialize the value: {e}")))
}

/// The raw bytes of `key`, or `None` if it is not set.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// let logo: Option<Vec<u8>> = wasm_host_sdk::kv::get_bytes("logo.png")?;
/// # Ok(()) }
/// ```
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    Ok(wit::get(key)?)
}

/// Sets `key` to the raw bytes `value`.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// wasm_host_sdk::kv::set_bytes("greeting", b"hello")?;
/// # Ok(()) }
/// ```
pub fn set_bytes(key: &str, value: &[u8]) -> Result<(), StateError> {
    Ok(wit::set(key, value, None)?)
}

/// Sets `key` to the raw bytes `value`, expiring after `ttl` (rounded up to a millisecond).
///
/// ```no_run
/// # use std::time::Duration;
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// wasm_host_sdk::kv::set_bytes_with_ttl("otp/42", b"123456", Duration::from_secs(300))?;
/// # Ok(()) }
/// ```
pub fn set_bytes_with_ttl(key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
    let ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    Ok(wit::set(key, value, Some(ms))?)
}

/// Removes `key`; whether it was set.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// if !wasm_host_sdk::kv::delete("store/a")? {
///     // it was not there
/// }
/// # Ok(()) }
/// ```
pub fn delete(key: &str) -> Result<bool, StateError> {
    Ok(wit::delete(key)?)
}

/// Whether `key` is set.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// let known = wasm_host_sdk::kv::exists("users/42")?;
/// # Ok(()) }
/// ```
pub fn exists(key: &str) -> Result<bool, StateError> {
    Ok(wit::exists(key)?)
}

/// One page of keys: [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys, in byte order.
    pub keys: Vec<String>,
    /// Pass to [`list`] for the next page; `None` on the last page.
    pub cursor: Option<String>,
}

/// Up to `limit` keys starting with `prefix` (0: the host's default page of 100; at most
/// 1000), after `cursor` from a previous page.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// let mut cursor = None;
/// loop {
///     let page = wasm_host_sdk::kv::list("users/", cursor.as_deref(), 0)?;
///     for key in &page.keys { /* ... */ }
///     match page.cursor {
///         Some(next) => cursor = Some(next),
///         None => break,
///     }
/// }
/// # Ok(()) }
/// ```
pub fn list(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage, StateError> {
    let page = wit::list_keys(prefix, cursor, limit)?;
    Ok(KeyPage { keys: page.keys, cursor: page.cursor })
}

/// Adds `delta` to the integer at `key` (unset counts as 0), atomically: concurrent increments
/// never lose one. The new value. The value is stored as decimal text, so [`get`] reads it as a
/// number.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// let visits = wasm_host_sdk::kv::increment("visits", 1)?;
/// # Ok(()) }
/// ```
pub fn increment(key: &str, delta: i64) -> Result<i64, StateError> {
    Ok(wit::increment(key, delta)?)
}

/// Sets `key` to `new` only if it currently holds `expected` (`None`: only if it is not set),
/// atomically; whether it did. Of several concurrent swaps from the same value, one wins.
///
/// ```no_run
/// # fn f() -> Result<(), wasm_host_sdk::kv::StateError> {
/// // Claim a name once.
/// let mine = wasm_host_sdk::kv::compare_and_swap("names/alice", None, b"user 42")?;
/// # Ok(()) }
/// ```
pub fn compare_and_swap(key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool, StateError> {
    Ok(wit::compare_and_swap(key, expected, new)?)
}
