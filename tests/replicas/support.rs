//! The harness: a fresh PostgreSQL database per test (dropped afterwards), one
//! sandbox BILLmanager in the test process shared by every replica, replicas either
//! in this process (fast) or as child processes of the real binary (to SIGKILL or
//! SIGTERM them), and a REST client.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use license_facade::config::{ServeArgs, Settings};
use license_facade::sandbox::{Sandbox, SandboxConfig, SandboxHandle, SandboxLicense};
use license_facade::startup::Application;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

/// The variable naming an administrative PostgreSQL URL; without it these tests skip.
pub const POSTGRES_ENV: &str = "LICENSE_FACADE_TEST_POSTGRES_URL";

/// How long any wait in these tests may take before it is a failure.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The bearer token of the one API client every replica knows.
pub const TOKEN: &str = "replicas-test-token";

/// Writes the clients file replicas run with: one client with read and write scopes
/// and no request-rate limit worth the name (the load tests are bursty on purpose).
pub fn write_clients_file(dir: &Path) -> PathBuf {
    write_clients_file_with(dir, "")
}

/// [`write_clients_file`] with `limits` (TOML lines, e.g. a spend cap) added to the
/// client.
pub fn write_clients_file_with(dir: &Path, limits: &str) -> PathBuf {
    let path = dir.join("clients.toml");
    std::fs::write(
        &path,
        format!(
            "[[client]]\n\
             name = \"replicas-test\"\n\
             token_sha256 = \"{}\"\n\
             scopes = [\"licenses.read\", \"licenses.write\"]\n\
             max_requests_per_second = 1000000\n{limits}",
            license_facade::auth::token_sha256_hex(TOKEN)
        ),
    )
    .unwrap();
    path
}

/// Upstream status of an active license and of a deleted one.
pub const UPSTREAM_ACTIVE: u32 = 2;
const UPSTREAM_DELETED: u32 = 4;

pub fn init() {
    // reqwest is built without a default TLS provider; tests install ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("TEST_LOG").is_some() {
        license_facade::telemetry::init();
    }
}

// ---------------------------------------------------------------------------------
// A database per test.
// ---------------------------------------------------------------------------------

/// A database created for one test on the server `LICENSE_FACADE_TEST_POSTGRES_URL`
/// names; dropped (`WITH (FORCE)`) when this value is dropped, even after a panic.
pub struct TestDb {
    admin_url: String,
    name: String,
    /// The new database's URL.
    pub url: String,
}

/// `url` with its database (path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl TestDb {
    /// A new empty database, or `None` (after printing why) when the variable is unset.
    pub async fn create() -> Option<Self> {
        init();
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            eprintln!("skipped: {POSTGRES_ENV} is not set");
            return None;
        };
        let name = format!("lf_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread
        // with its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------
// The sandbox.
// ---------------------------------------------------------------------------------

/// A sandbox served from the test process until dropped; it outlives any replica.
pub struct TestSandbox {
    pub handle: SandboxHandle,
    pub url: String,
    stop: CancellationToken,
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start_sandbox(config: SandboxConfig) -> TestSandbox {
    init();
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the sandbox binds");
    let handle = sandbox.handle();
    let url = sandbox.url();
    let stop = CancellationToken::new();
    tokio::spawn(sandbox.run(stop.clone().cancelled_owned()));
    TestSandbox { handle, url, stop }
}

impl TestSandbox {
    /// Upstream licenses that are not deleted.
    pub fn live(&self) -> Vec<SandboxLicense> {
        self.handle
            .licenses()
            .into_iter()
            .filter(|l| l.status != UPSTREAM_DELETED)
            .collect()
    }

    /// Live upstream licenses on `ip`.
    pub fn live_on(&self, ip: &str) -> Vec<SandboxLicense> {
        self.live().into_iter().filter(|l| l.ip == ip).collect()
    }
}

// ---------------------------------------------------------------------------------
// Orders and the REST client.
// ---------------------------------------------------------------------------------

/// One server the tests order a license for.
#[derive(Debug, Clone)]
pub struct Order {
    pub server: String,
    pub ip: String,
}

impl Order {
    pub fn new(n: usize) -> Self {
        Self {
            server: format!("srv-{n}"),
            ip: format!("198.51.{}.{}", 100 + n / 250, 1 + n % 250),
        }
    }

    pub fn body(&self) -> Value {
        json!({"server": {"id": self.server, "ip": self.ip}, "panel": "ISPmanager 6 Pro"})
    }
}

/// A REST client of one replica.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    /// Places (or repeats) an order; `Ok(id)` when the replica acknowledged it (2xx).
    pub async fn order(&self, order: &Order) -> Result<String, String> {
        let response = self
            .client
            .post(format!("{}/v1/licenses", self.base))
            .bearer_auth(TOKEN)
            .json(&order.body())
            .send()
            .await
            .map_err(|e| format!("not sent: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("no body: {e}"))?;
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        Ok(body["id"].as_str().expect("an id").to_owned())
    }

    /// Repeats an order until the replica acknowledges it (a replica may still be
    /// starting, or dying under the test).
    pub async fn order_until_acknowledged(&self, order: &Order) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.order(order).await {
                Ok(id) => return id,
                Err(e) => assert!(Instant::now() < deadline, "never acknowledged: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn license(&self, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/licenses/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the replica answers")
            .json()
            .await
            .expect("a license")
    }

    /// `GET /readyz`'s status code.
    pub async fn ready_status(&self) -> Result<u16, reqwest::Error> {
        let response = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// Waits until `/readyz` answers 200 (the first upstream probe has run).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + DEADLINE;
        while !matches!(self.ready_status().await, Ok(200)) {
            assert!(
                Instant::now() < deadline,
                "{} never became ready",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads every license through `api` until each is ACTIVE; returns them. Polls with
/// a deadline, no fixed sleeps.
pub async fn wait_all_active(api: &Api, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    let mut done = Vec::with_capacity(ids.len());
    for id in ids {
        loop {
            let license = api.license(id).await;
            if license["state"] == "ACTIVE" {
                done.push(license);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "license {id} never became ACTIVE: {license}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    done
}

/// The store and the sandbox agree: every order has exactly one live upstream license,
/// active, carrying the license's id, and there are no others.
pub fn assert_exactly_once(sandbox: &TestSandbox, orders: &[Order], licenses: &[Value]) {
    let live = sandbox.live();
    assert_eq!(
        live.len(),
        orders.len(),
        "exactly one upstream license per server ({} servers)",
        orders.len()
    );
    for (order, license) in orders.iter().zip(licenses) {
        let upstream = sandbox.live_on(&order.ip);
        assert_eq!(
            upstream.len(),
            1,
            "one license on {}: {upstream:?}",
            order.ip
        );
        let upstream = &upstream[0];
        assert_eq!(upstream.status, UPSTREAM_ACTIVE, "{upstream:?}");
        assert_eq!(license["state"], "ACTIVE");
        assert_eq!(license["id"].as_str(), Some(upstream.remote_id.as_str()));
        assert_eq!(
            license["upstreamId"].as_str(),
            Some(upstream.id.to_string().as_str())
        );
    }
}

// ---------------------------------------------------------------------------------
// Replicas in this process.
// ---------------------------------------------------------------------------------

/// An application in this process on the shared database and sandbox.
pub struct InProcess {
    pub api: Api,
    _dir: tempfile::TempDir,
    pub grpc_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub async fn start(database_url: &str, sandbox_url: &str) -> Self {
        Self::start_with_limits(database_url, sandbox_url, "").await
    }

    /// [`start`](Self::start) with `limits` (clients-file lines) on the test client.
    pub async fn start_with_limits(database_url: &str, sandbox_url: &str, limits: &str) -> Self {
        init();
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::from_args(ServeArgs {
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
            database_url: Some(database_url.to_owned()),
            clients_file: Some(write_clients_file_with(dir.path(), limits)),
            billmanager_allow_http: true,
            billmanager_url: Some(sandbox_url.to_owned()),
            billmanager_user: Some("demo".into()),
            billmanager_password: Some("demo".into()),
            drain_delay_ms: Some(0),
            drain_timeout_secs: Some(5),
            ..ServeArgs::default()
        })
        .expect("valid settings");
        // Short timings: nothing is re-sent before one request timeout after the
        // stored send time, and look-ups after that are a second apart.
        settings.billmanager.request_timeout = Duration::from_secs(1);
        settings.workflow.lease = Duration::from_secs(3);
        settings.workflow.settle_interval = Duration::from_secs(1);
        settings.workflow.settle_checks = 2;
        settings.workflow.poll_initial = Duration::from_millis(20);
        settings.workflow.poll_max = Duration::from_millis(200);
        settings.workflow.retry_max = Duration::from_millis(500);
        settings.probe_interval = Duration::from_secs(3600);
        // Several replicas and tests share one server's connection limit.
        settings.database_max_connections = 12;
        // The 1 s request timeout is tight for 2 cores running several replicas: an
        // order request can be cut before the upstream takes it more than once. These
        // tests are about exactly-once across replicas, not the re-send limit
        // (tests/api/upstream.rs has that), so a few automatic re-sends are allowed.
        settings.workflow.max_resends = 3;
        let app = Application::build(settings).await.expect("the app builds");
        let api = Api::new(format!("http://{}", app.http_addr()));
        let grpc_addr = app.grpc_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
        Self {
            api,
            _dir: dir,
            grpc_addr,
            stop,
            task,
        }
    }

    /// Graceful stop; waits for the drain.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

// ---------------------------------------------------------------------------------
// Replicas as child processes of the real binary.
// ---------------------------------------------------------------------------------

/// Writes the configuration child replicas run with: a one-second lease (renewed while
/// a replica works), so a killed replica's work is taken over about a second later;
/// a 500 ms request timeout, so an abandoned order has landed (nothing is re-sent
/// before 500 ms after its stored send time) soon. With
/// several replicas on 2 cores an order request can be cut before the upstream takes
/// it more than once, so a few automatic re-sends are allowed (these tests are about
/// exactly-once across replicas; tests/api/upstream.rs tests the re-send limit).
pub fn write_child_config(dir: &Path) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[billmanager]\n\
         request_timeout_ms = 500\n\
         connect_timeout_ms = 500\n\
         probe_interval_secs = 3600\n\
         \n\
         [workflow]\n\
         lease_secs = 1\n\
         max_resends = 3\n\
         settle_interval_ms = 500\n\
         settle_checks = 2\n\
         poll_initial_ms = 20\n\
         poll_max_ms = 200\n",
    )
    .unwrap();
    path
}

/// A running `license-facade serve`; SIGKILLed when dropped.
pub struct ChildReplica {
    child: Child,
    pub api: Api,
    pub grpc_addr: SocketAddr,
    stderr_path: PathBuf,
    /// Every stdout (JSON log) line so far.
    log: Arc<Mutex<Vec<Value>>>,
}

impl ChildReplica {
    /// Starts a replica on `database_url` against `sandbox_url`, with `extra` flags;
    /// returns once it logged its addresses.
    pub fn start(
        dir: &Path,
        label: &str,
        database_url: &str,
        sandbox_url: &str,
        extra: &[&str],
    ) -> Self {
        let config = write_child_config(dir);
        Self::start_with(dir, label, database_url, sandbox_url, extra, &config)
    }

    /// [`start`](Self::start) with the configuration file `config`.
    pub fn start_with(
        dir: &Path,
        label: &str,
        database_url: &str,
        sandbox_url: &str,
        extra: &[&str],
        config: &Path,
    ) -> Self {
        let clients = write_clients_file(dir);
        let stderr_path = dir.join(format!("{label}.stderr"));
        let stdout_path = dir.join(format!("{label}.stdout"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_license-facade"))
            .arg("serve")
            .args(["--database-url", database_url])
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(["--billmanager-url", sandbox_url, "--billmanager-allow-http"])
            .args(["--billmanager-user", "demo"])
            .arg("--config")
            .arg(config)
            .arg("--clients-file")
            .arg(&clients)
            .args(extra)
            .env("LICENSE_FACADE_BILLMANAGER_PASSWORD", "demo")
            .env("LICENSE_FACADE_LOG_FORMAT", "json")
            .env("LICENSE_FACADE_LOG", "info")
            .env_remove("RUST_LOG")
            .env_remove("LICENSE_FACADE_SANDBOX")
            .env_remove("LICENSE_FACADE_DATABASE_URL")
            .env_remove("LICENSE_FACADE_CLIENTS_FILE")
            .env_remove("LICENSE_FACADE_CRASH_AT")
            .env_remove("LICENSE_FACADE_CRASH_AFTER")
            .env_remove("LICENSE_FACADE_DRAIN_DELAY_MS")
            .env_remove("LICENSE_FACADE_DRAIN_TIMEOUT_SECS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Keeps draining stdout (so the child never blocks on a full pipe) into memory
        // and a file; reports the addresses from the start-up line.
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(stdout_path).ok();
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(file) = file.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["message"] == "license-facade listening"
                    && let (Some(http), Some(grpc)) =
                        (event["http"].as_str(), event["grpc"].as_str())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send((http.to_owned(), grpc.to_owned()));
                }
                lines.lock().unwrap().push(event);
            }
        });
        let mut replica = Self {
            child,
            api: Api::new(String::new()),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            stderr_path,
            log,
        };
        match rx.recv_timeout(DEADLINE) {
            Ok((http, grpc)) => {
                replica.api = Api::new(format!("http://{http}"));
                replica.grpc_addr = grpc.parse().expect("a gRPC address");
                replica
            }
            Err(_) => panic!(
                "replica {label} did not report its addresses; stderr: {}",
                replica.stderr()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The JSON log lines with this message so far.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["message"] == message)
            .cloned()
            .collect()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
    }

    /// Waits (polling, bounded) until the process exits by itself.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not exit within {within:?}; stderr: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ChildReplica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
