//! Command-line arguments as typed values. The doc comments here are the `--help` text. Turning
//! arguments into a validated [`Config`] happens in [`RunArgs::into_config`]; nothing else reads
//! raw arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, CompileCache, Config};
use crate::http;

/// Serve a directory of WebAssembly handlers over HTTP.
///
/// Each folder under the routes directory is a path segment (`{name}` folders capture a
/// parameter) and each `<METHOD>.wasm` file in it answers that method, e.g.
/// `routes/users/{id}/GET.wasm` answers `GET /users/42`.
#[derive(Debug, Parser)]
#[command(
    name = "wasm-host",
    version,
    about,
    long_about,
    after_help = "Examples:\n  wasm-host run routes/                          serve on 127.0.0.1:8080\n  \
                  wasm-host run routes/ --listen 0.0.0.0:80      serve on every interface\n  \
                  wasm-host run routes/ --static public/         also serve the files in public/\n  \
                  wasm-host run routes/ --tls-cert cert.pem --tls-key key.pem   serve HTTPS\n  \
                  wasm-host routes routes/                       list routes, check handlers load\n  \
                  wasm-host new users --route '/users/{id}'      create a handler crate and its project\n\n\
                  Logging: RUST_LOG=warn drops the access log; RUST_LOG=debug shows more."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// How log lines (on stderr) are written: `text` (key=value) or `json` (one object per
    /// line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The values of `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `key=value` text lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormat> for crate::log::Format {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => crate::log::Format::Text,
            LogFormat::Json => crate::log::Format::Json,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a routes directory.
    ///
    /// Prints `listening on http://ADDR` once ready. Replacing, adding or removing a handler file
    /// takes effect without a restart (deploy with an atomic `mv`). Stops on SIGINT/SIGTERM,
    /// letting requests in flight finish within the grace period. Sizes accept suffixes (`64KiB`,
    /// `16MiB`); durations accept units (`500ms`, `30s`, `5m`).
    Run(Box<RunArgs>),
    /// Print the route table (route, method, world, file, error pages) and check that every
    /// handler loads.
    ///
    /// A handler that does not load is still listed, marked BROKEN with the reason beside it;
    /// misnamed files and unroutable folders are listed after the table. Exits with status 1
    /// if anything is broken.
    Routes {
        /// The routes directory.
        routes_dir: PathBuf,
        /// Show the static-file fallback `run --static DIR` would add (checks DIR exists).
        #[arg(long = "static", value_name = "DIR")]
        static_dir: Option<PathBuf>,
    },
    /// Build a project's handlers, serve them, and rebuild on every save.
    ///
    /// Builds every handler crate of the project (`cargo build --release --target
    /// wasm32-wasip2`, installing the target if missing), places the components into its routes
    /// tree and serves it; on each save rebuilds only what changed and swaps it in without a
    /// restart. While a build is broken its route shows the compiler's message; a trap shows
    /// the panic and a symbolised backtrace.
    #[command(after_help = "Example:\n  wasm-host new hello --route /hello && cd hello && wasm-host dev")]
    Dev(DevArgs),
    /// Create a handler crate, in a new project or the one in the current directory.
    ///
    /// Outside a project this creates the project NAME/: a cargo workspace with the handler
    /// in handlers/NAME, an empty routes/ tree to serve, and a copy of the SDK and its WIT
    /// files in sdk/ (carried by this binary, so the project builds with only the package
    /// registries reachable). Inside a project it adds handlers/NAME. The handler answers
    /// its methods on its route and has a native unit test; the commands to build, place and
    /// serve it are printed.
    #[command(after_help = "Example:\n  wasm-host new users --route '/users/{id}' --method GET,PUT\n  \
                            cd users && cargo test && cargo build --release --target wasm32-wasip2\n  \
                            mkdir -p 'routes/users/{id}'\n  \
                            cp target/wasm32-wasip2/release/users.wasm 'routes/users/{id}/GET.wasm'\n  \
                            wasm-host run routes")]
    New(NewArgs),
}

/// Arguments of `wasm-host dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The project folder (made by `wasm-host new`).
    #[arg(default_value = ".")]
    pub project_dir: PathBuf,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// While a handler's build is broken, keep serving its previous good version instead of
    /// the page with the compiler's message.
    #[arg(long)]
    pub keep_serving: bool,

    /// Directory for the compiled-code cache [default: $XDG_CACHE_HOME/wasm-host or ~/.cache/wasm-host].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// Arguments of `wasm-host new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The handler's name: its crate and its `.wasm` file (lower case, `-` and `_` allowed).
    pub name: String,
    /// The route it answers; `{name}` segments capture parameters [default: /NAME].
    #[arg(long)]
    pub route: Option<String>,
    /// The methods it answers, comma-separated: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS
    /// or ANY.
    #[arg(long, value_delimiter = ',', default_value = "GET")]
    pub method: Vec<String>,
    /// The project to create or add to [default: the current directory if it is a wasm-host
    /// project, else a new project NAME/].
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// Depend on the SDK at this path instead of copying it into the project.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// Arguments of `wasm-host run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The routes directory.
    pub routes_dir: PathBuf,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Worker threads, each running whole requests; waiting handlers do not hold one, so more
    /// than the CPUs only adds switching [default: number of CPUs].
    #[arg(long)]
    pub workers: Option<usize>,

    /// Connections served at once; more wait in the kernel's accept queue.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Requests holding a live handler instance at once (including streaming responses and
    /// sleeping handlers); more are answered 503.
    #[arg(long, default_value_t = config::DEFAULT_MAX_INSTANCES)]
    pub max_instances: u32,

    /// Live instances one handler (one route and method) may hold at once, so a route whose
    /// requests pile up cannot take the whole pool from the others; past it that route answers
    /// 503 [default: half of --max-instances].
    #[arg(long, value_name = "N")]
    pub route_max_instances: Option<u32>,

    /// Requests one handler instance may serve one after another. 1 (the default) gives every
    /// request a fresh instance. Higher is faster, but the handler's global variables then
    /// persist from one request to the next; a failure, a reload or 10 s idle retire an instance.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub instance_reuse: u32,

    /// Largest request body, or `unlimited`; larger bodies get 413.
    #[arg(long, default_value = "16MiB", value_parser = parse_limit)]
    pub max_body: Limit,

    /// Longest request line (method, target, version); longer gets 414.
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    pub max_request_line: u64,

    /// Largest request head (request line and headers); larger gets 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub max_head_bytes: u64,

    /// Most header fields in a request; more gets 431.
    #[arg(long, default_value_t = http::DEFAULT_MAX_HEADERS)]
    pub max_headers: usize,

    /// Time to receive a complete request head; slower clients get 408.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time an idle keep-alive connection is kept open.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Time a request body may stall without new bytes; then 408.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Time a response may wait for the client to read it; then the connection is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub send_timeout: Duration,

    /// Slowest average rate (bytes per second, e.g. 1KiB) at which a client may send a body or
    /// read a response once --body-timeout or --send-timeout has passed: each such amount moved
    /// earns one more second. Slower clients are cut off (408 for a body); 0 turns it off.
    #[arg(long, default_value = "1KiB", value_parser = parse_size, value_name = "BYTES")]
    pub min_rate: u64,

    /// Wall-clock time from request head to response head (all hooks); then 504.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Wall-clock time for each pull of a streaming response (chunk or event), and for each
    /// body chunk of a full-duplex (`begin`) exchange.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub pull_timeout: Duration,

    /// CPU time one hook call or pull may use; a runaway handler is interrupted (504).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub cpu_timeout: Duration,

    /// Linear memory one handler instance may use; past it the handler traps (500).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub max_memory: u64,

    /// Idle time after which a Server-Sent Events stream gets a keep-alive comment.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub sse_keepalive: Duration,

    /// Time in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Do not watch the routes directory. By default a changed, added or removed handler file
    /// is picked up without a restart (deploy with an atomic `mv`); SIGHUP always rescans.
    #[arg(long)]
    pub no_watch: bool,

    /// Directory for the compiled-code cache [default: $XDG_CACHE_HOME/wasm-host or ~/.cache/wasm-host].
    #[arg(long, conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Do not cache compiled code on disk (every start compiles every handler).
    #[arg(long)]
    pub no_cache: bool,

    /// Refuse to start if any handler file fails to load or the routes tree has a problem (for
    /// CI and deploy checks). Without it, the rest is served: a broken handler's route answers
    /// 503 and the log says why, exactly as when a file breaks while the server runs.
    #[arg(long)]
    pub strict: bool,

    /// Where handlers' shared key-value store and topics live: a directory (an embedded,
    /// durable database `state.redb`, created on first use), `memory` (lost at exit) or
    /// `redis://HOST:PORT[/DB]` (shared by every host using it) [default:
    /// $XDG_STATE_HOME/wasm-host/NAME-HASH or ~/.local/state/wasm-host/NAME-HASH, one per routes
    /// directory].
    #[arg(long, value_name = "DIR|memory|redis://HOST:PORT[/DB]")]
    pub state: Option<crate::services::Backend>,

    /// Also serve the files in DIR, for GET and HEAD requests that no route matches (a route
    /// always wins). `/docs/` serves `docs/index.html`; `/docs` redirects there. Sends
    /// Content-Type, ETag and Last-Modified, answers conditional and Range requests, and
    /// serves `x.br` / `x.gz` in place of `x` to clients that accept them. Nothing outside DIR
    /// is served, not even through symlinks; names starting with `.` are not served (except
    /// `.well-known/`).
    #[arg(long = "static", value_name = "DIR", help_heading = "Static files")]
    pub static_dir: Option<PathBuf>,

    /// Serve names starting with `.` (`.env`, `.git/`) from the --static directory too.
    #[arg(long, requires = "static_dir", help_heading = "Static files")]
    pub static_dotfiles: bool,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. The pair is
    /// reloaded when either file changes (and on SIGHUP) without dropping connections; a
    /// broken new pair is logged and the old one kept.
    #[arg(long, value_name = "CERT.pem", requires = "tls_key", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,

    /// The private key for --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,

    /// Time a client has to complete the TLS handshake; then the connection is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "TLS")]
    pub tls_handshake_timeout: Duration,

    /// Serve `GET /metrics` (Prometheus text format: requests by route and status, latency,
    /// instances, pool, reloads, bytes, connections) and `GET /healthz` (200 `ok` while
    /// serving, 503 once shutdown has begun) on ADDR, a listener of its own: never on --listen.
    /// Prints `admin listening on http://ADDR`. It has no authentication: bind it to a loopback
    /// or private address [default: off].
    #[arg(long, value_name = "ADDR", help_heading = "Operability")]
    pub admin_listen: Option<SocketAddr>,
}

/// A size limit that can be turned off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this many bytes.
    Bytes(u64),
    /// No limit.
    Unlimited,
}

impl RunArgs {
    /// The validated configuration these arguments describe.
    pub fn into_config(self) -> Result<Config, config::ConfigError> {
        let mut c = Config::new(self.routes_dir);
        c.listen = self.listen;
        if let Some(w) = self.workers {
            c.workers = w;
        }
        c.max_connections = self.max_connections;
        c.runtime.max_instances = self.max_instances;
        c.runtime.instance_reuse = self.instance_reuse;
        c.runtime.route_max_instances = self.route_max_instances;
        c.http.max_body = match self.max_body {
            Limit::Bytes(n) => Some(n),
            Limit::Unlimited => None,
        };
        let usize_of = |name: &'static str, v: u64| {
            usize::try_from(v).map_err(|_| config::ConfigError { name, reason: format!("{v} is too large") })
        };
        c.http.max_request_line = usize_of("--max-request-line", self.max_request_line)?;
        c.http.max_head_bytes = usize_of("--max-head-bytes", self.max_head_bytes)?;
        c.http.max_headers = self.max_headers;
        c.timeouts.header = self.header_timeout;
        c.timeouts.idle = self.idle_timeout;
        c.timeouts.body = self.body_timeout;
        c.timeouts.send = self.send_timeout;
        c.timeouts.min_rate = self.min_rate;
        c.timeouts.sse_keepalive = self.sse_keepalive;
        c.timeouts.shutdown_grace = self.shutdown_grace;
        c.runtime.request_timeout = self.request_timeout;
        c.runtime.pull_timeout = self.pull_timeout;
        c.runtime.cpu_timeout = self.cpu_timeout;
        c.runtime.max_memory = self.max_memory;
        c.watch = !self.no_watch;
        c.strict = self.strict;
        c.cache = match (self.no_cache, self.cache_dir) {
            (true, _) => CompileCache::Off,
            (false, Some(dir)) => CompileCache::Dir(dir),
            (false, None) => CompileCache::Default,
        };
        if let Some(state) = self.state {
            c.state = state;
        }
        c.static_files =
            self.static_dir.map(|dir| config::StaticFiles { dir, dotfiles: self.static_dotfiles });
        c.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(config::Tls { cert, key, handshake_timeout: self.tls_handshake_timeout })
            }
            _ => None,
        };
        c.admin_listen = self.admin_listen;
        c.validate()?;
        Ok(c)
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}` is not a size (try 65536, 64KiB or 16MiB): {e}"))
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(Limit::Unlimited);
    }
    parse_size(s).map(Limit::Bytes)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration (try 500ms, 30s or 5m): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_suffixes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn body_limit_can_be_unlimited() {
        assert_eq!(parse_limit("unlimited"), Ok(Limit::Unlimited));
        assert_eq!(parse_limit("1KiB"), Ok(Limit::Bytes(1024)));
    }

    #[test]
    fn defaults_match_the_config_defaults() {
        let cli = Cli::parse_from(["wasm-host", "run", "routes"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        let args = *args;
        let c = args.into_config().unwrap();
        let mut d = Config::new("routes".into());
        d.workers = c.workers;
        assert_eq!(c.http, d.http);
        assert_eq!(c.runtime, d.runtime);
        assert_eq!(c.timeouts, d.timeouts);
        assert_eq!(c.listen, d.listen);
        assert_eq!((c.static_files, c.tls), (None, None));
    }

    #[test]
    fn tls_handshake_default_matches_the_config_default() {
        let cli = Cli::parse_from(["wasm-host", "run", "r", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        let tls = args.into_config().unwrap().tls.unwrap();
        assert_eq!(tls.handshake_timeout, config::DEFAULT_TLS_HANDSHAKE_TIMEOUT);
    }

    #[test]
    fn a_cert_needs_a_key_and_dotfiles_need_static() {
        assert!(Cli::try_parse_from(["wasm-host", "run", "r", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["wasm-host", "run", "r", "--tls-key", "k.pem"]).is_err());
        assert!(Cli::try_parse_from(["wasm-host", "run", "r", "--static-dotfiles"]).is_err());
    }

    #[test]
    fn help_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
