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

/// Capacity a connection's buffers may keep between requests; a larger one (grown by a large
/// head, a gathered stream write or a body read) is given back when the connection goes idle,
/// so a keep-alive connection does not hold what one response needed.
const KEEP_BETWEEN_REQUESTS: usize = 64 * 1024;

/// A connection's stream with its buffers.
pub(super) struct Io<S> {
    stream: S,
    /// Bytes read and not yet consumed (a request head, body bytes, pipelined requests).
    pub(super) buf: BytesMut,
    /// Scratch space for encoding response heads.
    pub(super) out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub(super) fn new(stream: S) -> Self {
        Self { stream, buf: BytesMut::with_capacity(HEAD_READ), out: Vec::with_capacity(512) }
    }

    /// Gives back buffer capacity over [`KEEP_BETWEEN_REQUESTS`]; call between requests.
    pub(super) fn shrink(&mut self) {
        if self.out.capacity() > KEEP_BETWEEN_REQUESTS {
            self.out = Vec::with_capacity(512);
        }
        if self.buf.capacity() > KEEP_BETWEEN_REQUESTS && self.buf.len() <= HEAD_READ {
            let kept = BytesMut::from(&self.buf[..]);
            self.buf = kept;
        }
    }

    /// Reads more bytes into the buffer (a request head, or anything while watching the
    /// client); `Ok(0)` at end of stream.
    pub(super) async fn read_more(&mut self) -> io::Result<usize> {
        self.read_with_room(HEAD_READ).await
    }

    async fn read_with_room(&mut self, room: usize) -> io::Result<usize> {
        self.buf.reserve(room);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads more request body bytes, failing when none arrive within `timeout` or the client
    /// went away.
    pub(super) async fn read_body_bytes(&mut self, timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, self.read_with_room(BODY_READ)).await {
            Err(_) => Err(Failure::BodyTimeout),
            Ok(Ok(0) | Err(_)) => Err(Failure::ClientGone),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Waits until the client closes its side (or the connection fails): returns `true` then.
    /// Returns `false` if the client sends bytes instead (a pipelined request, kept in the
    /// buffer); stop watching then, the client is still there. Works on any stream: it reads,
    /// it does not peek.
    pub(super) async fn client_closed(&mut self) -> bool {
        matches!(self.read_more().await, Ok(0) | Err(_))
    }

    /// Writes the encoded head in [`out`](Self::out) followed by `body`, in one write when the
    /// kernel allows.
    pub(super) async fn write_out_with(&mut self, body: &[u8]) -> io::Result<()> {
        write_parts(&mut self.stream, [&self.out, body]).await
    }

    /// Writes every part, in order.
    pub(super) async fn write_parts<const N: usize>(&mut self, parts: [&[u8]; N]) -> io::Result<()> {
        write_parts(&mut self.stream, parts).await
    }

    /// Writes some of `bytes` (at least one byte unless it is empty), returning how many. Safe
    /// to cancel: a write either happened and is counted or did not happen.
    pub(super) async fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self.stream.write(bytes).await? {
            0 if !bytes.is_empty() => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(n),
        }
    }

    /// Flushes what the stream buffers (a no-op on TCP; TLS records). Safe to cancel and retry.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    /// Closes the write side, flushing what is buffered (a TLS close_notify, a TCP FIN).
    pub(super) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Writes every part, in order, with as few (vectored) writes as the stream allows, then
/// flushes (a no-op on TCP; TLS streams buffer records).
async fn write_parts<S: AsyncWrite + Unpin, const N: usize>(
    stream: &mut S,
    parts: [&[u8]; N],
) -> io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = stream.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

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
            write_parts(&mut w, parts).await.unwrap();
            assert_eq!(w.got, b"abcdefghi", "max {max}");
        }
        let mut w = Trickle { got: Vec::new(), max: 1 };
        write_parts::<_, 0>(&mut w, []).await.unwrap();
        assert!(w.got.is_empty());
    }

    #[tokio::test]
    async fn vectored_writes_reach_an_in_memory_peer() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = Io::new(a);
        io.write_parts([b"hello ", b"world", b"!"]).await.unwrap();
        let mut got = [0u8; 12];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world!");
    }

    #[tokio::test]
    async fn client_closed_tells_a_close_from_pipelined_bytes() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = Io::new(a);
        b.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(!io.client_closed().await);
        assert_eq!(&io.buf[..], b"GET / HTTP/1.1\r\n", "the bytes are kept for the next request");
        drop(b);
        assert!(io.client_closed().await);
    }

    #[test]
    fn buffers_grown_by_one_request_are_given_back_between_requests() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = Io::new(a);
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
}
