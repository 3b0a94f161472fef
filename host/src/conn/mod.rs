//! One connection: the keep-alive loop ([`serve`]) reads each request head and hands it to one
//! exchange (`exchange.rs`: route, run the handler's hooks, write the response). Every failure,
//! from a malformed head to a trapping guest, becomes what is sent in one place
//! (`failure.rs`, applied by `Conn::fail`); streamed bodies are pumped by `body.rs`; GET and
//! HEAD for paths no route has go to the static files (`files.rs`, with `--static`); standard
//! `wasi:http` components are served by `proxy.rs`, through the same failures and framing; the byte
//! stream and its buffers are `io.rs`. Generic over the stream: TCP, TLS, or an in-memory pipe
//! in tests. Read this module to learn what happens to a request.
//!
//! Rules kept here:
//! - Requests on a connection are answered strictly in order (pipelining falls out of reading
//!   the next head only after the previous response is written).
//! - Any framing error answers its status and closes; an unread request body is drained when
//!   small, otherwise the connection closes, so body bytes are never parsed as a next request.
//! - Once a response head is on the wire, errors are logged and the connection is closed; a
//!   second response is never written.
//! - No response to HEAD carries a body; a request that asked to close gets `connection:
//!   close` and a closed connection, whoever answers it.

mod body;
mod exchange;
mod failure;
mod files;
mod io;
mod proxy;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use self::failure::Failure;
use self::io::Io;
use crate::app::{App, StopWait};
use crate::http::{RequestHead, error_response, is_head_request, page_response, parse_head};

/// What the connection does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// What the access log records about a request.
struct Outcome {
    /// The status sent; `None` when nothing was (the handler or the client closed).
    status: Option<u16>,
    /// Bytes on the wire, head included.
    bytes: u64,
    next: Next,
    /// The head went out but the body was cut short (the connection is aborted).
    aborted: bool,
}

impl Outcome {
    /// Nothing was sent and the connection closes.
    fn closed() -> Self {
        Self { status: None, bytes: 0, next: Next::Close, aborted: false }
    }

    /// How the exchange ended, for the access line.
    fn ending(&self) -> crate::log::Ending {
        match (self.status, self.aborted) {
            (None, _) => crate::log::Ending::Closed,
            (Some(_), true) => crate::log::Ending::Aborted,
            (Some(_), false) => crate::log::Ending::Complete,
        }
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve<S>(stream: S, peer: SocketAddr, app: Arc<App>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let timeouts = app.config.timeouts;
    let (reading, writing) =
        (io::Pace::new(timeouts.body, timeouts.min_rate), io::Pace::new(timeouts.send, timeouts.min_rate));
    let io = Io::new(stream, reading, writing);
    let mut conn = Conn {
        io,
        peer_text: peer.to_string(),
        stop: app.shutdown.wait(),
        idle: None,
        app,
        wants_html: false,
    };
    let mut first = true;
    loop {
        let head = match conn.read_head(first).await {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(failure) => {
                let (method, path) =
                    crate::http::head::request_line_start(&conn.io.buf).unwrap_or(("-", "-"));
                let (method, path) = (method.to_owned(), path.to_owned());
                let outcome = conn.fail_head(&failure).await;
                conn.app.metrics.rejected(outcome.status);
                info!(
                    target: "access", method = %method, path = %path, peer = %peer,
                    status = %crate::log::Status(outcome.status), bytes = outcome.bytes,
                    outcome = %"rejected", "rejected request: {failure}"
                );
                break;
            }
        };
        first = false;
        conn.io.restart_pace();
        // At shutdown, a request already received (pipelined) is still answered, with
        // `connection: close`; an idle connection closes.
        if conn.exchange(head).await == Next::Close
            || (conn.app.shutdown.is_given() && conn.io.buf.is_empty())
        {
            break;
        }
        conn.io.shrink();
    }
    conn.io.shutdown().await;
}

struct Conn<S> {
    io: Io<S>,
    /// The client's address, formatted once for every request's access line and guest.
    peer_text: String,
    /// Completes when the server shuts down (an idle connection then closes).
    stop: StopWait,
    /// The idle timeout's timer, made at the first wait between two requests and moved only
    /// when it fires early (see `read_head`), so waiting for a next request arms no timer.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    app: Arc<App>,
    /// `wasm-host dev`: the current request accepts HTML, so its dev pages are HTML.
    wants_html: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Reads the next request head. `Ok(None)`: the client closed (or went idle, or the server is
    /// shutting down) between requests.
    async fn read_head(&mut self, first: bool) -> Result<Option<RequestHead>, Failure> {
        let timeouts = self.app.config.timeouts;
        let limits = self.app.config.http;
        // The header deadline runs from the accept for the first request, else from the first
        // byte of the request.
        let mut deadline = first.then(|| tokio::time::Instant::now() + timeouts.header);
        loop {
            if !self.io.buf.is_empty() {
                let started = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeouts.header);
                if let Some((head, n)) = parse_head(&self.io.buf, &limits)? {
                    self.io.buf.advance(n);
                    return Ok(Some(head));
                }
                deadline = Some(started);
            }
            let read = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.io.read_more()).await {
                    Ok(r) => r,
                    Err(_) if self.io.buf.is_empty() => return Ok(None),
                    Err(_) => return Err(Failure::HeadTimeout),
                },
                None => {
                    // Idle from now: the timer is due at or before `until` (it was set from an
                    // earlier wait's start); when it fires early it is set to `until`.
                    let until = tokio::time::Instant::now() + timeouts.idle;
                    let idle = self.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    loop {
                        tokio::select! {
                            r = self.io.read_more() => break r,
                            () = idle.as_mut() => {
                                if tokio::time::Instant::now() >= until {
                                    return Ok(None);
                                }
                                idle.as_mut().reset(until);
                            }
                            () = &mut self.stop => return Ok(None),
                        }
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Answers a failure to read a request head: there is no request to honour, so the answer
    /// always closes the connection (and has no body if the method was HEAD).
    async fn fail_head(&mut self, failure: &Failure) -> Outcome {
        failure.log(&self.app.metrics, None, false);
        let Some(mut answer) = failure.answer() else {
            return Outcome::closed();
        };
        let head_only = is_head_request(&self.io.buf);
        if !head_only {
            answer.page = Box::pin(self.error_page(None, answer.status, &answer.message)).await;
        }
        self.send_answer(&answer, true, head_only).await
    }

    /// Writes a host answer; `head_only` for a HEAD request (no body, RFC 9110 §9.3.2).
    async fn send_answer(&mut self, answer: &failure::Answer, close: bool, head_only: bool) -> Outcome {
        self.io.out.clear();
        let extra = answer.extra.as_ref().map(|(name, value)| (*name, &**value));
        match &answer.page {
            Some((content_type, body)) => page_response(
                &mut self.io.out,
                answer.status,
                content_type,
                body,
                extra.as_slice(),
                close,
                head_only,
            ),
            None => error_response(
                &mut self.io.out,
                answer.status,
                &answer.message,
                extra.as_slice(),
                close,
                head_only,
            ),
        }
        let (bytes, aborted) = match self.io.write_out_with(&[]).await {
            Ok(()) => (self.io.out.len() as u64, false),
            Err(_) => (0, true),
        };
        Outcome {
            status: Some(answer.status),
            bytes,
            next: if close || aborted { Next::Close } else { Next::KeepAlive },
            aborted,
        }
    }

    /// Logs one request's access line, and counts it for `/metrics`.
    fn log_access(
        &self,
        head: &RequestHead,
        outcome: &Outcome,
        route: Option<&str>,
        start: Instant,
        id: &crate::http::request_id::RequestId,
    ) {
        let elapsed = start.elapsed();
        self.app.metrics.request(route.unwrap_or("-"), outcome.status, elapsed);
        crate::log::access(&crate::log::Access {
            method: &head.method,
            path: &head.path,
            query: &head.query,
            status: outcome.status,
            bytes: outcome.bytes,
            micros: elapsed.as_micros() as u64,
            route: route.unwrap_or("-"),
            peer: &self.peer_text,
            live: self.app.runtime.live_instances(),
            request_id: id.as_str(),
            outcome: outcome.ending(),
        });
    }
}

#[cfg(test)]
mod tests;
