//! The `wasm-host` command: parses arguments, sets up logging and runs the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use wasm_host::cli::{Cli, Command};
use wasm_host::config::CompileCache;
use wasm_host::runtime::Runtime;
use wasm_host::server::{Server, shutdown_signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _flush_on_exit = wasm_host::log::init(cli.log_format.into());
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Routes { routes_dir, static_dir } => list_routes(&routes_dir, static_dir.as_deref()),
        Command::Dev(args) => dev(args),
        Command::New(args) => new_handler(&args),
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
    serve(args.into_config()?, |_| {})
}

/// Binds a server for `config` and serves until SIGINT/SIGTERM; `ready` runs inside the async
/// runtime just before the readiness line is printed.
fn serve(config: wasm_host::config::Config, ready: impl FnOnce(&Server)) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .max_blocking_threads(wasm_host::config::blocking_threads(config.workers))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal();
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        let admin = server.admin_addr()?;
        ready(&server);
        #[allow(clippy::print_stdout, reason = "the readiness lines are part of the CLI's output")]
        {
            // Before the main line, which tells that everything is ready.
            if let Some(admin) = admin {
                println!("admin listening on http://{admin}");
            }
            println!("listening on {}://{addr}", server.scheme());
        }
        server.run(shutdown).await
    })
}

fn dev(args: wasm_host::cli::DevArgs) -> anyhow::Result<()> {
    use wasm_host::dev::{Builder, Project, ensure_wasm_target, watch_project, watch_sources};
    let project = Project::load(&args.project_dir)?;
    ensure_wasm_target()?;
    let watcher = watch_project(&project.root)?;
    std::fs::create_dir_all(&project.routes_dir)
        .with_context(|| format!("cannot create {}", project.routes_dir.display()))?;
    let mut builder = Builder::default();
    let broken = builder.round(&project);
    let mut config = wasm_host::config::Config::new(project.routes_dir.clone());
    config.listen = args.listen;
    config.dev = Some(wasm_host::config::DevMode { keep_serving: args.keep_serving });
    config.runtime.backtrace_details = true;
    if let Some(dir) = args.cache_dir {
        config.cache = CompileCache::Dir(dir);
    }
    serve(config, |server| {
        let app = server.app().clone();
        if let Some(failures) = &app.build_failures {
            failures.table.store(std::sync::Arc::new(broken));
        }
        tokio::spawn(watch_sources(app, project.root.clone(), watcher, builder));
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

fn list_routes(dir: &std::path::Path, static_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(s) = static_dir {
        wasm_host::static_files::StaticDir::open(s, false)?;
    }
    let runtime = Runtime::new(&Default::default(), &CompileCache::Default)?;
    let build = wasm_host::site::load(&runtime, dir, false)
        .with_context(|| format!("cannot load routes from {}", dir.display()))?;
    #[allow(clippy::print_stdout, reason = "the route table is the command's output")]
    {
        print!("{}", wasm_host::site::listing::render(&build));
        if let Some(s) = static_dir {
            // The fallback: GET (and so HEAD) of any path no route above matches.
            println!(
                "/**  GET  {}/ (static files, where no route matches)",
                s.components().as_path().display()
            );
        }
    }
    let problems = build.problems.len() + build.tree_problems.len();
    if problems > 0 {
        let detail: Vec<String> = build
            .tree_problems
            .iter()
            .map(ToString::to_string)
            .chain(build.problems.iter().map(|f| f.problem.to_string()))
            .collect();
        anyhow::bail!("{problems} problem(s) in {}:\n{}", dir.display(), detail.join("\n"));
    }
    Ok(())
}
