//! The real `license-facade serve` binary as a child process: one service restarted on
//! the same database ([`ServiceDir`]), or replicas sharing one ([`Service::start`]).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::Api;
use super::db::TestDb;
use super::{DEADLINE, clients_toml};

/// Writes the clients file of the one test client with `limits` (TOML lines, e.g. a
/// spend cap) added.
pub fn write_clients_file_with(dir: &Path, limits: &str) -> PathBuf {
    let path = dir.join("clients.toml");
    std::fs::write(&path, clients_toml(limits)).unwrap();
    path
}

/// Writes the clients file of the one test client.
pub fn write_clients_file(dir: &Path) -> PathBuf {
    write_clients_file_with(dir, "")
}

/// Writes the configuration child replicas run with: a one-second lease (renewed while
/// a replica works), so a killed replica's work is taken over about a second later;
/// a 500 ms request timeout, so an abandoned order has landed (nothing is re-sent
/// before 500 ms after its stored send time) soon. With
/// several replicas on 2 cores an order request can be cut before the upstream takes
/// it more than once, so a few automatic re-sends are allowed (these tests are about
/// exactly-once across replicas; tests/api/upstream.rs tests the re-send limit).
pub fn write_child_config(dir: &Path) -> PathBuf {
    write_config(dir, "config.toml", 500, 3, 500)
}

/// `name` in `dir` with short workflow timings (and a breaker pause that the tests'
/// deadlines outlast).
fn write_config(
    dir: &Path,
    name: &str,
    request_timeout_ms: u64,
    max_resends: u32,
    settle_ms: u64,
) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[billmanager]\n\
             request_timeout_ms = {request_timeout_ms}\n\
             connect_timeout_ms = 500\n\
             probe_interval_secs = 3600\n\
             breaker_cool_down_secs = 1\n\
             \n\
             [workflow]\n\
             lease_secs = 1\n\
             max_resends = {max_resends}\n\
             settle_interval_ms = {settle_ms}\n\
             settle_checks = 2\n\
             poll_initial_ms = 20\n\
             poll_max_ms = 200\n"
        ),
    )
    .unwrap();
    path
}

/// A directory holding the database (a SQLite file there, or with
/// `LICENSE_FACADE_TEST_STORE=postgres` a PostgreSQL database of its own) and the
/// configuration one service runs on, across restarts.
pub struct ServiceDir {
    pub dir: tempfile::TempDir,
    /// The configuration a start armed with a crash point runs on, when it differs.
    armed_config: Option<PathBuf>,
    starts: usize,
    database: Option<TestDb>,
}

impl Default for ServiceDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceDir {
    /// Short workflow timings so that recovery after a crash takes about a second (the
    /// lease of the crashed process must run out first). Each kill can cut an order
    /// request before the upstream takes it, and a round kills up to 3 times, so the
    /// automatic re-sends cover that many (these tests are about exactly-once across
    /// kills; tests/api/upstream.rs tests the default limit of one).
    ///
    /// A start armed with a crash point gets a 10 s request timeout: the point must be
    /// reached by the call it arms. With 500 ms, a loaded machine can cut the call
    /// before its answer is read; recovery then finds the license by look-up, a path
    /// that never passes "after-response", and the armed process never aborts.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_config(dir.path(), "config.toml", 500, 4, 100);
        let armed = write_config(dir.path(), "armed.toml", 10_000, 4, 100);
        let mut this = Self::in_dir(dir);
        this.armed_config = Some(armed);
        this
    }

    /// [`new`](Self::new), with `extra` (more TOML sections) in both configurations.
    pub fn with_extra_config(extra: &str) -> Self {
        let this = Self::new();
        for name in ["config.toml", "armed.toml"] {
            let path = this.dir.path().join(name);
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push('\n');
            text.push_str(extra);
            std::fs::write(&path, text).unwrap();
        }
        this
    }

    /// A directory whose services run with the configuration file `config` (TOML).
    pub fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self::in_dir(dir)
    }

    fn in_dir(dir: tempfile::TempDir) -> Self {
        write_clients_file(dir.path());
        Self {
            dir,
            armed_config: None,
            starts: 0,
            database: TestDb::for_store_blocking("lf_rel"),
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

    /// Licenses whose order was unfinished (PENDING or PROVISIONING) in this
    /// directory's database, read directly: after a kill, the orders the killed
    /// process had in flight. Only while no service runs on it.
    pub async fn unfinished_orders(&self) -> u64 {
        let store = license_facade::store::connect(&self.database_url())
            .await
            .expect("the killed service's database opens");
        let counts = store.count_by_state().await.expect("the database answers");
        counts
            .iter()
            .filter(|(state, _)| state == "PENDING" || state == "PROVISIONING")
            .map(|(_, n)| n)
            .sum()
    }

    /// Log lines with this message across every start so far: complete only for the
    /// services stopped ([`Service::stop`]) or dropped by then.
    pub fn log_count(&self, message: &str) -> u64 {
        self.log_count_since(1, message)
    }

    /// The number the next start gets, for [`log_count_since`](Self::log_count_since).
    pub fn next_start(&self) -> usize {
        self.starts + 1
    }

    /// [`log_count`](Self::log_count) over the starts from `first` on: a test's own
    /// starts, without what the services that set it up logged (on a loaded machine a
    /// setup's own call can be cut by its timeout and found by its recovery, which logs
    /// the same lines).
    pub fn log_count_since(&self, first: usize, message: &str) -> u64 {
        let needle = format!("\"message\":\"{message}\"");
        (first..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.path().join(format!("{n}.stdout")))
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
        let config = match (crash_at, &self.armed_config) {
            (Some(_), Some(armed)) => armed.clone(),
            _ => self.path().join("config.toml"),
        };
        self.start_on(sandbox_url, crash_at, &config)
    }

    /// Starts a service that sends nothing again by itself: an order or change whose
    /// outcome stays unknown goes to a person after its first attempt (how a test gets
    /// a NEEDS_ATTENTION license without waiting through the re-sends).
    pub fn start_strict(&mut self, sandbox_url: &str) -> Service {
        let config = write_config(self.path(), "strict.toml", 500, 0, 100);
        self.start_on(sandbox_url, None, &config)
    }

    fn start_on(&mut self, sandbox_url: &str, crash_at: Option<&str>, config: &Path) -> Service {
        self.starts += 1;
        let mut command = serve_command(self.path(), &self.database_url(), sandbox_url, config);
        if let Some(point) = crash_at {
            command.env(license_facade::crash::CRASH_AT_ENV, point);
        }
        Service::spawn(command, self.path(), &self.starts.to_string())
    }
}

/// Runs `wait` (a wait for a child process) on this thread. On a multi-threaded
/// runtime the thread's other tasks move to the other workers first: a test that starts
/// services from many tasks at once would otherwise hold every worker in these waits,
/// and the tasks left queued (the in-process sandbox, a client's connection that has
/// yet to send its request) would stall past the service's 5 s header read timeout,
/// which closes the connection.
pub(crate) fn wait_blocking<T>(wait: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// `license-facade serve` on `database_url` against `sandbox_url` with `config` and
/// the test client, on free ports, logging JSON; nothing from the test's own
/// environment reaches it.
fn serve_command(dir: &Path, database_url: &str, sandbox_url: &str, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_license-facade"));
    command
        .arg("serve")
        .args(["--database-url", database_url])
        .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .args(["--billmanager-url", sandbox_url, "--billmanager-allow-http"])
        .args(["--billmanager-user", "demo"])
        .arg("--config")
        .arg(config)
        .arg("--clients-file")
        .arg(dir.join("clients.toml"))
        .env("LICENSE_FACADE_BILLMANAGER_PASSWORD", "demo")
        .env("LICENSE_FACADE_LOG_FORMAT", "json")
        .env("LICENSE_FACADE_LOG", "info")
        .env_remove("RUST_LOG")
        .env_remove("LICENSE_FACADE_SANDBOX")
        .env_remove("LICENSE_FACADE_DATABASE_URL")
        .env_remove("LICENSE_FACADE_CLIENTS_FILE")
        .env_remove(license_facade::crash::CRASH_AT_ENV)
        .env_remove(license_facade::crash::CRASH_AFTER_ENV)
        // A test that stops a service (SIGTERM) waits for no readiness probe; the drain
        // tests set their own delay with the flag, which wins over the variable.
        .env("LICENSE_FACADE_DRAIN_DELAY_MS", "0")
        .env_remove("LICENSE_FACADE_DRAIN_TIMEOUT_SECS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    command
}

/// A replica: a [`Service`] started on a database other replicas share.
pub type ChildReplica = Service;

/// A running `license-facade serve`; SIGKILLed when dropped.
pub struct Service {
    child: Child,
    pub api: Api,
    pub grpc_addr: SocketAddr,
    stderr_path: PathBuf,
    /// Every stdout (JSON log) line so far.
    log: Arc<Mutex<Vec<Value>>>,
    /// The thread copying stdout into `log` and the stdout file; it ends at EOF.
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    /// Starts a replica on `database_url` against `sandbox_url`, with `extra` flags,
    /// its files in `dir` named after `label`; returns once it logged its addresses.
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
        write_clients_file(dir);
        let mut command = serve_command(dir, database_url, sandbox_url, config);
        command.args(extra);
        Self::spawn(command, dir, label)
    }

    /// `license-facade serve --sandbox` as a user starts it, on free ports, logging
    /// JSON: its built-in sandbox, in-memory database and `sandbox-token` client.
    pub fn serve_sandbox(dir: &Path, label: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_license-facade"));
        command
            .args(["serve", "--sandbox"])
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .env("LICENSE_FACADE_LOG_FORMAT", "json")
            .env("LICENSE_FACADE_LOG", "info")
            .env_remove("RUST_LOG")
            .env_remove("LICENSE_FACADE_CONFIG")
            .env_remove("LICENSE_FACADE_DATABASE_URL")
            .env_remove("LICENSE_FACADE_CLIENTS_FILE")
            .env_remove("LICENSE_FACADE_SANDBOX_KEY_DELAY_MS")
            .env_remove("LICENSE_FACADE_SANDBOX_IP_CHANGE_COOLDOWN_DAYS")
            .env_remove("LICENSE_FACADE_SANDBOX_KEY_CHANGE_COOLDOWN_DAYS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        Self::spawn(command, dir, label)
    }

    /// Spawns `command` with its stderr in `dir/label.stderr` and its stdout kept
    /// (in memory and in `dir/label.stdout`); returns once it logged its addresses.
    fn spawn(mut command: Command, dir: &Path, label: &str) -> Self {
        let stderr_path = dir.join(format!("{label}.stderr"));
        let stdout_path = dir.join(format!("{label}.stdout"));
        let mut child = command
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Keeps draining stdout (so the child never blocks on a full pipe) into memory
        // and a file; reports the addresses from the start-up line.
        let drain = std::thread::spawn(move || {
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
        let mut service = Self {
            child,
            api: Api::new(String::new()),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            stderr_path,
            log,
            drain: Some(drain),
        };
        match wait_blocking(|| rx.recv_timeout(DEADLINE)) {
            Ok((http, grpc)) => {
                service.api = Api::new(format!("http://{http}"));
                service.grpc_addr = grpc.parse().expect("a gRPC address");
                service
            }
            Err(_) => panic!(
                "service {label} did not report its addresses; stderr: {}",
                service.stderr()
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

    /// Stops the service as an operator does (SIGTERM) and waits until it has exited
    /// and every line it logged is in its stdout file. Its log is written by a
    /// background thread and copied by another, so a line logged just before a
    /// license turned ACTIVE may not be in the file yet while the service runs:
    /// counting log lines (`ServiceDir::log_count`) must come after this.
    pub async fn stop(mut self) {
        self.terminate();
        let status = self.wait_exit(DEADLINE).await;
        assert!(
            status.success(),
            "a clean exit on SIGTERM, got {status}; stderr: {}",
            self.stderr()
        );
        if let Some(drain) = self.drain.take() {
            tokio::task::spawn_blocking(move || drain.join())
                .await
                .expect("the stdout copy finishes")
                .expect("the stdout copy does not panic");
        }
    }

    /// After the process exited: waits until every line it wrote has been read, so
    /// [`logged`](Self::logged) sees them all.
    pub fn read_to_end(&mut self) {
        if let Some(drain) = self.drain.take() {
            drain.join().expect("the reader thread ends");
        }
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
                "the service did not exit within {within:?}; stderr: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the abort at `point` and checks that it happened there.
    pub async fn expect_abort_at(&mut self, point: &str) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.wait_exit(DEADLINE).await;
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
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The process is gone, so its stdout ends: the copy finishes at once, and what
        // the killed service logged is in its file before anyone counts it.
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }
}
