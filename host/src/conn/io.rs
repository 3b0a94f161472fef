//! The connection's byte stream, whatever it is (TCP, TLS, an in-memory pipe in tests): its
//! read buffer, the scratch buffer response heads are encoded into, and the few ways the
//! exchange reads and writes. Nothing here names a socket type.

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::failure::Failure;

/// Room made for each read while waiting for a request head (or watching a client): most heads
/// fit in one read of this, and a connection that only sends small requests never holds more.
/// Every suspended request holds its connection's buffer, so this is memory per waiting request
/// (16 KiB here cost 10,000 long polls ≈140 MiB).
const HEAD_READ: usize = 2 * 1024;

/// Room made for each read of request body bytes: large reads keep uploads fast.
const BODY_READ: usize = 16 * 1024;

/// Room made for a read that only watches for the client leaving (during a streamed
/// response): it needs to see end of stream, or that bytes came (which stops the watch), and
/// a streaming response may last long, so it holds as little as it can.
const WATCH_READ: usize = 64;

/// Capacity a connection's buffers may keep between requests; a larger one (grown by a large
/// head, a gathered stream write or a body read) is given back when the connection goes idle,
/// so a keep-alive connection does not hold what one response needed.
const KEEP_BETWEEN_REQUESTS: usize = 64 * 1024;

/// How long the host may wait on a client in one direction during one request: at most `grace`
/// at a time (nginx's timeouts between two reads or writes), and in total `grace` plus one
/// second for every `min_rate` bytes moved so far (as Apache's `mod_reqtimeout` MinRate does).
/// Only time spent waiting on the client counts: a handler that takes its time with a body, or
/// a stream whose handler has nothing to send yet, costs the client nothing.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    grace: Duration,
    /// Bytes per second; 0 turns the rate off (only `grace` per wait applies).
    min_rate: u64,
    waited: Duration,
    moved: u64,
}

impl Pace {
    pub(super) fn new(grace: Duration, min_rate: u64) -> Self {
        Self { grace, min_rate, waited: Duration::ZERO, moved: 0 }
    }

    /// How much longer the host may wait now.
    fn left(&self) -> Duration {
        if self.min_rate == 0 {
            return self.grace;
        }
        let earned = Duration::from_secs_f64(self.moved as f64 / self.min_rate as f64);
        (self.grace + earned).saturating_sub(self.waited).min(self.grace)
    }

    fn restart(&mut self) {
        self.waited = Duration::ZERO;
        self.moved = 0;
    }
}

/// One wait on the client, charged to its [`Pace`] when it ends, even by cancellation.
struct Waiting<'a> {
    pace: &'a mut Pace,
    since: tokio::time::Instant,
}

impl<'a> Waiting<'a> {
    fn start(pace: &'a mut Pace) -> Self {
        Self { pace, since: tokio::time::Instant::now() }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pace.waited += self.since.elapsed();
    }
}

/// The error a write fails with when the client reads too slowly (`Failure::SendTimeout`).
pub(super) fn is_send_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

/// A connection's stream with its buffers.
pub(super) struct Io<S> {
    stream: S,
    /// Bytes read and not yet consumed (a request head, body bytes, pipelined requests).
    pub(super) buf: BytesMut,
    /// Scratch space for encoding response heads: empty until the first response (a request
    /// that waits holds none), then kept between requests.
    pub(super) out: Vec<u8>,
    /// Waiting for request body bytes (`--body-timeout`, `--min-rate`).
    reading: Pace,
    /// Waiting for the client to take response bytes (`--send-timeout`, `--min-rate`).
    writing: Pace,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub(super) fn new(stream: S, reading: Pace, writing: Pace) -> Self {
        Self { stream, buf: BytesMut::with_capacity(HEAD_READ), out: Vec::new(), reading, writing }
    }

    /// Starts the client's allowances afresh for the next request.
    pub(super) fn restart_pace(&mut self) {
        self.reading.restart();
        self.writing.restart();
    }

    /// Gives back buffer capacity over [`KEEP_BETWEEN_REQUESTS`]; call between requests.
    pub(super) fn shrink(&mut self) {
        if self.out.capacity() > KEEP_BETWEEN_REQUESTS {
            self.out = Vec::new();
        }
        if self.buf.capacity() > KEEP_BETWEEN_REQUESTS && self.buf.len() <= HEAD_READ {
            let kept = BytesMut::from(&self.buf[..]);
            self.buf = kept;
        }
    }

    /// Gives the read buffer's memory back if it holds no bytes: call it before a guest call
    /// that may wait (a long poll), so that a parked request holds no read buffer. The next
    /// read allocates one again.
    pub(super) fn release_read_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// Reads more bytes into the buffer (a request head); `Ok(0)` at end of stream.
    pub(super) async fn read_more(&mut self) -> io::Result<usize> {
        self.read_with_room(HEAD_READ).await
    }

    async fn read_with_room(&mut self, room: usize) -> io::Result<usize> {
        self.buf.reserve(room);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads more request body bytes, failing when none arrive within `--body-timeout`, when
    /// the body has come slower than `--min-rate` for longer than that, or when the client went
    /// away. Safe to cancel.
    pub(super) async fn read_body_bytes(&mut self) -> Result<(), Failure> {
        self.buf.reserve(BODY_READ);
        let waiting = Waiting::start(&mut self.reading);
        let limit = waiting.pace.left();
        let read = tokio::time::timeout(limit, self.stream.read_buf(&mut self.buf)).await;
        match read {
            Err(_) => Err(Failure::BodyTimeout),
            Ok(Ok(0) | Err(_)) => Err(Failure::ClientGone),
            Ok(Ok(n)) => {
                waiting.pace.moved += n as u64;
                Ok(())
            }
        }
    }

    /// Waits until the client closes its side (or the connection fails): returns `true` then.
    /// Returns `false` if the client sends bytes instead (a pipelined request, kept in the
    /// buffer); stop watching then, the client is still there. Works on any stream: it reads,
    /// it does not peek.
    pub(super) async fn client_closed(&mut self) -> bool {
        matches!(self.read_with_room(WATCH_READ).await, Ok(0) | Err(_))
    }

    /// Writes the encoded head in [`out`](Self::out) followed by `body`, in one write when the
    /// kernel allows.
    pub(super) async fn write_out_with(&mut self, body: &[u8]) -> io::Result<()> {
        let Self { stream, out, writing, .. } = self;
        write_parts(stream, writing, [out, body]).await
    }

    /// Writes every part, in order.
    pub(super) async fn write_parts<const N: usize>(&mut self, parts: [&[u8]; N]) -> io::Result<()> {
        write_parts(&mut self.stream, &mut self.writing, parts).await
    }

    /// Writes some of `bytes` (at least one byte unless it is empty), returning how many. Safe
    /// to cancel: a write either happened and is counted or did not happen. Fails with a
    /// [send timeout](is_send_timeout) when the client takes too long.
    pub(super) async fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let waiting = Waiting::start(&mut self.writing);
        let limit = waiting.pace.left();
        match tokio::time::timeout(limit, self.stream.write(bytes)).await {
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
            Ok(Ok(0)) if !bytes.is_empty() => Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => {
                waiting.pace.moved += n as u64;
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// Flushes what the stream buffers (a no-op on TCP; TLS records). Safe to cancel and retry.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        let waiting = Waiting::start(&mut self.writing);
        let limit = waiting.pace.left();
        tokio::time::timeout(limit, self.stream.flush()).await.unwrap_or(Err(io::ErrorKind::TimedOut.into()))
    }

    /// Closes the write side, flushing what is buffered (a TLS close_notify, a TCP FIN).
    pub(super) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Writes every part, in order, with as few (vectored) writes as the stream allows, then
/// flushes (a no-op on TCP; TLS streams buffer records). Each write may wait on the client as
/// long as its `pace` allows, else the whole fails with a [send timeout](is_send_timeout).
async fn write_parts<S: AsyncWrite + Unpin, const N: usize>(
    stream: &mut S,
    pace: &mut Pace,
    parts: [&[u8]; N],
) -> io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let waiting = Waiting::start(pace);
        let limit = waiting.pace.left();
        let n = match tokio::time::timeout(limit, stream.write_vectored(rest)).await {
            Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(written) => written?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        waiting.pace.moved += n as u64;
        drop(waiting);
        IoSlice::advance_slices(&mut rest, n);
    }
    let waiting = Waiting::start(pace);
    let limit = waiting.pace.left();
    tokio::time::timeout(limit, stream.flush()).await.unwrap_or(Err(io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn pace() -> Pace {
        Pace::new(Duration::from_secs(10), 1024)
    }

    /// A writer that takes at most `max` bytes per call and one slice at a time, to exercise
    /// partial writes.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn any_number_of_parts_is_written_in_order_through_partial_writes() {
        let parts: [&[u8]; 6] = [b"", b"abc", b"", b"defgh", b"i", b""];
        for max in [1, 2, 3, 100] {
            let mut w = Trickle { got: Vec::new(), max };
            write_parts(&mut w, &mut pace(), parts).await.unwrap();
            assert_eq!(w.got, b"abcdefghi", "max {max}");
        }
        let mut w = Trickle { got: Vec::new(), max: 1 };
        write_parts::<_, 0>(&mut w, &mut pace(), []).await.unwrap();
        assert!(w.got.is_empty());
    }

    #[test]
    fn a_client_may_wait_the_grace_at_a_time_and_earns_a_second_per_min_rate_bytes() {
        let mut pace = Pace::new(Duration::from_secs(10), 1000);
        assert_eq!(pace.left(), Duration::from_secs(10));
        pace.waited = Duration::from_secs(8);
        assert_eq!(pace.left(), Duration::from_secs(2), "the grace is spent by waiting");
        pace.moved = 5000;
        assert_eq!(pace.left(), Duration::from_secs(7), "5,000 bytes earned 5 s");
        pace.moved = 1_000_000;
        assert_eq!(pace.left(), Duration::from_secs(10), "never more than the grace at once");
        pace.restart();
        assert_eq!((pace.waited, pace.moved), (Duration::ZERO, 0));
        let off = Pace { waited: Duration::from_secs(1000), ..Pace::new(Duration::from_secs(10), 0) };
        assert_eq!(off.left(), Duration::from_secs(10), "a rate of 0 leaves only the timeout");
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_off_once_its_allowance_is_spent() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = Io::new(a, Pace::new(Duration::from_millis(200), 1024), pace());
        // A byte every 100 ms, 20 in all: never 200 ms without a byte, but far below 1 KiB/s,
        // so the allowance (200 ms plus a millisecond per byte) runs out after about two.
        let trickle = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                b.write_all(b"x").await?;
            }
            std::io::Result::Ok(())
        });
        let mut reads = 0;
        let failure = loop {
            match io.read_body_bytes().await {
                Ok(()) => reads += 1,
                Err(failure) => break failure,
            }
        };
        assert!(matches!(failure, Failure::BodyTimeout), "{failure} after {reads} reads");
        assert!(reads < 20, "the whole trickle was read");
        trickle.abort();
    }

    #[tokio::test]
    async fn vectored_writes_reach_an_in_memory_peer() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = Io::new(a, pace(), pace());
        io.write_parts([b"hello ", b"world", b"!"]).await.unwrap();
        let mut got = [0u8; 12];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world!");
    }

    #[tokio::test]
    async fn client_closed_tells_a_close_from_pipelined_bytes() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = Io::new(a, pace(), pace());
        b.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(!io.client_closed().await);
        assert_eq!(&io.buf[..], b"GET / HTTP/1.1\r\n", "the bytes are kept for the next request");
        drop(b);
        assert!(io.client_closed().await);
    }

    #[test]
    fn buffers_grown_by_one_request_are_given_back_between_requests() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = Io::new(a, pace(), pace());
        io.out.reserve(1 << 20);
        io.buf.reserve(1 << 20);
        io.buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        io.shrink();
        assert!(io.out.capacity() <= KEEP_BETWEEN_REQUESTS, "{}", io.out.capacity());
        assert!(io.buf.capacity() <= KEEP_BETWEEN_REQUESTS, "{}", io.buf.capacity());
        assert_eq!(&io.buf[..], b"GET / HTTP/1.1\r\n", "pipelined bytes are kept");
        // Buffers of ordinary size are left alone (no reallocation per request).
        io.out.reserve(8 << 10);
        let before = io.out.as_ptr();
        io.shrink();
        assert_eq!(io.out.as_ptr(), before);
    }

    #[tokio::test]
    async fn a_waiting_request_holds_no_buffers() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = Io::new(a, pace(), pace());
        assert_eq!(io.out.capacity(), 0, "no response yet, no head buffer");
        b.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        io.read_more().await.unwrap();
        io.release_read_buffer();
        assert!(io.buf.capacity() > 0, "unread bytes are kept");
        io.buf.clear();
        io.release_read_buffer();
        assert_eq!(io.buf.capacity(), 0);
        // Watching for the client leaving takes only a small buffer; the next head, a full one.
        b.write_all(b"G").await.unwrap();
        assert!(!io.client_closed().await);
        assert!(io.buf.capacity() < HEAD_READ, "{}", io.buf.capacity());
        b.write_all(b"ET / HTTP/1.1\r\n").await.unwrap();
        io.read_more().await.unwrap();
        assert_eq!(&io.buf[..], b"GET / HTTP/1.1\r\n");
        assert!(io.buf.capacity() >= HEAD_READ);
    }
}
