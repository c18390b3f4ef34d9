//! The platforms whose servers licenses follow: adapters that read VMmanager 6 hosts
//! and DCImanager 6 servers over their REST APIs, and a simulator of both ([`sim`]).
//!
//! An adapter answers one question — which servers are there now — as a [`Listing`]
//! with a verdict on its completeness. Only a [`Completeness::Complete`] listing may
//! ever count as evidence that a server is gone: a listing that failed, came back
//! shorter than the total it announced, or was interrupted by a 503 or an expired
//! session after its first page is [`Completeness::Incomplete`], whatever it holds.
//!
//! Layout: `config` (settings), `client` (HTTP: log-in, re-login, 503 back-off),
//! `listing` (paging and the completeness verdict), `vmmanager` and `dcimanager`
//! (paths and field mapping of each platform), `error`.

mod client;
mod config;
pub mod dcimanager;
mod error;
mod fields;
mod listing;
pub mod sim;
#[cfg(test)]
mod tests;
pub mod vmmanager;

use std::net::Ipv4Addr;

pub use client::PlatformClient;
pub use config::{Credentials, Paging, PlatformConfig, PlatformKind};
pub use error::PlatformError;

/// One server as a platform lists it, in the fields the watcher reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    /// The platform's id of the host or server.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its domain name, if the platform shows one.
    pub domain: String,
    /// The free-text comment.
    pub comment: String,
    /// Its tags (an empty list when the platform shows none).
    pub tags: Vec<String>,
    /// Its state as the platform words it (`active`, `creating`, …); informative only.
    pub state: String,
    /// Its IPv4 addresses, in the platform's order.
    pub ipv4: Vec<Ipv4Addr>,
    /// The OS (template) name.
    pub os: String,
}

/// Whether a listing can prove that a server is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    /// Every page was read in one uninterrupted run and the elements add up to the
    /// total the platform announced.
    Complete,
    /// Anything else; the reason is for logs and the status page.
    Incomplete(String),
}

/// The servers of one listing with the verdict on its completeness.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The servers read (from the last run, when runs were restarted).
    pub servers: Vec<ServerRecord>,
    /// Whether the listing is complete.
    pub completeness: Completeness,
    /// HTTP requests the listing took (log-ins and retries included).
    pub requests: u64,
}

impl Listing {
    /// Whether the listing may count as evidence of absence.
    pub fn is_complete(&self) -> bool {
        self.completeness == Completeness::Complete
    }
}

/// A platform adapter: a client and the platform's shape.
pub struct Platform {
    client: PlatformClient,
    config: PlatformConfig,
}

impl Platform {
    /// Validates `config` and builds the HTTP client.
    pub fn new(config: PlatformConfig) -> anyhow::Result<Self> {
        let client = PlatformClient::new(&config)?;
        Ok(Self { client, config })
    }

    /// Which platform this is.
    pub fn kind(&self) -> PlatformKind {
        self.config.kind
    }

    /// Lists every server (hosts for VMmanager, servers for DCImanager).
    pub async fn list_servers(&self) -> Listing {
        listing::list(&self.client, &self.config).await
    }
}
