//! Spawning the application for a test and talking to it.

use std::net::SocketAddr;
use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use license_facade::auth::{Clients, SANDBOX_TOKEN};
use license_facade::config::{ServeArgs, Settings};
use license_facade::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use license_facade::startup::Application;
use serde_json::Value;

use crate::support::{Api, Stuck, StuckLicense, TestDb, init, stuck_order};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A gRPC client that sends a bearer token with every call.
pub type GrpcClient = LicenseServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer TOKEN` to every gRPC call.
#[derive(Clone)]
pub struct Bearer(pub Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A REST client that sends `token` (none when `None`) with every request.
pub fn http_client_with(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    crate::support::http_client()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A REST client with the sandbox token.
pub fn http_client() -> reqwest::Client {
    http_client_with(Some(SANDBOX_TOKEN))
}

/// A gRPC client of `addr` that sends `token` (none when `None`).
pub async fn grpc_client_with(addr: SocketAddr, token: Option<&str>) -> GrpcClient {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects");
    let value = token.map(|t| format!("Bearer {t}").parse().unwrap());
    LicenseServiceClient::with_interceptor(channel, Bearer(value))
}

/// A gRPC client of `addr` with the sandbox token.
pub async fn grpc_client(addr: SocketAddr) -> GrpcClient {
    grpc_client_with(addr, Some(SANDBOX_TOKEN)).await
}

/// A gRPC client over a bare HTTP/2 connection.
pub type BareGrpcClient = LicenseServiceClient<
    InterceptedService<
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            tonic::body::Body,
        >,
        Bearer,
    >,
>;

/// A gRPC client of `addr` with the sandbox token that sends a call's `grpc-timeout`
/// without enforcing it itself. tonic's own channel also ends a call locally when its
/// timeout runs out, a few milliseconds after the server answers; on a loaded machine
/// its local CANCELLED can come first. Tests of what the server answers at a deadline
/// use this one.
pub fn grpc_client_without_local_deadline(addr: SocketAddr) -> BareGrpcClient {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let token = format!("Bearer {SANDBOX_TOKEN}").parse().unwrap();
    LicenseServiceClient::with_origin(
        InterceptedService::new(client, Bearer(Some(token))),
        format!("http://{addr}").parse().unwrap(),
    )
}

/// A running application.
pub struct TestApp {
    pub http: String,
    pub grpc_addr: SocketAddr,
    pub sandbox: SandboxHandle,
    pub sandbox_url: String,
    pub client: reqwest::Client,
    /// Successful TLS certificate reloads, when the listeners serve TLS.
    pub tls_reloads: Option<tokio::sync::watch::Receiver<u64>>,
    _database: Option<TestDb>,
}

fn test_args() -> ServeArgs {
    ServeArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: Some("sqlite::memory:".into()),
        ..ServeArgs::default()
    }
}

struct Started {
    http: String,
    grpc_addr: SocketAddr,
    sandbox: Option<(SandboxHandle, String)>,
    tls_reloads: Option<tokio::sync::watch::Receiver<u64>>,
    database: Option<TestDb>,
}

async fn start(mut settings: Settings) -> Started {
    // With LICENSE_FACADE_TEST_STORE=postgres the whole suite runs on PostgreSQL;
    // `.ci/run` runs it both ways.
    let database = match TestDb::for_store("lf_api").await {
        Some(db) => {
            settings.database_url = db.url.clone();
            // Tests run side by side on one server's connection limit.
            settings.database_max_connections = 10;
            Some(db)
        }
        None => None,
    };
    settings.workflow.poll_initial = Duration::from_millis(20);
    settings.workflow.poll_max = Duration::from_millis(200);
    settings.workflow.settle_interval = settings
        .workflow
        .settle_interval
        .min(Duration::from_millis(200));
    settings.probe_interval = Duration::from_secs(3600);
    let app = Application::build(settings).await.expect("the app builds");
    let started = Started {
        http: format!("http://{}", app.http_addr()),
        grpc_addr: app.grpc_addr(),
        sandbox: app.sandbox().zip(app.sandbox_url()),
        tls_reloads: app.tls_reloads(),
        database,
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    started
}

/// The app with its built-in sandbox (`serve --sandbox`), keys issued after
/// `key_delay_ms`.
pub async fn spawn_app_with_key_delay(key_delay_ms: u64) -> TestApp {
    spawn_app_with(key_delay_ms, |_| {}).await
}

/// The app with its built-in sandbox and settings adjusted by `adjust`.
pub async fn spawn_app_with(key_delay_ms: u64, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init();
    let mut settings = Settings::from_args(ServeArgs {
        sandbox: true,
        sandbox_key_delay_ms: key_delay_ms,
        ..test_args()
    })
    .expect("valid settings");
    adjust(&mut settings);
    let started = start(settings).await;
    let (sandbox, sandbox_url) = started.sandbox.expect("a sandbox");
    TestApp {
        http: started.http,
        grpc_addr: started.grpc_addr,
        sandbox,
        sandbox_url,
        client: http_client(),
        tls_reloads: started.tls_reloads,
        _database: started.database,
    }
}

/// The app with its built-in sandbox, keys issued at once.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_key_delay(0).await
}

/// A standalone sandbox (as `license-facade sandbox` runs it) and the app pointed at
/// it over HTTP like at a real BILLmanager.
pub async fn spawn_app_on_standalone_sandbox(config: SandboxConfig) -> TestApp {
    spawn_app_on_sandbox_with(config, |_| {}).await
}

/// Like [`spawn_app_on_standalone_sandbox`], with the app's settings adjusted by
/// `adjust` after the test defaults.
pub async fn spawn_app_on_sandbox_with(
    config: SandboxConfig,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    init();
    let user = config.user.clone();
    let password = config.password.clone();
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the sandbox binds");
    let handle = sandbox.handle();
    let sandbox_url = sandbox.url();
    tokio::spawn(sandbox.run(std::future::pending()));
    let settings = Settings::from_args(ServeArgs {
        billmanager_url: Some(sandbox_url.clone()),
        billmanager_user: Some(user),
        billmanager_password: Some(password),
        ..test_args()
    })
    .expect("valid settings");
    let mut settings = Settings {
        clients: Some(Clients::sandbox()),
        ..settings
    };
    adjust(&mut settings);
    let started = start(settings).await;
    TestApp {
        http: started.http,
        grpc_addr: started.grpc_addr,
        sandbox: handle,
        sandbox_url,
        client: http_client(),
        tls_reloads: started.tls_reloads,
        _database: started.database,
    }
}

/// The app pointed at an upstream of the test's own (e.g. a wiremock server), with
/// the sandbox client; returns its REST base URL, and the database to keep alive.
pub async fn spawn_app_on_upstream(
    url: &str,
    user: &str,
    password: &str,
    adjust: impl FnOnce(&mut Settings),
) -> (String, Option<TestDb>) {
    init();
    let settings = Settings::from_args(ServeArgs {
        billmanager_url: Some(url.to_owned()),
        billmanager_user: Some(user.to_owned()),
        billmanager_password: Some(password.to_owned()),
        ..test_args()
    })
    .expect("valid settings");
    let mut settings = Settings {
        clients: Some(Clients::sandbox()),
        ..settings
    };
    adjust(&mut settings);
    let started = start(settings).await;
    (started.http, started.database)
}

impl TestApp {
    pub async fn grpc(&self) -> GrpcClient {
        grpc_client(self.grpc_addr).await
    }

    /// The shared REST client of this app, calling with `token`.
    pub fn api_as(&self, token: &str) -> Api {
        Api::with_token(self.http.clone(), token)
    }

    /// Places the order `body` as the client with `token` while `how`'s faults are
    /// set, and returns it once it needs a person.
    pub async fn stuck(&self, token: &str, body: &Value, how: Stuck) -> StuckLicense {
        stuck_order(&self.api_as(token), &self.sandbox, body, how).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.http))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Orders over REST and waits (server side) for the license to settle.
    pub async fn order_and_wait(&self, body: &Value) -> Value {
        let response = self.post_json("/v1/licenses?wait=20s", body).await;
        assert!(
            response.status().is_success(),
            "order failed: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Reads a license over REST until `done` holds (the worker runs in the
    /// background); gives up after 20 s.
    pub async fn license_until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let license: Value = self
                .get(&format!("/v1/licenses/{id}"))
                .await
                .json()
                .await
                .unwrap();
            if done(&license) {
                return license;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "license never reached the expected state: {license}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A sandbox function called over its own HTTP API, as another client would; it
    /// must succeed.
    pub async fn upstream_call(&self, form: &[(&str, &str)]) {
        let mut form = form.to_vec();
        form.push(("sok", "ok"));
        let body = self.sandbox_post(&form).await;
        assert!(body["doc"]["error"].is_null(), "{body}");
    }

    /// The sandbox's own `func=soft` list, read over its HTTP API.
    pub async fn upstream_list(&self) -> Vec<Value> {
        let body = self.sandbox_post(&[("func", "soft")]).await;
        body["doc"]["elem"].as_array().cloned().unwrap_or_default()
    }

    /// POSTs `form` to the sandbox's HTTP API as its user, asking for JSON.
    async fn sandbox_post(&self, form: &[(&str, &str)]) -> Value {
        let mut form = form.to_vec();
        form.extend([("out", "sjson"), ("authinfo", "demo:demo")]);
        self.client
            .post(&self.sandbox_url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A license order for the gRPC API.
pub fn grpc_order(server: &str, ip: &str, panel: &str) -> pb::OrderLicenseRequest {
    pb::OrderLicenseRequest {
        server: Some(pb::Server {
            id: server.into(),
            ip: ip.into(),
            hostname: String::new(),
        }),
        panel: panel.into(),
        ..Default::default()
    }
}

/// The `google.rpc.ErrorInfo` reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// POSTs to `path` a request that announces a body of `length` bytes in its
/// `Content-Length` and sends none of it, then reads the whole answer: its status,
/// its head and its body. A body over the limit is refused on the header alone; a
/// client still writing the body when the service answers and closes the connection
/// can fail with a broken pipe before it reads the answer, so a test of that refusal
/// does not send the body.
pub async fn post_announcing(
    base: &str,
    path: &str,
    token: &str,
    length: usize,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the answer comes without the body")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer}"));
    (status, head.to_owned(), body.to_owned())
}
