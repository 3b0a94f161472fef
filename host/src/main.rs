//! The `wasm-host` command: parses arguments, sets up logging and runs the library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use wasm_host::cli::{Cli, Command};
use wasm_host::config::CompileCache;
use wasm_host::runtime::Runtime;
use wasm_host::server::{Server, load_routes, shutdown_signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines are written by a background thread so request tasks never block on stderr;
    // not lossy: when the writer falls behind, loggers wait rather than drop access lines.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("wasm-host-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Routes { routes_dir } => list_routes(&routes_dir),
        Command::New(args) => new_handler(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: wasm_host::cli::RunArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        #[allow(clippy::print_stdout)]
        {
            println!("listening on http://{addr}");
        }
        server.run(shutdown_signal()).await
    })
}

fn new_handler(args: &wasm_host::cli::NewArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let created = wasm_host::scaffold::new_handler(args, &cwd)?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        print!("{}", created.next_steps());
    }
    Ok(())
}

fn list_routes(dir: &std::path::Path) -> anyhow::Result<()> {
    let runtime = Runtime::new(&Default::default(), &CompileCache::Default)?;
    let (routes, _) =
        load_routes(&runtime, dir).with_context(|| format!("cannot load routes from {}", dir.display()))?;
    let rows: Vec<_> = routes.entries().map(|(file, _)| file).collect();
    let width = rows.iter().map(|f| f.route.len()).max().unwrap_or(5).max(5);
    #[allow(clippy::print_stdout)]
    {
        println!("{:<width$}  {:<7}  FILE", "ROUTE", "METHOD");
        for f in rows {
            println!("{:<width$}  {:<7}  {}", f.route, f.method.as_str(), f.path.display());
        }
    }
    Ok(())
}
