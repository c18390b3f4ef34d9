//! `loadgen`: the load harness of docs/benchmarks.md. Loopback only; every
//! measurement point is bounded by time and by a request count.
//!
//! ```text
//! cargo build --release --bin license-facade
//! cargo run --release --features loadgen --bin loadgen -- all
//! ```

mod bare;
mod churn;
mod compare;
mod hooks;
mod load;
mod procs;
mod scenarios;
mod transport;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The same allocator as the service binary, so the bare servers are a fair limit.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Load harness of license-facade (docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Recorded seconds per measurement point.
    #[arg(long, global = true, default_value_t = 5.0)]
    duration_secs: f64,
    /// Unrecorded warm-up per measurement point, in milliseconds.
    #[arg(long, global = true, default_value_t = 500)]
    warmup_ms: u64,
    /// Recorded requests per measurement point at most.
    #[arg(long, global = true, default_value_t = 1_000_000)]
    max_requests: u64,
    /// The release service binary [default: license-facade next to this binary].
    #[arg(long, global = true)]
    facade_bin: Option<PathBuf>,
    /// PostgreSQL admin URL; a database is created and dropped per run; `none` skips.
    #[arg(
        long,
        global = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_url: String,
    /// Licenses in the sandbox and the store for the reconcile scenario (and in the
    /// store for the console scenario).
    #[arg(long, global = true, default_value_t = 100_000)]
    licenses: usize,
    /// Servers on the simulated platform for the watcher scenario.
    #[arg(long, global = true, default_value_t = 10_000)]
    servers: usize,
    /// Servers licensed before the churn, in the churn scenario.
    #[arg(long, global = true, default_value_t = 1_000)]
    churn_servers: usize,
    /// Servers deleted and as many created, in the churn scenario.
    #[arg(long, global = true, default_value_t = 100)]
    churned: usize,
    /// Directory of the order path's SQLite file [default: a temporary directory].
    #[arg(long, global = true)]
    sqlite_dir: Option<PathBuf>,
}

#[derive(Subcommand, Clone)]
enum Cmd {
    /// 1. GetLicense over REST and gRPC against a bare axum and tonic handler.
    Read,
    /// 2. OrderLicense until ACTIVE vs a direct sandbox call; durable orders/s.
    Order,
    /// 3. Full reconciliation of N licenses: wall time, peak RSS, upstream calls.
    Reconcile,
    /// 4. Idle RSS, RSS after 100,000 requests, start to ready, binary size.
    Footprint,
    /// 5. Console pages (license list, overview) with N stored licenses.
    Console,
    /// 6. The platform watcher: passes over N servers and N licenses.
    Watcher,
    /// 7. The read path at 64 concurrent: plain TCP, TLS, and traces exported.
    Transport,
    /// 8. Webhook deliveries: drain rate and event-to-delivery delay at 100 events/s.
    Webhooks,
    /// 9. Watcher churn and the license pool: purchases and money with the cancel and
    ///    park policies, the upstream's cooldowns at 0 and at 30 days.
    Churn,
    /// 10. Two builds side by side, alternating rounds: idle and loaded RSS, reads
    ///     against the bare handlers, order latency and throughput on SQLite. Not part
    ///     of `all`.
    Compare {
        /// The build to compare against (A); this run's `--facade-bin` is B.
        #[arg(long)]
        baseline_bin: PathBuf,
        /// Rounds; each measures both builds, in alternating order.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Only the order path (a quicker run, for a bisect).
        #[arg(long)]
        orders_only: bool,
    },
    /// All of them (but `compare`), in order.
    All,
    /// (internal) The bare servers of the read scenario.
    #[command(hide = true)]
    BareServer {
        #[arg(long)]
        http_addr: SocketAddr,
        #[arg(long)]
        grpc_addr: SocketAddr,
        #[arg(long)]
        license_json: PathBuf,
        /// CPU time each REST and gRPC answer burns before it is sent, in microseconds:
        /// what a given cost per request does to the requests per second, against
        /// the same server without it (docs/benchmarks.md, round 11).
        #[arg(long, default_value_t = 0)]
        work_us: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Cmd::BareServer {
        http_addr,
        grpc_addr,
        license_json,
        work_us,
    } = &cli.command
    {
        let json = std::fs::read_to_string(license_json)?;
        let work = Duration::from_micros(*work_us);
        return bare::serve(*http_addr, *grpc_addr, json, work).await;
    }
    let bounds = load::Bounds {
        warmup: Duration::from_millis(cli.warmup_ms),
        duration: Duration::from_secs_f64(cli.duration_secs),
        max_requests: cli.max_requests,
    };
    let pg = (cli.pg_url != "none").then(|| cli.pg_url.clone());
    let ctx = scenarios::Ctx::new(
        cli.facade_bin.clone(),
        bounds,
        pg,
        cli.licenses,
        cli.sqlite_dir.clone(),
    )?;
    println!("# loadgen");
    println!();
    println!("Machine: {}.", procs::machine());
    println!(
        "Bounds: {} s recorded + {} ms warm-up per point, at most {} requests; loopback; client and servers share the machine.",
        cli.duration_secs, cli.warmup_ms, cli.max_requests
    );
    let all = matches!(cli.command, Cmd::All);
    let mut failed = false;
    for (n, title) in [
        (1, "1. Read path"),
        (2, "2. Order path"),
        (3, "3. Reconcile at scale"),
        (4, "4. Footprint"),
        (5, "5. Console pages"),
        (6, "6. Platform watcher"),
        (7, "7. Transport: TLS and traces"),
        (8, "8. Webhook deliveries"),
        (9, "9. Watcher churn and the license pool"),
        (10, "10. Two builds side by side"),
    ] {
        let wanted = match cli.command {
            Cmd::Read => n == 1,
            Cmd::Order => n == 2,
            Cmd::Reconcile => n == 3,
            Cmd::Footprint => n == 4,
            Cmd::Console => n == 5,
            Cmd::Watcher => n == 6,
            Cmd::Transport => n == 7,
            Cmd::Webhooks => n == 8,
            Cmd::Churn => n == 9,
            Cmd::Compare { .. } => n == 10,
            _ => all && n != 10,
        };
        if !wanted {
            continue;
        }
        eprintln!("== {title}");
        println!();
        println!("## {title}");
        println!();
        let result = match n {
            1 => scenarios::read(&ctx).await,
            2 => scenarios::order(&ctx).await,
            3 => scenarios::reconcile(&ctx).await,
            4 => scenarios::footprint(&ctx).await,
            5 => scenarios::console(&ctx).await,
            7 => transport::transport(&ctx).await,
            8 => hooks::webhooks(&ctx).await,
            9 => churn::churn(&ctx, cli.churn_servers, cli.churned).await,
            10 => match &cli.command {
                Cmd::Compare {
                    baseline_bin,
                    rounds,
                    orders_only,
                } => compare::compare(&ctx, baseline_bin, *rounds, *orders_only).await,
                _ => unreachable!("scenario 10 runs only as compare"),
            },
            _ => watch::watcher(&ctx, cli.servers).await,
        };
        match result {
            Ok(table) => println!("{table}"),
            Err(e) => {
                failed = true;
                println!("FAILED: {e:#}");
            }
        }
    }
    if failed {
        eprintln!("child logs kept in {}", ctx.dir.display());
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(&ctx.dir);
    Ok(())
}
