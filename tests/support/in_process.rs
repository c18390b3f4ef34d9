//! The application in this process on a database of the test's, run as a task:
//! faster than a child process, and "crashing" it drops every task of the service at
//! whatever await point it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use license_facade::config::{ServeArgs, Settings};
use license_facade::startup::Application;

use super::api::Api;
use super::{clients_toml, rivals_toml};

/// Where an in-process application keeps its data: a SQLite file, or a database URL.
pub trait Database {
    fn database_url(&self) -> String;
}

impl Database for Path {
    fn database_url(&self) -> String {
        format!("sqlite:{}", self.display())
    }
}

impl Database for PathBuf {
    fn database_url(&self) -> String {
        self.as_path().database_url()
    }
}

impl Database for str {
    fn database_url(&self) -> String {
        self.to_owned()
    }
}

impl Database for String {
    fn database_url(&self) -> String {
        self.clone()
    }
}

/// Timings and limits of the in-process application.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub request_timeout: Duration,
    pub lease: Duration,
    pub settle_interval: Duration,
    pub settle_checks: u32,
    pub max_lookup_failures: u32,
    pub poll_initial: Duration,
    pub poll_max: Duration,
    pub retry_max: Duration,
    /// Automatic re-sends allowed, if not the default.
    pub max_resends: Option<u32>,
    /// The pool size, if not the default (several applications share one server's
    /// connection limit).
    pub database_max_connections: Option<u32>,
    /// The test client's cap on paid calls an hour, if any.
    pub paid_call_cap: Option<u32>,
}

/// Everything short: a crashed application's work is taken over within a second.
impl Default for Timings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_millis(300),
            lease: Duration::from_millis(500),
            settle_interval: Duration::from_millis(60),
            settle_checks: 2,
            max_lookup_failures: 10,
            poll_initial: Duration::from_millis(10),
            poll_max: Duration::from_millis(100),
            retry_max: Duration::from_millis(200),
            max_resends: None,
            database_max_connections: None,
            paid_call_cap: None,
        }
    }
}

impl Timings {
    /// For replicas on one PostgreSQL database. Nothing is re-sent before one request
    /// timeout after the stored send time, and look-ups after that are a second apart.
    /// The 1 s request timeout is tight for 2 cores running several replicas: an order
    /// request can be cut before the upstream takes it more than once. These tests are
    /// about exactly-once across replicas, not the re-send limit (tests/api/upstream.rs
    /// has that), so a few automatic re-sends are allowed.
    pub fn replicas() -> Self {
        Self {
            request_timeout: Duration::from_secs(1),
            lease: Duration::from_secs(3),
            settle_interval: Duration::from_secs(1),
            poll_initial: Duration::from_millis(20),
            poll_max: Duration::from_millis(200),
            retry_max: Duration::from_millis(500),
            max_resends: Some(3),
            database_max_connections: Some(12),
            ..Self::default()
        }
    }
}

pub struct InProcess {
    pub api: Api,
    pub grpc_addr: std::net::SocketAddr,
    running: license_facade::startup::Running,
    tasks: license_facade::tasks::Tasks,
}

impl InProcess {
    pub async fn start(db: &(impl Database + ?Sized), sandbox_url: &str, timings: Timings) -> Self {
        super::init();
        let mut settings = Settings::from_args(ServeArgs {
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
            database_url: Some(db.database_url()),
            billmanager_allow_http: true,
            billmanager_url: Some(sandbox_url.to_owned()),
            billmanager_user: Some("demo".into()),
            billmanager_password: Some("demo".into()),
            ..ServeArgs::default()
        })
        .expect("valid settings");
        let limits = timings
            .paid_call_cap
            .map(|cap| format!("max_orders_per_hour = {cap}\n"))
            .unwrap_or_default();
        settings.clients = Some(
            license_facade::auth::Clients::from_toml(&(clients_toml(&limits) + &rivals_toml()))
                .expect("valid clients"),
        );
        settings.billmanager.request_timeout = timings.request_timeout;
        settings.billmanager.connect_timeout = timings.request_timeout;
        // Compressed like the other timings: a burst of faults opens the breaker, and
        // its default 30 s pause would outlast the tests' deadline.
        settings.billmanager.breaker.cool_down = timings.lease;
        settings.workflow.lease = timings.lease;
        settings.workflow.settle_interval = timings.settle_interval;
        settings.workflow.settle_checks = timings.settle_checks;
        settings.workflow.max_lookup_failures = timings.max_lookup_failures;
        settings.workflow.poll_initial = timings.poll_initial;
        settings.workflow.poll_max = timings.poll_max;
        settings.workflow.retry_max = timings.retry_max;
        if let Some(n) = timings.max_resends {
            settings.workflow.max_resends = n;
        }
        if let Some(n) = timings.database_max_connections {
            settings.database_max_connections = n;
        }
        settings.probe_interval = Duration::from_secs(3600);
        // The suites' webhook receivers listen on 127.0.0.1.
        settings.webhooks.allow_private_targets = true;
        settings.webhooks.poll = Duration::from_millis(50);
        // A graceful stop here has no load balancer to wait for.
        settings.drain_delay = Duration::ZERO;
        settings.drain_timeout = Duration::from_secs(5);
        let app = Application::build(settings).await.expect("the app builds");
        let api = Api::new(format!("http://{}", app.http_addr()));
        let grpc_addr = app.grpc_addr();
        Self {
            api,
            grpc_addr,
            tasks: app.tasks(),
            running: app.spawn(),
        }
    }

    /// The application's background tasks (a handle that outlives the application).
    pub fn tasks(&self) -> license_facade::tasks::Tasks {
        self.tasks.clone()
    }

    /// Stops the application abruptly (no drain) and waits until its tasks are gone
    /// and its database is closed and unlocked.
    pub async fn crash(self) {
        self.running.kill().await.expect("the application stops");
    }

    /// Stops the application as a shutdown signal would (drain, leases released) and
    /// waits until its tasks are gone and its database is closed and unlocked.
    pub async fn stop(self) {
        self.running.stop().await.expect("the application stops");
    }
}
