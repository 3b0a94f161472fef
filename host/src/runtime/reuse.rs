//! Opt-in instance reuse (`--instance-reuse N`): instances that served a request without any
//! failure wait here, warm, for the next request to the same handler version.
//!
//! Rules:
//! - Only an instance whose every call succeeded comes back ([`Runtime::recycle`]); a trap, a
//!   deadline, any guest error, a client that left mid-stream drops it instead.
//! - Instances are keyed by the handler *version* (a fresh key per load), so a reload never
//!   serves the old code: the new version's requests never see the old version's instances,
//!   which age out.
//! - An idle instance keeps its permit of the instance budget (it holds a pool slot); when the
//!   budget runs out, idle instances are dropped (oldest first) before anyone gets 503.
//! - At most [`MAX_IDLE`] wait at once (past it the one idle for longest is dropped), each at
//!   most [`IDLE_TIMEOUT`].
//!
//! [`Runtime::recycle`]: super::Runtime::recycle

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Instance;

/// An idle instance is dropped after this long without a request: warm instances help under
/// load, and an idle server should give their memory back.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle instances kept at most (across handlers). Requests run on a few worker threads, so a
/// handler under load needs only a few warm instances; the cap bounds what idle ones hold.
pub const MAX_IDLE: usize = 64;

/// Epoch ticks between sweeps for expired idle instances (about a second).
pub(super) const SWEEP_TICKS: u32 = 1000;

/// The idle instances, most recently used last.
#[derive(Default)]
pub(super) struct IdleSet {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    version: u64,
    since: Instant,
    instance: Instance,
}

impl IdleSet {
    /// The most recently used idle instance of handler `version`, if one is waiting.
    pub(super) fn take(&self, version: u64) -> Option<Instance> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = idle.iter().rposition(|i| i.version == version)?;
        Some(idle.remove(at).instance)
    }

    /// How many instances wait now.
    pub(super) fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Keeps `instance` for the next request to `version`. When `cap` instances wait already,
    /// the one idle for longest makes room and is returned, for the caller to drop outside the
    /// lock: a burst on one route that filled the set must not keep every other route from
    /// reusing its instances until the burst's age out.
    pub(super) fn put(&self, version: u64, instance: Instance, cap: usize) -> Option<Instance> {
        if cap == 0 {
            return Some(instance);
        }
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // `since` grows along the vector (see `evict_oldest`): the front is the oldest.
        let evicted = (idle.len() >= cap).then(|| idle.remove(0).instance);
        idle.push(Idle { version, since: Instant::now(), instance });
        evicted
    }

    /// Removes the instance idle for longest (to free its permit), if any.
    pub(super) fn evict_oldest(&self) -> Option<Instance> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // `since` grows along the vector except where `take` removed from the middle: the front
        // is the oldest.
        (!idle.is_empty()).then(|| idle.remove(0).instance)
    }

    /// Removes the instances idle since before `now - IDLE_TIMEOUT`. The caller drops them
    /// outside the lock. Does nothing when the set is busy (the next sweep will).
    pub(super) fn expired(&self, now: Instant) -> Vec<Instance> {
        let Ok(mut idle) = self.idle.try_lock() else {
            return Vec::new();
        };
        if idle.first().is_none_or(|i| now.duration_since(i.since) < IDLE_TIMEOUT) {
            return Vec::new();
        }
        let (old, keep): (Vec<Idle>, Vec<Idle>) =
            idle.drain(..).partition(|i| now.duration_since(i.since) >= IDLE_TIMEOUT);
        *idle = keep;
        old.into_iter().map(|i| i.instance).collect()
    }
}
