//! [`ResponseBody`]: a whole body, or `length` bytes cut from one pre-filled 64 KiB chunk that
//! is handed out again and again (a reference-counted `Bytes` clone per frame, no copy).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The size of each frame of a fill body but the last, the same as the `fill` guest's.
pub const CHUNK: usize = 64 * 1024;

/// The one chunk every fill body is cut from, filled once per process.
static FILL: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(vec![b'x'; CHUNK]));

/// The body of a benchmark response.
pub enum ResponseBody {
    /// The whole body, sent as one frame (none if empty).
    Full(Option<Bytes>),
    /// `remaining` more bytes of [`FILL`]; `sized` bodies report their exact length, so hyper
    /// frames them with `Content-Length`, the others are chunked.
    Fill { remaining: u64, sized: bool },
}

impl ResponseBody {
    /// A body of exactly these bytes.
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes).filter(|bytes| !bytes.is_empty()))
    }

    /// A body of `length` fill bytes, announced (`sized`) or chunked.
    pub fn fill(length: u64, sized: bool) -> Self {
        Self::Fill { remaining: length, sized }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            Self::Full(bytes) => bytes.take(),
            Self::Fill { remaining: 0, .. } => None,
            Self::Fill { remaining, .. } => {
                let take = usize::try_from(*remaining).map_or(CHUNK, |left| left.min(CHUNK));
                *remaining -= take as u64;
                Some(if take == CHUNK { FILL.clone() } else { FILL.slice(..take) })
            }
        };
        Poll::Ready(frame.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None) | Self::Fill { remaining: 0, .. })
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64)),
            Self::Fill { remaining, sized: true } => SizeHint::with_exact(*remaining),
            Self::Fill { .. } => SizeHint::default(),
        }
    }
}
