//! The whole chain in the test process, each part on a free port: the BILLmanager
//! sandbox, license-facade on a database of the test's own, the platform simulator,
//! and watchers configured against them. The platform is driven through its own REST
//! API ([`Vm`]), as an operator or a provisioning system would drive it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use license_facade::config::{ServeArgs, Settings};
use license_facade::platform::sim::{PlatformSim, PlatformSimConfig, PlatformSimHandle};
use license_facade::sandbox::SandboxConfig;
use license_facade::startup::Application;
use license_facade::watcher::{PassMode, PassReport, Watcher, WatcherConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{
    Api, DEADLINE, TOKEN, TestDb, TestSandbox, UPSTREAM_DELETED, client_toml, clients_toml,
    is_witness, sandbox_config, start_sandbox,
};

/// The watcher's own client token: scopes `licenses.read` and `licenses.write` only.
pub const WATCHER_TOKEN: &str = "watcher-token";

/// The marker of an ISPmanager 6 Pro server.
pub const PRO: &str = "panel=ispmanager-6-pro";

/// The tariff ids of the panels the tests use.
pub const PRO_TARIFF: u32 = 55228;
pub const LITE_TARIFF: u32 = 55227;

/// Sandbox, service, platform.
pub struct Chain {
    pub sandbox: TestSandbox,
    /// A REST client of the service with the admin test token.
    pub api: Api,
    pub grpc: std::net::SocketAddr,
    pub platform: PlatformSimHandle,
    pub platform_url: String,
    pub vm: Vm,
    pub dir: tempfile::TempDir,
    running: Option<license_facade::startup::Running>,
    _platform_stop: tokio_util::sync::DropGuard,
    _db: Option<TestDb>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            drop(running);
        }
    }
}

impl Chain {
    /// Starts the chain with the default simulator.
    pub async fn start() -> Self {
        Self::start_with(PlatformSimConfig::default()).await
    }

    /// Starts the chain with `platform` as the simulator's settings.
    pub async fn start_with(platform: PlatformSimConfig) -> Self {
        Self::start_configured(platform, |_| {}).await
    }

    /// Starts the chain with `platform` as the simulator's settings and the service's
    /// settings changed by `tweak`.
    pub async fn start_configured(
        platform: PlatformSimConfig,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start_on(sandbox_config(), platform, tweak).await
    }

    /// Starts the chain on a sandbox with `sandbox` as its settings.
    pub async fn start_on(
        sandbox: SandboxConfig,
        platform: PlatformSimConfig,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let sandbox = start_sandbox(sandbox).await;
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::for_store("lf_watch").await;
        let url = db
            .as_ref()
            .map(|d| d.url.clone())
            .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("db.sqlite").display()));
        let app = service_with(&url, &sandbox.url, tweak).await;
        let api = Api::new(format!("http://{}", app.http_addr()));
        let grpc = app.grpc_addr();
        let sim = PlatformSim::bind("127.0.0.1:0".parse().unwrap(), platform)
            .await
            .unwrap();
        let (platform_url, handle) = (sim.url(), sim.handle());
        let stop = CancellationToken::new();
        tokio::spawn(sim.run(stop.clone().cancelled_owned()));
        let vm = Vm::login(&platform_url).await;
        Self {
            sandbox,
            api,
            grpc,
            platform: handle,
            platform_url,
            vm,
            dir,
            running: Some(app.spawn()),
            _platform_stop: stop.drop_guard(),
            _db: db,
        }
    }

    /// Writes `spec`'s configuration file; its path.
    pub fn write_config(&self, spec: &Spec) -> PathBuf {
        let path = self.dir.path().join(format!("{}.toml", spec.name));
        std::fs::write(&path, spec.toml(&self.grpc, &self.platform_url)).unwrap();
        path
    }

    /// A watcher configured by `spec`.
    pub fn watcher(&self, spec: &Spec) -> Watcher {
        let config = WatcherConfig::load(&self.write_config(spec)).expect("a valid configuration");
        Watcher::new(config).expect("the watcher builds")
    }

    /// Licenses ordered upstream (carried out, not merely asked).
    pub fn purchases(&self) -> u64 {
        self.sandbox.handle.carried_out("soft.order.param")
    }

    /// Upstream deletions carried out.
    pub fn upstream_deletions(&self) -> u64 {
        self.sandbox.handle.carried_out("soft.delete")
    }

    /// Upstream licenses not deleted, the licenses the sandbox holds from elsewhere (in
    /// every status an order may be in, see `plant_status_witnesses`) left out.
    pub fn live_upstream(&self) -> usize {
        self.sandbox
            .handle
            .licenses()
            .into_iter()
            .filter(|l| l.status != UPSTREAM_DELETED && !is_witness(l))
            .count()
    }

    /// GETs a REST path of the service as the admin test client.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let answer = crate::support::http_client()
            .build()
            .unwrap()
            .get(format!("{}{path}", self.api.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    /// Every audit entry of the service (all clients), newest first.
    pub async fn audit(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let (status, page) = self
                .get(&format!("/v1/audit?pageSize=200&pageToken={token}"))
                .await;
            assert_eq!(status, 200, "{page}");
            all.extend(page["entries"].as_array().cloned().unwrap_or_default());
            token = page["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if token.is_empty() {
                return all;
            }
        }
    }

    /// Every license the service holds (all clients), newest first.
    pub async fn licenses(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let (status, body) = self
                .get(&format!("/v1/licenses?pageSize=1000&pageToken={token}"))
                .await;
            assert_eq!(status, 200, "{body}");
            all.extend(body["licenses"].as_array().cloned().unwrap_or_default());
            match body["nextPageToken"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_owned(),
                _ => return all,
            }
        }
    }

    /// Waits until the service's licenses satisfy `done`; them.
    pub async fn licenses_when(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let licenses = self.licenses().await;
            if done(&licenses) {
                return licenses;
            }
            assert!(
                Instant::now() < deadline,
                "licenses never became {what}: {licenses:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until exactly `n` licenses are live and all of them ACTIVE; them.
    pub async fn all_active(&self, n: usize) -> Vec<Value> {
        self.licenses_when(&format!("{n} ACTIVE"), |ls| {
            let live: Vec<_> = ls.iter().filter(|l| is_live(l)).collect();
            live.len() == n && live.iter().all(|l| l["state"] == "ACTIVE")
        })
        .await
        .into_iter()
        .filter(is_live)
        .collect()
    }
}

/// Whether a license (REST JSON) is live.
pub fn is_live(l: &Value) -> bool {
    !matches!(l["state"].as_str(), Some("CANCELLED" | "FAILED"))
}

/// The live license of `server_id` among `licenses`.
pub fn live_of<'a>(licenses: &'a [Value], server_id: &str) -> Option<&'a Value> {
    licenses
        .iter()
        .find(|l| l["serverId"] == server_id && is_live(l))
}

/// license-facade in this process, knowing the admin test client and the watcher's.
pub async fn service_with(
    database_url: &str,
    sandbox_url: &str,
    tweak: impl FnOnce(&mut Settings),
) -> Application {
    let mut settings = Settings::from_args(ServeArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: Some(database_url.to_owned()),
        billmanager_allow_http: true,
        billmanager_url: Some(sandbox_url.to_owned()),
        billmanager_user: Some("demo".into()),
        billmanager_password: Some("demo".into()),
        ..ServeArgs::default()
    })
    .expect("valid settings");
    let clients = clients_toml("")
        + &client_toml(
            "watcher",
            WATCHER_TOKEN,
            r#"["licenses.read", "licenses.write"]"#,
            "max_requests_per_second = 0\n",
        );
    settings.clients =
        Some(license_facade::auth::Clients::from_toml(&clients).expect("valid clients"));
    settings.billmanager.request_timeout = Duration::from_secs(5);
    settings.workflow.poll_initial = Duration::from_millis(10);
    settings.workflow.poll_max = Duration::from_millis(100);
    settings.workflow.settle_interval = Duration::from_millis(60);
    settings.workflow.retry_max = Duration::from_millis(200);
    settings.probe_interval = Duration::from_secs(3600);
    settings.drain_delay = Duration::ZERO;
    settings.drain_timeout = Duration::from_secs(5);
    tweak(&mut settings);
    Application::build(settings).await.expect("the app builds")
}

/// A watcher's settings; `toml` renders its configuration file.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names its files.
    pub name: String,
    pub instance: String,
    pub kind: &'static str,
    pub absent_listings: u32,
    pub grace_secs: u64,
    pub max_share: f64,
    pub min_allowed: usize,
    pub page_size: usize,
    pub concurrency: usize,
    /// `cancel.release`: `cancel` or `park`.
    pub release: &'static str,
    /// Extra lines for `[platform]`.
    pub platform_extra: String,
    /// Extra sections at the end.
    pub extra: String,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            name: "w1".into(),
            instance: "t".into(),
            kind: "vmmanager6",
            absent_listings: 3,
            grace_secs: 3600,
            max_share: 0.5,
            min_allowed: 3,
            page_size: 20,
            concurrency: 8,
            release: "cancel",
            platform_extra: String::new(),
            extra: String::new(),
        }
    }
}

impl Spec {
    pub fn toml(&self, grpc: &std::net::SocketAddr, platform_url: &str) -> String {
        format!(
            r#"
instance = "{instance}"
state_file = "{name}-state.json"
interval_secs = 1
concurrency = {concurrency}

[license_facade]
grpc_url = "http://{grpc}"
token = "{WATCHER_TOKEN}"
timeout_secs = 20

[platform]
kind = "{kind}"
url = "{platform_url}"
email = "admin@example.com"
password = "demo"
page_size = {page_size}
busy_attempts = 3
busy_backoff_ms = 5
{platform_extra}

[cancel]
absent_listings = {absent}
grace_secs = {grace}
max_share = {share}
min_allowed = {min}
release = "{release}"

{extra}
"#,
            instance = self.instance,
            name = self.name,
            concurrency = self.concurrency,
            kind = self.kind,
            page_size = self.page_size,
            platform_extra = self.platform_extra,
            absent = self.absent_listings,
            grace = self.grace_secs,
            share = self.max_share,
            min = self.min_allowed,
            release = self.release,
            extra = self.extra,
        )
    }

    /// Its state file.
    pub fn state_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-state.json", self.name))
    }
}

/// One pass that must succeed.
pub async fn pass(watcher: &Watcher) -> PassReport {
    watcher
        .pass(PassMode::default())
        .await
        .expect("the pass runs")
}

/// A client of the simulated VMmanager's REST API, logged in as its administrator.
pub struct Vm {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Vm {
    pub async fn login(base: &str) -> Self {
        let http = crate::support::http_client().build().unwrap();
        let answer = http
            .post(format!("{base}/auth/v4/public/token"))
            .json(&json!({"email": "admin@example.com", "password": "demo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        let token = answer.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        Self {
            base: base.to_owned(),
            http,
            token,
        }
    }

    /// The session token (for calls the helpers here do not cover).
    pub fn token(&self) -> &str {
        &self.token
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-xsrf-token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap()
    }

    /// Creates a host with `comment`; its id.
    pub async fn create_host(&self, name: &str, comment: &str) -> u64 {
        let body = json!({
            "name": name, "comment": comment, "os": 1, "cpu_number": 1,
            "ram_mib": 1024, "hdd_mib": 10240, "ipv4_number": 1,
        });
        self.call(reqwest::Method::POST, "/vm/v3/host", body).await["id"]
            .as_u64()
            .unwrap()
    }

    /// Creates `n` hosts named `{prefix}-{i}` with `comment`; their ids.
    pub async fn create_hosts(&self, prefix: &str, n: usize, comment: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(self.create_host(&format!("{prefix}-{i}"), comment).await);
        }
        ids
    }

    pub async fn delete_host(&self, id: u64) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/vm/v3/host/{id}"),
            json!(null),
        )
        .await;
    }

    pub async fn set_comment(&self, id: u64, comment: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/vm/v3/host/{id}"),
            json!({"comment": comment}),
        )
        .await;
    }

    /// The host's addresses as `(address id, address)`.
    pub async fn addresses(&self, id: u64) -> Vec<(u64, String)> {
        let list = self
            .call(
                reqwest::Method::GET,
                &format!("/vm/v3/host/{id}/ipv4"),
                json!(null),
            )
            .await;
        list["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["id"].as_u64().unwrap(),
                    a["ip"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Gives the host a new address from the pool and removes its old ones; the new one.
    pub async fn change_address(&self, id: u64) -> String {
        let old = self.addresses(id).await;
        let added = self
            .call(
                reqwest::Method::POST,
                &format!("/vm/v3/host/{id}/ipv4"),
                json!({}),
            )
            .await;
        for (ip_id, _) in old {
            self.call(
                reqwest::Method::DELETE,
                &format!("/vm/v3/ip/{ip_id}"),
                json!(null),
            )
            .await;
        }
        added["ip"].as_str().unwrap().to_owned()
    }
}

/// The server id the watcher of instance `t` sends for VMmanager host `id`.
pub fn sid(id: u64) -> String {
    format!("vm6-t:{id}")
}
