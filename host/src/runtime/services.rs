//! The host side of the `kv` and `topics` imports: adapts [`crate::services`] to the WIT.
//!
//! Every failure becomes a WIT `error` value the guest can answer with (the SDK turns
//! `unavailable` into 503); only a guest bug (a subscription handle that is not in the table)
//! traps. `subscription.next` waits asynchronously, so only the instance's fiber suspends; the
//! wait is bounded by the call's own wall-clock deadline, less [`DEADLINE_MARGIN`], so that a
//! long poll can still answer (e.g. 204) instead of being cut off with a 504.
//!
//! `subscription.park` only records what to wait for ([`Park`]); the exchange does the
//! waiting, without the instance (`conn/exchange.rs`), and runs the handler again with a
//! [`Resume`] that moves the new run's subscriptions to that topic up to where the parked one
//! stood.

use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::WasiView as _;

use super::Runtime;
use super::bindings::{kv, topics};
use super::state::HostState;
use crate::services::{Services, StateError, Subscription};

/// Time left to the guest between the end of a wait and the deadline of the call it waits in:
/// enough to build and return a response, small against any sensible request timeout.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(200);

/// Longest wait when a call has no deadline at all (none of today's calls: a safety net).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// What a request's store carries for the services: the shared handle, the deadline of the
/// hook call or pull in progress, and the request's park and resume points.
#[derive(Default)]
pub(crate) struct RequestServices {
    /// The services, or none when the runtime has none (`wasm-host routes`).
    pub(crate) handle: Option<Services>,
    /// The wall-clock deadline of the current call.
    pub(crate) deadline: Option<Instant>,
    /// What the handler asked to wait for with `subscription.park`, if it did.
    pub(crate) park: Option<Park>,
    /// This run follows a wake-up of a parked request: where its subscriptions start.
    pub(crate) resume: Option<Resume>,
}

/// A parked request's wait: until `topic` has a message after `position`, or `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Park {
    /// The topic to wait on.
    pub topic: String,
    /// The parked subscription's position: the last message it handed out.
    pub position: u64,
    /// When the wait ends without a message: the handler's timeout (none: the request's
    /// deadline decides).
    pub until: Option<Instant>,
}

/// Where a run after a wake-up starts reading the topic it was parked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The topic the request was parked on.
    pub topic: String,
    /// The parked subscription's position.
    pub position: u64,
}

impl Resume {
    /// The `after` a subscription of `topic` asking for `after` gets: never before the parked
    /// position on the parked topic, so the run finds the message that woke it and none it
    /// already had.
    fn after(&self, topic: &str, after: Option<u64>) -> Option<u64> {
        if topic != self.topic {
            return after;
        }
        Some(after.map_or(self.position, |a| a.max(self.position)))
    }
}

impl RequestServices {
    fn handle(&self) -> Result<&Services, StateError> {
        self.handle.as_ref().ok_or_else(|| StateError::Unavailable("this host has no state backend".into()))
    }

    /// When a wait of `timeout` that starts now must end.
    fn wait_until(&self, timeout: Option<Duration>) -> Instant {
        let now = Instant::now();
        let own = now + timeout.unwrap_or(MAX_WAIT).min(MAX_WAIT);
        match self.deadline {
            Some(deadline) => own.min(deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(now).max(now)),
            None => own,
        }
    }
}

/// A subscription held in the guest's resource table.
pub struct GuestSubscription(Subscription);

impl Runtime {
    /// Gives every instance created from now on these services (one keyspace and one set of
    /// topics for all handlers).
    pub fn set_services(&mut self, services: Services) {
        self.services = Some(services);
    }
}

/// Adds the `kv` and `topics` imports to the linker.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    kv::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    topics::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

fn wit_error(e: StateError) -> kv::Error {
    match e {
        StateError::Unavailable(m) => kv::Error::Unavailable(m),
        StateError::BadKey(m) => kv::Error::BadKey(m),
        StateError::TooLarge(m) => kv::Error::TooLarge(m),
        StateError::NotAnInteger(m) => kv::Error::NotAnInteger(m),
        StateError::BadArgument(m) => kv::Error::BadArgument(m),
    }
}

type WitResult<T> = wasmtime::Result<Result<T, kv::Error>>;

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> WitResult<Option<Vec<u8>>> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.get(&key).await.map_err(wit_error))
    }

    async fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> WitResult<()> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.set(&key, &value, ttl_ms.map(Duration::from_millis)).await.map_err(wit_error))
    }

    async fn delete(&mut self, key: String) -> WitResult<bool> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.delete(&key).await.map_err(wit_error))
    }

    async fn exists(&mut self, key: String) -> WitResult<bool> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.exists(&key).await.map_err(wit_error))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> WitResult<kv::KeyPage> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services
            .list(&prefix, cursor.as_deref(), limit)
            .await
            .map(|page| kv::KeyPage { keys: page.keys, cursor: page.cursor })
            .map_err(wit_error))
    }

    async fn increment(&mut self, key: String, delta: i64) -> WitResult<i64> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.increment(&key, delta).await.map_err(wit_error))
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> WitResult<bool> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.compare_and_swap(&key, expected.as_deref(), &new).await.map_err(wit_error))
    }
}

impl topics::Host for HostState {
    async fn publish(&mut self, topic: String, data: Vec<u8>) -> WitResult<u64> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(services.publish(&topic, &data).await.map_err(wit_error))
    }

    async fn subscribe(
        &mut self,
        topic: String,
        after: Option<u64>,
    ) -> WitResult<Resource<GuestSubscription>> {
        let services = match self.services.handle() {
            Ok(s) => s.clone(),
            Err(e) => return Ok(Err(wit_error(e))),
        };
        let after = match &self.services.resume {
            Some(resume) => resume.after(&topic, after),
            None => after,
        };
        match services.subscribe(&topic, after).await {
            Ok(subscription) => Ok(Ok(self.ctx().table.push(GuestSubscription(subscription))?)),
            Err(e) => Ok(Err(wit_error(e))),
        }
    }
}

impl topics::HostSubscription for HostState {
    async fn next(
        &mut self,
        this: Resource<GuestSubscription>,
        timeout_ms: Option<u64>,
    ) -> WitResult<Option<topics::Message>> {
        let until = self.services.wait_until(timeout_ms.map(Duration::from_millis));
        let subscription = self.ctx().table.get_mut(&this)?;
        Ok(subscription
            .0
            .next(until)
            .await
            .map(|m| m.map(|m| topics::Message { id: m.id, data: m.data }))
            .map_err(wit_error))
    }

    async fn position(&mut self, this: Resource<GuestSubscription>) -> wasmtime::Result<u64> {
        Ok(self.ctx().table.get(&this)?.0.position())
    }

    async fn park(
        &mut self,
        this: Resource<GuestSubscription>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<()> {
        let until = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms).min(MAX_WAIT));
        let subscription = &self.ctx().table.get(&this)?.0;
        let park = Park { topic: subscription.topic().to_owned(), position: subscription.position(), until };
        self.services.park = Some(park);
        Ok(())
    }

    async fn drop(&mut self, this: Resource<GuestSubscription>) -> wasmtime::Result<()> {
        self.ctx().table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Resume;

    #[test]
    fn a_resumed_subscription_starts_no_earlier_than_the_parked_position_on_its_topic_only() {
        let resume = Resume { topic: "t".into(), position: 7 };
        assert_eq!(resume.after("t", None), Some(7));
        assert_eq!(resume.after("t", Some(3)), Some(7));
        assert_eq!(resume.after("t", Some(9)), Some(9));
        assert_eq!(resume.after("other", None), None);
        assert_eq!(resume.after("other", Some(3)), Some(3));
    }
}
