//! The embedded backend: a redb database in a file (`--state DIR`, the default; durable).
//!
//! Writes go through one writer thread that applies every queued operation in one write
//! transaction and commits once (group commit): a commit is an fsync, so batching is what lets
//! a thousand concurrent increments finish in a few commits instead of a thousand. A write is
//! acknowledged only after its transaction committed, so an acknowledged write survives
//! `kill -9`. Reads run on tokio's blocking pool in their own read transactions (redb is MVCC:
//! they never wait for the writer).
//!
//! Wake-ups: one `tokio::sync::watch` per topic with waiters, holding the topic's last id,
//! updated by the writer after each commit.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase as _, ReadableTable, TableDefinition};
use tokio::sync::{OnceCell, oneshot, watch};

use super::{
    KeyPage, KeyValue, Limits, Message, PageBuilder, StateError, Topics, add_counter, parse_counter,
};

/// The database file's name inside the state directory.
pub const FILE_NAME: &str = "state.redb";

/// Key → 8-byte big-endian expiry (Unix milliseconds, 0 = never) followed by the value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (topic, id) → 8-byte big-endian publish time (Unix milliseconds) followed by the message.
const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("topic_log");
/// Topic → the id of its last message (kept when the log is trimmed, so ids never repeat).
const LAST_ID: TableDefinition<&str, u64> = TableDefinition::new("topic_last_id");

/// Operations applied in one write transaction at most. Bounds the latency a batch adds to
/// its first operation while still amortising the commit's fsync over many writers.
const MAX_BATCH: usize = 512;

/// The redb-backed store.
pub struct Embedded {
    path: PathBuf,
    limits: Limits,
    opened: OnceCell<Arc<Opened>>,
    watches: Arc<Watches>,
}

/// Per-topic last ids for waiters.
type Watches = Mutex<HashMap<String, watch::Sender<u64>>>;

/// An open database and its writer thread (which stops when this is dropped).
struct Opened {
    db: Arc<Database>,
    writer: mpsc::Sender<Job>,
}

/// One write operation and where its result goes.
struct Job {
    op: Op,
    done: oneshot::Sender<Result<Done, StateError>>,
}

enum Op {
    Set { key: String, value: Vec<u8>, expires: u64 },
    Delete { key: String },
    Increment { key: String, delta: i64 },
    Cas { key: String, expected: Option<Vec<u8>>, new: Vec<u8> },
    Publish { topic: String, data: Vec<u8> },
}

enum Done {
    Unit,
    Bool(bool),
    Int(i64),
    Id(u64),
}

impl Embedded {
    /// A store in the file `path`, created (with its directory) on first use.
    pub fn file(path: PathBuf, limits: Limits) -> Self {
        Self { path, limits, opened: OnceCell::new(), watches: Arc::default() }
    }

    /// The open database, opening it on first use. A failed open is retried by the next call.
    async fn opened(&self) -> Result<&Arc<Opened>, StateError> {
        self.opened
            .get_or_try_init(|| async {
                let path = self.path.clone();
                let db = tokio::task::spawn_blocking(move || open(&path))
                    .await
                    .map_err(StateError::unavailable)??;
                let db = Arc::new(db);
                let (writer, jobs) = mpsc::channel();
                let (thread_db, watches, limits) = (db.clone(), self.watches.clone(), self.limits);
                std::thread::Builder::new()
                    .name("wasm-host-state-writer".into())
                    .spawn(move || write_loop(&thread_db, &jobs, &watches, &limits))
                    .map_err(StateError::unavailable)?;
                Ok(Arc::new(Opened { db, writer }))
            })
            .await
    }

    async fn write(&self, op: Op) -> Result<Done, StateError> {
        let opened = self.opened().await?;
        let (done, result) = oneshot::channel();
        opened
            .writer
            .send(Job { op, done })
            .map_err(|_| StateError::Unavailable("the state writer has stopped".into()))?;
        result.await.map_err(|_| StateError::Unavailable("the state writer has stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.opened().await?.db.clone();
        tokio::task::spawn_blocking(move || {
            db.begin_read().map_err(redb::Error::from).and_then(|txn| f(&txn))
        })
        .await
        .map_err(StateError::unavailable)?
        .map_err(StateError::unavailable)
    }
}

/// Opens (creating if needed) the database and its tables.
fn open(path: &PathBuf) -> Result<Database, StateError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            StateError::Unavailable(format!("cannot create the state directory {}: {e}", dir.display()))
        })?;
    }
    let db = Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            StateError::Unavailable(format!("the state file {} is in use by another process", path.display()))
        }
        e => StateError::Unavailable(format!("cannot open the state file {}: {e}", path.display())),
    })?;
    let txn = db.begin_write().map_err(StateError::unavailable)?;
    txn.open_table(KV).map_err(StateError::unavailable)?;
    txn.open_table(LOG).map_err(StateError::unavailable)?;
    txn.open_table(LAST_ID).map_err(StateError::unavailable)?;
    txn.commit().map_err(StateError::unavailable)?;
    Ok(db)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Splits a stored KV entry into (expiry, value).
fn split(stored: &[u8]) -> (u64, &[u8]) {
    match stored.split_first_chunk::<8>() {
        Some((expiry, value)) => (u64::from_be_bytes(*expiry), value),
        None => (0, &[]),
    }
}

fn join(expires: u64, value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + value.len());
    stored.extend_from_slice(&expires.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

fn live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
}

/// The writer thread: batches queued jobs into one transaction until every sender is gone.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Job>, watches: &Watches, limits: &Limits) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match apply_batch(db, &batch, limits) {
            Ok(results) => {
                let mut published = Vec::new();
                for (job, result) in batch.into_iter().zip(results) {
                    if let (Op::Publish { topic, .. }, Ok(Done::Id(id))) = (&job.op, &result) {
                        published.push((topic.clone(), *id));
                    }
                    let _ = job.done.send(result);
                }
                notify(watches, published);
            }
            Err(e) => {
                tracing::warn!("state write failed: {e}");
                for job in batch {
                    let _ = job.done.send(Err(StateError::unavailable(&e)));
                }
            }
        }
    }
}

/// Tells waiters of each topic its new last id, dropping watches nobody waits on any more.
fn notify(watches: &Watches, published: Vec<(String, u64)>) {
    if published.is_empty() {
        return;
    }
    let mut watches = watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (topic, id) in published {
        if let Some(tx) = watches.get(&topic) {
            if tx.receiver_count() == 0 {
                watches.remove(&topic);
            } else {
                tx.send_replace(id);
            }
        }
    }
}

/// Applies every job in one transaction; per-job results, or the error that aborted it all.
fn apply_batch(
    db: &Database,
    batch: &[Job],
    limits: &Limits,
) -> Result<Vec<Result<Done, StateError>>, redb::Error> {
    let txn = db.begin_write()?;
    let now = now_ms();
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut kv = txn.open_table(KV)?;
        let mut log = txn.open_table(LOG)?;
        let mut last_ids = txn.open_table(LAST_ID)?;
        for job in batch {
            // The live value of `key` with its expiry.
            let current =
                |kv: &redb::Table<&str, &[u8]>, key: &str| -> Result<Option<(u64, Vec<u8>)>, redb::Error> {
                    Ok(kv.get(key)?.and_then(|stored| {
                        let (expires, value) = split(stored.value());
                        live(expires, now).then(|| (expires, value.to_vec()))
                    }))
                };
            let result = match &job.op {
                Op::Set { key, value, expires } => {
                    kv.insert(key.as_str(), join(*expires, value).as_slice())?;
                    Ok(Done::Unit)
                }
                Op::Delete { key } => {
                    let existed = current(&kv, key)?.is_some();
                    kv.remove(key.as_str())?;
                    Ok(Done::Bool(existed))
                }
                Op::Increment { key, delta } => {
                    // Like Redis's INCRBY: an unset key counts as 0, a time-to-live is kept.
                    let (expires, value) = match current(&kv, key)? {
                        Some((expires, value)) => (expires, parse_counter(&value)),
                        None => (0, Ok(0)),
                    };
                    match value.and_then(|v| add_counter(v, *delta)) {
                        Ok(new) => {
                            kv.insert(key.as_str(), join(expires, new.to_string().as_bytes()).as_slice())?;
                            Ok(Done::Int(new))
                        }
                        Err(e) => Err(e),
                    }
                }
                Op::Cas { key, expected, new } => {
                    if current(&kv, key)?.map(|(_, value)| value) == *expected {
                        kv.insert(key.as_str(), join(0, new).as_slice())?;
                        Ok(Done::Bool(true))
                    } else {
                        Ok(Done::Bool(false))
                    }
                }
                Op::Publish { topic, data } => {
                    let id = last_ids.get(topic.as_str())?.map_or(0, |v| v.value()) + 1;
                    last_ids.insert(topic.as_str(), id)?;
                    log.insert((topic.as_str(), id), join(now, data).as_slice())?;
                    trim(&mut log, topic, id, now, limits)?;
                    Ok(Done::Id(id))
                }
            };
            results.push(result);
        }
    }
    txn.commit()?;
    Ok(results)
}

/// Drops the messages of `topic` beyond the retained count or older than the retained age.
fn trim(
    log: &mut redb::Table<(&str, u64), &[u8]>,
    topic: &str,
    last: u64,
    now: u64,
    limits: &Limits,
) -> Result<(), redb::Error> {
    let keep_from = last.saturating_sub(limits.retain_count.saturating_sub(1)).max(1);
    let cutoff = now.saturating_sub(limits.retain_age.as_millis() as u64);
    let mut doomed = Vec::new();
    for entry in log.range((topic, 0)..(topic, last))? {
        let (key, value) = entry?;
        let id = key.value().1;
        let (published, _) = split(value.value());
        if id >= keep_from && published >= cutoff {
            break;
        }
        doomed.push(id);
        // Bounded work per publish; the rest goes with the next ones.
        if doomed.len() >= 1_000 {
            break;
        }
    }
    for id in doomed {
        log.remove((topic, id))?;
    }
    Ok(())
}

#[async_trait]
impl KeyValue for Embedded {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key = key.to_owned();
        self.read(move |txn| {
            let kv = txn.open_table(KV)?;
            let now = now_ms();
            Ok(kv.get(key.as_str())?.and_then(|stored| {
                let (expires, value) = split(stored.value());
                live(expires, now).then(|| value.to_vec())
            }))
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError> {
        let expires = ttl.map_or(0, |ttl| now_ms().saturating_add(ttl.as_millis().max(1) as u64));
        self.write(Op::Set { key: key.to_owned(), value: value.to_vec(), expires }).await.map(|_| ())
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        match self.write(Op::Delete { key: key.to_owned() }).await? {
            Done::Bool(existed) => Ok(existed),
            _ => unreachable!("delete answers a bool"),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StateError> {
        Ok(self.get(key).await?.is_some())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage, StateError> {
        let (prefix, cursor) = (prefix.to_owned(), cursor.map(str::to_owned));
        self.read(move |txn| {
            let kv = txn.open_table(KV)?;
            let now = now_ms();
            let start = match &cursor {
                Some(c) => Bound::Excluded(c.as_str()),
                None => Bound::Included(prefix.as_str()),
            };
            let mut page = PageBuilder::new(limit);
            for entry in kv.range::<&str>((start, Bound::Unbounded))? {
                let (key, stored) = entry?;
                let key = key.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                if live(split(stored.value()).0, now) && !page.offer(key) {
                    break;
                }
            }
            Ok(page.finish())
        })
        .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StateError> {
        match self.write(Op::Increment { key: key.to_owned(), delta }).await? {
            Done::Int(value) => Ok(value),
            _ => unreachable!("increment answers an integer"),
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StateError> {
        let op = Op::Cas { key: key.to_owned(), expected: expected.map(<[u8]>::to_vec), new: new.to_vec() };
        match self.write(op).await? {
            Done::Bool(swapped) => Ok(swapped),
            _ => unreachable!("compare-and-swap answers a bool"),
        }
    }
}

#[async_trait]
impl Topics for Embedded {
    async fn publish(&self, topic: &str, data: &[u8]) -> Result<u64, StateError> {
        match self.write(Op::Publish { topic: topic.to_owned(), data: data.to_vec() }).await? {
            Done::Id(id) => Ok(id),
            _ => unreachable!("publish answers an id"),
        }
    }

    async fn last_id(&self, topic: &str) -> Result<u64, StateError> {
        let topic = topic.to_owned();
        self.read(move |txn| Ok(txn.open_table(LAST_ID)?.get(topic.as_str())?.map_or(0, |v| v.value()))).await
    }

    async fn read(&self, topic: &str, after: u64, limit: u32) -> Result<Vec<Message>, StateError> {
        let topic = topic.to_owned();
        Embedded::read(self, move |txn| {
            let log = txn.open_table(LOG)?;
            let mut messages = Vec::new();
            if after == u64::MAX {
                return Ok(messages);
            }
            for entry in log.range((topic.as_str(), after + 1)..=(topic.as_str(), u64::MAX))? {
                let (key, value) = entry?;
                messages.push(Message { id: key.value().1, data: split(value.value()).1.to_vec() });
                if messages.len() >= limit as usize {
                    break;
                }
            }
            Ok(messages)
        })
        .await
    }

    async fn wait(&self, topic: &str, after: u64, until: tokio::time::Instant) -> Result<u64, StateError> {
        let opened = self.opened().await?;
        let rx = {
            let mut watches = self.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match watches.get(topic) {
                Some(tx) => tx.subscribe(),
                None => {
                    // Read the last id while holding the lock: the writer updates watches under
                    // it after committing, so no publish falls between this read and the watch.
                    let txn = opened.db.begin_read().map_err(StateError::unavailable)?;
                    let last = txn
                        .open_table(LAST_ID)
                        .map_err(StateError::unavailable)?
                        .get(topic)
                        .map_err(StateError::unavailable)?
                        .map_or(0, |v| v.value());
                    let (tx, rx) = watch::channel(last);
                    watches.insert(topic.to_owned(), tx);
                    rx
                }
            }
        };
        Ok(super::wait_above(rx, after, until).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{Backend, Services};

    /// Runs the block with `s` bound to each local backend in turn: this one (on a file in a
    /// temporary directory) and the in-memory one, which must behave the same. `backend` names
    /// the one running.
    macro_rules! on_each_store {
        (|$s:ident, $backend:ident| $body:block) => {{
            let dir = tempfile::tempdir().unwrap();
            let limits = Limits { retain_count: 3, ..Limits::default() };
            let file = Services::open(&Backend::Dir(dir.path().to_path_buf()), limits).unwrap();
            for ($backend, $s) in
                [("embedded", file), ("memory", Services::open(&Backend::Memory, limits).unwrap())]
            {
                eprintln!("backend: {}", $backend);
                $body
            }
        }};
    }

    #[tokio::test]
    async fn set_get_delete_round_trip() {
        on_each_store!(|s, backend| {
            assert_eq!(s.get("a").await.unwrap(), None);
            s.set("a", b"1", None).await.unwrap();
            assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
            assert!(s.exists("a").await.unwrap());
            assert!(s.delete("a").await.unwrap());
            assert!(!s.delete("a").await.unwrap());
            assert!(!s.exists("a").await.unwrap());
        });
    }

    #[tokio::test]
    async fn expired_values_are_gone() {
        on_each_store!(|s, backend| {
            s.set("t", b"x", Some(Duration::from_millis(30))).await.unwrap();
            assert!(s.exists("t").await.unwrap());
            tokio::time::sleep(Duration::from_millis(60)).await;
            assert_eq!(s.get("t").await.unwrap(), None);
            assert!(s.list("t", None, 0).await.unwrap().keys.is_empty());
        });
    }

    #[tokio::test]
    async fn list_pages_through_a_prefix_in_order() {
        on_each_store!(|s, backend| {
            for key in ["b/3", "a/1", "b/1", "b/2", "c"] {
                s.set(key, b"", None).await.unwrap();
            }
            let first = s.list("b/", None, 2).await.unwrap();
            assert_eq!(first.keys, ["b/1", "b/2"]);
            let second = s.list("b/", first.cursor.as_deref(), 2).await.unwrap();
            assert_eq!(second.keys, ["b/3"]);
            assert_eq!(second.cursor, None);
            assert!(matches!(s.list("b/", Some("a/1"), 2).await, Err(StateError::BadArgument(_))));
        });
    }

    #[tokio::test]
    async fn increment_counts_and_refuses_text() {
        on_each_store!(|s, backend| {
            assert_eq!(s.increment("n", 2).await.unwrap(), 2);
            assert_eq!(s.increment("n", -5).await.unwrap(), -3);
            assert_eq!(s.get("n").await.unwrap().as_deref(), Some(&b"-3"[..]));
            s.set("text", b"hello", None).await.unwrap();
            assert!(matches!(s.increment("text", 1).await, Err(StateError::NotAnInteger(_))));
            s.set("big", i64::MAX.to_string().as_bytes(), None).await.unwrap();
            assert!(matches!(s.increment("big", 1).await, Err(StateError::NotAnInteger(_))));
        });
    }

    #[tokio::test]
    async fn compare_and_swap_checks_the_current_value() {
        on_each_store!(|s, backend| {
            assert!(s.compare_and_swap("k", None, b"1").await.unwrap());
            assert!(!s.compare_and_swap("k", None, b"2").await.unwrap());
            assert!(!s.compare_and_swap("k", Some(b"0"), b"2").await.unwrap());
            assert!(s.compare_and_swap("k", Some(b"1"), b"2").await.unwrap());
            assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
        });
    }

    #[tokio::test]
    async fn bad_keys_and_values_are_refused() {
        on_each_store!(|s, backend| {
            assert!(matches!(s.get("").await, Err(StateError::BadKey(_))));
            assert!(matches!(s.get("a\0b").await, Err(StateError::BadKey(_))));
            assert!(matches!(s.get(&"k".repeat(MAX_KEY_LEN_PLUS)).await, Err(StateError::BadKey(_))));
            let big = vec![0; crate::services::MAX_VALUE_SIZE + 1];
            assert!(matches!(s.set("k", &big, None).await, Err(StateError::TooLarge(_))));
            assert!(matches!(s.list("", None, 5_000).await, Err(StateError::BadArgument(_))));
        });
    }

    const MAX_KEY_LEN_PLUS: usize = crate::services::MAX_KEY_LEN + 1;

    #[tokio::test]
    async fn topics_replay_after_an_id_and_trim_to_the_retained_count() {
        on_each_store!(|s, backend| {
            for n in 1..=5u8 {
                assert_eq!(s.publish("t", &[n]).await.unwrap(), u64::from(n));
            }
            let until = std::time::Instant::now();
            let mut sub = s.subscribe("t", Some(0)).await.unwrap();
            // Only the last three are retained.
            let mut ids = Vec::new();
            while let Some(m) = sub.next(until).await.unwrap() {
                ids.push(m.id);
            }
            assert_eq!(ids, [3, 4, 5]);
            let mut sub = s.subscribe("t", Some(4)).await.unwrap();
            assert_eq!(sub.next(until).await.unwrap().map(|m| m.data), Some(vec![5]));
            assert_eq!(sub.next(until).await.unwrap(), None);
        });
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_a_later_publish() {
        on_each_store!(|s, backend| {
            let mut sub = s.subscribe("t", None).await.unwrap();
            let publisher = s.clone();
            let waiter = tokio::spawn(async move {
                sub.next(std::time::Instant::now() + Duration::from_secs(30)).await.unwrap()
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            publisher.publish("t", b"hi").await.unwrap();
            assert_eq!(waiter.await.unwrap().map(|m| (m.id, m.data)), Some((1, b"hi".to_vec())));
        });
    }

    #[tokio::test]
    async fn a_file_store_keeps_values_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::Dir(dir.path().join("nested"));
        {
            let s = Services::open(&backend, Limits::default()).unwrap();
            s.set("k", b"v", None).await.unwrap();
            s.publish("t", b"m").await.unwrap();
        }
        // The writer thread lets go of the file once its queue is dropped.
        let s = Services::open(&backend, Limits::default()).unwrap();
        let mut reopened = None;
        for _ in 0..100 {
            match s.get("k").await {
                Ok(v) => {
                    reopened = v;
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(reopened.as_deref(), Some(&b"v"[..]));
        assert_eq!(s.publish("t", b"n").await.unwrap(), 2);
    }
}
