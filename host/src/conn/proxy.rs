//! One request to a standard `wasi:http` component: the request goes in as an [`http::Request`]
//! whose body this connection reads from the socket only when the guest asks for it; the guest
//! runs (one `incoming-handler.handle` call) while its response head and body come back and are
//! written with our own framing. Body in and body out can flow at the same time (an echo).
//!
//! Rules kept here (the README's "Standard wasi:http components" says them to users):
//! - Incoming head fields named `wasm-host-*` are removed; the host adds `wasm-host-route` (the
//!   matched route), `wasm-host-param-<name>` (each route parameter, percent-decoded) and
//!   `wasm-host-remote-addr`.
//! - Until the response head: the request deadline (`--request-timeout`); after it, each piece
//!   of body must come within `--pull-timeout`. The CPU budget restarts at each piece in or out.
//! - Trailers the guest sends are dropped; request trailers are not passed on.
//! - A guest that fails after its response head, or returns without finishing its body, aborts
//!   the connection: a truncated body is never sent as complete.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use bytes::{Buf as _, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite};

use super::exchange::{RequestBody, finish_stream};
use super::failure::Failure;
use super::{Conn, Next, Outcome};
use crate::app::LoadedHandler;
use crate::config::STREAM_BATCH;
use crate::http::{
    BodyEncoder, BodyFraming, BodyKind, Decoded, RequestHead, Version, encode_head, plan_response,
};
use crate::runtime::proxy::{BodyFeed, IncomingBody, Progress, ProxyCall, incoming_body};
use crate::runtime::{GuestError, Handler, Instance};

/// Head fields with this prefix are the host's to set.
const RESERVED_PREFIX: &str = "wasm-host-";

/// How the exchange of the request body with the guest stands.
#[derive(Default)]
struct Feeding {
    /// The guest waits for a piece.
    wanted: bool,
    /// The buffer holds no more of the body: the socket must be read.
    need_read: bool,
}

type Pulled = Option<Result<http_body::Frame<Bytes>, wasmtime_wasi_http::Error>>;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Answers one request with a `wasi:http` component.
    pub(super) async fn run_proxy(
        &mut self,
        head: &mut RequestHead,
        body: &mut RequestBody,
        params: Vec<(String, String)>,
        loaded: &LoadedHandler,
        handler: &Handler,
        start: Instant,
    ) -> Outcome {
        let route = Some(&*loaded.label);
        let (request, feed) = match proxy_request(head, params, &loaded.label, &self.peer_text) {
            Ok(request) => request,
            Err(failure) => return self.fail(head, body, failure, route).await,
        };
        let deadline = start + self.app.runtime.limits().request_timeout;
        let inst = match self.app.runtime.instantiate(handler, &loaded.label).await {
            Ok(inst) => inst,
            Err(e) => return self.fail(head, body, e.into(), route).await,
        };
        self.proxy_exchange(head, body, inst, request, feed, deadline, route).await
    }

    /// Runs the call and writes its response. An instance whose call ended cleanly goes back to
    /// the runtime (`Runtime::recycle`, to serve again with `--instance-reuse`): before the
    /// response's last write when the call had returned by then, else once it returns.
    #[expect(clippy::too_many_arguments, reason = "one exchange's parts, passed down once")]
    async fn proxy_exchange(
        &mut self,
        head: &RequestHead,
        body: &mut RequestBody,
        mut inst: Instance,
        request: http::Request<IncomingBody>,
        mut feed: BodyFeed,
        deadline: Instant,
        route: Option<&str>,
    ) -> Outcome {
        let progress = Progress::default();
        let tls = self.app.config.tls.is_some();
        let ProxyCall { mut call, mut response } = match inst.handle(request, tls, &progress, deadline) {
            Ok(call) => call,
            Err(e) => return self.fail(head, body, e.into(), route).await,
        };
        let mut feeding = Feeding::default();
        if body.decoder.is_done() {
            feed.end();
        }
        let mut returned = false;
        let mut unset = false;

        // Until the guest sets its response.
        let answer = loop {
            tokio::select! {
                biased;
                result = &mut call => {
                    if let Err(e) = result {
                        drop(call);
                        return self.fail(head, body, e.into(), route).await;
                    }
                    returned = true;
                    if let Ok(answer) = response.try_recv() {
                        break answer;
                    }
                    drop(call);
                    let e = GuestError::Contract("`handle` returned without setting a response");
                    return self.fail(head, body, e.into(), route).await;
                }
                answer = &mut response, if !unset => match answer {
                    Ok(answer) => break answer,
                    // Dropped unset: the call's end says why.
                    Err(_) => unset = true,
                },
                () = feed.wanted(), if feed.is_open() && !feeding.wanted => {
                    feeding.wanted = true;
                    if let Err(failure) = self.push_body(body, &mut feed, &mut feeding, &progress).await {
                        drop(call);
                        return self.fail(head, body, failure, route).await;
                    }
                }
                read = self.io.read_body_bytes(), if feeding.need_read => {
                    if let Err(failure) = self.after_read(read, body, &mut feed, &mut feeding, &progress).await {
                        drop(call);
                        return self.fail(head, body, failure, route).await;
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    drop(call);
                    return self.fail(head, body, GuestError::Deadline.into(), route).await;
                }
            }
        };
        let response = match answer {
            Ok(response) => response,
            Err(code) => {
                drop(call);
                let e = GuestError::ErrorCode(format!("{code:?}"));
                return self.fail(head, body, e.into(), route).await;
            }
        };
        progress.step();

        // The head, with whatever body is ready now.
        let (parts, mut out_body) = response.into_parts();
        let status = parts.status.as_u16();
        let kind = match content_length(&parts.headers) {
            Ok(Some(n)) => BodyKind::Sized(n),
            Ok(None) => BodyKind::Stream,
            Err(e) => {
                drop(call);
                return self.fail(head, body, e.into(), route).await;
            }
        };
        // A client waiting for `100 Continue` gets it before the final head while the guest may
        // still read the body: an interim response cannot follow the final one.
        if body.awaiting_continue && !returned && feed.is_open() && self.send_continue(body).await.is_err() {
            drop(call);
            return Outcome::closed();
        }
        let keep_alive = head.keep_alive && !self.app.shutdown.is_given();
        let plan = plan_response(head.method == "HEAD", head.version, status, kind, keep_alive);
        self.io.out.clear();
        let fields = parts.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()));
        if let Err(e) =
            encode_head(&mut self.io.out, head.version, status, fields, plan.framing, plan.keep_alive)
        {
            drop(call);
            return self.fail(head, body, e.into(), route).await;
        }
        let status = Some(status);
        let mut wire = 0;
        if !plan.send_body {
            drop(call);
            let written = self.io.write_out_with(&[]).await;
            wire = self.io.out.len() as u64;
            let next = if written.is_ok() && plan.keep_alive && self.settle_body(body).await {
                Next::KeepAlive
            } else {
                Next::Close
            };
            return Outcome {
                status,
                bytes: if written.is_ok() { wire } else { 0 },
                next,
                aborted: written.is_err(),
            };
        }
        let mut encoder = BodyEncoder::new(plan.framing);
        let pull_timeout = self.app.runtime.limits().pull_timeout;
        let mut body_done = false;
        let mut result: Result<(), Failure> = Ok(());
        let mut pending: Option<Pulled> = None;
        loop {
            // Gather the pieces that are ready into one write (the head's, the first time).
            while !body_done && self.io.out.len() < STREAM_BATCH {
                let pulled = match pending.take() {
                    Some(pulled) => pulled,
                    // Unconstrained: tokio's cooperative budget would make the body channel
                    // answer Pending now and then although a frame (or its end) is there, and
                    // after the guest returned a Pending here means an unfinished body. The
                    // loop is bounded by STREAM_BATCH.
                    None => match tokio::task::unconstrained(poll_fn(|cx| {
                        Poll::Ready(Pin::new(&mut out_body).poll_frame(cx))
                    }))
                    .await
                    {
                        Poll::Ready(pulled) => pulled,
                        Poll::Pending => break,
                    },
                };
                // An empty piece is no progress: a guest writing nothing in a loop stays under
                // the CPU budget it is burning.
                let empty =
                    matches!(&pulled, Some(Ok(frame)) if frame.data_ref().is_some_and(Bytes::is_empty));
                match add_piece(&mut self.io.out, &mut encoder, pulled) {
                    Ok(done) => body_done = done,
                    Err(failure) => {
                        result = Err(failure);
                        break;
                    }
                }
                if !empty {
                    progress.step();
                }
            }
            if body_done && returned && result.is_ok() {
                // The last write waits until the instance is handed back (below).
                break;
            }
            if !self.io.out.is_empty() {
                if let Err(e) = self.io.write_out_with(&[]).await {
                    result = Err(Failure::of_write(&e));
                }
                wire += self.io.out.len() as u64;
                self.io.out.clear();
            }
            if result.is_err() || body_done {
                break;
            }
            if returned {
                // The guest can do nothing more, and its body is not finished.
                result = Err(GuestError::Contract("`handle` returned without finishing its body").into());
                break;
            }
            let pull_deadline = tokio::time::Instant::now() + pull_timeout;
            tokio::select! {
                biased;
                ended = &mut call => {
                    match ended {
                        Ok(()) => returned = true,
                        Err(e) => {
                            result = Err(e.into());
                            break;
                        }
                    }
                }
                pulled = out_body.frame() => pending = Some(pulled),
                () = feed.wanted(), if feed.is_open() && !feeding.wanted => {
                    feeding.wanted = true;
                    if let Err(failure) = self.push_body(body, &mut feed, &mut feeding, &progress).await {
                        result = Err(failure);
                        break;
                    }
                }
                read = self.io.read_body_bytes(), if feeding.need_read => {
                    if let Err(failure) = self.after_read(read, body, &mut feed, &mut feeding, &progress).await {
                        result = Err(failure);
                        break;
                    }
                }
                () = tokio::time::sleep_until(pull_deadline) => {
                    result = Err(GuestError::Deadline.into());
                    break;
                }
            }
        }
        // The body is out; the call may still be finishing (it returns after `finish`).
        let mut clean = false;
        if result.is_ok() {
            clean = returned
                || match tokio::time::timeout(pull_timeout, &mut call).await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        Failure::from(e).log(&self.app.metrics, route, true);
                        false
                    }
                    Err(_) => false,
                };
        }
        drop(call);
        drop(feed);
        // Torn down (if not kept) once the last bytes are out, before a body the guest left
        // unread is drained.
        let retired = if clean { self.app.runtime.recycle(inst) } else { None };
        if !self.io.out.is_empty() {
            if let Err(e) = self.io.write_out_with(&[]).await {
                result = Err(Failure::of_write(&e));
            }
            wire += self.io.out.len() as u64;
            self.io.out.clear();
        }
        drop(retired);
        let next = if result.is_ok() && plan.keep_alive && self.settle_body(body).await {
            Next::KeepAlive
        } else {
            Next::Close
        };
        finish_stream(&self.app.metrics, result, route, status, wire, next)
    }

    /// Hands the guest the next piece of the request body if it waits for one and the buffer
    /// holds one (sending `100 Continue` first if the client waits for it); otherwise asks for a
    /// read of the socket, or ends the body.
    async fn push_body(
        &mut self,
        body: &mut RequestBody,
        feed: &mut BodyFeed,
        feeding: &mut Feeding,
        progress: &Progress,
    ) -> Result<(), Failure> {
        self.send_continue(body).await?;
        while feeding.wanted && !feeding.need_read {
            let (consumed, step) = body.decoder.decode(&self.io.buf)?;
            match step {
                Decoded::Data(range) => {
                    let piece = Bytes::copy_from_slice(&self.io.buf[range]);
                    body.handed_out = true;
                    feed.push(piece);
                    feeding.wanted = false;
                    progress.step();
                }
                Decoded::NeedMore => feeding.need_read = true,
                Decoded::Done => {
                    body.fed_to_end = true;
                    feed.end();
                    feeding.wanted = false;
                }
            }
            // The decoder counted these bytes as read: never leave them in the buffer.
            self.io.buf.advance(consumed);
        }
        Ok(())
    }

    /// Goes on after a read of the socket for the guest: pushes what it brought.
    async fn after_read(
        &mut self,
        read: Result<(), Failure>,
        body: &mut RequestBody,
        feed: &mut BodyFeed,
        feeding: &mut Feeding,
        progress: &Progress,
    ) -> Result<(), Failure> {
        feeding.need_read = false;
        read?;
        self.push_body(body, feed, feeding, progress).await
    }
}

/// Frames one pulled piece of the guest's body into `out`; `Ok(true)` at the body's end.
fn add_piece(out: &mut Vec<u8>, encoder: &mut BodyEncoder, pulled: Pulled) -> Result<bool, Failure> {
    match pulled {
        Some(Ok(frame)) => {
            // Trailers are dropped.
            if let Ok(data) = frame.into_data() {
                for part in encoder.frame(&data)?.parts() {
                    out.extend_from_slice(part);
                }
            }
            Ok(false)
        }
        Some(Err(e)) => Err(GuestError::ErrorCode(format!("the response body failed: {e}")).into()),
        None => {
            out.extend_from_slice(encoder.finish()?);
            Ok(true)
        }
    }
}

/// The response's `content-length`, if it has one.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, GuestError> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else { return Ok(None) };
    let parsed = std::str::from_utf8(first.as_bytes()).ok().and_then(|v| v.trim().parse::<u64>().ok());
    match parsed {
        Some(n) if values.all(|v| v == first) => Ok(Some(n)),
        _ => Err(GuestError::Contract("the response has an invalid content-length")),
    }
}

/// The request as a `wasi:http` guest sees it (header fields move out of `head`), and the feed
/// of its body. The URI is absolute, with the `Host` field as its authority (`localhost` when
/// an HTTP/1.0 request has none).
fn proxy_request(
    head: &mut RequestHead,
    params: Vec<(String, String)>,
    label: &str,
    peer: &str,
) -> Result<(http::Request<IncomingBody>, BodyFeed), Failure> {
    let method = http::Method::from_bytes(head.method.as_bytes()).map_err(|_| Failure::BadPath)?;
    let uri = if head.path == "*" {
        http::Uri::from_static("*")
    } else {
        let authority =
            head.header("host").and_then(|h| std::str::from_utf8(h).ok()).filter(|h| !h.is_empty());
        let mut uri = String::with_capacity(16 + head.path.len() + head.query.len());
        uri.push_str("http://");
        uri.push_str(authority.unwrap_or("localhost"));
        uri.push_str(&head.path);
        if !head.query.is_empty() {
            uri.push('?');
            uri.push_str(&head.query);
        }
        http::Uri::try_from(uri).map_err(|_| Failure::BadPath)?
    };
    let fields = std::mem::take(&mut head.headers);
    let mut headers = HeaderMap::with_capacity(fields.len() + params.len() + 2);
    for (name, value) in fields {
        if name.len() >= RESERVED_PREFIX.len()
            && name[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX)
        {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Failure::BadPath)?;
        let value = HeaderValue::from_bytes(&value).map_err(|_| Failure::BadPath)?;
        headers.append(name, value);
    }
    let host_field = |name: &str, value: &str| {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Failure::BadPath)?;
        let value = HeaderValue::from_str(value).map_err(|_| Failure::BadPath)?;
        Ok::<_, Failure>((name, value))
    };
    let route = label.split_once(' ').map_or(label, |(_, route)| route);
    let (name, value) = host_field("wasm-host-route", route)?;
    headers.insert(name, value);
    for (param, value) in &params {
        let (name, value) = host_field(&format!("{RESERVED_PREFIX}param-{param}"), value)?;
        headers.insert(name, value);
    }
    let (name, value) = host_field("wasm-host-remote-addr", peer)?;
    headers.insert(name, value);
    let length = match head.framing {
        BodyFraming::None => Some(0),
        BodyFraming::Length(n) => Some(n),
        BodyFraming::Chunked => None,
    };
    let (feed, body) = incoming_body(length);
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() =
        if head.version == Version::Http10 { http::Version::HTTP_10 } else { http::Version::HTTP_11 };
    *request.headers_mut() = headers;
    Ok((request, feed))
}
