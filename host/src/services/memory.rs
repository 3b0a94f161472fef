//! The in-memory backend (`--state memory`): maps behind one lock, lost when the host stops.
//!
//! For throwaway runs, tests and benchmarks, it must behave exactly like the embedded store
//! (the same expiry, list order and cursors, counters, retention and wake-ups; the tests in
//! `embedded.rs` run against both) but without its costs: no database, no writer thread, no
//! hand-off per write. Every operation is a few map operations under a `std` mutex, never held
//! across an `.await`; a write is visible to every reader once it returns.
//!
//! Wake-ups: one `tokio::sync::watch` per topic with waiters, holding the topic's last id,
//! updated under the same lock as the log, so a waiter that read the last id cannot miss the
//! next publish.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    KeyPage, KeyValue, Limits, Message, PageBuilder, StateError, Topics, add_counter, parse_counter,
};

/// The in-memory store.
pub struct Memory {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Key → entry, ordered so that a prefix is one range.
    kv: BTreeMap<String, Entry>,
    /// Topic → its log.
    topics: HashMap<String, Topic>,
    /// Topic → the last id, for waiters; dropped at a publish once nobody waits.
    watches: HashMap<String, watch::Sender<u64>>,
}

struct Entry {
    /// Unix milliseconds after which the entry is gone; 0 = never.
    expires: u64,
    value: Vec<u8>,
}

#[derive(Default)]
struct Topic {
    /// The id of the last message ever published (kept when the log is trimmed).
    last_id: u64,
    /// The retained messages, oldest first, with consecutive ids.
    log: VecDeque<Retained>,
}

struct Retained {
    id: u64,
    /// Unix milliseconds.
    published: u64,
    data: Vec<u8>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires == 0 || self.expires > now
    }
}

impl Memory {
    /// An empty store.
    pub fn new(limits: Limits) -> Self {
        Self { limits, state: Mutex::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The live entry of `key`; an expired one is removed.
    fn live(&mut self, key: &str, now: u64) -> Option<&mut Entry> {
        if self.kv.get(key).is_some_and(|e| !e.live(now)) {
            self.kv.remove(key);
        }
        self.kv.get_mut(key)
    }
}

impl Topic {
    /// Drops the messages beyond the retained count or older than the retained age.
    fn trim(&mut self, now: u64, limits: &Limits) {
        let keep_from = self.last_id.saturating_sub(limits.retain_count.saturating_sub(1)).max(1);
        let cutoff = now.saturating_sub(limits.retain_age.as_millis() as u64);
        while self.log.front().is_some_and(|m| m.id < keep_from || m.published < cutoff) {
            self.log.pop_front();
        }
    }
}

#[async_trait]
impl KeyValue for Memory {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.state().live(key, now_ms()).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError> {
        let expires = ttl.map_or(0, |ttl| now_ms().saturating_add(ttl.as_millis().max(1) as u64));
        self.state().kv.insert(key.to_owned(), Entry { expires, value: value.to_vec() });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let mut state = self.state();
        let existed = state.live(key, now_ms()).is_some();
        state.kv.remove(key);
        Ok(existed)
    }

    async fn exists(&self, key: &str) -> Result<bool, StateError> {
        Ok(self.state().live(key, now_ms()).is_some())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage, StateError> {
        let state = self.state();
        let now = now_ms();
        let start = match cursor {
            Some(c) => Bound::Excluded(c),
            None => Bound::Included(prefix),
        };
        let mut page = PageBuilder::new(limit);
        for (key, entry) in state.kv.range::<str, _>((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if entry.live(now) && !page.offer(key) {
                break;
            }
        }
        Ok(page.finish())
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StateError> {
        let mut state = self.state();
        // Like Redis's INCRBY: an unset key counts as 0, a time-to-live is kept.
        let (expires, current) = match state.live(key, now_ms()) {
            Some(entry) => (entry.expires, parse_counter(&entry.value)?),
            None => (0, 0),
        };
        let new = add_counter(current, delta)?;
        state.kv.insert(key.to_owned(), Entry { expires, value: new.to_string().into_bytes() });
        Ok(new)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StateError> {
        let mut state = self.state();
        if state.live(key, now_ms()).map(|e| e.value.as_slice()) != expected {
            return Ok(false);
        }
        state.kv.insert(key.to_owned(), Entry { expires: 0, value: new.to_vec() });
        Ok(true)
    }
}

#[async_trait]
impl Topics for Memory {
    async fn publish(&self, topic: &str, data: &[u8]) -> Result<u64, StateError> {
        let now = now_ms();
        let mut state = self.state();
        let log = state.topics.entry(topic.to_owned()).or_default();
        log.last_id += 1;
        let id = log.last_id;
        log.log.push_back(Retained { id, published: now, data: data.to_vec() });
        log.trim(now, &self.limits);
        if let Some(tx) = state.watches.get(topic) {
            if tx.receiver_count() == 0 {
                state.watches.remove(topic);
            } else {
                tx.send_replace(id);
            }
        }
        Ok(id)
    }

    async fn last_id(&self, topic: &str) -> Result<u64, StateError> {
        Ok(self.state().topics.get(topic).map_or(0, |t| t.last_id))
    }

    async fn read(&self, topic: &str, after: u64, limit: u32) -> Result<Vec<Message>, StateError> {
        let state = self.state();
        let Some(log) = state.topics.get(topic).map(|t| &t.log) else {
            return Ok(Vec::new());
        };
        // Ids are consecutive: the first one above `after` is at a known place.
        let skip = log
            .front()
            .map_or(0, |first| usize::try_from(after.saturating_sub(first.id - 1)).unwrap_or(usize::MAX));
        Ok(log
            .iter()
            .skip(skip)
            .take(limit as usize)
            .map(|m| Message { id: m.id, data: m.data.clone() })
            .collect())
    }

    async fn wait(&self, topic: &str, after: u64, until: tokio::time::Instant) -> Result<u64, StateError> {
        let rx = {
            let mut state = self.state();
            let last = state.topics.get(topic).map_or(0, |t| t.last_id);
            if last > after {
                return Ok(last);
            }
            // Under the lock publishes take: no publish falls between the read and the watch.
            state.watches.entry(topic.to_owned()).or_insert_with(|| watch::channel(last).0).subscribe()
        };
        Ok(super::wait_above(rx, after, until).await)
    }
}
