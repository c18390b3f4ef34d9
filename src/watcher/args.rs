//! `license-facade watch`: the command line of the watcher.

use std::path::PathBuf;
use std::sync::Arc;

use super::pass::PassMode;
use super::{Listeners, ReleasePolicy, Watcher, WatcherConfig, serve};

/// `license-facade watch`: keep one license on every marked server of a platform.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The watcher's configuration file (TOML; see docs/integrations.md).
    #[arg(long, env = "LICENSE_FACADE_WATCHER_CONFIG")]
    pub config: PathBuf,
    /// Print the plan of one pass as JSON (what would be ordered, moved, changed and
    /// cancelled) and exit; nothing is sent and no bookkeeping is written.
    #[arg(long)]
    pub dry_run: bool,
    /// Run one pass, then exit (0: done; 1: the pass failed; 2: cancellations were
    /// stopped by the share limit).
    #[arg(long)]
    pub once: bool,
    /// Lift the share limit on cancellations for this run: use it after checking that
    /// the servers are really gone.
    #[arg(long)]
    pub allow_mass_cancel: bool,
    /// How the license of a gone server ends, over the file's `cancel.release`:
    /// `cancel`, or `park` (released to the service's pool, by its rules).
    #[arg(long, value_enum, env = "LICENSE_FACADE_WATCHER_RELEASE")]
    pub release: Option<ReleasePolicy>,
}

/// Runs the command; the process's exit code.
pub async fn run_command(
    args: WatchArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<i32> {
    let mut config = WatcherConfig::load(&args.config)?;
    if let Some(release) = args.release {
        config.cancel.release = release;
    }
    let mode = PassMode {
        dry_run: args.dry_run,
        allow_mass_cancel: args.allow_mass_cancel,
    };
    if args.dry_run || args.once {
        let watcher = Watcher::new(config)?;
        let report = match watcher.pass(mode).await {
            Ok(report) => report,
            Err(_) => return Ok(1),
        };
        if args.dry_run {
            use std::io::Write as _;
            let text = serde_json::to_string_pretty(&report)?;
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
        return Ok(if report.blocked.is_some() { 2 } else { 0 });
    }
    let listeners = Listeners::bind(&config).await?;
    tracing::info!(
        prefix = %config.server_prefix(),
        http = ?listeners.http_addr(),
        guest = ?listeners.guest_addr(),
        interval_secs = config.interval.as_secs(),
        release = config.cancel.release.as_str(),
        "watcher started"
    );
    let watcher = Arc::new(Watcher::new(config)?);
    if mode.allow_mass_cancel {
        tracing::warn!("--allow-mass-cancel applies to --once and --dry-run only; ignored");
    }
    serve(watcher, listeners, shutdown).await?;
    Ok(0)
}
