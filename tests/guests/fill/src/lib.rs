//! `GET /fill/{bytes}`: a sized (`Content-Length`) stream of that many `x` bytes, for `make
//! bench`. One 64 KiB chunk is filled once per request and handed out again and again, so a
//! pull costs one copy of it (the SDK hands the host an owned `Vec`), never a loop over bytes:
//! what is measured is the host's streaming, not the guest's work. With `?chunked` the same
//! bytes come as a chunked stream. `?pause_ms=N` sleeps N ms before every chunk but the first
//! (for the test that streamed chunks are never held back). `?empty=N` hands out N empty
//! chunks ("nothing yet") after the first, `?empty=forever` nothing but empty chunks after it.
//! `?ballast=N` fills N MiB of memory the stream holds to its end (so tearing the instance down
//! has that much to reset). A non-numeric size is a 400.

use wasm_host_sdk::prelude::*;

/// The size of each chunk but the last.
const CHUNK: usize = 64 * 1024;

fn fill(req: Request) -> Result<Response, HttpError> {
    let length: u64 = req.param("bytes").unwrap_or_default().parse()?;
    let chunk = vec![b'x'; CHUNK];
    let whole = usize::try_from(length / CHUNK as u64).or_status(400)?;
    let rest = (length % CHUNK as u64) as usize;
    let last = (rest > 0).then(|| chunk[..rest].to_vec());
    let pause = std::time::Duration::from_millis(req.query("pause_ms").map_or(Ok(0), |ms| ms.parse())?);
    let ballast = vec![1u8; req.query("ballast").map_or(Ok(0), |mib| mib.parse::<usize>())? << 20];
    let chunks = std::iter::repeat_n(chunk, whole).chain(last).enumerate().map(move |(i, chunk)| {
        std::hint::black_box(&ballast);
        if i > 0 && !pause.is_zero() {
            std::thread::sleep(pause);
        }
        chunk
    });
    let empties = match req.query("empty").as_deref() {
        None => Some(0),
        Some("forever") => None,
        Some(n) => Some(n.parse()?),
    };
    let chunks: Box<dyn Iterator<Item = Vec<u8>>> = match empties {
        Some(0) => Box::new(chunks),
        Some(n) => {
            let mut chunks = chunks;
            let first = chunks.next();
            Box::new(first.into_iter().chain(std::iter::repeat_n(Vec::new(), n)).chain(chunks))
        }
        None => {
            let mut chunks = chunks;
            Box::new(chunks.next().into_iter().chain(std::iter::repeat(Vec::new())))
        }
    };
    if req.query("chunked").is_some() {
        return Ok(Response::chunked(chunks));
    }
    Ok(Response::sized(length, chunks))
}

export!(fill);
