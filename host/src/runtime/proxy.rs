//! Standard `wasi:http/proxy` components: the second world a handler file may implement. Their
//! one export, `wasi:http/incoming-handler.handle`, takes an `incoming-request` resource and a
//! `response-outparam`; the guest sets the response through the outparam, then writes its body
//! while the call goes on. `wasmtime-wasi-http` implements the resources; this module feeds them
//! from what `conn/` gives it (an [`http::Request`] whose body the connection pushes on demand)
//! and hands back the response and the call to drive.
//!
//! The store state grants what our own world's stores grant and no more: outgoing HTTP
//! (`wasi:http/outgoing-handler`) is refused with `http-request-denied`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{Notify, mpsc, oneshot};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpHooks, WasiHttpView as _};

use super::{GuestError, Instance, InstanceWorld, cpu, finish};

/// The guest's answer: the response head with its body to pull, or the error code it set
/// instead of a response.
pub type ProxyResponse = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// Bytes a guest may write to its response body in one go; also the most the host holds of
/// a response body per request (wasmtime-wasi-http's default is 1 MiB).
const OUTGOING_CHUNK: usize = 64 * 1024;

/// The store's `wasi:http` hooks: the default header rules, a bounded output buffer, and no
/// outgoing requests.
pub(crate) struct HttpGrants;

impl WasiHttpHooks for HttpGrants {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        // Denied until per-route configuration can grant hosts.
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        OUTGOING_CHUNK
    }
}

/// The body of a request handed to a `wasi:http` component. It is fed by the connection through
/// its [`BodyFeed`], one piece at a time and only when the guest asks: a guest that never reads
/// its body leaves it on the socket (and `100 Continue` unsent).
pub struct IncomingBody {
    pieces: mpsc::Receiver<Bytes>,
    demand: Arc<Notify>,
    hint: SizeHint,
}

/// The connection's end of an [`IncomingBody`].
pub struct BodyFeed {
    pieces: Option<mpsc::Sender<Bytes>>,
    demand: Arc<Notify>,
}

/// A request body for a `wasi:http` guest and the feed that fills it; `length` is the body's
/// length when the request says it.
pub fn incoming_body(length: Option<u64>) -> (BodyFeed, IncomingBody) {
    let (tx, rx) = mpsc::channel(1);
    let demand = Arc::new(Notify::new());
    let hint = length.map_or_else(SizeHint::new, SizeHint::with_exact);
    (BodyFeed { pieces: Some(tx), demand: demand.clone() }, IncomingBody { pieces: rx, demand, hint })
}

impl BodyFeed {
    /// Resolves when the guest waits for a piece of the body (at once if it asked since the
    /// last piece). Cancel-safe.
    pub async fn wanted(&self) {
        self.demand.notified().await;
    }

    /// Whether the body is still open (not ended, and the guest still holds it).
    pub fn is_open(&self) -> bool {
        self.pieces.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Hands the guest the next piece. Call it only after [`wanted`](Self::wanted): the guest
    /// then has room for it. A piece the guest no longer takes is dropped.
    pub fn push(&mut self, piece: Bytes) {
        if let Some(tx) = &self.pieces
            && tx.try_send(piece).is_err()
        {
            self.pieces = None;
        }
    }

    /// Ends the body: the guest reads its end.
    pub fn end(&mut self) {
        self.pieces = None;
    }
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.pieces.poll_recv(cx) {
            Poll::Ready(Some(piece)) => {
                let left = self.hint.upper().map(|n| n.saturating_sub(piece.len() as u64));
                if let Some(left) = left {
                    self.hint.set_exact(left);
                }
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // tokio's cooperative budget can answer Pending with a piece still queued (the
                // task is woken again at once): asking for another piece then would find no
                // room for it, so ask only when the channel is really empty.
                if self.pieces.is_empty() {
                    self.demand.notify_one();
                }
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Progress of a `wasi:http` call as the connection sees it (the response head, each piece of
/// body in or out). Each step restarts the CPU budget, as each hook call does in our own world:
/// a long stream is bounded per step, not in total.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Records one step.
    pub fn step(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Steps so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One `handle` call in progress: drive [`call`](Self::call) to run the guest, and take the
/// response from [`response`](Self::response) when it sets one.
pub struct ProxyCall<'a> {
    /// Runs the guest; resolves when `handle` returns (`Ok`) or fails.
    pub call: Pin<Box<dyn Future<Output = Result<(), GuestError>> + Send + 'a>>,
    /// The response the guest sets (dropped unset if it never does).
    pub response: oneshot::Receiver<ProxyResponse>,
}

impl Instance {
    /// Calls `wasi:http/incoming-handler.handle` with `request` (`https` when `tls`). The CPU
    /// budget restarts at each step recorded on `progress`; wall-clock limits are the caller's
    /// (drop the call to stop the guest). `deadline` bounds the guest's waits on host services.
    ///
    /// # Errors
    ///
    /// [`GuestError::Contract`] when the instance is not of a `wasi:http` component, a trap when
    /// the request cannot be made into the guest's resources.
    pub fn handle(
        &mut self,
        request: http::Request<IncomingBody>,
        tls: bool,
        progress: &Progress,
        deadline: std::time::Instant,
    ) -> Result<ProxyCall<'_>, GuestError> {
        self.reset_budget(deadline);
        let InstanceWorld::Proxy(proxy) = &self.world else {
            return Err(GuestError::Contract("not a wasi:http component"));
        };
        let state = self.store.data_mut();
        state.progress = Some((progress.clone(), progress.get()));
        let scheme = if tls { Scheme::Https } else { Scheme::Http };
        let (tx, rx) = oneshot::channel();
        let mut http = state.http();
        let resources = http
            .new_incoming_request(scheme, request)
            .and_then(|req| Ok((req, http.new_response_outparam(tx)?)));
        let (req, out) = resources.map_err(|e| GuestError::Trap(format!("{e:#}")))?;
        let cpu_timeout = self.cpu_timeout;
        let clock = &self.cpu;
        let store = &mut self.store;
        let call = Box::pin(async move {
            let handle = || proxy.wasi_http_incoming_handler().call_handle(&mut *store, req, out);
            let result = cpu::timed(clock, handle).await;
            finish(Ok(result), store, cpu_timeout)
        });
        Ok(ProxyCall { call, response: rx })
    }
}
