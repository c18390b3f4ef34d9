//! Three `license-facade serve` replicas as child processes on one PostgreSQL database
//! of their own and one sandbox, with orders fired at them in the background: the
//! start of every test that kills a replica while it works.

use std::path::Path;
use std::time::{Duration, Instant};

use license_facade::sandbox::SandboxConfig;
use tokio::task::JoinSet;

use super::api::Order;
use super::child::ChildReplica;
use super::db::TestDb;
use super::sandbox::{TestSandbox, start_sandbox};

/// What a replica logs when it sends an order upstream (its span names the license).
pub const SENDING_LOG: &str = "sending the order upstream";

/// An upstream slow enough that a replica killed while it sends orders is mid-call.
pub fn slow_upstream() -> SandboxConfig {
    SandboxConfig {
        key_delay: Duration::from_millis(300),
        latency: Duration::from_millis(150),
        ..SandboxConfig::default()
    }
}

/// The replicas and what they share. Dropping it kills the replicas first, then drops
/// the database.
pub struct ReplicaSet {
    pub replicas: Vec<ChildReplica>,
    pub db: TestDb,
    pub sandbox: TestSandbox,
    pub dir: tempfile::TempDir,
}

impl ReplicaSet {
    /// Three replicas against a sandbox with `upstream`, each with the configuration
    /// `config` (TOML) or, when `None`, the child replicas' short timings; `None`
    /// (skipped, with a note; with `CI=true` failed) when no PostgreSQL server is
    /// configured. The sandbox's list shows licenses bought elsewhere in every status an
    /// order may be in ([`start_sandbox`]): an order a killed replica had not sent yet
    /// can be proven unplaced and is sent by another.
    pub async fn start(upstream: SandboxConfig, config: Option<&str>) -> Option<Self> {
        let db = TestDb::create().await?;
        let sandbox = start_sandbox(upstream).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = config.map(|text| {
            let path = dir.path().join("replica.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let replicas = (0..3)
            .map(|i| start_one(dir.path(), i, &db, &sandbox.url, path.as_deref()))
            .collect();
        Some(Self {
            replicas,
            db,
            sandbox,
            dir,
        })
    }

    /// Places every order in the background, order `n` through replica `through(n)`;
    /// each call ends with the license id when it was acknowledged.
    pub fn fire(
        &self,
        orders: &[Order],
        through: impl Fn(usize) -> usize,
    ) -> JoinSet<Result<String, String>> {
        let mut calls = JoinSet::new();
        for (n, order) in orders.iter().enumerate() {
            let (api, order) = (self.replicas[through(n)].api.clone(), order.clone());
            calls.spawn(async move { api.order(&order).await });
        }
        calls
    }

    /// Waits until replica `i` has logged sending at least `n` orders upstream (so it
    /// holds their leases, mid-call); fails after `within`.
    pub async fn until_sending(&self, i: usize, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.replicas[i].logged(SENDING_LOG).len() < n {
            assert!(
                Instant::now() < deadline,
                "replica {i} never sent {n} orders"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn start_one(
    dir: &Path,
    i: usize,
    db: &TestDb,
    sandbox_url: &str,
    config: Option<&Path>,
) -> ChildReplica {
    let label = format!("r{i}");
    match config {
        Some(config) => ChildReplica::start_with(dir, &label, &db.url, sandbox_url, &[], config),
        None => ChildReplica::start(dir, &label, &db.url, sandbox_url, &[]),
    }
}
