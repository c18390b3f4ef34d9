//! `license-facade reconcile`: one reconciliation against the configured database and
//! upstream, printed as JSON (the REST `DriftReport`) on stdout. Logs go to stderr.
//!
//! Exit status: 0 when the run completed, whatever it found (the drift is in the
//! JSON); 2 with `--fail-on-drift` when it found orphans, missing licenses or
//! mismatches; 1 when the run itself failed (database or upstream unreachable, bad
//! settings).

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;

use crate::billmanager::{Billmanager, BillmanagerClient};
use crate::config::{ServeArgs, Settings};
use crate::sandbox::Sandbox;
use crate::service::LicenseService;

/// Flags of `license-facade reconcile`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Horizon of the "expiring without auto-renew" list in days [default: the
    /// configured `reconcile.expiring_within_days`, 14].
    #[arg(long)]
    pub expiring_within_days: Option<u32>,
    /// Exit with status 2 when drift (orphans, missing, mismatches) is found.
    #[arg(long)]
    pub fail_on_drift: bool,
    /// The same settings as `serve` (database, upstream, catalog file, …).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Runs the command; returns the process exit code.
pub async fn run(args: ReconcileArgs) -> anyhow::Result<i32> {
    let mut settings = Settings::from_args(args.serve)?;
    // With --sandbox there is a fresh simulator (and, by default, an empty in-memory
    // database): useful only to try the command out.
    if let Some(config) = settings.sandbox.take() {
        let sandbox = Sandbox::bind("127.0.0.1:0".parse().expect("valid"), config)
            .await
            .context("cannot bind the sandbox")?;
        settings.billmanager.url = sandbox.url();
        tokio::spawn(sandbox.run(std::future::pending()));
    }
    let store = crate::store::connect(&settings.database_url).await?;
    let upstream: Arc<dyn Billmanager> = Arc::new(
        BillmanagerClient::new(settings.billmanager)
            .context("cannot build the BILLmanager client")?,
    );
    let service = LicenseService::new(store, upstream, Arc::new(settings.catalog))
        .with_reconcile_config(&settings.reconcile);
    let report = service
        .reconcile(args.expiring_within_days)
        .await
        .context("the reconciliation failed")?;
    let json = serde_json::to_string_pretty(&crate::api::drift_report_to_pb(&report))
        .context("cannot encode the report")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{json}").context("cannot write the report")?;
    Ok(if args.fail_on_drift && report.has_drift() {
        2
    } else {
        0
    })
}
