//! The validated configuration the server runs with.
//!
//! The CLI (`cli.rs`) parses raw arguments; this module turns them into a [`Config`] whose values
//! have been checked, and names every default with the reason it was chosen. Request code only
//! ever sees a `Config`, never the raw arguments. Depends on nothing but `http::HttpLimits`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::HttpLimits;

/// Where to listen when `--listen` is not given. Loopback, not `0.0.0.0`: exposing handlers to the
/// network should be a decision, not a default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Connections served at once. Each idle keep-alive connection costs a task and a small read
/// buffer (a few KiB), so ten thousand is cheap; past it the accept loop waits for a free slot
/// and new clients queue in the kernel backlog instead of exhausting file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Requests that may hold a live guest instance at once (including streaming responses and
/// sleeping handlers). Each one holds a pooled instance slot and a fiber stack; the pool is sized
/// from this number (`runtime/pool.rs`). A thousand live instances is cheap (≈50 KiB resident
/// each while sleeping, ≈4,000 of the kernel's 65,530 default memory mappings); the default
/// `vm.max_map_count` allows about 16,000. Past it requests get 503.
pub const DEFAULT_MAX_INSTANCES: u32 = 1_000;

/// Parked requests (`subscription.park`) that run again at the same time once woken: one
/// publish can wake ten thousand of them, and each run holds an instance (≈50 KiB) while it
/// reads the topic. Sixty-four keep both cores busy (a run takes ≈0.1 ms of CPU, and while one
/// waits on the store others run) and bound the memory of a wake-up to ≈3 MiB of instances,
/// where ten thousand at once took 380 MiB more than the parked requests themselves.
pub const PARKED_RERUNS: usize = 64;

/// Share of `--max-instances`, in percent, that one handler (one route and method) may hold
/// when `--route-max-instances` is not given. A route whose requests pile up (a slow handler, a
/// flood of long polls) then leaves the other half of the pool to every other route, which keep
/// answering instead of getting 503. A site that is one route can raise it to the whole pool.
pub const DEFAULT_ROUTE_SHARE_PERCENT: u32 = 50;

/// Time a client has to send a complete request head once it has started one (and for the first
/// request, from the moment the connection is accepted). Bounds slowloris-style clients that
/// trickle header bytes. Answered with 408.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Time an idle keep-alive connection is kept open waiting for the next request. Browsers keep
/// connections for about a minute; servers commonly close earlier to free slots.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Time the body of a request may go without any new bytes arriving. A stalled upload frees its
/// instance after this (408, connection closed).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a response write may wait for the client to take bytes (nginx's `send_timeout` is 60 s);
/// also the grace before `--min-rate` applies to a response. A client that stops reading, or
/// reads a few bytes now and then (a slow-read attack), is cut off and its connection closed.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Slowest average rate, in bytes per second, at which a client may send a request body or read
/// a response once the grace of `--body-timeout` / `--send-timeout` has been used up: each
/// kibibyte moved earns one more second of waiting on the client (Apache's `mod_reqtimeout`
/// allows 500 B/s). A client that trickles a few bytes every few seconds, which a timeout
/// between reads never catches, is cut off (408 for a body). Only time spent waiting on the
/// client counts, never time a handler takes.
pub const DEFAULT_MIN_RATE: u64 = 1024;

/// Wall-clock time a request may take from its head being read to its response head being ready
/// (all hooks together, including time a guest spends sleeping). Streaming bodies are bounded per
/// pull instead ([`DEFAULT_PULL_TIMEOUT`]). Answered with 504.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Wall-clock time one `next-chunk`/`next-event` pull of a streaming response (or one `stream`
/// call of a full-duplex exchange) may take. SSE
/// handlers that wait for events longer than this should send an event (or return) sooner.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(300);

/// CPU time one hook call or one pull may burn. Handlers that answer web requests need
/// milliseconds; a second means a runaway loop, which is interrupted (504, or the connection is
/// aborted if the response head was already sent). Time spent sleeping or waiting in WASI does
/// not count.
pub const DEFAULT_CPU_TIMEOUT: Duration = Duration::from_secs(1);

/// Linear memory one guest instance may grow to. Typical handlers use 1–2 MiB; 64 MiB leaves room
/// for buffering a default-size request body (16 MiB) several times while bounding what 1,000
/// live instances can take. An allocation past it traps the guest (500); the host is unaffected.
pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;

/// Interval after which an idle Server-Sent Events stream gets a comment line, so proxies and
/// clients do not time the connection out. Proxies commonly drop idle connections after 30–60 s.
pub const DEFAULT_SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// Time in-flight requests get to finish after SIGINT/SIGTERM before the process exits anyway.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Largest body chunk handed to the guest's `stream` hook at once. 64 KiB keeps the copy into
/// guest memory cheap and the per-request memory bounded (see `shared/WASMTIME-48.md`: cost
/// follows the largest single guest allocation).
pub const STREAM_CHUNK_SIZE: usize = 64 * 1024;

/// Bytes of a streamed response body gathered into one write at most. A guest that hands out
/// 64 KiB chunks without waiting gets them written four at a time: on loopback, 64 KiB writes
/// ran at 1.4–1.6 GB/s where 256 KiB ran at 2.5–3.0 (the kernel's per-write cost dominates).
/// Chunks are never held back waiting: whatever is gathered goes out as soon as the source has
/// to wait for its next piece. It is also the most a streaming response holds beyond its chunk.
pub const STREAM_BATCH: usize = 256 * 1024;

/// Bytes of a static file read from disk at a time (one blocking `pread`, then one write).
/// Large enough that the per-read hand-off to a blocking thread costs little next to copying
/// the bytes (4,096 reads for 1 GiB), small enough that a thousand concurrent downloads hold a
/// quarter of a GiB at most; the socket's backpressure decides when the next read happens.
pub const STATIC_READ_CHUNK: usize = 256 * 1024;

/// Time a TLS client has to complete its handshake after the TCP accept. Generous for slow
/// mobile links (a handshake is 1–2 round trips), short enough that connections which never
/// speak TLS (port scanners, plain HTTP sent to the HTTPS port) free their slot quickly. The
/// request-head deadline (`--header-timeout`) starts after it.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Body bytes the host reads and discards to keep a connection alive when a request is answered
/// without its body having been read (404, 405, an early `respond`). Bigger bodies close the
/// connection instead.
pub const DRAIN_LIMIT: u64 = 256 * 1024;

/// Threads of the async runtime's blocking pool per worker thread, and the least and most in
/// all (tokio's default is 512 whatever the workers). The pool runs short blocking work: store
/// reads, static-file reads, certificate and route reloads. Unbounded, long polls subscribing
/// at once each took a thread for their store reads (3,000 started 118 threads, 10,000 all
/// 512), each with its stack; queued behind 32, a store read waits microseconds.
pub const BLOCKING_THREADS_PER_WORKER: usize = 16;
/// See [`BLOCKING_THREADS_PER_WORKER`].
pub const MIN_BLOCKING_THREADS: usize = 32;
/// See [`BLOCKING_THREADS_PER_WORKER`].
pub const MAX_BLOCKING_THREADS: usize = 512;

/// The blocking pool's size for `workers` worker threads.
pub fn blocking_threads(workers: usize) -> usize {
    workers.saturating_mul(BLOCKING_THREADS_PER_WORKER).clamp(MIN_BLOCKING_THREADS, MAX_BLOCKING_THREADS)
}

/// Limits on what one guest instance may use and how long it may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Live instances at once; sizes the pooling allocator.
    pub max_instances: u32,
    /// Linear memory per instance, in bytes.
    pub max_memory: u64,
    /// CPU time per hook call or pull.
    pub cpu_timeout: Duration,
    /// Wall-clock time from request head to response head.
    pub request_timeout: Duration,
    /// Wall-clock time per pull of a streaming response.
    pub pull_timeout: Duration,
    /// Resolve guest traps to source lines (DWARF) in their backtraces: `wasm-host dev` only,
    /// since it costs compile time and memory per handler.
    pub backtrace_details: bool,
    /// Requests one instance may serve one after another (`--instance-reuse`); 1, the default,
    /// is a fresh instance per request.
    pub instance_reuse: u32,
    /// Live instances one handler may hold at once (`--route-max-instances`); `None` is
    /// [`DEFAULT_ROUTE_SHARE_PERCENT`] of `max_instances`.
    pub route_max_instances: Option<u32>,
}

impl RuntimeLimits {
    /// Live instances one handler may hold at once: `--route-max-instances`, or its default
    /// share of `--max-instances` (at least one), never more than `--max-instances`.
    pub fn route_max_instances(&self) -> u32 {
        let share = u64::from(self.max_instances) * u64::from(DEFAULT_ROUTE_SHARE_PERCENT) / 100;
        self.route_max_instances
            .unwrap_or(u32::try_from(share).unwrap_or(u32::MAX).max(1))
            .min(self.max_instances)
    }
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self {
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memory: DEFAULT_MAX_MEMORY,
            cpu_timeout: DEFAULT_CPU_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            backtrace_details: false,
            instance_reuse: 1,
            route_max_instances: None,
        }
    }
}

/// Connection-level timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request (or the accept) to its complete head.
    pub header: Duration,
    /// Idle time between requests on a keep-alive connection.
    pub idle: Duration,
    /// Idle time while reading a request body; the grace before `min_rate` applies to it.
    pub body: Duration,
    /// Time a response write may wait on the client; the grace before `min_rate` applies.
    pub send: Duration,
    /// Slowest average rate (bytes per second) past the graces; 0 turns it off.
    pub min_rate: u64,
    /// Idle time after which an SSE stream gets a keep-alive comment.
    pub sse_keepalive: Duration,
    /// Time in-flight requests get at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: DEFAULT_HEADER_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
            body: DEFAULT_BODY_TIMEOUT,
            send: DEFAULT_SEND_TIMEOUT,
            min_rate: DEFAULT_MIN_RATE,
            sse_keepalive: DEFAULT_SSE_KEEPALIVE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Where compiled handler code is cached on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileCache {
    /// The per-user cache directory, [`CompileCache::default_dir`].
    Default,
    /// This directory.
    Dir(PathBuf),
    /// No on-disk cache: every start compiles every handler.
    Off,
}

impl CompileCache {
    /// `$XDG_CACHE_HOME/wasm-host`, else `$HOME/.cache/wasm-host` (the XDG base directory
    /// rule); `None` when neither variable is set to an absolute path.
    pub fn default_dir() -> Option<PathBuf> {
        let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
        absolute("XDG_CACHE_HOME")
            .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
            .map(|base| base.join("wasm-host"))
    }
}

/// Static files served where no route matches (`--static`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFiles {
    /// The directory served.
    pub dir: PathBuf,
    /// Serve names starting with `.` (`--static-dotfiles`); `.well-known` is always served.
    pub dotfiles: bool,
}

/// HTTPS (`--tls-cert`, `--tls-key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Time a client has to finish its handshake.
    pub handshake_timeout: Duration,
}

/// Everything `wasm-host run` needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The routes directory.
    pub routes_dir: PathBuf,
    /// The address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Tokio worker threads.
    pub workers: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// HTTP parsing limits.
    pub http: HttpLimits,
    /// Guest limits.
    pub runtime: RuntimeLimits,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Reload handlers when the routes directory changes.
    pub watch: bool,
    /// The on-disk compile cache.
    pub cache: CompileCache,
    /// Refuse to start when any handler file fails to load or the tree has a problem, instead
    /// of serving the rest (broken routes answer 503).
    pub strict: bool,
    /// Set by `wasm-host dev`: build errors and traps are answered with pages that show them.
    pub dev: Option<DevMode>,
    /// state: where the shared key-value store and topics live (`--state`).
    pub state: crate::services::Backend,
    /// Static files served where no route matches; none by default.
    pub static_files: Option<StaticFiles>,
    /// Serve HTTPS instead of HTTP; off by default.
    pub tls: Option<Tls>,
    /// Where `/metrics` and `/healthz` are served (`--admin-listen`), on a listener of their
    /// own; off by default, since they have no authentication.
    pub admin_listen: Option<SocketAddr>,
}

/// What `wasm-host dev` changes in how requests are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevMode {
    /// While a handler's build is broken, keep serving its previous good version (instead of
    /// the page with the compiler's message).
    pub keep_serving: bool,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {name}: {reason}")]
pub struct ConfigError {
    /// The option, e.g. `--workers`.
    pub name: &'static str,
    /// Why the value is refused.
    pub reason: String,
}

impl Config {
    /// A configuration with every default, serving `routes_dir` on [`DEFAULT_LISTEN`].
    pub fn new(routes_dir: PathBuf) -> Self {
        Self {
            routes_dir: routes_dir.clone(),
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http: HttpLimits::default(),
            runtime: RuntimeLimits::default(),
            timeouts: Timeouts::default(),
            watch: true,
            cache: CompileCache::Default,
            strict: false,
            dev: None,
            state: crate::services::Backend::Dir(crate::services::default_dir(&routes_dir)),
            static_files: None,
            tls: None,
            admin_listen: None,
        }
    }

    /// Checks values that are individually well-formed but unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(name: &'static str, value: u64) -> Result<(), ConfigError> {
            if value == 0 {
                return Err(ConfigError { name, reason: "must be greater than zero".into() });
            }
            Ok(())
        }
        positive("--workers", self.workers as u64)?;
        positive("--max-connections", self.max_connections as u64)?;
        positive("--max-instances", self.runtime.max_instances.into())?;
        positive("--instance-reuse", self.runtime.instance_reuse.into())?;
        if let Some(cap) = self.runtime.route_max_instances {
            positive("--route-max-instances", cap.into())?;
            if cap > self.runtime.max_instances {
                return Err(ConfigError {
                    name: "--route-max-instances",
                    reason: format!(
                        "{cap} is more than --max-instances ({}); raise that too",
                        self.runtime.max_instances
                    ),
                });
            }
        }
        positive("--max-headers", self.http.max_headers as u64)?;
        positive("--max-memory", self.runtime.max_memory)?;
        for (name, d) in [
            ("--header-timeout", self.timeouts.header),
            ("--idle-timeout", self.timeouts.idle),
            ("--body-timeout", self.timeouts.body),
            ("--send-timeout", self.timeouts.send),
            ("--request-timeout", self.runtime.request_timeout),
            ("--pull-timeout", self.runtime.pull_timeout),
            ("--cpu-timeout", self.runtime.cpu_timeout),
            ("--sse-keepalive", self.timeouts.sse_keepalive),
        ] {
            if d.is_zero() {
                return Err(ConfigError { name, reason: "must be longer than zero".into() });
            }
        }
        if let Some(tls) = &self.tls
            && tls.handshake_timeout.is_zero()
        {
            return Err(ConfigError {
                name: "--tls-handshake-timeout",
                reason: "must be longer than zero".into(),
            });
        }
        if self.runtime.max_instances > 100_000 {
            return Err(ConfigError {
                name: "--max-instances",
                reason: format!(
                    "{} is above 100000 (each live instance costs 4 memory mappings: the default \
                     vm.max_map_count of 65530 allows about 16000)",
                    self.runtime.max_instances
                ),
            });
        }
        if let Some(admin) = self.admin_listen
            && admin == self.listen
            && admin.port() != 0
        {
            return Err(ConfigError {
                name: "--admin-listen",
                reason: format!("{admin} is the --listen address; the admin listener needs one of its own"),
            });
        }
        if self.http.max_request_line > self.http.max_head_bytes {
            return Err(ConfigError {
                name: "--max-request-line",
                reason: format!(
                    "{} is larger than --max-head-bytes ({})",
                    self.http.max_request_line, self.http.max_head_bytes
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::new("routes".into()).validate().unwrap();
    }

    #[test]
    fn zero_workers_is_rejected() {
        let mut c = Config::new("routes".into());
        c.workers = 0;
        assert_eq!(c.validate().unwrap_err().name, "--workers");
    }

    #[test]
    fn admin_listener_on_the_public_address_is_rejected() {
        let mut c = Config::new("routes".into());
        c.admin_listen = Some(c.listen);
        assert_eq!(c.validate().unwrap_err().name, "--admin-listen");
        // Port 0 picks a free port for each listener: no clash.
        c.listen.set_port(0);
        c.admin_listen = Some(c.listen);
        c.validate().unwrap();
    }

    #[test]
    fn request_line_longer_than_head_is_rejected() {
        let mut c = Config::new("routes".into());
        c.http.max_request_line = c.http.max_head_bytes + 1;
        assert_eq!(c.validate().unwrap_err().name, "--max-request-line");
    }
}
