//! `license-facade panels [--check]`: print the configured catalog and, with
//! `--check`, compare it with the upstream price list.

use std::sync::Arc;

use anyhow::Context;

use crate::billmanager::{Billmanager, BillmanagerClient};
use crate::config::{ServeArgs, Settings};
use crate::health::check_catalog;
use crate::sandbox::Sandbox;

/// Flags of `license-facade panels`.
#[derive(clap::Args, Debug, Clone)]
pub struct PanelsArgs {
    /// Compare the catalog with the upstream price list; exit 1 if a configured panel
    /// is not offered upstream or the upstream cannot be asked.
    #[arg(long)]
    pub check: bool,
    /// The same settings as `serve` (upstream, catalog file, …).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Runs the command; returns the process exit code.
pub async fn run(args: PanelsArgs) -> anyhow::Result<i32> {
    let mut settings = Settings::from_args(args.serve)?;
    if !args.check {
        for p in settings.catalog.panels() {
            println!("{:<32} {}", p.name, p.tariff_id);
        }
        return Ok(0);
    }
    let _sandbox = match settings.sandbox.take() {
        Some(config) => {
            let sandbox = Sandbox::bind("127.0.0.1:0".parse().expect("valid"), config).await?;
            settings.billmanager.url = sandbox.url();
            let url = sandbox.url();
            tokio::spawn(sandbox.run(std::future::pending()));
            Some(url)
        }
        None => None,
    };
    let upstream: Arc<dyn Billmanager> =
        Arc::new(BillmanagerClient::new(settings.billmanager).context("cannot build the client")?);
    let check = match check_catalog(upstream.as_ref(), &settings.catalog).await {
        Ok(check) => check,
        Err(e) => {
            eprintln!("cannot read the upstream price list: {e}");
            return Ok(1);
        }
    };
    for p in &check.present {
        println!("ok       {:<32} {}", p.name, p.tariff_id);
    }
    for p in &check.missing {
        println!(
            "MISSING  {:<32} {}  (not offered upstream)",
            p.name, p.tariff_id
        );
    }
    Ok(if check.missing.is_empty() { 0 } else { 1 })
}
