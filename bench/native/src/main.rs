//! `bench-native`: the native baseline `make bench` measures wasm-host against.
//!
//! A plain hyper HTTP/1.1 server on a multi-thread tokio runtime that answers the benchmark
//! routes with the same bytes and headers as wasm-host's handlers (see [`routes`]). Like
//! wasm-host it prints `listening on http://ADDR` on stdout once it accepts connections, and sets
//! `TCP_NODELAY` on every connection.
//!
//! ```text
//! bench-native [--listen 127.0.0.1:0] [--workers N]
//! ```

mod fill;
mod routes;

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The address bound when `--listen` is not given: loopback, a free port.
const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// How long to wait before accepting again after a failed accept (e.g. out of descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// The validated command line.
struct Args {
    /// The address to bind.
    listen: SocketAddr,
    /// Runtime worker threads.
    workers: NonZeroUsize,
}

/// The usage line printed with argument errors.
const USAGE: &str = "usage: bench-native [--listen ADDR] [--workers N]";

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(serve);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            #[allow(clippy::print_stderr, reason = "the binary reports its fatal error on stderr")]
            {
                eprintln!("error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Parses `--listen ADDR` and `--workers N`; the workers default to the available parallelism,
/// as wasm-host's do.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut workers = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--workers" => {
                let text = value("--workers")?;
                let count =
                    text.parse().map_err(|_| format!("--workers: `{text}` is not a positive number"))?;
                workers = Some(count);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    let listen = listen.parse().map_err(|e| format!("--listen: `{listen}`: {e}"))?;
    let workers = workers.or_else(|| thread::available_parallelism().ok()).unwrap_or(NonZeroUsize::MIN);
    Ok(Args { listen, workers })
}

/// Runs the server until the process is killed.
fn serve(args: Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.get())
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
        announce(local)?;
        loop {
            let (stream, _peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: the next accept may succeed once a
                // connection closes; wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            // A benchmark server: a refused option only makes it slower, never wrong.
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service_fn(routes::answer));
                // A client that goes away mid-response is not an error for a benchmark.
                let _ = connection.await;
            });
        }
    })
}

/// Prints the readiness line the benchmark script waits for.
fn announce(local: SocketAddr) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
