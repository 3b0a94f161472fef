//! Streamed response bodies: a [`BodySource`] (a guest's pulls, a static file read from disk;
//! a store subscription can join as a variant) and [`pump`], which moves its pieces to the wire
//! through the sans-IO [`BodyEncoder`], only asking for the next piece once the last one is
//! written.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::failure::Failure;
use super::io::Io;
use crate::config::{STATIC_READ_CHUNK, STREAM_BATCH};
use crate::http::{BodyEncoder, SSE_KEEPALIVE, SseEvent, encode_event};
use crate::runtime::{GuestError, Instance, Retired, Runtime};
use crate::static_files::Part;

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
    /// A static file's bytes: the parts of its body (the whole file, a range, or the ranges and
    /// part headers of a `multipart/byteranges` body), read from disk on a blocking thread one
    /// [`STATIC_READ_CHUNK`] at a time.
    File {
        /// The open file (shared with the blocking reads).
        file: Arc<std::fs::File>,
        /// The parts not yet sent; the front one may be partly sent.
        parts: VecDeque<Part>,
        /// The last piece read (reused).
        buf: Vec<u8>,
    },
    /// A guest's stream that ended, its instance handed back ([`BodySource::hand_back`]).
    Ended,
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

    /// Reads these parts of `file`.
    pub(super) fn file(file: std::fs::File, parts: Vec<Part>) -> Self {
        Self::File { file: Arc::new(file), parts: parts.into(), buf: Vec::new() }
    }

    /// Hands the instance of a guest's stream that ended as it should back to `runtime`
    /// (`Runtime::recycle`): before the last bytes are written, so the client's next request
    /// can already reuse it, or find its permit on the way back.
    fn hand_back(&mut self, runtime: &Runtime) -> Option<Retired> {
        if matches!(self, Self::File { .. }) {
            return None;
        }
        match std::mem::replace(self, Self::Ended) {
            Self::Chunks { inst, .. } | Self::Events { inst, .. } => runtime.recycle(inst),
            Self::File { .. } | Self::Ended => None,
        }
    }

    /// The next piece of the body, `None` at its end; a piece may be empty (nothing yet). Each
    /// pull of a guest has `pull_timeout` of wall-clock time.
    async fn next(&mut self, pull_timeout: Duration) -> Result<Option<&[u8]>, Failure> {
        let deadline = Instant::now() + pull_timeout;
        match self {
            Self::File { file, parts, buf } => next_file_piece(file, parts, buf).await,
            Self::Ended => Ok(None),
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

/// Reads the next piece of a file body: the front part's made bytes, or up to
/// [`STATIC_READ_CHUNK`] bytes of its range, read on a blocking thread (`pread`, so no seek
/// position is shared). A file that got shorter ends the body early, which the sized encoder
/// turns into an aborted connection, never a wrong body.
async fn next_file_piece<'a>(
    file: &Arc<std::fs::File>,
    parts: &mut VecDeque<Part>,
    buf: &'a mut Vec<u8>,
) -> Result<Option<&'a [u8]>, Failure> {
    loop {
        match parts.front_mut() {
            None => return Ok(None),
            Some(Part::Bytes(bytes)) => {
                *buf = std::mem::take(bytes);
                parts.pop_front();
                return Ok(Some(buf));
            }
            Some(Part::File(range)) if range.is_empty() => {
                parts.pop_front();
            }
            Some(Part::File(range)) => {
                let want = (range.end - range.start).min(STATIC_READ_CHUNK as u64) as usize;
                let offset = range.start;
                let mut chunk = std::mem::take(buf);
                chunk.resize(want, 0);
                let reader = file.clone();
                let (chunk, read) = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt as _;
                    let read = reader.read_at(&mut chunk, offset);
                    (chunk, read)
                })
                .await
                .map_err(|e| Failure::FileRead(std::io::Error::other(e)))?;
                *buf = chunk;
                let n = read.map_err(Failure::FileRead)?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                range.start += n as u64;
                return Ok(Some(buf));
            }
        }
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
    runtime: &Runtime,
) -> Result<(), Failure> {
    if matches!(source, BodySource::Events { .. }) {
        pump_events(io, source, encoder, times, wire, runtime).await
    } else {
        pump_batched(io, source, encoder, times.pull_timeout, wire, runtime).await
    }
}

/// The first wait after an empty chunk ("nothing yet"); it doubles with each empty chunk in a
/// row up to [`EMPTY_WAIT_MAX`], so a stream that keeps saying "nothing yet" costs the host
/// next to no CPU instead of a spinning core.
const EMPTY_WAIT_MIN: Duration = Duration::from_millis(1);

/// The longest wait between two pulls of a stream handing out empty chunks.
const EMPTY_WAIT_MAX: Duration = Duration::from_millis(100);

/// [`pump`] for chunks and files: the pieces a source hands out without waiting are gathered
/// into writes of up to [`STREAM_BATCH`] bytes; while the source waits for its next piece,
/// what is gathered is written (so nothing is held back), and a piece that large on its own
/// is written without the copy.
async fn pump_batched<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    source: &mut BodySource,
    encoder: &mut BodyEncoder,
    pull_timeout: Duration,
    wire: &mut u64,
    runtime: &Runtime,
) -> Result<(), Failure> {
    let mut batch = Batch::default();
    // Since when the pulls in a row have brought only empty chunks, and the next wait.
    let mut empty: Option<(Instant, Duration)> = None;
    // Whether the socket is watched for the client leaving; not once it sent more bytes (a
    // pipelined request, left in the buffer).
    let mut watching = true;
    loop {
        if batch.unwritten() >= STREAM_BATCH {
            batch.write_out(io, wire).await?;
        }
        // Biased: the pull runs first, so a source that is ready adds to the batch; the
        // batch is written while the pull waits (`write_out` is cancel-safe: what it wrote is
        // counted, the rest stays).
        let piece = {
            let pull = source.next(pull_timeout);
            tokio::pin!(pull);
            loop {
                tokio::select! {
                    biased;
                    piece = &mut pull => break piece,
                    written = batch.write_out(io, wire), if batch.unwritten() > 0 => written?,
                }
            }
        };
        if let Ok(Some(data)) = &piece {
            if data.is_empty() {
                // "Nothing yet": the stream must still bring a byte within --pull-timeout, and
                // a client that leaves meanwhile is noticed.
                let (since, wait) = *empty.get_or_insert((Instant::now(), EMPTY_WAIT_MIN));
                if since.elapsed() >= pull_timeout {
                    batch.write_out(io, wire).await?;
                    return Err(GuestError::Deadline.into());
                }
                batch.write_out(io, wire).await?;
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        closed = io.client_closed(), if watching => {
                            if closed {
                                return Err(Failure::ClientGone);
                            }
                            watching = false;
                        }
                    }
                }
                empty = Some((since, (wait * 2).min(EMPTY_WAIT_MAX)));
                continue;
            }
            empty = None;
        }
        let step = match piece {
            Ok(Some(data)) if batch.unwritten() == 0 && data.len() >= STREAM_BATCH => {
                write_piece(io, encoder, data, wire).await
            }
            Ok(Some(data)) => {
                encoder.frame(data).map(|framed| batch.extend(framed.parts())).map_err(Failure::from)
            }
            Ok(None) => match encoder.finish() {
                Ok(end) => {
                    // Torn down (if not kept) once the last bytes are out.
                    let _retired = source.hand_back(runtime);
                    batch.extend([end]);
                    return batch.write_out(io, wire).await;
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if let Err(failure) = step {
            // What the source handed out before it failed goes out as it would have unbatched;
            // then the failure aborts the connection.
            batch.write_out(io, wire).await?;
            return Err(failure);
        }
    }
}

/// Framed body bytes gathered for one write, and how much of them is written.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    written: usize,
}

impl Batch {
    fn unwritten(&self) -> usize {
        self.bytes.len() - self.written
    }

    fn extend<const N: usize>(&mut self, parts: [&[u8]; N]) {
        if self.written == self.bytes.len() {
            self.bytes.clear();
            self.written = 0;
        }
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
    }

    /// Writes what is unwritten, then flushes; adds what it wrote to `wire`. Cancel-safe.
    async fn write_out<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        wire: &mut u64,
    ) -> Result<(), Failure> {
        while self.written < self.bytes.len() {
            let n = io.write_some(&self.bytes[self.written..]).await.map_err(|e| Failure::of_write(&e))?;
            self.written += n;
            *wire += n as u64;
        }
        io.flush().await.map_err(|e| Failure::of_write(&e))
    }
}

/// [`pump`] for event streams: each event is written as it comes (they are small and wanted
/// at once), keep-alive comments fill silences, and a client that closes is noticed.
async fn pump_events<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    source: &mut BodySource,
    encoder: &mut BodyEncoder,
    times: PumpTimes,
    wire: &mut u64,
    runtime: &Runtime,
) -> Result<(), Failure> {
    let keepalive = source.keepalive(times.sse_keepalive);
    let mut watching = keepalive.is_some();
    loop {
        let piece = {
            let pull = source.next(times.pull_timeout);
            tokio::pin!(pull);
            loop {
                tokio::select! {
                    piece = &mut pull => break piece?,
                    () = tokio::time::sleep(keepalive.unwrap_or_default()), if keepalive.is_some() => {
                        write_piece(io, encoder, SSE_KEEPALIVE, wire).await?;
                    }
                    closed = io.client_closed(), if watching => {
                        if closed {
                            return Err(Failure::ClientGone);
                        }
                        // Pipelined bytes: the client is there; they wait in the buffer.
                        watching = false;
                    }
                }
            }
        };
        match piece {
            Some(data) => write_piece(io, encoder, data, wire).await?,
            None => {
                // Torn down (if not kept) once the last chunk is out. (An event stream's
                // framing is chunked or close-delimited: ending it cannot fail.)
                let _retired = source.hand_back(runtime);
                return end_body(io, encoder, wire).await;
            }
        }
    }
}

/// Frames one piece of a streamed body and writes it; adds the bytes on the wire to `wire`.
pub(super) async fn write_piece<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    encoder: &mut BodyEncoder,
    data: &[u8],
    wire: &mut u64,
) -> Result<(), Failure> {
    let framed = encoder.frame(data)?;
    io.write_parts(framed.parts()).await.map_err(|e| Failure::of_write(&e))?;
    *wire += framed.wire_len() as u64;
    Ok(())
}

/// Ends a streamed body (the last chunk, or the length check); adds its bytes to `wire`.
pub(super) async fn end_body<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    encoder: &mut BodyEncoder,
    wire: &mut u64,
) -> Result<(), Failure> {
    let end = encoder.finish()?;
    io.write_parts([end]).await.map_err(|e| Failure::of_write(&e))?;
    *wire += end.len() as u64;
    Ok(())
}
