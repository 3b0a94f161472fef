//! Host services behind the WIT imports: a shared key-value store ([`KeyValue`]) and topics
//! with a retained log ([`Topics`]), with an embedded durable backend ([`embedded`], redb), an
//! in-memory one for `--state memory` ([`memory`]) and a Redis backend ([`redis`]) for several
//! hosts.
//!
//! [`Services`] is the handle the runtime holds: it validates every argument against the
//! [`Limits`] once, for every backend, then calls the backend. Nothing here knows about HTTP or
//! wasm; `runtime/services.rs` adapts it to the WIT imports.

pub mod embedded;
pub mod memory;
pub mod redis;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// Longest key, in bytes. Keys travel in every request and index entry; 512 bytes is room for
/// any sensible path-like key (`users/42/settings`) while keeping key scans and the index small.
pub const MAX_KEY_LEN: usize = 512;

/// Largest value, in bytes. A value is copied whole into the guest's linear memory (64 MiB by
/// default) and, with Redis, through one network round trip; 1 MiB keeps both cheap. Larger
/// blobs belong in files or object storage.
pub const MAX_VALUE_SIZE: usize = 1 << 20;

/// Keys per list page when the guest asks for none (limit 0), and the most a page may hold:
/// a page is returned in one call, so it must fit comfortably in guest memory and one reply.
pub const DEFAULT_LIST_PAGE: u32 = 100;

/// The most keys one list call may return.
pub const MAX_LIST_PAGE: u32 = 1_000;

/// Longest topic name, in bytes (topic names are keys of the retained log).
pub const MAX_TOPIC_LEN: usize = 256;

/// Largest message, in bytes: like a value, copied whole into guest memory.
pub const MAX_MESSAGE_SIZE: usize = 256 << 10;

/// Messages retained per topic. Enough for a chat or a job queue to replay what a reconnecting
/// client missed, small enough that a busy topic cannot fill the disk.
pub const DEFAULT_RETAIN_COUNT: u64 = 1_000;

/// How long a message is retained. A client away longer than this starts from what is left;
/// a day covers reconnects after a laptop sleeps overnight.
pub const DEFAULT_RETAIN_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Messages returned by one read of the log; a subscription reads the next batch when it has
/// handed these out, so a replay of a long log never holds it all at once.
pub const READ_BATCH: u32 = 100;

/// What the services enforce; the defaults are the named constants of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Largest value, in bytes.
    pub max_value_size: usize,
    /// Keys per list page when none is asked for.
    pub default_list_page: u32,
    /// Most keys per list page.
    pub max_list_page: u32,
    /// Longest topic name, in bytes.
    pub max_topic_len: usize,
    /// Largest message, in bytes.
    pub max_message_size: usize,
    /// Messages retained per topic.
    pub retain_count: u64,
    /// Age past which messages are dropped.
    pub retain_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_len: MAX_KEY_LEN,
            max_value_size: MAX_VALUE_SIZE,
            default_list_page: DEFAULT_LIST_PAGE,
            max_list_page: MAX_LIST_PAGE,
            max_topic_len: MAX_TOPIC_LEN,
            max_message_size: MAX_MESSAGE_SIZE,
            retain_count: DEFAULT_RETAIN_COUNT,
            retain_age: DEFAULT_RETAIN_AGE,
        }
    }
}

/// Why a state operation failed. Every variant is an answer for the caller, never a crash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The store cannot be reached or used right now (Redis down, disk error, database locked
    /// by another process); the same call may succeed later.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The key (or topic name) is empty, too long or contains NUL.
    #[error("bad key: {0}")]
    BadKey(String),
    /// The value or message is larger than allowed.
    #[error("too large: {0}")]
    TooLarge(String),
    /// `increment` on a value that is not a decimal integer, or the result would overflow.
    #[error("not an integer: {0}")]
    NotAnInteger(String),
    /// Another argument is unusable (a list cursor that no list returned, a page size).
    #[error("bad argument: {0}")]
    BadArgument(String),
}

impl StateError {
    /// An [`StateError::Unavailable`] from any backend error.
    pub(crate) fn unavailable(e: impl fmt::Display) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// One page of keys from [`KeyValue::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in lexicographic (byte) order.
    pub keys: Vec<String>,
    /// Pass this to get the next page; `None` when this was the last.
    pub cursor: Option<String>,
}

/// One message of a topic's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its id: 1 for the first message of a topic, then increasing by one per publish.
    pub id: u64,
    /// Its payload.
    pub data: Vec<u8>,
}

/// A shared key-value store. Arguments arrive validated (see [`Services`]).
#[async_trait]
pub trait KeyValue: Send + Sync {
    /// The value of `key`, if it is set and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Sets `key` to `value`, expiring after `ttl` if given. Durable when it returns `Ok`.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError>;
    /// Removes `key`; whether it was set.
    async fn delete(&self, key: &str) -> Result<bool, StateError>;
    /// Whether `key` is set.
    async fn exists(&self, key: &str) -> Result<bool, StateError>;
    /// Up to `limit` keys starting with `prefix`, in order, after `cursor` (a key of a previous
    /// page) if given.
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage, StateError>;
    /// Adds `delta` to the decimal integer stored at `key` (0 when unset) atomically; the new
    /// value.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StateError>;
    /// Sets `key` to `new` only if its current value is `expected` (`None`: only if unset),
    /// atomically; whether it did.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StateError>;
}

/// Topics: an append-only, bounded log per topic plus wake-ups for waiters.
#[async_trait]
pub trait Topics: Send + Sync {
    /// Appends `data` to `topic`; its id. Durable and visible to readers when it returns.
    async fn publish(&self, topic: &str, data: &[u8]) -> Result<u64, StateError>;
    /// The id of the last message published to `topic` (0 if none ever was).
    async fn last_id(&self, topic: &str) -> Result<u64, StateError>;
    /// Up to `limit` retained messages of `topic` with an id above `after`, oldest first.
    async fn read(&self, topic: &str, after: u64, limit: u32) -> Result<Vec<Message>, StateError>;
    /// Waits until the last id of `topic` is above `after`, or `until`; returns the last id
    /// known then. Returns at once if it already is, so a publish between a reader's `read` and
    /// its `wait` is never missed. May return early; callers read again and wait again.
    async fn wait(&self, topic: &str, after: u64, until: tokio::time::Instant) -> Result<u64, StateError>;
}

/// Where state lives, as chosen with `--state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A redb database `state.redb` in this directory (created on first use).
    Dir(PathBuf),
    /// In memory: lost when the host stops.
    Memory,
    /// A Redis server, by URL (`redis://HOST:PORT[/DB]`).
    Redis(String),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Dir(dir) => write!(f, "{}", dir.display()),
            Backend::Memory => f.write_str("memory"),
            Backend::Redis(url) => f.write_str(url),
        }
    }
}

/// The services every handler instance reaches: one keyspace and one set of topics, shared by
/// every handler of the host. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    kv: Arc<dyn KeyValue>,
    topics: Arc<dyn Topics>,
    limits: Limits,
}

impl Services {
    /// Opens `backend`. Redis and the embedded file connect or open lazily, so this does not
    /// fail when Redis is down or the file is not there yet; calls then answer
    /// [`StateError::Unavailable`] until it is reachable. Must run inside a tokio runtime.
    pub fn open(backend: &Backend, limits: Limits) -> Result<Self, StateError> {
        match backend {
            Backend::Dir(dir) => {
                let store = Arc::new(embedded::Embedded::file(dir.join(embedded::FILE_NAME), limits));
                Ok(Self { kv: store.clone(), topics: store, limits })
            }
            Backend::Memory => {
                let store = Arc::new(memory::Memory::new(limits));
                Ok(Self { kv: store.clone(), topics: store, limits })
            }
            Backend::Redis(url) => {
                let store = Arc::new(redis::Redis::open(url, limits)?);
                Ok(Self { kv: store.clone(), topics: store, limits })
            }
        }
    }

    /// Services whose every call answers [`StateError::Unavailable`] with `reason` (for
    /// commands that load handlers without serving them).
    pub fn disabled(reason: &str) -> Self {
        let off = Arc::new(Disabled(reason.to_owned()));
        Self { kv: off.clone(), topics: off, limits: Limits::default() }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn check_key(&self, key: &str) -> Result<(), StateError> {
        check_name("key", key, self.limits.max_key_len)
    }

    fn check_value(&self, what: &str, value: &[u8], max: usize) -> Result<(), StateError> {
        if value.len() > max {
            return Err(StateError::TooLarge(format!(
                "{what} of {} bytes is over the limit of {max} bytes",
                value.len()
            )));
        }
        Ok(())
    }

    /// See [`KeyValue::get`].
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.check_key(key)?;
        self.kv.get(key).await
    }

    /// See [`KeyValue::set`]; a zero `ttl` is refused.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError> {
        self.check_key(key)?;
        self.check_value("value", value, self.limits.max_value_size)?;
        if ttl.is_some_and(|t| t.is_zero()) {
            return Err(StateError::BadArgument("a time-to-live must be longer than zero".into()));
        }
        self.kv.set(key, value, ttl).await
    }

    /// See [`KeyValue::delete`].
    pub async fn delete(&self, key: &str) -> Result<bool, StateError> {
        self.check_key(key)?;
        self.kv.delete(key).await
    }

    /// See [`KeyValue::exists`].
    pub async fn exists(&self, key: &str) -> Result<bool, StateError> {
        self.check_key(key)?;
        self.kv.exists(key).await
    }

    /// See [`KeyValue::list`]; `limit` 0 means the default page size.
    pub async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage, StateError> {
        if !prefix.is_empty() {
            check_name("prefix", prefix, self.limits.max_key_len)?;
        }
        if let Some(cursor) = cursor {
            check_name("cursor", cursor, self.limits.max_key_len)
                .map_err(|e| StateError::BadArgument(e.to_string()))?;
            if !cursor.starts_with(prefix) {
                return Err(StateError::BadArgument(format!(
                    "cursor {cursor:?} does not come from a list of prefix {prefix:?}"
                )));
            }
        }
        let limit = match limit {
            0 => self.limits.default_list_page,
            n if n > self.limits.max_list_page => {
                return Err(StateError::BadArgument(format!(
                    "a page of {n} keys is over the limit of {}",
                    self.limits.max_list_page
                )));
            }
            n => n,
        };
        self.kv.list(prefix, cursor, limit).await
    }

    /// See [`KeyValue::increment`].
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, StateError> {
        self.check_key(key)?;
        self.kv.increment(key, delta).await
    }

    /// See [`KeyValue::compare_and_swap`].
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StateError> {
        self.check_key(key)?;
        self.check_value("value", new, self.limits.max_value_size)?;
        self.kv.compare_and_swap(key, expected, new).await
    }

    /// See [`Topics::publish`].
    pub async fn publish(&self, topic: &str, data: &[u8]) -> Result<u64, StateError> {
        check_name("topic", topic, self.limits.max_topic_len)?;
        self.check_value("message", data, self.limits.max_message_size)?;
        self.topics.publish(topic, data).await
    }

    /// Waits until `topic` has a message after `after`, or `until`: the id of the last message
    /// known then (above `after` if one came). May return early without one; call again.
    pub async fn wait(&self, topic: &str, after: u64, until: Instant) -> Result<u64, StateError> {
        self.topics.wait(topic, after, tokio::time::Instant::from_std(until)).await
    }

    /// Starts reading `topic` after message `after`, or (with `None`) after the last message
    /// published so far, so that only later messages are delivered.
    pub async fn subscribe(&self, topic: &str, after: Option<u64>) -> Result<Subscription, StateError> {
        check_name("topic", topic, self.limits.max_topic_len)?;
        let after = match after {
            Some(id) => id,
            None => self.topics.last_id(topic).await?,
        };
        Ok(Subscription {
            topics: self.topics.clone(),
            topic: topic.to_owned(),
            after,
            buffered: Default::default(),
        })
    }
}

/// Checks a key, prefix, topic name or cursor: not empty, at most `max` bytes, no NUL.
fn check_name(what: &str, name: &str, max: usize) -> Result<(), StateError> {
    if name.is_empty() {
        return Err(StateError::BadKey(format!("a {what} must not be empty")));
    }
    if name.len() > max {
        return Err(StateError::BadKey(format!(
            "a {what} of {} bytes is over the limit of {max} bytes",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(StateError::BadKey(format!("a {what} must not contain NUL: {name:?}")));
    }
    Ok(())
}

/// A position in a topic's log: hands out the messages after it, in order, waiting for new
/// ones when it has caught up.
pub struct Subscription {
    topics: Arc<dyn Topics>,
    topic: String,
    /// The id of the last message handed out (or the starting point).
    after: u64,
    buffered: std::collections::VecDeque<Message>,
}

impl Subscription {
    /// The id of the last message handed out, or the starting point.
    pub fn position(&self) -> u64 {
        self.after
    }

    /// The topic it reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next message, waiting for it until `until`; `None` if none came by then. Retained
    /// messages are replayed first.
    pub async fn next(&mut self, until: Instant) -> Result<Option<Message>, StateError> {
        let until = tokio::time::Instant::from_std(until);
        let mut latest = 0;
        loop {
            if let Some(message) = self.buffered.pop_front() {
                self.after = message.id;
                return Ok(Some(message));
            }
            let batch = self.topics.read(&self.topic, self.after, READ_BATCH).await?;
            if !batch.is_empty() {
                self.buffered.extend(batch);
                continue;
            }
            // The log says there is more, but nothing above `after` is retained: those
            // messages expired; go on from the newest.
            if latest > self.after {
                self.after = latest;
            }
            if tokio::time::Instant::now() >= until {
                return Ok(None);
            }
            latest = self.topics.wait(&self.topic, self.after, until).await?;
        }
    }
}

/// The backend of [`Services::disabled`].
struct Disabled(String);

#[async_trait]
impl KeyValue for Disabled {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn set(&self, _: &str, _: &[u8], _: Option<Duration>) -> Result<(), StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn delete(&self, _: &str) -> Result<bool, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn exists(&self, _: &str) -> Result<bool, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn list(&self, _: &str, _: Option<&str>, _: u32) -> Result<KeyPage, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn increment(&self, _: &str, _: i64) -> Result<i64, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn compare_and_swap(&self, _: &str, _: Option<&[u8]>, _: &[u8]) -> Result<bool, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
}

#[async_trait]
impl Topics for Disabled {
    async fn publish(&self, _: &str, _: &[u8]) -> Result<u64, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn last_id(&self, _: &str) -> Result<u64, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn read(&self, _: &str, _: u64, _: u32) -> Result<Vec<Message>, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
    async fn wait(&self, _: &str, _: u64, _: tokio::time::Instant) -> Result<u64, StateError> {
        Err(StateError::Unavailable(self.0.clone()))
    }
}

/// Waits on a topic's watch of last ids until it is above `after` or `until` passes; the last
/// id seen then. The part of [`Topics::wait`] every backend shares, once it holds a receiver
/// that cannot miss a publish.
pub(crate) async fn wait_above(
    mut rx: tokio::sync::watch::Receiver<u64>,
    after: u64,
    until: tokio::time::Instant,
) -> u64 {
    loop {
        let last = *rx.borrow_and_update();
        if last > after {
            return last;
        }
        match tokio::time::timeout_at(until, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return last,
        }
    }
}

/// A [`KeyPage`] being filled from keys in order (those of the prefix, live, after the cursor).
pub(crate) struct PageBuilder {
    limit: usize,
    page: KeyPage,
}

impl PageBuilder {
    pub(crate) fn new(limit: u32) -> Self {
        Self { limit: limit as usize, page: KeyPage::default() }
    }

    /// Adds `key`; `false` when the page was full already: there is at least one more key, so
    /// the next page starts after the last one here (the cursor), and the scan stops.
    pub(crate) fn offer(&mut self, key: &str) -> bool {
        if self.page.keys.len() == self.limit {
            self.page.cursor = self.page.keys.last().cloned();
            return false;
        }
        self.page.keys.push(key.to_owned());
        true
    }

    pub(crate) fn finish(self) -> KeyPage {
        self.page
    }
}

/// Parses an integer stored as decimal text (what `increment` writes, as Redis's `INCRBY` does).
pub(crate) fn parse_counter(value: &[u8]) -> Result<i64, StateError> {
    std::str::from_utf8(value).ok().and_then(|s| s.parse::<i64>().ok()).ok_or_else(|| {
        StateError::NotAnInteger(format!(
            "the value {:?} is not a decimal integer",
            String::from_utf8_lossy(&value[..value.len().min(40)])
        ))
    })
}

/// `current + delta`, or an error naming the overflow.
pub(crate) fn add_counter(current: i64, delta: i64) -> Result<i64, StateError> {
    current
        .checked_add(delta)
        .ok_or_else(|| StateError::NotAnInteger(format!("{current} + {delta} overflows a 64-bit integer")))
}

/// The default state directory for a routes directory: `$XDG_STATE_HOME/wasm-host/NAME-HASH`
/// (or `~/.local/state/wasm-host/NAME-HASH`), where NAME is the routes directory's name and
/// HASH identifies its absolute path, so two sites never share state by accident and one site
/// keeps its state across restarts. Without either variable: `.wasm-host-state` in the current
/// directory. Nothing is created until a handler first uses state.
pub fn default_dir(routes_dir: &std::path::Path) -> PathBuf {
    use sha2::Digest as _;
    let absolute = std::fs::canonicalize(routes_dir).unwrap_or_else(|_| routes_dir.to_path_buf());
    let hash = sha2::Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let hash: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    let name = absolute.file_name().map_or_else(|| "routes".into(), |n| n.to_string_lossy().into_owned());
    let base = match (std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME")) {
        (Some(state), _) if !state.is_empty() => PathBuf::from(state),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".local/state"),
        _ => return PathBuf::from(".wasm-host-state"),
    };
    base.join("wasm-host").join(format!("{name}-{hash}"))
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `memory`, `redis://HOST:PORT[/DB]` (also `rediss://`, `redis+unix://`), or a directory.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            return Ok(Backend::Memory);
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("redis+unix://") {
            redis::check_url(s)?;
            return Ok(Backend::Redis(s.to_owned()));
        }
        if s.is_empty() {
            return Err("expected a directory, `memory` or `redis://HOST:PORT[/DB]`".into());
        }
        Ok(Backend::Dir(PathBuf::from(s)))
    }
}
