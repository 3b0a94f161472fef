//! The shared application state every connection works with: the validated configuration, the
//! wasm runtime (which owns the instance budget), the current route table snapshot, the
//! counters `/metrics` shows and the shutdown signal.
//!
//! Depends on `config`, `routes` (the table type), `runtime` (the handler type), `metrics` and
//! `site::static_files` (the static directory); it is filled by `site` (route building) and
//! `server` (the static directory), and read by `conn` and `server`, which it knows nothing of.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use atomic_waker::AtomicWaker;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes::{MethodKey, RouteTable};
use crate::runtime::{ContentHash, Handler, Runtime};
use crate::static_files::StaticDir;

/// A handler file as served, with the label its log lines carry (e.g. `GET /users/{id}`).
pub struct LoadedHandler {
    /// The compiled, pre-linked component, or why the file could not be loaded: the route
    /// then answers 503 until the file is fixed.
    pub handler: Result<Handler, Arc<str>>,
    /// `METHOD /route`, shared by every request's log lines.
    pub label: Arc<str>,
    /// The version: the hash of the file's bytes.
    pub hash: ContentHash,
    /// The methods the handler says it implements (empty: it does not say).
    pub declares: Vec<MethodKey>,
}

/// The route table the server serves from. Handlers are shared between table versions, so a
/// reload only compiles what changed and a request keeps its version alive until it ends.
pub type Routes = RouteTable<Arc<LoadedHandler>>;

/// Dev mode's record of handlers whose latest build failed, as a route table of compiler
/// messages: a request it matches gets the message instead of the handler (unless
/// `--keep-serving` and a previous version is there).
#[derive(Default)]
pub struct BuildFailures {
    /// The routes whose build failed, each with cargo's output.
    pub table: ArcSwap<RouteTable<Arc<str>>>,
}

/// State shared by every connection.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The wasm runtime; it also counts the live instances against `--max-instances`.
    pub runtime: Runtime,
    /// The current route table; each request works on the snapshot it loaded.
    pub routes: ArcSwap<Routes>,
    /// The site's error pages (`routes/errors/{code}`), keyed `/{code}`.
    pub error_pages: ArcSwap<Routes>,
    /// Given when the server starts shutting down.
    pub shutdown: Stop,
    /// `wasm-host dev` only: the handlers whose build is broken.
    pub build_failures: Option<BuildFailures>,
    /// The static files served where no route matches (`--static`), if any.
    pub static_dir: Option<Arc<StaticDir>>,
    /// What the host counts (requests, bytes, connections, reloads), for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Taken by a woken parked request while it runs again: at most
    /// [`PARKED_RERUNS`](crate::config::PARKED_RERUNS) at a time.
    pub reruns: tokio::sync::Semaphore,
}

impl App {
    /// The state for serving `routes` (and `error_pages`) with `runtime` under `config`.
    pub fn new(config: Config, runtime: Runtime, routes: Routes, error_pages: Routes) -> Self {
        let build_failures = config.dev.map(|_| BuildFailures::default());
        let metrics = Arc::new(Metrics::new(config.workers));
        Self {
            config,
            runtime,
            routes: ArcSwap::from_pointee(routes),
            error_pages: ArcSwap::from_pointee(error_pages),
            shutdown: Stop::default(),
            build_failures,
            static_dir: None,
            metrics,
            reruns: tokio::sync::Semaphore::new(crate::config::PARKED_RERUNS),
        }
    }
}

/// The signal that the server is shutting down, made for the request path: asking whether it
/// was given is one atomic load, and a connection waiting for its next request waits on it
/// through its own [`StopWait`], registered once per connection, instead of locking a list all
/// connections share at every wait (as a `CancellationToken` or `Notify` does). The other tasks
/// that stop with the server (reloads, certificate and dev watchers) wait on [`Stop::token`].
#[derive(Default)]
pub struct Stop {
    inner: Arc<StopInner>,
}

#[derive(Default)]
struct StopInner {
    given: AtomicBool,
    token: CancellationToken,
    /// The wake-up of each connection's [`StopWait`], by id.
    waits: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    next_id: AtomicU64,
}

impl Stop {
    /// Gives the signal: every [`StopWait`] completes, the token is cancelled. Idempotent.
    pub fn give(&self) {
        self.inner.given.store(true, Ordering::SeqCst);
        self.inner.token.cancel();
        let waits = self.inner.waits.lock().unwrap_or_else(PoisonError::into_inner);
        for wake in waits.values() {
            wake.wake();
        }
    }

    /// Whether the signal was given.
    pub fn is_given(&self) -> bool {
        self.inner.given.load(Ordering::SeqCst)
    }

    /// The token cancelled with the signal, for tasks that are not on the request path.
    pub fn token(&self) -> &CancellationToken {
        &self.inner.token
    }

    /// A future that completes once the signal is given; it may be awaited again and again
    /// (through `&mut`), and costs a lock only when made and when dropped.
    pub fn wait(&self) -> StopWait {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(AtomicWaker::new());
        self.inner.waits.lock().unwrap_or_else(PoisonError::into_inner).insert(id, wake.clone());
        StopWait { inner: self.inner.clone(), id, wake }
    }
}

/// Completes once the server's [`Stop`] is given (see [`Stop::wait`]).
pub struct StopWait {
    inner: Arc<StopInner>,
    id: u64,
    wake: Arc<AtomicWaker>,
}

impl Future for StopWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.given.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        // Registered before the second look: a `give` between the two wakes this waker.
        self.wake.register(cx.waker());
        if self.inner.given.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Drop for StopWait {
    fn drop(&mut self) {
        self.inner.waits.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::Stop;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_stop_wait_stays_pending_until_the_signal_then_is_woken_and_ready_for_good() {
        let stop = Stop::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut wait = pin!(stop.wait());
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        assert!(!stop.is_given() && !stop.token().is_cancelled());
        stop.give();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the waiting connection is woken");
        assert!(stop.is_given() && stop.token().is_cancelled());
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()), "and stays ready");
        let mut late = pin!(stop.wait());
        assert_eq!(late.as_mut().poll(&mut cx), Poll::Ready(()), "a wait made after the signal");
    }

    #[test]
    fn a_dropped_stop_wait_leaves_the_list() {
        let stop = Stop::default();
        let a = stop.wait();
        let b = stop.wait();
        assert_eq!(stop.inner.waits.lock().unwrap().len(), 2);
        drop(a);
        drop(b);
        assert!(stop.inner.waits.lock().unwrap().is_empty());
    }
}
