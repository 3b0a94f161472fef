//! Streamed response bodies: a [`BodySource`] (a guest's pulls today; a file or a store
//! subscription can join as variants) and [`pump`], which moves its pieces to the wire through
//! the sans-IO [`BodyEncoder`], only asking for the next piece once the last one is written.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::failure::Failure;
use super::io::Io;
use crate::http::{BodyEncoder, SSE_KEEPALIVE, SseEvent, encode_event};
use crate::runtime::Instance;

/// Where the pieces of a streamed response body come from.
pub(super) enum BodySource {
    /// A guest's `next-chunk` pulls.
    Chunks {
        /// The request's instance.
        inst: Instance,
        /// The last chunk pulled.
        chunk: Vec<u8>,
    },
    /// A guest's `next-event` pulls, each encoded as one Server-Sent Event.
    Events {
        /// The request's instance.
        inst: Instance,
        /// The last event, encoded.
        encoded: Vec<u8>,
    },
}

impl BodySource {
    /// Pulls the guest's chunks.
    pub(super) fn chunks(inst: Instance) -> Self {
        Self::Chunks { inst, chunk: Vec::new() }
    }

    /// Pulls the guest's events.
    pub(super) fn events(inst: Instance) -> Self {
        Self::Events { inst, encoded: Vec::with_capacity(256) }
    }

    /// The next piece of the body, `None` at its end; a piece may be empty (nothing yet). Each
    /// pull has `pull_timeout` of wall-clock time.
    async fn next(&mut self, pull_timeout: Duration) -> Result<Option<&[u8]>, Failure> {
        let deadline = Instant::now() + pull_timeout;
        match self {
            Self::Chunks { inst, chunk } => match inst.next_chunk(deadline).await? {
                None => Ok(None),
                Some(next) => {
                    *chunk = next;
                    Ok(Some(chunk))
                }
            },
            Self::Events { inst, encoded } => {
                let Some(event) = inst.next_event(deadline).await? else {
                    return Ok(None);
                };
                encoded.clear();
                let event = SseEvent {
                    event: event.event.as_deref(),
                    id: event.id.as_deref(),
                    data: &event.data,
                    retry: event.retry,
                };
                encode_event(encoded, &event)?;
                Ok(Some(encoded))
            }
        }
    }

    /// How long the stream may stay silent before a keep-alive comment is due, if it gets them.
    fn keepalive(&self, sse_keepalive: Duration) -> Option<Duration> {
        matches!(self, Self::Events { .. }).then_some(sse_keepalive)
    }
}

/// Timing for [`pump`].
#[derive(Clone, Copy, Debug)]
pub(super) struct PumpTimes {
    /// Wall-clock time for one pull.
    pub pull_timeout: Duration,
    /// Idle time before an event stream gets a keep-alive comment.
    pub sse_keepalive: Duration,
}

/// Writes `source`'s pieces through `encoder` until the source ends, then ends the body.
/// An event stream also watches the client: one that closes while the source is silent ends
/// the stream (and frees the instance) at once. (Other streams do not: a client that only
/// half-closes after its request still reads the whole body.) Adds the bytes put on the wire
/// to `wire`.
///
/// # Errors
///
/// Every error aborts the connection: the client went away, the guest failed, or the body
/// broke its framing (a sized body ending short or running long).
pub(super) async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    source: &mut BodySource,
    encoder: &mut BodyEncoder,
    times: PumpTimes,
    wire: &mut u64,
) -> Result<(), Failure> {
    let keepalive = source.keepalive(times.sse_keepalive);
    let mut watching = keepalive.is_some();
    loop {
        let pull = source.next(times.pull_timeout);
        tokio::pin!(pull);
        let piece = loop {
            tokio::select! {
                piece = &mut pull => break piece?,
                () = tokio::time::sleep(keepalive.unwrap_or_default()), if keepalive.is_some() => {
                    let framed = encoder.frame(SSE_KEEPALIVE)?;
                    io.write_parts(framed.parts()).await.map_err(|_| Failure::ClientGone)?;
                    *wire += framed.wire_len() as u64;
                }
                closed = io.client_closed(), if watching => {
                    if closed {
                        return Err(Failure::ClientGone);
                    }
                    // Pipelined bytes: the client is there; they wait in the buffer.
                    watching = false;
                }
            }
        };
        let Some(data) = piece else {
            let end = encoder.finish()?;
            io.write_parts([end]).await.map_err(|_| Failure::ClientGone)?;
            *wire += end.len() as u64;
            return Ok(());
        };
        let framed = encoder.frame(data)?;
        io.write_parts(framed.parts()).await.map_err(|_| Failure::ClientGone)?;
        *wire += framed.wire_len() as u64;
    }
}
