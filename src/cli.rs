//! The command line: `serve` and `sandbox`.

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
    /// Print the panel catalog; `--check` compares it with the upstream price list.
    Panels(crate::panels_cmd::PanelsArgs),
}
