//! The command line: `serve`, the simulators, the watcher and the tools.

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use crate::sandbox::SandboxArgs;

/// license-facade: order and manage ISPmanager licenses on BILLmanager, exactly once.
#[derive(Parser, Debug)]
#[command(name = "license-facade", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the gRPC and REST APIs.
    Serve(ServeArgs),
    /// Run a standalone BILLmanager sandbox (simulator).
    Sandbox(SandboxArgs),
    /// Keep one license on every marked server of a VMmanager 6 or DCImanager 6
    /// platform, through this service's gRPC API (docs/integrations.md).
    Watch(crate::watcher::WatchArgs),
    /// Run a VMmanager 6 / DCImanager 6 API simulator (for demos and tests).
    PlatformSim(crate::platform::sim::PlatformSimArgs),
    /// Run the whole chain in one process: platform simulator → watcher →
    /// license-facade → BILLmanager sandbox.
    DemoPlatform(crate::demo_platform::DemoArgs),
    /// Check the upstream account before spending money: log in once, read the
    /// licenses, the price list and the balance, and say which answer shapes the
    /// upstream uses. Buys and changes nothing upstream; with --sandbox it orders one
    /// license from its own sandbox and reads it back. Exit 0 when every check passed.
    Doctor(crate::doctor::DoctorArgs),
    /// Print the panel catalog; `--check` compares it with the upstream price list.
    Panels(crate::panels_cmd::PanelsArgs),
    /// Compare the upstream's licenses with the database once and print the drift
    /// report as JSON (exit 0; 2 with `--fail-on-drift` when drift is found).
    Reconcile(crate::reconcile_cmd::ReconcileArgs),
    /// Ask a running instance's `/readyz`; exit 0 when ready, 1 otherwise (for a
    /// container HEALTHCHECK without a shell).
    Healthcheck(crate::healthcheck::HealthcheckArgs),
    /// Print the REST API's OpenAPI 3.1 document (the one served at /openapi.json).
    PrintOpenapi,
    /// Read a password from stdin (one line) and print its argon2id hash, for a
    /// client's `billmgr_password_hash` in the clients file.
    HashPassword,
}
