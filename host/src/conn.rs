//! One connection's keep-alive loop: read a request head, route it, run the handler's hooks,
//! write the response, repeat. This is the only module that joins `http` (framing), `routes`
//! (lookup) and `runtime` (guest calls): read it to learn what happens to a request.
//!
//! Rules kept here:
//! - Requests on a connection are answered strictly in order (pipelining falls out of reading
//!   the next head only after the previous response is written).
//! - Any framing error answers its status and closes; an unread request body is drained when
//!   small, otherwise the connection closes, so body bytes are never parsed as a next request.
//! - Once a response head is on the wire, errors are logged and the connection is closed; a
//!   second response is never written.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::config::{DRAIN_LIMIT, STREAM_CHUNK_SIZE};
use crate::http::{
    BodyDecoder, BodyFraming, CHUNK_TRAILER, CONTINUE_100, Decoded, LAST_CHUNK, RequestError, RequestHead,
    ResponseFraming, Version, chunk_header, encode_head, error_response, parse_head, status_allows_body,
};
use crate::routes::Lookup;
use crate::runtime::{Body, Event, Flow, GuestError, Header, Instance, Request, Response};
use crate::server::App;

/// Read buffer size; grown only while a request head or chunk is larger.
const READ_BUF: usize = 16 * 1024;

/// What the connection does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, app: Arc<App>) {
    // SSE and small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        peer,
        peer_text: peer.to_string(),
        buf: BytesMut::with_capacity(READ_BUF),
        out: Vec::with_capacity(512),
        app,
    };
    let mut first = true;
    loop {
        let head = match conn.read_head(first).await {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(e) => {
                let status = e.status();
                conn.send_error(status, &e.to_string(), &[], true).await;
                info!(target: "access", peer = %peer, status, "rejected request: {e}");
                break;
            }
        };
        first = false;
        if conn.handle(head).await == Next::Close || conn.app.shutdown.is_cancelled() {
            break;
        }
    }
    let _ = conn.stream.shutdown().await;
}

/// Why reading a request head stopped with an answer.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error(transparent)]
    Invalid(#[from] RequestError),
    #[error("request head not received in time")]
    Timeout,
}

impl HeadError {
    fn status(&self) -> u16 {
        match self {
            HeadError::Invalid(e) => e.status(),
            HeadError::Timeout => 408,
        }
    }
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    peer_text: String,
    buf: BytesMut,
    out: Vec<u8>,
    app: Arc<App>,
}

/// What the access log records about a request.
struct Outcome {
    status: u16,
    bytes: u64,
    next: Next,
}

impl Conn {
    /// Reads the next request head. `Ok(None)`: the client closed (or went idle, or the server is
    /// shutting down) between requests.
    async fn read_head(&mut self, first: bool) -> Result<Option<RequestHead>, HeadError> {
        let timeouts = self.app.config.timeouts;
        let limits = self.app.config.http;
        // The header deadline runs from the accept for the first request, else from the first
        // byte of the request.
        let mut deadline = first.then(|| tokio::time::Instant::now() + timeouts.header);
        loop {
            if !self.buf.is_empty() {
                let started = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeouts.header);
                if let Some((head, n)) = parse_head(&self.buf, &limits)? {
                    self.buf.advance(n);
                    return Ok(Some(head));
                }
                deadline = Some(started);
            }
            self.buf.reserve(READ_BUF);
            let read = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.stream.read_buf(&mut self.buf)).await {
                    Ok(r) => r,
                    Err(_) if self.buf.is_empty() => return Ok(None),
                    Err(_) => return Err(HeadError::Timeout),
                },
                None => {
                    let idle = tokio::time::sleep(timeouts.idle);
                    tokio::select! {
                        r = self.stream.read_buf(&mut self.buf) => r,
                        () = idle => return Ok(None),
                        () = self.app.shutdown.cancelled() => return Ok(None),
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Routes and answers one request.
    async fn handle(&mut self, mut head: RequestHead) -> Next {
        let start = Instant::now();
        let routes = self.app.routes.load_full();
        let (outcome, route) = match routes.lookup(&head.method, &head.path) {
            Lookup::Found(found) => {
                let loaded = found.handler;
                // The guest gets the header and query strings themselves (moved, not copied);
                // the head keeps what the connection still needs.
                let request = Request {
                    method: head.method.clone(),
                    path: percent_encoding::percent_decode_str(&head.path).decode_utf8_lossy().into_owned(),
                    query: std::mem::take(&mut head.query),
                    protocol: head.version.as_str().to_owned(),
                    headers: std::mem::take(&mut head.headers)
                        .into_iter()
                        .map(|(name, value)| Header { name, value })
                        .collect(),
                    params: found.params,
                    remote_addr: self.peer_text.clone(),
                };
                (self.run_handler(&head, request, loaded, start).await, Some(&*loaded.label))
            }
            Lookup::MethodNotAllowed { allow } => {
                (self.answer_unrouted(&head, 405, "method not allowed", &[("allow", allow)]).await, None)
            }
            Lookup::NotFound => (self.answer_unrouted(&head, 404, "not found", &[]).await, None),
            Lookup::BadPath => (self.answer_unrouted(&head, 400, "bad request path", &[]).await, None),
        };
        info!(
            target: "access",
            method = %head.method, path = %head.path, status = outcome.status,
            bytes = outcome.bytes, micros = start.elapsed().as_micros() as u64,
            route = %route.unwrap_or("-"), peer = %self.peer, live = self.app.runtime.live_instances(),
        );
        outcome.next
    }

    /// Answers a request that reached no handler, draining its body if it is small.
    async fn answer_unrouted(
        &mut self,
        head: &RequestHead,
        status: u16,
        message: &str,
        extra: &[(&str, &str)],
    ) -> Outcome {
        let mut decoder = BodyDecoder::new(head.framing, self.app.config.http.max_body);
        let close = !head.keep_alive
            || status == 400
            || (head.expect_continue && !decoder.is_done())
            || !self.drain(&mut decoder).await;
        let bytes = self.send_error(status, message, extra, close).await;
        Outcome { status, bytes, next: if close { Next::Close } else { Next::KeepAlive } }
    }

    /// Runs the handler's hooks for one request and writes its response.
    async fn run_handler(
        &mut self,
        head: &RequestHead,
        request: Request,
        loaded: &crate::server::LoadedHandler,
        start: Instant,
    ) -> Outcome {
        let app = self.app.clone();
        let deadline = start + app.runtime.limits().request_timeout;
        let Ok(_permit) = app.instances.try_acquire() else {
            warn!(route = %loaded.label, "no free instance slot (--max-instances reached)");
            let bytes = self.send_error(503, "server busy", &[("retry-after", "1")], true).await;
            return Outcome { status: 503, bytes, next: Next::Close };
        };
        let mut inst = match app.runtime.instantiate(&loaded.handler, &loaded.label).await {
            Ok(inst) => inst,
            Err(e) => return self.guest_failed(&loaded.label, e, true).await,
        };
        let mut decoder = BodyDecoder::new(head.framing, app.config.http.max_body);

        let flow = match inst.before(&request, deadline).await {
            Ok(flow) => flow,
            Err(e) => return self.guest_failed(&loaded.label, e, !decoder.is_done()).await,
        };
        match flow {
            Flow::Proceed => {}
            Flow::Close => return Outcome { status: 0, bytes: 0, next: Next::Close },
            Flow::Respond(response) => {
                let close = !head.keep_alive
                    || (head.expect_continue && !decoder.is_done())
                    || !self.drain(&mut decoder).await;
                return self.send_response(head, response, &mut inst, close, &loaded.label).await;
            }
            Flow::Begin(response) => {
                return self.run_duplex(head, response, &mut inst, &mut decoder, &loaded.label).await;
            }
        }

        if head.framing != BodyFraming::None {
            if head.expect_continue && self.stream.write_all(CONTINUE_100).await.is_err() {
                return Outcome { status: 0, bytes: 0, next: Next::Close };
            }
            loop {
                let (consumed, step) = match decoder.decode(&self.buf) {
                    Ok(r) => r,
                    Err(e) => {
                        let status = e.status();
                        let bytes = self.send_error(status, &e.to_string(), &[], true).await;
                        return Outcome { status, bytes, next: Next::Close };
                    }
                };
                match step {
                    Decoded::Data(range) => {
                        for piece in self.buf[range].chunks(STREAM_CHUNK_SIZE) {
                            match inst.stream(piece, deadline).await {
                                Ok(Flow::Proceed) => {}
                                Ok(Flow::Close) => {
                                    return Outcome { status: 0, bytes: 0, next: Next::Close };
                                }
                                Ok(Flow::Respond(response)) => {
                                    // The rest of the body is unread: never parse it as a request.
                                    return self
                                        .send_response(head, response, &mut inst, true, &loaded.label)
                                        .await;
                                }
                                Ok(Flow::Begin(_)) => {
                                    let e = GuestError::Trap("`begin` is only allowed from `before`".into());
                                    return self.guest_failed(&loaded.label, e, true).await;
                                }
                                Err(e) => return self.guest_failed(&loaded.label, e, true).await,
                            }
                        }
                        self.buf.advance(consumed);
                    }
                    Decoded::NeedMore => {
                        self.buf.advance(consumed);
                        match self.read_body_bytes().await {
                            Ok(()) => {}
                            Err(status) => {
                                let bytes = match status {
                                    0 => 0,
                                    s => {
                                        self.send_error(s, "request body not received in time", &[], true)
                                            .await
                                    }
                                };
                                return Outcome { status, bytes, next: Next::Close };
                            }
                        }
                    }
                    Decoded::Done => {
                        self.buf.advance(consumed);
                        break;
                    }
                }
            }
        }

        match inst.after(deadline).await {
            Ok(response) => {
                let close = !head.keep_alive;
                self.send_response(head, response, &mut inst, close, &loaded.label).await
            }
            Err(e) => self.guest_failed(&loaded.label, e, false).await,
        }
    }

    /// Reads more body bytes. `Err(408)` on the body timeout, `Err(0)` if the client went away.
    async fn read_body_bytes(&mut self) -> Result<(), u16> {
        self.buf.reserve(READ_BUF);
        let timeout = self.app.config.timeouts.body;
        match tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(408),
            Ok(Ok(0)) | Ok(Err(_)) => Err(0),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Reads and discards what is left of a request body, up to [`DRAIN_LIMIT`] bytes. Returns
    /// whether the connection can be reused.
    async fn drain(&mut self, decoder: &mut BodyDecoder) -> bool {
        let start = decoder.received();
        while !decoder.is_done() {
            let (consumed, step) = match decoder.decode(&self.buf) {
                Ok(r) => r,
                Err(_) => return false,
            };
            self.buf.advance(consumed);
            if decoder.received() - start > DRAIN_LIMIT {
                return false;
            }
            if matches!(step, Decoded::NeedMore) && self.read_body_bytes().await.is_err() {
                return false;
            }
        }
        true
    }

    /// Maps a guest failure to its status (one place), logs it and answers.
    async fn guest_failed(&mut self, route: &str, e: GuestError, close: bool) -> Outcome {
        let status = match &e {
            GuestError::Trap(_) => 500,
            GuestError::CpuTimeout(_) | GuestError::Deadline => 504,
            GuestError::Instantiate(_) => 503,
        };
        warn!(route = %route, status, "handler failed: {e}");
        let message = match status {
            500 => "internal server error",
            503 => "server busy",
            _ => "handler timed out",
        };
        let bytes = self.send_error(status, message, &[], close).await;
        Outcome { status, bytes, next: if close { Next::Close } else { Next::KeepAlive } }
    }

    /// Writes a small plain-text error response; returns the bytes written.
    async fn send_error(&mut self, status: u16, message: &str, extra: &[(&str, &str)], close: bool) -> u64 {
        self.out.clear();
        error_response(&mut self.out, status, message, extra, close);
        match self.stream.write_all(&self.out).await {
            Ok(()) => self.out.len() as u64,
            Err(_) => 0,
        }
    }

    /// Writes a handler's response head (with a full body, in the same write).
    async fn send_head(
        &mut self,
        head: &RequestHead,
        response: &Response,
        close: bool,
        route: &str,
    ) -> AfterHead {
        let status = response.status;
        let is_head = head.method == "HEAD";
        let mut keep_alive = !close && !self.app.shutdown.is_cancelled();
        let framing = match &response.body {
            _ if !status_allows_body(status) => ResponseFraming::NoBody,
            Body::Full(bytes) => ResponseFraming::Length(bytes.len() as u64),
            Body::Sized(n) => ResponseFraming::Length(*n),
            _ if is_head => ResponseFraming::NoBody,
            _ if head.version == Version::Http10 => {
                keep_alive = false;
                ResponseFraming::UntilClose
            }
            _ => ResponseFraming::Chunked,
        };
        // Streamed bodies are pulled after the head; a full body goes out with it.
        let streamed =
            !is_head && framing != ResponseFraming::NoBody && !matches!(response.body, Body::Full(_));
        let writer = streamed.then(|| BodyWriter::new(framing));
        let is_sse = matches!(response.body, Body::Events) && status_allows_body(status);
        let sse_headers: &[(&str, &[u8])] = if is_sse {
            &[("content-type", b"text/event-stream"), ("cache-control", b"no-cache")]
        } else {
            &[]
        };
        let headers = response
            .headers
            .iter()
            .filter(|h| {
                !(is_sse
                    && (h.name.eq_ignore_ascii_case("content-type")
                        || h.name.eq_ignore_ascii_case("cache-control")))
            })
            .map(|h| (h.name.as_str(), h.value.as_slice()))
            .chain(sse_headers.iter().copied());
        self.out.clear();
        if let Err(e) = encode_head(&mut self.out, head.version, status, headers, framing, keep_alive) {
            warn!(route = %route, "handler returned an invalid response: {e}");
            let bytes = self.send_error(500, "internal server error", &[], close).await;
            let next = if close { Next::Close } else { Next::KeepAlive };
            return AfterHead::Done(Outcome { status: 500, bytes, next });
        }
        let next = if keep_alive { Next::KeepAlive } else { Next::Close };
        let head_len = self.out.len() as u64;
        // A full body goes out with its head in one write.
        let body: &[u8] = match (&response.body, writer.is_none() && !is_head) {
            (Body::Full(bytes), true) if status_allows_body(status) => bytes,
            _ => &[],
        };
        if write_all(&mut self.stream, &[&self.out, body]).await.is_err() {
            return AfterHead::Done(Outcome { status, bytes: 0, next: Next::Close });
        }
        let sent = head_len + body.len() as u64;
        match writer {
            Some(mut w) => {
                w.wire = sent;
                AfterHead::Stream(w, next)
            }
            None => AfterHead::Done(Outcome { status, bytes: sent, next }),
        }
    }

    /// Writes a handler's response: its head, then its body of whichever kind.
    async fn send_response(
        &mut self,
        head: &RequestHead,
        response: Response,
        inst: &mut Instance,
        close: bool,
        route: &str,
    ) -> Outcome {
        let status = response.status;
        let (mut writer, next) = match self.send_head(head, &response, close, route).await {
            AfterHead::Stream(w, next) => (w, next),
            AfterHead::Done(outcome) => return outcome,
        };
        let result = if matches!(response.body, Body::Events) {
            self.pump_events(inst, &mut writer).await
        } else {
            self.pump_chunks(inst, &mut writer).await
        };
        self.finish_body(result, &mut writer, status, next, route).await
    }

    /// Runs a full-duplex exchange (`flow::begin`): the response head goes out now, then body
    /// chunks in and response chunks out alternate until both ends are done.
    async fn run_duplex(
        &mut self,
        head: &RequestHead,
        response: Response,
        inst: &mut Instance,
        decoder: &mut BodyDecoder,
        route: &str,
    ) -> Outcome {
        if !matches!(response.body, Body::Chunked | Body::Sized(_)) {
            return self
                .guest_failed(route, GuestError::Trap("`begin` needs a chunked or sized body".into()), true)
                .await;
        }
        if head.expect_continue && !decoder.is_done() && self.stream.write_all(CONTINUE_100).await.is_err() {
            return Outcome { status: 0, bytes: 0, next: Next::Close };
        }
        let status = response.status;
        // A duplex response always closes the connection (`close: true`): whatever body the
        // guest did not wait for must not be read as a next request.
        let mut writer = match self.send_head(head, &response, true, route).await {
            AfterHead::Stream(w, _) => w,
            AfterHead::Done(outcome) => return Outcome { next: Next::Close, ..outcome },
        };
        let pull_timeout = self.app.runtime.limits().pull_timeout;
        let result = async {
            loop {
                let (consumed, step) =
                    decoder.decode(&self.buf).map_err(|e| BodyEnd::BadRequestBody(e.status()))?;
                match step {
                    Decoded::Data(range) => {
                        for piece in self.buf[range].chunks(STREAM_CHUNK_SIZE) {
                            duplex_stream(inst, piece, pull_timeout).await?;
                            // Pull until the guest has nothing more for now.
                            if !pump_until_idle(&mut self.stream, inst, &mut writer, &self.app).await? {
                                return writer.finish(&mut self.stream).await;
                            }
                        }
                        self.buf.advance(consumed);
                    }
                    Decoded::NeedMore => {
                        self.buf.advance(consumed);
                        self.read_body_bytes().await.map_err(|_| BodyEnd::BodyStalled)?;
                    }
                    Decoded::Done => {
                        self.buf.advance(consumed);
                        duplex_stream(inst, &[], pull_timeout).await?;
                        break;
                    }
                }
            }
            self.pump_chunks(inst, &mut writer).await
        }
        .await;
        self.finish_body(result, &mut writer, status, Next::Close, route).await
    }

    /// Turns the end of a streamed body into an outcome, logging anything abnormal.
    async fn finish_body(
        &mut self,
        result: Result<(), BodyEnd>,
        writer: &mut BodyWriter,
        status: u16,
        next: Next,
        route: &str,
    ) -> Outcome {
        match result {
            Ok(()) => Outcome { status, bytes: writer.wire, next },
            Err(BodyEnd::ClientGone) => {
                info!(route = %route, "client went away during the response body");
                Outcome { status, bytes: writer.wire, next: Next::Close }
            }
            Err(end) => {
                warn!(route = %route, "response body aborted: {end}");
                Outcome { status, bytes: writer.wire, next: Next::Close }
            }
        }
    }

    /// Pulls `next-chunk` until `none`, writing each non-empty chunk, then ends the body.
    async fn pump_chunks(&mut self, inst: &mut Instance, writer: &mut BodyWriter) -> Result<(), BodyEnd> {
        loop {
            let deadline = Instant::now() + self.app.runtime.limits().pull_timeout;
            let Some(chunk) = inst.next_chunk(deadline).await? else {
                return writer.finish(&mut self.stream).await;
            };
            writer.write(&mut self.stream, &chunk).await?;
        }
    }

    /// Pulls `next-event` until none or the client goes away, sending a keep-alive comment
    /// whenever the guest is silent for the configured interval.
    async fn pump_events(&mut self, inst: &mut Instance, writer: &mut BodyWriter) -> Result<(), BodyEnd> {
        let keepalive = self.app.config.timeouts.sse_keepalive;
        let pull_timeout = self.app.runtime.limits().pull_timeout;
        let mut event_bytes = Vec::with_capacity(256);
        let mut watch_client = true;
        loop {
            let pull = inst.next_event(Instant::now() + pull_timeout);
            tokio::pin!(pull);
            let event = loop {
                let mut probe = [0u8; 1];
                tokio::select! {
                    r = &mut pull => break r?,
                    () = tokio::time::sleep(keepalive) => {
                        writer.write(&mut self.stream, b": keep-alive\n\n").await?;
                    }
                    // A read of 0 bytes means the client closed: stop pulling events.
                    r = self.stream.peek(&mut probe), if watch_client => {
                        match r {
                            Ok(0) | Err(_) => return Err(BodyEnd::ClientGone),
                            // Pipelined bytes from the client: stop watching.
                            Ok(_) => watch_client = false,
                        }
                    }
                }
            };
            let Some(event) = event else {
                return writer.finish(&mut self.stream).await;
            };
            event_bytes.clear();
            encode_event(&mut event_bytes, &event)
                .map_err(|reason| BodyEnd::Guest(GuestError::Trap(format!("invalid event: {reason}"))))?;
            writer.write(&mut self.stream, &event_bytes).await?;
        }
    }
}

/// Passes one body chunk (empty: the body is complete) to `stream` during a duplex exchange.
/// Once the response head is out it is a streaming response: each call gets the per-pull
/// deadline, and only `proceed` makes sense.
async fn duplex_stream(inst: &mut Instance, chunk: &[u8], pull_timeout: Duration) -> Result<(), BodyEnd> {
    match inst.stream(chunk, Instant::now() + pull_timeout).await? {
        Flow::Proceed => Ok(()),
        _ => Err(BodyEnd::Guest(GuestError::Trap(
            "only `proceed` is allowed from `stream` after `begin`".into(),
        ))),
    }
}

/// Pulls `next-chunk` until the guest returns an empty chunk (nothing ready: `Ok(true)`) or
/// `none` (the response is complete: `Ok(false)`).
async fn pump_until_idle(
    stream: &mut TcpStream,
    inst: &mut Instance,
    writer: &mut BodyWriter,
    app: &App,
) -> Result<bool, BodyEnd> {
    loop {
        let deadline = Instant::now() + app.runtime.limits().pull_timeout;
        match inst.next_chunk(deadline).await? {
            None => return Ok(false),
            Some(chunk) if chunk.is_empty() => return Ok(true),
            Some(chunk) => writer.write(stream, &chunk).await?,
        }
    }
}

/// What is left once a response head is on the wire.
enum AfterHead {
    /// Nothing: the response is complete (bodyless, full body, or it failed).
    Done(Outcome),
    /// A streamed body, to be written with this writer; then the connection does `Next`.
    Stream(BodyWriter, Next),
}

/// Why a response body stopped before its normal end.
#[derive(Debug, thiserror::Error)]
enum BodyEnd {
    #[error("client went away")]
    ClientGone,
    #[error("sized body ran longer than its declared {0} bytes")]
    TooLong(u64),
    #[error("sized body ended after {sent} of its declared {total} bytes")]
    TooShort { sent: u64, total: u64 },
    #[error("handler failed: {0}")]
    Guest(#[from] GuestError),
    #[error("request body stalled or the client went away")]
    BodyStalled,
    #[error("request body framing error (status {0})")]
    BadRequestBody(u16),
}

/// Frames response body pieces and enforces a sized body's exact length: never an extra or a
/// missing byte on the wire.
struct BodyWriter {
    /// `Chunked`, `Length` (a sized stream) or `UntilClose`.
    framing: ResponseFraming,
    /// Body bytes written (before framing).
    body: u64,
    /// Bytes on the wire, head included.
    wire: u64,
}

impl BodyWriter {
    fn new(framing: ResponseFraming) -> Self {
        Self { framing, body: 0, wire: 0 }
    }

    async fn write(&mut self, stream: &mut TcpStream, data: &[u8]) -> Result<(), BodyEnd> {
        if data.is_empty() {
            return Ok(());
        }
        let (data, too_long) = match self.framing {
            ResponseFraming::Length(total) => {
                let room = (total - self.body).min(data.len() as u64) as usize;
                (&data[..room], room < data.len())
            }
            _ => (data, false),
        };
        let written = if self.framing == ResponseFraming::Chunked {
            let header = chunk_header(data.len());
            write_all(stream, &[header.as_bytes(), data, CHUNK_TRAILER])
                .await
                .map(|()| header.as_bytes().len() + data.len() + 2)
        } else {
            write_all(stream, &[data]).await.map(|()| data.len())
        };
        self.wire += written.map_err(|_| BodyEnd::ClientGone)? as u64;
        self.body += data.len() as u64;
        if too_long {
            let ResponseFraming::Length(total) = self.framing else { unreachable!() };
            return Err(BodyEnd::TooLong(total));
        }
        Ok(())
    }

    async fn finish(&mut self, stream: &mut TcpStream) -> Result<(), BodyEnd> {
        match self.framing {
            ResponseFraming::Chunked => {
                write_all(stream, &[LAST_CHUNK]).await.map_err(|_| BodyEnd::ClientGone)?;
                self.wire += LAST_CHUNK.len() as u64;
                Ok(())
            }
            ResponseFraming::Length(total) if self.body != total => {
                Err(BodyEnd::TooShort { sent: self.body, total })
            }
            ResponseFraming::Length(_) | ResponseFraming::UntilClose | ResponseFraming::NoBody => Ok(()),
        }
    }
}

/// Writes every part, in order, with as few syscalls as the kernel allows.
async fn write_all(stream: &mut TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    let mut parts: [&[u8]; 4] = {
        let mut a: [&[u8]; 4] = [&[]; 4];
        a[..parts.len()].copy_from_slice(parts);
        a
    };
    let mut first = 0;
    while first < parts.len() {
        if parts[first].is_empty() {
            first += 1;
            continue;
        }
        let slices = [
            IoSlice::new(parts[first]),
            IoSlice::new(parts.get(first + 1).copied().unwrap_or_default()),
            IoSlice::new(parts.get(first + 2).copied().unwrap_or_default()),
            IoSlice::new(parts.get(first + 3).copied().unwrap_or_default()),
        ];
        let mut n = stream.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let take = n.min(parts[first].len());
            parts[first] = &parts[first][take..];
            n -= take;
            if parts[first].is_empty() {
                first += 1;
            }
        }
    }
    Ok(())
}

/// Encodes one Server-Sent Event (HTML standard §9.2.5). Multi-line data becomes several `data:`
/// lines; event names and ids may not contain line breaks (ids not NUL either).
fn encode_event(out: &mut Vec<u8>, event: &Event) -> Result<(), &'static str> {
    let bad = |s: &str| s.contains(['\r', '\n']);
    if let Some(name) = &event.event {
        if bad(name) {
            return Err("event name contains a line break");
        }
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    if let Some(id) = &event.id {
        if bad(id) || id.contains('\0') {
            return Err("event id contains a line break or NUL");
        }
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(retry) = event.retry {
        out.extend_from_slice(format!("retry: {retry}\n").as_bytes());
    }
    // Split on CRLF, CR or LF, the three line endings an event stream recognises.
    let data = event.data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        Event { event: None, data: data.into(), id: None, retry: None }
    }

    #[test]
    fn multi_line_event_data_becomes_several_data_lines() {
        let mut out = Vec::new();
        let mut e = event("one\ntwo\r\nthree");
        e.event = Some("multi".into());
        e.id = Some("7".into());
        e.retry = Some(1500);
        encode_event(&mut out, &e).unwrap();
        assert_eq!(out, b"event: multi\nid: 7\nretry: 1500\ndata: one\ndata: two\ndata: three\n\n");
    }

    #[test]
    fn event_name_with_newline_is_rejected() {
        let mut e = event("x");
        e.event = Some("a\nb".into());
        assert!(encode_event(&mut Vec::new(), &e).is_err());
        let mut e = event("x");
        e.id = Some("a\0".into());
        assert!(encode_event(&mut Vec::new(), &e).is_err());
    }
}
