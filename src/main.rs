//! The `license-facade` binary: parse the command line, set up logging, run.

use clap::Parser;
use license_facade::cli::{Cli, Command};
use license_facade::config::Settings;
use license_facade::sandbox::Sandbox;
use license_facade::startup::{Application, shutdown_signal};
use license_facade::telemetry;

/// mimalloc instead of glibc malloc: allocation was the largest single cost of a
/// 100,000-license reconciliation and a tenth of a GetLicense (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    errors_without_backtraces();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// Errors logged by the service carry their cause chain, not a stack backtrace:
/// with `RUST_BACKTRACE=1` in the environment every `anyhow` error captured one, and
/// the first logged error's backtrace was symbolised, which parses the binary's debug
/// information and keeps it cached for the life of the process (35 MB resident after
/// one constraint violation, docs/benchmarks.md round 6). `RUST_LIB_BACKTRACE` decides
/// for errors ahead of `RUST_BACKTRACE` (which still gives panics theirs); an operator
/// who wants backtraces on errors sets `RUST_LIB_BACKTRACE=1`.
fn errors_without_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first in `main`, before the runtime or anything else has
        // started a thread that could read the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

async fn run() -> anyhow::Result<()> {
    // rustls needs one process-wide crypto provider; ring keeps the build free of
    // aws-lc and OpenSSL.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // Held to the end of `main`, so the last lines are written out; the commands that
    // leave by `process::exit` log through plain writers instead.
    let mut log_guard = None;
    match cli.command {
        // Their stdout is the report.
        Command::Reconcile(_) | Command::Doctor(_) => telemetry::init_stderr(),
        // A dry run's stdout is the plan.
        Command::Watch(ref args) if args.dry_run => telemetry::init_stderr(),
        // Traces are exported by `serve` only, when an endpoint is set.
        Command::Serve(ref args) => {
            let endpoint = telemetry::otlp::endpoint(args.otlp_endpoint.as_deref());
            log_guard = Some(telemetry::init_serving(endpoint.as_deref()));
        }
        Command::Sandbox(_)
        | Command::Watch(_)
        | Command::PlatformSim(_)
        | Command::DemoPlatform(_) => log_guard = Some(telemetry::init_serving(None)),
        _ => telemetry::init(),
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Sandbox(args) => sandbox(args).await,
        Command::PlatformSim(args) => platform_sim(args).await,
        Command::DemoPlatform(args) => {
            license_facade::demo_platform::run(args, shutdown_signal()).await
        }
        Command::Watch(args) => {
            match license_facade::watcher::run_command(args, shutdown_signal()).await {
                Ok(code) => {
                    drop(log_guard.take());
                    std::process::exit(code);
                }
                Err(e) => Err(e),
            }
        }
        Command::Doctor(args) => {
            let code = license_facade::doctor::run(args).await?;
            std::process::exit(code);
        }
        Command::Panels(args) => {
            let code = license_facade::panels_cmd::run(args).await?;
            std::process::exit(code);
        }
        Command::Reconcile(args) => match license_facade::reconcile_cmd::run(args).await {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Command::PrintOpenapi => {
            use std::io::Write as _;
            let spec = license_facade::http::openapi::spec_json();
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(spec.as_bytes());
            Ok(())
        }
        Command::HashPassword => hash_password(),
        Command::Healthcheck(args) => {
            std::process::exit(license_facade::healthcheck::run(args).await);
        }
    };
    if let Err(e) = &result {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "license-facade failed");
    }
    drop(log_guard);
    result
}

async fn serve(args: license_facade::config::ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(args)?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}

async fn sandbox(args: license_facade::sandbox::SandboxArgs) -> anyhow::Result<()> {
    let addr = args.addr;
    let config = args.into_config()?;
    let sandbox = Sandbox::bind(addr, config).await?;
    tracing::info!(url = %sandbox.url(), alt_url = %format!("http://{}/manager/billmgr", sandbox.local_addr()), "BILLmanager sandbox listening");
    sandbox.run(shutdown_signal()).await?;
    Ok(())
}

async fn platform_sim(args: license_facade::platform::sim::PlatformSimArgs) -> anyhow::Result<()> {
    use license_facade::platform::sim::PlatformSim;
    let addr = args.addr;
    let (seed, panel) = (args.seed_hosts, args.seed_panel.clone());
    let sim = PlatformSim::bind(addr, args.into_config()?).await?;
    if seed > 0 {
        sim.handle().seed_hosts(seed, |_| format!("panel={panel}"));
    }
    tracing::info!(url = %sim.url(), seeded = seed, "platform simulator listening");
    sim.run(shutdown_signal()).await?;
    Ok(())
}

/// `hash-password`: the password is read from stdin, so it shows in no process list
/// or shell history; only the hash is printed.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "no password on stdin");
    println!("{}", license_facade::auth::hash_password(password));
    Ok(())
}
