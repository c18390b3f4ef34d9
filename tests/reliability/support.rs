//! The harness: a sandbox BILLmanager that lives in the test process (so it survives
//! the service's crashes), the real `license-facade` binary as a child process that can
//! be aborted or killed and restarted on the same SQLite file, and an in-process
//! application for the faster tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use license_facade::config::{ServeArgs, Settings};
use license_facade::sandbox::{Fault, Sandbox, SandboxConfig, SandboxHandle, SandboxLicense};
use license_facade::startup::Application;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Deleted licenses carry this upstream status.
const DELETED: u32 = 4;

/// The service's log message when recovery finds an order upstream and adopts it.
pub const ADOPTED_LOG: &str = "found the order upstream; adopting it";

/// How long any wait in these tests may take before it is a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn init() {
    // reqwest is built without a default TLS provider; tests install ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("TEST_LOG").is_some() {
        license_facade::telemetry::init();
    }
}

/// A sandbox served from the test process until dropped.
pub struct TestSandbox {
    pub handle: SandboxHandle,
    pub url: String,
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Sandbox settings for these tests: keys at once, hung requests released soon.
pub fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        key_delay: Duration::ZERO,
        timeout_hang: Duration::from_secs(2),
        ..SandboxConfig::default()
    }
}

pub async fn start_sandbox(config: SandboxConfig) -> TestSandbox {
    init();
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the sandbox binds");
    let handle = sandbox.handle();
    let url = sandbox.url();
    let addr = sandbox.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(sandbox.run(stop.clone().cancelled_owned()));
    TestSandbox {
        handle,
        url,
        addr,
        stop,
    }
}

impl TestSandbox {
    /// Upstream licenses on `ip` that are not deleted.
    pub fn live_on(&self, ip: &str) -> Vec<SandboxLicense> {
        live_on(&self.handle, ip)
    }

    pub fn orders_sent(&self) -> u64 {
        self.handle.call_count("soft.order.param")
    }

    pub fn set_fault(&self, fault: &str) {
        self.handle
            .set_faults(vec![fault.parse::<Fault>().expect("a valid fault")]);
    }
}

pub fn live_on(handle: &SandboxHandle, ip: &str) -> Vec<SandboxLicense> {
    handle
        .licenses()
        .into_iter()
        .filter(|l| l.ip == ip && l.status != DELETED)
        .collect()
}

/// One order the tests place: a server, its IP, a panel.
#[derive(Debug, Clone)]
pub struct Order {
    pub server: String,
    pub ip: String,
}

impl Order {
    pub fn new(n: usize) -> Self {
        Self {
            server: format!("srv-{n}"),
            ip: format!("203.0.{}.{}", 113 + n / 250, 1 + n % 250),
        }
    }

    pub fn body(&self) -> Value {
        json!({"server": {"id": self.server, "ip": self.ip}, "panel": "ISPmanager 6 Pro"})
    }
}

/// Default headers of every REST client here: the token the services accept.
pub fn auth_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", license_facade::auth::SANDBOX_TOKEN)
            .parse()
            .unwrap(),
    );
    headers
}

/// A REST client of one service instance.
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
                .default_headers(auth_headers())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// Places (or repeats) an order; `Ok(id)` when the service acknowledged it (2xx).
    pub async fn order(&self, order: &Order) -> Result<String, String> {
        let response = self
            .client
            .post(format!("{}/v1/licenses", self.base))
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

    /// Posts an order `body` with an `Idempotency-Key`; the status and the body.
    pub async fn post_order(
        &self,
        body: &Value,
        key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .client
            .post(format!("{}/v1/licenses", self.base))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| format!("not sent: {e}"))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| format!("no body: {e}"))?;
        Ok((status, body))
    }

    /// Renews license `id` for a month; the status and the body.
    pub async fn renew(&self, id: &str) -> Result<(u16, Value), String> {
        let response = self
            .client
            .post(format!("{}/v1/licenses/{id}/renew", self.base))
            .json(&json!({"periodMonths": 1}))
            .send()
            .await
            .map_err(|e| format!("not sent: {e}"))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| format!("no body: {e}"))?;
        Ok((status, body))
    }

    /// How many audit entries have `action` and an outcome naming `outcome`.
    pub async fn audit_count(&self, action: &str, outcome: &str) -> usize {
        let page: Value = self
            .client
            .get(format!("{}/v1/audit?pageSize=1000", self.base))
            .send()
            .await
            .expect("the service answers")
            .json()
            .await
            .expect("a JSON page");
        page["entries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| {
                        e["action"] == action
                            && e["outcome"].as_str().is_some_and(|o| o.contains(outcome))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Runs a reconciliation (`POST /v1/reconcile`) and returns its drift report.
    pub async fn reconcile(&self) -> Result<Value, String> {
        let response = self
            .client
            .post(format!("{}/v1/reconcile", self.base))
            .send()
            .await
            .map_err(|e| format!("not sent: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("no body: {e}"))?;
        if !status.is_success() {
            return Err(format!("{status}: {body}"));
        }
        Ok(body)
    }

    pub async fn license(&self, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/licenses/{id}", self.base))
            .send()
            .await
            .expect("the service answers")
            .json()
            .await
            .expect("a license")
    }

    /// Reads the license until its state is one of `states`.
    pub async fn license_until(&self, id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let license = self.license(id).await;
            if states.iter().any(|s| license["state"] == *s) {
                return license;
            }
            assert!(
                Instant::now() < deadline,
                "license {id} never reached {states:?}: {license}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts that the store and the sandbox tell the same story about an ACTIVE order:
/// exactly one live upstream license on the IP, and it is the one the store holds.
pub fn assert_agree(sandbox: &SandboxHandle, order: &Order, license: &Value) {
    let live = live_on(sandbox, &order.ip);
    assert_eq!(
        live.len(),
        1,
        "exactly one upstream license for {}: {live:?}",
        order.ip
    );
    let upstream = &live[0];
    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert_eq!(
        license["upstreamId"].as_str(),
        Some(upstream.id.to_string().as_str()),
        "store and sandbox agree on the upstream id: {license}"
    );
    assert_eq!(
        license["licenseKey"].as_str(),
        Some(upstream.license_key.as_str()),
        "store and sandbox agree on the key"
    );
    assert_eq!(
        license["id"].as_str(),
        Some(upstream.remote_id.as_str()),
        "the upstream license carries our id as remoteid"
    );
}

/// A count field of a JSON answer (protobuf JSON writes 64-bit integers as strings and
/// leaves zero values out).
pub fn count(value: &Value) -> u64 {
    match value {
        Value::Null => 0,
        Value::Number(n) => n.as_u64().expect("a count"),
        Value::String(s) => s.parse().expect("a count"),
        other => panic!("not a count: {other}"),
    }
}

/// A TCP proxy in front of the sandbox that holds every chunk of every answer for
/// `delay` before passing it on: an order is performed at once but its answer is slow,
/// which widens the window in which a killed service has bought a license it has not
/// yet heard about (the window recovery exists for).
pub async fn slow_answer_proxy(target: std::net::SocketAddr, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = async {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                };
                let answers = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                // Whichever side ends first ends the connection (a killed client must
                // not keep the sandbox connection open).
                tokio::select! {
                    () = requests => {}
                    () = answers => {}
                }
            });
        }
    });
    format!("http://{addr}/billmgr")
}

// ---------------------------------------------------------------------------------
// The real binary as a child process.
// ---------------------------------------------------------------------------------

/// A directory holding the database and the configuration one service instance runs on,
/// across restarts.
pub struct ServiceDir {
    pub dir: tempfile::TempDir,
    starts: usize,
    database: Option<PgDatabase>,
}

/// With `LICENSE_FACADE_TEST_STORE=postgres` (and `LICENSE_FACADE_TEST_POSTGRES_URL`)
/// the services of these tests run on a PostgreSQL database of their own instead of a
/// SQLite file; `.ci/run` runs the crash-point and SIGKILL tests both ways.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// The URL the service connects to.
    pub url: String,
}

/// Runs `f` on a runtime of its own in another thread: callers are sync (or inside a
/// runtime that must not be blocked).
fn on_own_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f())
    })
    .join()
    .expect("the database thread")
}

impl PgDatabase {
    fn create() -> Option<Self> {
        if std::env::var("LICENSE_FACADE_TEST_STORE").as_deref() != Ok("postgres") {
            return None;
        }
        let admin_url = std::env::var("LICENSE_FACADE_TEST_POSTGRES_URL")
            .expect("LICENSE_FACADE_TEST_STORE=postgres needs LICENSE_FACADE_TEST_POSTGRES_URL");
        let name = format!("lf_rel_{}", uuid::Uuid::now_v7().simple());
        let (admin, db) = (admin_url.clone(), name.clone());
        on_own_runtime(move || {
            Box::pin(async move {
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("PostgreSQL answers");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .execute(&pool)
                    .await
                    .expect("database created");
                pool.close().await;
            })
        });
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, db) = (self.admin_url.clone(), self.name.clone());
        on_own_runtime(move || {
            Box::pin(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                    )))
                    .execute(&pool)
                    .await;
                }
            })
        });
    }
}

impl ServiceDir {
    /// Short workflow timings so that recovery after a crash takes about a second (the
    /// lease of the crashed process must run out first). Each kill can cut an order
    /// request before the upstream takes it, and a round kills up to 3 times, so the
    /// automatic re-sends cover that many (these tests are about exactly-once across
    /// kills; tests/api/upstream.rs tests the default limit of one).
    pub fn new() -> Self {
        Self::with_config(
            "[billmanager]\n\
             request_timeout_ms = 500\n\
             connect_timeout_ms = 500\n\
             probe_interval_secs = 3600\n\
             breaker_cool_down_secs = 1\n\
             \n\
             [workflow]\n\
             lease_secs = 1\n\
             max_resends = 4\n\
             settle_interval_ms = 100\n\
             settle_checks = 2\n\
             poll_initial_ms = 20\n\
             poll_max_ms = 200\n",
        )
    }

    /// A directory whose services run with the configuration file `config` (TOML).
    pub fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self {
            dir,
            starts: 0,
            database: PgDatabase::create(),
        }
    }

    /// The database the services of this directory share across restarts.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(db) => db.url.clone(),
            None => format!("sqlite:{}", self.path().join("db.sqlite").display()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Log lines with this message across every start so far.
    pub fn log_count(&self, message: &str) -> u64 {
        let needle = format!("\"message\":\"{message}\"");
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.path().join(format!("stdout-{n}.log")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(&needle))
                    .count() as u64
            })
            .sum()
    }

    /// Starts `license-facade serve` on this directory's database against `sandbox_url`,
    /// optionally armed to abort at `crash_at`; returns once it listens.
    pub fn start(&mut self, sandbox_url: &str, crash_at: Option<&str>) -> Service {
        self.starts += 1;
        let stderr_path = self.path().join(format!("stderr-{}.log", self.starts));
        let stdout_path = self.path().join(format!("stdout-{}.log", self.starts));
        let mut command = Command::new(env!("CARGO_BIN_EXE_license-facade"));
        command
            .arg("serve")
            .arg("--database-url")
            .arg(self.database_url())
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(["--billmanager-url", sandbox_url])
            .args(["--billmanager-user", "demo"])
            .arg("--config")
            .arg(self.path().join("config.toml"))
            .arg("--clients-file")
            .arg(write_clients_file(self.path()))
            .env("LICENSE_FACADE_BILLMANAGER_PASSWORD", "demo")
            .env("LICENSE_FACADE_LOG_FORMAT", "json")
            .env("LICENSE_FACADE_LOG", "info")
            .env_remove("RUST_LOG")
            .env_remove("LICENSE_FACADE_SANDBOX")
            .env_remove("LICENSE_FACADE_CRASH_AT")
            .env_remove("LICENSE_FACADE_CRASH_AFTER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        if let Some(point) = crash_at {
            command.env("LICENSE_FACADE_CRASH_AT", point);
        }
        let mut child = command.spawn().expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");

        // Read the log until the listening line, then keep draining it into a file so
        // the child never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(stdout_path).ok();
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                if tx.is_some()
                    && let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "license-facade listening"
                    && let Some(http) = event["http"].as_str()
                {
                    let _ = tx.take().unwrap().send(http.to_owned());
                }
            }
        });
        let mut service = Service {
            child,
            api: Api::new(String::new()),
            stderr_path,
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(http) => {
                service.api = Api::new(format!("http://{http}"));
                service
            }
            Err(_) => panic!(
                "the service did not report its address; stderr: {}",
                service.stderr()
            ),
        }
    }
}

/// A running `license-facade serve`; killed when dropped.
pub struct Service {
    child: Child,
    pub api: Api,
    stderr_path: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (polling, bounded) until the process exits on its own.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not exit; stderr: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the abort at `point` and checks that it happened there.
    pub async fn expect_abort_at(&mut self, point: &str) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.wait_exit().await;
        let stderr = self.stderr();
        assert_eq!(
            status.signal(),
            Some(6),
            "the service should abort (SIGABRT) at {point}, got {status}; stderr: {stderr}"
        );
        assert!(
            stderr.contains(&format!("crash point {point} reached")),
            "the abort names the point {point}: {stderr}"
        );
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

// ---------------------------------------------------------------------------------
// The application in this process, for the fault and model tests.
// ---------------------------------------------------------------------------------

/// The application built from settings on a SQLite file, run as a task; "crashing" it
/// kills it, which drops every task of the service at whatever await point it was (the
/// store rolls back open transactions, requests in flight are cut) and returns once
/// all of them are gone and the file is unlocked.
pub struct InProcess {
    pub api: Api,
    pub grpc_addr: std::net::SocketAddr,
    running: license_facade::startup::Running,
    tasks: license_facade::tasks::Tasks,
}

/// Timings of the in-process application: everything short.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub request_timeout: Duration,
    pub lease: Duration,
    pub settle_interval: Duration,
    pub settle_checks: u32,
    pub max_lookup_failures: u32,
    /// Automatic re-sends of an order whose outcome stayed unknown.
    pub max_resends: u32,
    /// The test client's cap on paid calls an hour, if any.
    pub paid_call_cap: Option<u32>,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_millis(300),
            lease: Duration::from_millis(500),
            settle_interval: Duration::from_millis(60),
            settle_checks: 2,
            max_lookup_failures: 10,
            max_resends: 1,
            paid_call_cap: None,
        }
    }
}

impl InProcess {
    pub async fn start(db: &Path, sandbox_url: &str, timings: Timings) -> Self {
        init();
        let mut settings = Settings::from_args(ServeArgs {
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
            database_url: Some(format!("sqlite:{}", db.display())),
            billmanager_url: Some(sandbox_url.to_owned()),
            billmanager_user: Some("demo".into()),
            billmanager_password: Some("demo".into()),
            ..ServeArgs::default()
        })
        .expect("valid settings");
        settings.clients = Some(match timings.paid_call_cap {
            None => license_facade::auth::Clients::sandbox(),
            Some(cap) => license_facade::auth::Clients::from_toml(&format!(
                "[[client]]\nname = \"tests\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n\
                 max_requests_per_second = 0\nmax_orders_per_hour = {cap}\n",
                license_facade::auth::token_sha256_hex(license_facade::auth::SANDBOX_TOKEN)
            ))
            .expect("valid clients"),
        });
        settings.billmanager.request_timeout = timings.request_timeout;
        settings.billmanager.connect_timeout = timings.request_timeout;
        // Compressed like the other timings: a burst of faults opens the breaker, and
        // its default 30 s pause would outlast the tests' deadline.
        settings.billmanager.breaker.cool_down = timings.lease;
        settings.workflow.lease = timings.lease;
        settings.workflow.settle_interval = timings.settle_interval;
        settings.workflow.settle_checks = timings.settle_checks;
        settings.workflow.max_lookup_failures = timings.max_lookup_failures;
        settings.workflow.max_resends = timings.max_resends;
        settings.workflow.poll_initial = Duration::from_millis(10);
        settings.workflow.poll_max = Duration::from_millis(100);
        settings.workflow.retry_max = Duration::from_millis(200);
        settings.probe_interval = Duration::from_secs(3600);
        // A graceful stop here has no load balancer to wait for.
        settings.drain_delay = Duration::ZERO;
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

impl Default for ServiceDir {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes a clients file whose one client has the token
/// [`SANDBOX_TOKEN`](license_facade::auth::SANDBOX_TOKEN) with every scope.
fn write_clients_file(dir: &Path) -> PathBuf {
    let path = dir.join("clients.toml");
    std::fs::write(
        &path,
        format!(
            "[[client]]\nname = \"tests\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n\
             max_requests_per_second = 0\n",
            license_facade::auth::token_sha256_hex(license_facade::auth::SANDBOX_TOKEN)
        ),
    )
    .unwrap();
    path
}
