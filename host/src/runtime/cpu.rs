//! The CPU budget of a guest call (`--cpu-timeout`): the time the call spends being polled,
//! that is running guest code or host functions on a worker thread, and not the time it waits
//! (sleeping, on a long poll, for a body chunk). The epoch callback checks it at every tick.
//!
//! Counting the callbacks instead would count a host call that runs for a long time without
//! returning to guest code (one large random-bytes request, say) as a single tick: a guest
//! calling such a function in a loop would run many times past its budget. Here every
//! nanosecond inside a poll counts, whoever spends it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the current call has run, shared by the call's future ([`timed`]) and the store's
/// epoch callback.
#[derive(Debug)]
pub(crate) struct CpuClock {
    base: Instant,
    /// Nanoseconds run by polls that have ended, since the last restart.
    spent: AtomicU64,
    /// When the current poll started, in nanoseconds since `base` plus one; 0 outside a poll.
    polling_since: AtomicU64,
}

impl CpuClock {
    pub(crate) fn new() -> Self {
        Self { base: Instant::now(), spent: AtomicU64::new(0), polling_since: AtomicU64::new(0) }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// Starts the count again from zero (a new call, or a new step of a `wasi:http` call).
    pub(crate) fn restart(&self) {
        self.spent.store(0, Ordering::Relaxed);
        if self.polling_since.load(Ordering::Relaxed) != 0 {
            self.polling_since.store(self.now(), Ordering::Relaxed);
        }
    }

    /// The time run so far, for the epoch callback. A tick seen outside a timed poll (a start
    /// function run while instantiating) is charged one `tick`, as it cannot be measured.
    pub(crate) fn charge(&self, tick: Duration) -> Duration {
        let since = self.polling_since.load(Ordering::Relaxed);
        let spent = if since == 0 {
            let tick = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
            self.spent.fetch_add(tick, Ordering::Relaxed).saturating_add(tick)
        } else {
            self.spent.load(Ordering::Relaxed).saturating_add(self.now().saturating_sub(since))
        };
        Duration::from_nanos(spent)
    }

    fn enter(&self) -> Polling<'_> {
        self.polling_since.store(self.now(), Ordering::Relaxed);
        Polling(self)
    }
}

/// One poll in progress; its time is added to the clock when it ends (also by unwinding).
struct Polling<'a>(&'a CpuClock);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let clock = self.0;
        let since = clock.polling_since.swap(0, Ordering::Relaxed);
        clock.spent.fetch_add(clock.now().saturating_sub(since), Ordering::Relaxed);
    }
}

/// Runs the future `call` makes, adding the time spent inside each of its polls to `clock`.
/// It takes the maker, not the future: an `async fn` keeps a future argument beside the
/// pinned copy it polls, and every parked request's task would hold the call twice.
pub(crate) async fn timed<F: Future>(clock: &CpuClock, call: impl FnOnce() -> F) -> F::Output {
    let mut call = std::pin::pin!(call());
    std::future::poll_fn(|cx| {
        let _polling = clock.enter();
        call.as_mut().poll(cx)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(1);

    fn spin(d: Duration) {
        let start = Instant::now();
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    #[tokio::test]
    async fn time_inside_polls_counts_and_time_waiting_does_not() {
        let clock = CpuClock::new();
        timed(&clock, || async {
            spin(Duration::from_millis(30)); // one poll that runs long, like a slow host call
            tokio::time::sleep(Duration::from_millis(200)).await; // waiting: not counted
            spin(Duration::from_millis(30));
        })
        .await;
        let spent = clock.charge(TICK) - TICK; // outside a poll, a tick is charged
        assert!(spent >= Duration::from_millis(60), "{spent:?}");
        assert!(spent < Duration::from_millis(200), "the sleep was counted: {spent:?}");
    }

    #[tokio::test]
    async fn the_callback_sees_the_poll_it_runs_in() {
        let clock = CpuClock::new();
        let seen = timed(&clock, || async {
            spin(Duration::from_millis(20));
            clock.charge(TICK)
        })
        .await;
        assert!(seen >= Duration::from_millis(20), "{seen:?}");
    }

    #[tokio::test]
    async fn restart_forgets_what_was_run() {
        let clock = CpuClock::new();
        let seen = timed(&clock, || async {
            spin(Duration::from_millis(20));
            clock.restart();
            clock.charge(TICK)
        })
        .await;
        assert!(seen < Duration::from_millis(20), "{seen:?}");
    }

    #[test]
    fn ticks_outside_a_poll_are_charged_one_each() {
        let clock = CpuClock::new();
        clock.charge(TICK);
        assert_eq!(clock.charge(TICK), 2 * TICK);
    }
}
