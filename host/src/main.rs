//! The `wasm-host` command: parses arguments, sets up logging and runs the library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use wasm_host::cli::{Cli, Command};
use wasm_host::config::CompileCache;
use wasm_host::runtime::{Runtime, Services};
use wasm_host::server::{Server, shutdown_signal};

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
        Command::Routes { routes_dir, static_dir } => list_routes(&routes_dir, static_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr, reason = "the binary reports its fatal error on stderr")]
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
        #[allow(clippy::print_stdout, reason = "the readiness line is part of the CLI's output")]
        {
            println!("listening on {}://{addr}", server.scheme());
        }
        server.run(shutdown_signal()).await
    })
}

fn list_routes(dir: &std::path::Path, static_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(s) = static_dir {
        wasm_host::site::static_files::StaticDir::open(s, false)?;
    }
    let runtime = Runtime::new(&Default::default(), &CompileCache::Default, Services::default())?;
    let (routes, _) = wasm_host::site::load(&runtime, dir)
        .with_context(|| format!("cannot load routes from {}", dir.display()))?;
    let rows: Vec<_> = routes.entries().map(|(file, _)| file).collect();
    let width = rows.iter().map(|f| f.route.len()).max().unwrap_or(5).max(5);
    #[allow(clippy::print_stdout, reason = "the route table is the command's output")]
    {
        println!("{:<width$}  {:<7}  FILE", "ROUTE", "METHOD");
        for f in rows {
            println!("{:<width$}  {:<7}  {}", f.route, f.method.as_str(), f.path.display());
        }
        if let Some(s) = static_dir {
            // The fallback: GET (and so HEAD) of any path no route above matches.
            println!(
                "{:<width$}  {:<7}  {}/ (static files, where no route matches)",
                "/**",
                "GET",
                s.components().as_path().display()
            );
        }
    }
    Ok(())
}
