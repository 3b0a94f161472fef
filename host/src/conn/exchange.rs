//! One request on a connection: route it, run the handler's hooks on a fresh instance, write
//! its response (whole, streamed, or full duplex). Failures go through `Conn::fail`, the one
//! place that turns them into what is sent.

use std::mem;
use std::time::Instant;

use bytes::Buf as _;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{BodySource, PumpTimes, end_body, pump, write_piece};
use super::failure::Failure;
use super::{Conn, Next, Outcome};
use crate::app::LoadedHandler;
use crate::config::{DRAIN_LIMIT, STREAM_CHUNK_SIZE};
use crate::http::request_id::{self, RequestId};
use crate::http::{
    BodyDecoder, BodyEncoder, BodyFraming, BodyKind, CONTINUE_100, Decoded, ERROR_MARKER, RequestHead,
    SSE_HEADERS, encode_head, plan_response,
};
use crate::routes::Lookup;
use crate::runtime::{
    Body, DEADLINE_MARGIN, Flow, GuestError, Handler, Header, Instance, Park, Request, Response, Resume,
    World,
};

/// The request body, as far as the exchange has dealt with it.
pub(super) struct RequestBody {
    pub(super) decoder: BodyDecoder,
    /// `Expect: 100-continue` was sent and `100 Continue` was not yet: the client may hold the
    /// body back until it gets one.
    pub(super) awaiting_continue: bool,
    /// Some of the body went to the handler, so the rest cannot just be skipped.
    pub(super) handed_out: bool,
    /// The handler took the whole body (the decoder reached its end through `stream`).
    pub(super) fed_to_end: bool,
    /// Whether the body is out of the way (read or drained), once that was decided.
    settled: Option<bool>,
}

impl RequestBody {
    fn new(head: &RequestHead, max_body: Option<u64>) -> Self {
        Self {
            decoder: BodyDecoder::new(head.framing, max_body),
            awaiting_continue: head.expect_continue && head.framing != BodyFraming::None,
            handed_out: false,
            fed_to_end: false,
            settled: None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Routes and answers one request, and logs its access line. The request gets its id
    /// (`x-request-id`) first; every log line written while it is answered carries it
    /// (`request_id=`).
    ///
    /// Not an `async fn`, for the reason given at [`crate::log::in_request`]: `head` would be
    /// kept twice in every connection's task.
    pub(super) fn exchange(&mut self, mut head: RequestHead) -> impl Future<Output = Next> + '_ {
        let id = request_id::ensure(&mut head.headers);
        crate::log::in_request(id, self.answer(head, id))
    }

    async fn answer(&mut self, mut head: RequestHead, id: RequestId) -> Next {
        let start = Instant::now();
        let routes = self.app.routes.load_full();
        let mut body = RequestBody::new(&head, self.app.config.http.max_body);
        if self.app.build_failures.is_some() {
            self.wants_html = head.header_all("accept").any(|v| v.windows(9).any(|w| w == b"text/html"));
            if let Some(outcome) = self.answer_build_failure(&head, &mut body, &routes).await {
                self.log_access(&head, &outcome, None, start, &id);
                return outcome.next;
            }
        }
        let (outcome, route) = match routes.lookup(&head.method, &head.path) {
            Lookup::Found(found) => {
                let loaded = found.handler;
                let outcome = match &loaded.handler {
                    // Boxed: a wasi:http exchange is a large future that our own world's
                    // requests should not carry.
                    Ok(handler) if handler.world() == World::Proxy => {
                        Box::pin(self.run_proxy(&mut head, &mut body, found.params, loaded, handler, start))
                            .await
                    }
                    _ => {
                        let request = guest_request(&mut head, found.params, &self.peer_text);
                        self.run_handler(&head, &mut body, request, loaded, start).await
                    }
                };
                (outcome, Some(&*loaded.label))
            }
            Lookup::MethodNotAllowed { allow } => {
                (self.fail(&head, &mut body, Failure::MethodNotAllowed(allow.into()), None).await, None)
            }
            // Static files fill the paths no route has (`files.rs`); a path with a route, even
            // without a handler for the method, belongs to the route.
            Lookup::NotFound | Lookup::BadPath if self.serves_static(&head) => {
                (self.serve_static(&head, &mut body).await, Some("static"))
            }
            Lookup::NotFound => (self.fail(&head, &mut body, Failure::NotFound, None).await, None),
            Lookup::BadPath => (self.fail(&head, &mut body, Failure::BadPath, None).await, None),
        };
        self.log_access(&head, &outcome, route, start, &id);
        outcome.next
    }

    /// `wasm-host dev`: answers with the compiler's message when the request's route has a
    /// broken build (unless `--keep-serving` and a previous version serves it).
    async fn answer_build_failure(
        &mut self,
        head: &RequestHead,
        body: &mut RequestBody,
        routes: &crate::app::Routes,
    ) -> Option<Outcome> {
        let table = self.app.build_failures.as_ref()?.table.load_full();
        let Lookup::Found(broken) = table.lookup(&head.method, &head.path) else {
            return None;
        };
        let keep_serving = self.app.config.dev.is_some_and(|d| d.keep_serving);
        if keep_serving
            && matches!(routes.lookup(&head.method, &head.path), Lookup::Found(m) if m.handler.handler.is_ok())
        {
            return None;
        }
        Some(self.fail(head, body, Failure::BuildFailed(broken.handler.clone()), None).await)
    }

    /// Answers a failure that happened before any response head went out: the one place every
    /// such failure becomes what is sent. HEAD gets no body; the connection closes when the
    /// failure demands it, the request asked for it, or the body cannot be skipped. In dev
    /// mode, build errors and traps come with a page that shows them.
    ///
    /// The future is boxed: it is large (draining a body, an error page), and inline it would
    /// grow every exchange's future, which every connection holds while its request waits.
    pub(super) fn fail<'a>(
        &'a mut self,
        head: &'a RequestHead,
        body: &'a mut RequestBody,
        failure: Failure,
        route: Option<&'a str>,
    ) -> std::pin::Pin<Box<impl Future<Output = Outcome> + 'a>> {
        Box::pin(self.answer_failure(head, body, failure, route))
    }

    async fn answer_failure(
        &mut self,
        head: &RequestHead,
        body: &mut RequestBody,
        failure: Failure,
        route: Option<&str>,
    ) -> Outcome {
        failure.log(&self.app.metrics, route, false);
        let Some(mut answer) = failure.answer() else {
            return Outcome::closed();
        };
        if self.app.config.dev.is_some() {
            answer.page = failure.dev_page(self.wants_html);
        }
        if answer.page.is_none() && head.method != "HEAD" {
            // Boxed, like every call of `error_page`: rendering a page runs a whole guest call,
            // a large future that would otherwise make every connection's task larger.
            answer.page = Box::pin(self.error_page(Some(head), answer.status, &answer.message)).await;
        }
        let close =
            answer.close || !head.keep_alive || self.app.shutdown.is_given() || !self.settle_body(body).await;
        self.send_answer(&answer, close, head.method == "HEAD").await
    }

    /// Runs the handler's hooks for one request and writes its response.
    async fn run_handler(
        &mut self,
        head: &RequestHead,
        body: &mut RequestBody,
        request: Request,
        loaded: &LoadedHandler,
        start: Instant,
    ) -> Outcome {
        let route = Some(&*loaded.label);
        let handler = match &loaded.handler {
            Ok(handler) => handler,
            Err(reason) => return self.fail(head, body, Failure::Unavailable(reason.clone()), route).await,
        };
        let deadline = start + self.app.runtime.limits().request_timeout;
        // The handler may wait a long time (a long poll); nothing is read meanwhile.
        self.io.release_read_buffer();
        let mut inst = match self.app.runtime.instantiate(handler, &loaded.label).await {
            Ok(inst) => inst,
            Err(e) => return self.fail(head, body, e.into(), route).await,
        };
        let flow = match inst.before(&request, deadline).await {
            Ok(flow) => flow,
            Err(e) => return self.fail(head, body, e.into(), route).await,
        };
        // Only a request without a body can be parked (and so run again): the others need not
        // keep it while their body streams.
        let request = if body.decoder.is_done() { Some(request) } else { None };
        let response = match flow {
            Flow::Proceed => match self.feed_body(body, &mut inst, deadline).await {
                Ok(Some(early)) => early,
                Ok(None) => match inst.after(deadline).await {
                    Ok(response) => response,
                    Err(e) => return self.fail(head, body, e.into(), route).await,
                },
                Err(failure) => return self.fail(head, body, failure, route).await,
            },
            Flow::Close => return self.fail(head, body, Failure::HandlerClosed, route).await,
            Flow::Respond(response) => response,
            Flow::Begin(_) if inst.take_park().is_some() => {
                return self.fail(head, body, GuestError::Contract(PARK_NEEDS_FULL).into(), route).await;
            }
            // Boxed, like the stream pump in `respond`: every other exchange would carry it.
            Flow::Begin(response) => return Box::pin(self.duplex(head, body, response, inst, route)).await,
        };
        if let Some(park) = inst.take_park() {
            // Boxed: only parked requests wait here, and inline it would grow every exchange.
            let parked = Parked { request, response, inst, park, handler, label: &loaded.label, deadline };
            return Box::pin(self.park(head, body, parked)).await;
        }
        drop(request);
        self.respond(head, body, response, Some(inst), route).await
    }

    /// Answers a parked request (`subscription.park`): drops its instance, waits for a message
    /// on the topic without one, then runs the handler again on the same request in a fresh
    /// instance (whose subscriptions to that topic resume at the parked position), for as long
    /// as it parks again. Sends the response the handler parked with when the wait ends
    /// without a message (its timeout, the request's deadline less [`DEADLINE_MARGIN`], or
    /// shutdown); stops when the client goes away meanwhile.
    async fn park(&mut self, head: &RequestHead, body: &mut RequestBody, parked: Parked<'_>) -> Outcome {
        let Parked { request, mut response, mut inst, mut park, handler, label, deadline } = parked;
        let route = Some(&**label);
        let Some(request) = request else {
            let e = GuestError::Contract("only a request without a body can be parked");
            return self.fail(head, body, e.into(), route).await;
        };
        let Some(services) = self.app.runtime.services().cloned() else {
            let e = crate::services::StateError::Unavailable("this host has no state backend".into());
            return self.fail(head, body, Failure::StateUnavailable(e), route).await;
        };
        let now = Instant::now();
        // The first park's timeout bounds every later one, and the deadline bounds them all.
        let mut limit = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(now).max(now);
        let app = self.app.clone();
        // The last id a wake-up saw: a run that parks again waits for a later one, even if its
        // subscription found nothing (those messages expired), so it never spins.
        let mut seen = 0;
        loop {
            if !matches!(response.body, Body::Full(_)) {
                return self.fail(head, body, GuestError::Contract(PARK_NEEDS_FULL).into(), route).await;
            }
            drop(self.app.runtime.recycle(inst));
            limit = park.until.map_or(limit, |until| until.min(limit));
            let after = park.position.max(seen);
            // Counted only while it waits, so the gauge is back down before any answer is
            // written (a client that reads its answer then `/metrics` never sees it parked).
            let wake = {
                let _parked = self.app.metrics.parked();
                self.wait_parked(&services, &park.topic, after, limit).await
            };
            match wake {
                Ok(Wake::Message(last)) => seen = last,
                Ok(Wake::TimedOut) => return self.respond(head, body, response, None, route).await,
                Ok(Wake::ClientGone) => return self.fail(head, body, Failure::ClientGone, route).await,
                Err(e) => return self.fail(head, body, Failure::StateUnavailable(e), route).await,
            }
            // Woken with perhaps thousands of others: a few run at a time, each holding an
            // instance only while it does.
            let rerun = app.reruns.acquire().await;
            inst = match self.app.runtime.instantiate(handler, label).await {
                Ok(inst) => inst,
                Err(e) => return self.fail(head, body, e.into(), route).await,
            };
            inst.set_resume(Some(Resume { topic: park.topic.clone(), position: park.position }));
            response = match inst.before(&request, deadline).await {
                Ok(Flow::Proceed) => match inst.after(deadline).await {
                    Ok(response) => response,
                    Err(e) => return self.fail(head, body, e.into(), route).await,
                },
                Ok(Flow::Respond(response)) => response,
                Ok(Flow::Close) => return self.fail(head, body, Failure::HandlerClosed, route).await,
                Ok(Flow::Begin(_)) => {
                    let e =
                        GuestError::Contract("a parked request's next run cannot `begin` a duplex exchange");
                    return self.fail(head, body, e.into(), route).await;
                }
                Err(e) => return self.fail(head, body, e.into(), route).await,
            };
            drop(rerun);
            match inst.take_park() {
                Some(again) => park = again,
                None => return self.respond(head, body, response, Some(inst), route).await,
            }
        }
    }

    /// Waits until `topic` has a message after `after`, `until` passes, the host shuts down,
    /// or the client closes its side (bytes it sends instead stay in the buffer, for after the
    /// answer).
    async fn wait_parked(
        &mut self,
        services: &crate::services::Services,
        topic: &str,
        after: u64,
        until: Instant,
    ) -> Result<Wake, crate::services::StateError> {
        let mut watching = true;
        while Instant::now() < until {
            tokio::select! {
                last = services.wait(topic, after, until) => {
                    let last = last?;
                    if last > after {
                        return Ok(Wake::Message(last));
                    }
                }
                closed = self.io.client_closed(), if watching => {
                    if closed {
                        return Ok(Wake::ClientGone);
                    }
                    watching = false;
                }
                () = self.app.shutdown.token().cancelled() => return Ok(Wake::TimedOut),
            }
        }
        Ok(Wake::TimedOut)
    }

    /// Renders the site's error page for `status` (`routes/errors/{code}`), if it has one: a
    /// fresh instance of the page's handler is asked for `GET /errors/{code}`, with the status,
    /// the message and the original request's method and path in `wasm-host-error-*` head
    /// fields. Only a whole (full) body is taken. If the page fails in any way, `None`: the
    /// plain answer goes out; a page never gets a page.
    pub(super) async fn error_page(
        &mut self,
        original: Option<&RequestHead>,
        status: u16,
        message: &str,
    ) -> Option<(std::borrow::Cow<'static, str>, Vec<u8>)> {
        let pages = self.app.error_pages.load_full();
        if pages.is_empty() {
            return None;
        }
        let code = status.to_string();
        let Lookup::Found(found) = pages.lookup("GET", &format!("/{code}")) else {
            return None;
        };
        let handler = found.handler.handler.as_ref().ok()?;
        let label = &found.handler.label;
        let field = |name: &str, value: &str| Header {
            name: name.into(),
            // Control characters would break the head; a page gets them as spaces.
            value: value.bytes().map(|b| if b.is_ascii_control() && b != b'\t' { b' ' } else { b }).collect(),
        };
        let mut headers =
            vec![field("wasm-host-error-status", &code), field("wasm-host-error-message", message)];
        if let Some(head) = original {
            headers.push(field("wasm-host-original-method", &head.method));
            headers.push(field("wasm-host-original-path", &head.path));
        }
        let request = Request {
            method: "GET".into(),
            path: format!("/errors/{code}"),
            query: String::new(),
            protocol: original.map_or("HTTP/1.1", |h| h.version.as_str()).into(),
            headers,
            params: found.params,
            remote_addr: self.peer_text.clone(),
        };
        let deadline = Instant::now() + self.app.runtime.limits().request_timeout;
        let rendered = async {
            let mut inst = self.app.runtime.instantiate(handler, label).await?;
            let response = match inst.before(&request, deadline).await? {
                Flow::Proceed => inst.after(deadline).await?,
                Flow::Respond(response) => response,
                Flow::Close | Flow::Begin(_) => {
                    return Err(GuestError::Contract("an error page must answer"));
                }
            };
            Ok(response)
        }
        .await;
        let response = match rendered {
            Ok(response) => response,
            // Overloaded: the plain answer, quietly (every busy request would log otherwise).
            Err(GuestError::Busy | GuestError::RouteBusy(_)) => return None,
            Err(e) => {
                tracing::warn!(route = ?label, request_id = %crate::log::CurrentRequest, "error page for {status} failed, sending the plain answer: {e}");
                return None;
            }
        };
        let Body::Full(body) = response.body else {
            tracing::warn!(route = ?label, request_id = %crate::log::CurrentRequest, "error page for {status} is not a whole body, sending the plain answer");
            return None;
        };
        let content_type = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-type"))
            .and_then(|h| String::from_utf8(h.value.clone()).ok())
            .filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
            .map_or(std::borrow::Cow::Borrowed("text/html; charset=utf-8"), std::borrow::Cow::Owned);
        Some((content_type, body))
    }

    /// Hands the request body to the `stream` hook, chunk by chunk, as it arrives (reading the
    /// socket only once the guest took the previous chunk). `Ok(Some)`: the hook answered
    /// early; the rest of the body stays unread.
    async fn feed_body(
        &mut self,
        body: &mut RequestBody,
        inst: &mut Instance,
        deadline: Instant,
    ) -> Result<Option<Response>, Failure> {
        if body.decoder.is_done() {
            return Ok(None);
        }
        self.send_continue(body).await?;
        loop {
            let (consumed, step) = body.decoder.decode(&self.io.buf)?;
            match step {
                Decoded::Data(range) => {
                    body.handed_out = true;
                    let mut early = None;
                    for piece in self.io.buf[range].chunks(STREAM_CHUNK_SIZE) {
                        match inst.stream(piece, deadline).await {
                            Ok(Flow::Proceed) => continue,
                            Ok(Flow::Close) => early = Some(Err(Failure::HandlerClosed)),
                            Ok(Flow::Respond(response)) => early = Some(Ok(Some(response))),
                            Ok(Flow::Begin(_)) => {
                                early = Some(Err(GuestError::Contract(
                                    "`begin` is only allowed from `before`",
                                )
                                .into()))
                            }
                            Err(e) => early = Some(Err(e.into())),
                        }
                        break;
                    }
                    // The decoder counted these bytes as read: never leave them in the buffer,
                    // where they could be parsed as a request.
                    self.io.buf.advance(consumed);
                    if let Some(early) = early {
                        return early;
                    }
                }
                Decoded::NeedMore => {
                    self.io.buf.advance(consumed);
                    self.io.read_body_bytes().await?;
                }
                Decoded::Done => {
                    self.io.buf.advance(consumed);
                    body.fed_to_end = true;
                    return Ok(None);
                }
            }
        }
    }

    /// Sends `100 Continue` if the client is waiting for it.
    pub(super) async fn send_continue(&mut self, body: &mut RequestBody) -> Result<(), Failure> {
        if body.awaiting_continue {
            self.io.write_parts([CONTINUE_100]).await.map_err(|e| Failure::of_write(&e))?;
            body.awaiting_continue = false;
        }
        Ok(())
    }

    /// Gets the rest of the request body out of the way so the connection can serve another
    /// request: true if the handler took all of it, or none of it and the rest could be
    /// drained (at most [`DRAIN_LIMIT`] bytes, the client not waiting for `100 Continue`). A
    /// handler that answered in the middle of the body closes the connection.
    pub(super) async fn settle_body(&mut self, body: &mut RequestBody) -> bool {
        if let Some(settled) = body.settled {
            return settled;
        }
        let settled = body.fed_to_end
            || (!body.handed_out
                && (body.decoder.is_done()
                    || (!body.awaiting_continue && self.drain(&mut body.decoder).await)));
        body.settled = Some(settled);
        settled
    }

    /// Reads and discards what is left of a request body, up to [`DRAIN_LIMIT`] bytes.
    async fn drain(&mut self, decoder: &mut BodyDecoder) -> bool {
        let start = decoder.received();
        while !decoder.is_done() {
            let Ok((consumed, step)) = decoder.decode(&self.io.buf) else {
                return false;
            };
            self.io.buf.advance(consumed);
            if decoder.received() - start > DRAIN_LIMIT {
                return false;
            }
            if matches!(step, Decoded::NeedMore) && self.io.read_body_bytes().await.is_err() {
                return false;
            }
        }
        true
    }

    /// Writes a handler's response: its head, then its body of whichever kind.
    async fn respond(
        &mut self,
        head: &RequestHead,
        body: &mut RequestBody,
        mut response: Response,
        inst: Option<Instance>,
        route: Option<&str>,
    ) -> Outcome {
        // An `HttpError` sent as text gets the site's error page for its status, if any.
        if response.status >= 400
            && head.method != "HEAD"
            && response.headers.iter().any(|h| h.name.eq_ignore_ascii_case(ERROR_MARKER))
            && let Body::Full(text) = &response.body
        {
            let message = String::from_utf8_lossy(text).trim_end().to_owned();
            if let Some((content_type, page)) =
                Box::pin(self.error_page(Some(head), response.status, &message)).await
            {
                response.headers.retain(|h| !h.name.eq_ignore_ascii_case("content-type"));
                response.headers.push(Header {
                    name: "content-type".into(),
                    value: content_type.into_owned().into_bytes(),
                });
                response.body = Body::Full(page);
            }
        }
        let keep_alive = head.keep_alive && !self.app.shutdown.is_given() && self.settle_body(body).await;
        let plan = plan_response(
            head.method == "HEAD",
            head.version,
            response.status,
            body_kind(&response.body),
            keep_alive,
        );
        // An instance with nothing left to send goes back before the answer is written, so
        // the client's next request, on this connection or another, can already reuse it; one
        // not kept for reuse is torn down after the answer is written (`_retired`).
        let streams =
            plan.send_body && matches!(response.body, Body::Chunked | Body::Sized(_) | Body::Events);
        let (inst, _retired) = match inst {
            Some(inst) if !streams => (None, self.app.runtime.recycle(inst)),
            inst => (inst, None),
        };
        self.io.out.clear();
        let headers = response_headers(&response, plan.event_stream);
        if let Err(e) = encode_head(
            &mut self.io.out,
            head.version,
            response.status,
            headers,
            plan.framing,
            plan.keep_alive,
        ) {
            return self.fail(head, body, e.into(), route).await;
        }
        let status = Some(response.status);
        let next = if plan.keep_alive { Next::KeepAlive } else { Next::Close };
        // A full body goes out with its head in one write.
        let full: &[u8] = match &response.body {
            Body::Full(bytes) if plan.send_body => bytes,
            _ => &[],
        };
        if let Err(e) = self.io.write_out_with(full).await {
            Failure::of_write(&e).log(&self.app.metrics, route, true);
            return Outcome { status, bytes: 0, next: Next::Close, aborted: true };
        }
        let mut wire = (self.io.out.len() + full.len()) as u64;
        let mut source = match (response.body, inst) {
            (Body::Chunked | Body::Sized(_), Some(inst)) if plan.send_body => BodySource::chunks(inst),
            (Body::Events, Some(inst)) if plan.send_body => BodySource::events(inst),
            _ => return Outcome { status, bytes: wire, next, aborted: false },
        };
        let mut encoder = BodyEncoder::new(plan.framing);
        let times = self.pump_times();
        // Boxed: the pump is a large future that only streaming responses need, and inline it
        // would be part of every connection's task, which every parked request holds.
        let result =
            Box::pin(pump(&mut self.io, &mut source, &mut encoder, times, &mut wire, &self.app.runtime))
                .await;
        // A stream that ended as it should handed its instance back before its last write; one
        // that failed goes now, before the access line is written, so `live` counts it out.
        drop(source);
        finish_stream(&self.app.metrics, result, route, status, wire, next)
    }

    /// Runs a full-duplex exchange (`flow::begin`): the response head goes out now, then body
    /// chunks in and response chunks out alternate until both ends are done. Always closes the
    /// connection after: whatever body the guest did not wait for must not be read as a next
    /// request.
    async fn duplex(
        &mut self,
        head: &RequestHead,
        body: &mut RequestBody,
        response: Response,
        mut inst: Instance,
        route: Option<&str>,
    ) -> Outcome {
        if !matches!(response.body, Body::Chunked | Body::Sized(_)) {
            let e = GuestError::Contract("`begin` needs a chunked or sized body");
            return self.fail(head, body, e.into(), route).await;
        }
        if let Err(failure) = self.send_continue(body).await {
            return self.fail(head, body, failure, route).await;
        }
        body.handed_out = true;
        let plan = plan_response(
            head.method == "HEAD",
            head.version,
            response.status,
            body_kind(&response.body),
            false,
        );
        self.io.out.clear();
        let headers = response_headers(&response, false);
        if let Err(e) =
            encode_head(&mut self.io.out, head.version, response.status, headers, plan.framing, false)
        {
            return self.fail(head, body, e.into(), route).await;
        }
        let status = Some(response.status);
        if self.io.write_out_with(&[]).await.is_err() {
            return Outcome { status, bytes: 0, next: Next::Close, aborted: true };
        }
        let mut wire = self.io.out.len() as u64;
        if !plan.send_body {
            return Outcome { status, bytes: wire, next: Next::Close, aborted: false };
        }
        let mut encoder = BodyEncoder::new(plan.framing);
        let result = self.duplex_body(body, &mut inst, &mut encoder, &mut wire).await;
        drop(inst);
        finish_stream(&self.app.metrics, result, route, status, wire, Next::Close)
    }

    /// The body half of [`duplex`](Self::duplex).
    async fn duplex_body(
        &mut self,
        body: &mut RequestBody,
        inst: &mut Instance,
        encoder: &mut BodyEncoder,
        wire: &mut u64,
    ) -> Result<(), Failure> {
        let pull_timeout = self.app.runtime.limits().pull_timeout;
        loop {
            let (consumed, step) = body.decoder.decode(&self.io.buf)?;
            match step {
                Decoded::Data(range) => {
                    let mut at = range.start;
                    while at < range.end {
                        let end = (at + STREAM_CHUNK_SIZE).min(range.end);
                        duplex_stream(inst, &self.io.buf[at..end], pull_timeout).await?;
                        at = end;
                        if !self.pump_until_idle(inst, encoder, wire).await? {
                            return end_body(&mut self.io, encoder, wire).await;
                        }
                    }
                    self.io.buf.advance(consumed);
                }
                Decoded::NeedMore => {
                    self.io.buf.advance(consumed);
                    self.io.read_body_bytes().await?;
                }
                Decoded::Done => {
                    self.io.buf.advance(consumed);
                    duplex_stream(inst, &[], pull_timeout).await?;
                    while self.pump_until_idle(inst, encoder, wire).await? {}
                    return end_body(&mut self.io, encoder, wire).await;
                }
            }
        }
    }

    /// Pulls `next-chunk` until the guest returns an empty chunk (nothing ready: `Ok(true)`) or
    /// `none` (the response is complete: `Ok(false)`), writing each chunk.
    async fn pump_until_idle(
        &mut self,
        inst: &mut Instance,
        encoder: &mut BodyEncoder,
        wire: &mut u64,
    ) -> Result<bool, Failure> {
        loop {
            let deadline = Instant::now() + self.app.runtime.limits().pull_timeout;
            match inst.next_chunk(deadline).await? {
                None => return Ok(false),
                Some(chunk) if chunk.is_empty() => return Ok(true),
                Some(chunk) => write_piece(&mut self.io, encoder, &chunk, wire).await?,
            }
        }
    }

    pub(super) fn pump_times(&self) -> PumpTimes {
        PumpTimes {
            pull_timeout: self.app.runtime.limits().pull_timeout,
            sse_keepalive: self.app.config.timeouts.sse_keepalive,
        }
    }
}

/// Why a parked request must have a whole body: its answer on timeout is sent without an
/// instance to pull a stream from.
const PARK_NEEDS_FULL: &str = "a parked request's response must have a whole (`full`) body";

/// A request whose handler parked it, with what its answer needs.
struct Parked<'a> {
    /// The request, kept to run the handler again; `None` if it had a body.
    request: Option<Request>,
    /// What to send if the wait ends without a message.
    response: Response,
    inst: Instance,
    park: Park,
    handler: &'a Handler,
    label: &'a std::sync::Arc<str>,
    deadline: Instant,
}

/// How a parked request's wait ended.
enum Wake {
    /// The topic has a message after the parked position; the last id known.
    Message(u64),
    /// Its timeout, the request's deadline or shutdown came first.
    TimedOut,
    /// The client closed its side.
    ClientGone,
}

/// The guest's view of the request. The header and query strings move into it (not copied);
/// the head keeps what the connection still needs.
fn guest_request(head: &mut RequestHead, params: Vec<(String, String)>, peer: &str) -> Request {
    Request {
        method: head.method.clone(),
        path: percent_encoding::percent_decode_str(&head.path).decode_utf8_lossy().into_owned(),
        // Kept in the head for the access line.
        query: head.query.clone(),
        protocol: head.version.as_str().to_owned(),
        headers: mem::take(&mut head.headers)
            .into_iter()
            .map(|(name, value)| Header { name, value })
            .collect(),
        params,
        remote_addr: peer.to_owned(),
    }
}

/// The body kind a guest response declares.
fn body_kind(body: &Body) -> BodyKind {
    match body {
        Body::Full(bytes) => BodyKind::Full(bytes.len() as u64),
        Body::Sized(n) => BodyKind::Sized(*n),
        Body::Chunked => BodyKind::Stream,
        Body::Events => BodyKind::Events,
    }
}

/// The head fields of a guest response, borrowed; an event stream's `content-type` and
/// `cache-control` are the host's.
fn response_headers(response: &Response, event_stream: bool) -> impl Iterator<Item = (&str, &[u8])> {
    let replaced = move |name: &str| {
        event_stream
            && (name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("cache-control"))
    };
    response
        .headers
        .iter()
        .filter(move |h| !replaced(&h.name))
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .chain(SSE_HEADERS.iter().copied().filter(move |_| event_stream))
}

/// Passes one body chunk (empty: the body is complete) to `stream` during a duplex exchange.
/// Once the response head is out it is a streaming response: each call gets the per-pull
/// deadline, and only `proceed` makes sense.
async fn duplex_stream(
    inst: &mut Instance,
    chunk: &[u8],
    pull_timeout: std::time::Duration,
) -> Result<(), Failure> {
    match inst.stream(chunk, Instant::now() + pull_timeout).await? {
        Flow::Proceed => Ok(()),
        _ => Err(GuestError::Contract("only `proceed` is allowed from `stream` after `begin`").into()),
    }
}

/// The outcome of a streamed body: a failure after the head aborts the connection (logged),
/// never a second response.
pub(super) fn finish_stream(
    metrics: &crate::metrics::Metrics,
    result: Result<(), Failure>,
    route: Option<&str>,
    status: Option<u16>,
    wire: u64,
    next: Next,
) -> Outcome {
    match result {
        Ok(()) => Outcome { status, bytes: wire, next, aborted: false },
        Err(failure) => {
            failure.log(metrics, route, true);
            Outcome { status, bytes: wire, next: Next::Close, aborted: true }
        }
    }
}
