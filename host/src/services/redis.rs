//! The Redis backend, for several hosts sharing state (`--state redis://HOST:PORT[/DB]`).
//!
//! - Key-value: plain string keys under `wasm-host:kv:`, plus a sorted set `wasm-host:kv-index`
//!   of every key so that listing by prefix is ordered and pages exactly like the embedded
//!   backend (`ZRANGE .. BYLEX`; `SCAN` could repeat or skip keys between pages). Writes that
//!   touch both run in `MULTI`; compare-and-swap is a Lua script (atomic on the server).
//! - Topics: one Redis Stream per topic (`wasm-host:topic:NAME`) with explicit ids `0-N`, N
//!   from a counter (`wasm-host:topic-seq:NAME`), so ids are 1, 2, 3… like the embedded
//!   backend; trimmed by count (`MAXLEN`) and age (a time field) in the publishing script.
//! - Wake-ups across hosts: each host runs one listener task on its own connection that does
//!   `XREAD BLOCK` on every topic that has local waiters and updates their watches, so a
//!   publish through any host wakes waiters on every host.
//!
//! Commands go through a [`ConnectionManager`], which reconnects by itself: while Redis is
//! away calls answer [`StateError::Unavailable`] within [`RESPONSE_TIMEOUT`], and they work
//! again once it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadReply};
use tokio::sync::{Notify, watch};

use super::{KeyPage, KeyValue, Limits, Message, StateError, Topics};

/// Time a command may take before the call fails as unavailable. A Redis that went away
/// refuses or resets the connection at once; this bounds the other case, a Redis that hangs,
/// so a request learns of it well before its own deadline. Not lower: when one publish wakes
/// 10,000 waiters (`make bench-state`) their reads queue behind each other on a loaded 2-core
/// machine, and at 1 s about one in seven of them timed out (503).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time to establish a connection, for the same reason.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one `XREAD BLOCK` of the listener waits. Topics that get their first local waiter
/// join the next round, so this bounds how late they start hearing other hosts (their own
/// reads cover the gap, see [`Listener`]).
const LISTEN_BLOCK: Duration = Duration::from_millis(100);

/// Pause before the listener reconnects after Redis went away.
const LISTEN_RETRY: Duration = Duration::from_millis(200);

const KV_PREFIX: &str = "wasm-host:kv:";
const KV_INDEX: &str = "wasm-host:kv-index";
const TOPIC_PREFIX: &str = "wasm-host:topic:";
const SEQ_PREFIX: &str = "wasm-host:topic-seq:";

/// KEYS: value key, index. ARGV: has-expected (0/1), expected, new, user key.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[4])
return 1
";

/// KEYS: stream, counter. ARGV: data, max count, now (ms), cutoff (ms).
const PUBLISH_SCRIPT: &str = r"
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '0-' .. id, 'd', ARGV[1], 't', ARGV[3])
local cutoff = tonumber(ARGV[4])
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
for _, entry in ipairs(oldest) do
  local fields = entry[2]
  local t = nil
  for i = 1, #fields, 2 do
    if fields[i] == 't' then t = tonumber(fields[i + 1]) end
  end
  if t == nil or t >= cutoff or entry[1] == '0-' .. id then break end
  redis.call('XDEL', KEYS[1], entry[1])
end
return id
";

/// The Redis-backed store.
pub struct Redis {
    manager: ConnectionManager,
    limits: Limits,
    cas: redis::Script,
    publish: redis::Script,
    listener: Arc<Listener>,
}

impl Redis {
    /// Connects lazily to `url` and starts the listener task. Fails only for a malformed URL.
    /// Must run inside a tokio runtime.
    pub fn open(url: &str, limits: Limits) -> Result<Self, StateError> {
        let client = redis::Client::open(url)
            .map_err(|e| StateError::BadArgument(format!("invalid Redis URL {url:?}: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(StateError::unavailable)?;
        let listener = Arc::new(Listener::default());
        tokio::spawn(listen(client, Arc::downgrade(&listener)));
        Ok(Self {
            manager,
            limits,
            cas: redis::Script::new(CAS_SCRIPT),
            publish: redis::Script::new(PUBLISH_SCRIPT),
            listener,
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }
}

/// Maps a Redis error; "not an integer" and overflow replies of `INCRBY` become
/// [`StateError::NotAnInteger`].
fn redis_error(e: redis::RedisError) -> StateError {
    let text = e.to_string();
    if text.contains("not an integer") || text.contains("overflow") {
        StateError::NotAnInteger(format!(
            "the stored value is not a decimal integer or the result overflows ({text})"
        ))
    } else {
        StateError::Unavailable(format!("redis: {text}"))
    }
}

fn kv_key(key: &str) -> String {
    format!("{KV_PREFIX}{key}")
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `0-N` → N.
fn parse_id(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

#[async_trait]
impl KeyValue for Redis {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        redis::cmd("GET").arg(kv_key(key)).query_async(&mut self.conn()).await.map_err(redis_error)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError> {
        let mut set = redis::cmd("SET");
        set.arg(kv_key(key)).arg(value);
        if let Some(ttl) = ttl {
            set.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        redis::pipe()
            .atomic()
            .add_command(set)
            .ignore()
            .cmd("ZADD")
            .arg(KV_INDEX)
            .arg(0)
            .arg(key)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_error)
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let (deleted,): (u64,) = redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(kv_key(key))
            .cmd("ZREM")
            .arg(KV_INDEX)
            .arg(key)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        Ok(deleted > 0)
    }

    async fn exists(&self, key: &str) -> Result<bool, StateError> {
        let n: u64 =
            redis::cmd("EXISTS").arg(kv_key(key)).query_async(&mut self.conn()).await.map_err(redis_error)?;
        Ok(n > 0)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage, StateError> {
        let start = match cursor {
            Some(c) => format!("({c}"),
            None => format!("[{prefix}"),
        };
        let mut conn = self.conn();
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(KV_INDEX)
            .arg(start)
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(u64::from(limit) + 1)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let mut scanned: Vec<String> = members.into_iter().take_while(|k| k.starts_with(prefix)).collect();
        let more = scanned.len() > limit as usize;
        scanned.truncate(limit as usize);
        if scanned.is_empty() {
            return Ok(KeyPage::default());
        }
        // Expired keys leave their index entry behind: skip them and clean the index.
        let mut exists = redis::pipe();
        for key in &scanned {
            exists.cmd("EXISTS").arg(kv_key(key));
        }
        let present: Vec<u64> = exists.query_async(&mut conn).await.map_err(redis_error)?;
        let mut page = KeyPage { keys: Vec::new(), cursor: more.then(|| scanned.last().cloned()).flatten() };
        let mut stale = Vec::new();
        for (key, present) in scanned.into_iter().zip(present) {
            if present > 0 {
                page.keys.push(key);
            } else {
                stale.push(key);
            }
        }
        if !stale.is_empty() {
            let _: Result<(), _> = redis::cmd("ZREM").arg(KV_INDEX).arg(&stale).query_async(&mut conn).await;
        }
        Ok(page)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StateError> {
        let (value,): (i64,) = redis::pipe()
            .atomic()
            .cmd("INCRBY")
            .arg(kv_key(key))
            .arg(delta)
            .cmd("ZADD")
            .arg(KV_INDEX)
            .arg(0)
            .arg(key)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        Ok(value)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StateError> {
        let swapped: i64 = self
            .cas
            .key(kv_key(key))
            .key(KV_INDEX)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(key)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        Ok(swapped == 1)
    }
}

#[async_trait]
impl Topics for Redis {
    async fn publish(&self, topic: &str, data: &[u8]) -> Result<u64, StateError> {
        let now = now_ms();
        let cutoff = now.saturating_sub(self.limits.retain_age.as_millis() as u64);
        self.publish
            .key(format!("{TOPIC_PREFIX}{topic}"))
            .key(format!("{SEQ_PREFIX}{topic}"))
            .arg(data)
            .arg(self.limits.retain_count.max(1))
            .arg(now)
            .arg(cutoff)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_error)
    }

    async fn last_id(&self, topic: &str) -> Result<u64, StateError> {
        let last: Option<u64> = redis::cmd("GET")
            .arg(format!("{SEQ_PREFIX}{topic}"))
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        Ok(last.unwrap_or(0))
    }

    async fn read(&self, topic: &str, after: u64, limit: u32) -> Result<Vec<Message>, StateError> {
        if after == u64::MAX {
            return Ok(Vec::new());
        }
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{TOPIC_PREFIX}{topic}"))
            .arg(format!("0-{}", after + 1))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_error)?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|entry| {
                let id = parse_id(&entry.id)?;
                let data: Vec<u8> = entry.get("d")?;
                Some(Message { id, data })
            })
            .collect())
    }

    async fn wait(&self, topic: &str, after: u64, until: tokio::time::Instant) -> Result<u64, StateError> {
        let rx = self.listener.watch(topic);
        Ok(super::wait_above(rx, after, until).await)
    }
}

/// The topics this host has waiters on, each with the last id the listener has seen.
///
/// A topic's watch starts at 0 ("not known yet"). On its next round the listener reads the
/// topic's counter and publishes it to the watch before it starts `XREAD`ing from there: a
/// waiter that checked the log before the listener knew its topic is woken by that update and
/// reads again, so a message published on another host in between is not lost.
#[derive(Default)]
struct Listener {
    watches: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Signalled when a topic gets its first waiter (wakes an idle listener).
    added: Notify,
}

impl Listener {
    fn watch(&self, topic: &str) -> watch::Receiver<u64> {
        let mut watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = watches.get(topic) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(0);
        watches.insert(topic.to_owned(), tx);
        self.added.notify_one();
        rx
    }

    /// The topics with waiters (forgetting those without).
    fn topics(&self) -> Vec<String> {
        let mut watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        watches.retain(|_, tx| tx.receiver_count() > 0);
        watches.keys().cloned().collect()
    }

    fn update(&self, topic: &str, last: u64) {
        let watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = watches.get(topic) {
            tx.send_if_modified(|current| {
                let newer = last > *current;
                if newer {
                    *current = last;
                }
                newer
            });
        }
    }
}

/// The listener task: runs until the backend is dropped.
async fn listen(client: redis::Client, listener: std::sync::Weak<Listener>) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(LISTEN_BLOCK + RESPONSE_TIMEOUT));
    let mut down_logged = false;
    loop {
        if listener.strong_count() == 0 {
            return;
        }
        let mut conn = match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(conn) => conn,
            Err(e) => {
                if !down_logged {
                    tracing::warn!("redis is unreachable ({e}); state calls fail until it is back");
                    down_logged = true;
                }
                tokio::time::sleep(LISTEN_RETRY).await;
                continue;
            }
        };
        if down_logged {
            tracing::info!("redis is reachable again");
            down_logged = false;
        }
        // Every (re)connection starts from each topic's counter: messages published while we
        // were away are then found by the waiters' own reads.
        let mut positions: HashMap<String, u64> = HashMap::new();
        loop {
            let Some(shared) = listener.upgrade() else { return };
            let topics = shared.topics();
            if topics.is_empty() {
                // `notify_one` keeps a permit, so a topic added just before this still wakes it.
                let _ = tokio::time::timeout(Duration::from_secs(1), shared.added.notified()).await;
                continue;
            }
            positions.retain(|topic, _| topics.contains(topic));
            let mut failed = false;
            for topic in &topics {
                if positions.contains_key(topic) {
                    continue;
                }
                let last: Result<Option<u64>, _> =
                    redis::cmd("GET").arg(format!("{SEQ_PREFIX}{topic}")).query_async(&mut conn).await;
                match last {
                    Ok(last) => {
                        let last = last.unwrap_or(0);
                        positions.insert(topic.clone(), last);
                        shared.update(topic, last);
                    }
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
            let mut xread = redis::cmd("XREAD");
            xread.arg("COUNT").arg(1000).arg("BLOCK").arg(LISTEN_BLOCK.as_millis() as u64).arg("STREAMS");
            let order: Vec<(&String, u64)> = positions.iter().map(|(t, p)| (t, *p)).collect();
            for (topic, _) in &order {
                xread.arg(format!("{TOPIC_PREFIX}{topic}"));
            }
            for (_, position) in &order {
                xread.arg(format!("0-{position}"));
            }
            drop(shared);
            let reply: Result<Option<StreamReadReply>, _> = xread.query_async(&mut conn).await;
            let Some(shared) = listener.upgrade() else { return };
            match reply {
                Ok(Some(reply)) => {
                    for stream in reply.keys {
                        let Some(topic) = stream.key.strip_prefix(TOPIC_PREFIX) else { continue };
                        if let Some(last) = stream.ids.iter().filter_map(|e| parse_id(&e.id)).max() {
                            positions.insert(topic.to_owned(), last);
                            shared.update(topic, last);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("redis listener lost its connection ({e}); reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// Checks that `url` is a Redis URL the client accepts, naming the problem if not.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url).map(|_| ()).map_err(|e| format!("invalid Redis URL {url:?}: {e}"))
}
