//! The secret canary: the real binary runs with a distinctive BILLmanager password and
//! client token at debug log level; every endpoint is exercised, failures included;
//! neither secret may appear in any log line, response body or header.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use license_facade::api::pb::v1 as pb;
use license_facade::auth::token_sha256_hex;
use license_facade::sandbox::{Fault, FaultKind, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::helpers::{grpc_client_with, grpc_order, http_client_with, post_announcing};

const PASSWORD: &str = "canary-password-91ad4e-never-log";
const TOKEN: &str = "canary-token-7f3b9c2e-never-log";
/// A receiver's token in a webhook URL's query: the caller sees its own URL back, but
/// no log line may carry it (deliveries to it fail, and failures are logged).
const URL_TOKEN: &str = "canary-url-token-3c1d-never-log";

/// Everything a client saw: statuses, headers and bodies.
#[derive(Default)]
struct Seen(String);

impl Seen {
    async fn rest(&mut self, response: reqwest::Response) -> Value {
        let status = response.status();
        for (name, value) in response.headers() {
            self.0.push_str(&format!("{name}: {value:?}\n"));
        }
        let body = response.text().await.unwrap_or_default();
        self.0.push_str(&format!("{status} {body}\n"));
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    fn grpc<T: std::fmt::Debug>(&mut self, result: &Result<tonic::Response<T>, tonic::Status>) {
        match result {
            Ok(r) => self
                .0
                .push_str(&format!("{:?} {:?}\n", r.metadata(), r.get_ref())),
            Err(s) => self.0.push_str(&format!(
                "{:?} {} {:?} {:?}\n",
                s.code(),
                s.message(),
                s.metadata(),
                s.details()
            )),
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_response_or_a_header() {
    // Arrange: a sandbox with the canary password, the binary with the canary token.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        SandboxConfig {
            password: PASSWORD.into(),
            key_delay: Duration::ZERO,
            ..SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let handle = sandbox.handle();
    let sandbox_url = sandbox.url();
    let user = SandboxConfig::default().user;
    tokio::spawn(sandbox.run(std::future::pending()));
    let dir = tempfile::tempdir().unwrap();
    let clients = dir.path().join("clients.toml");
    let mut file = std::fs::File::create(&clients).unwrap();
    write!(
        file,
        "[[client]]\nname = \"canary\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n\
         [[client]]\nname = \"reader\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.read\"]\n",
        token_sha256_hex(TOKEN),
        token_sha256_hex("reader-token"),
    )
    .unwrap();
    // Deliveries may go to this host, so that a webhook to a closed port is accepted.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[webhooks]\nallow_private_targets = true\n").unwrap();
    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .args(["--database-url", "sqlite::memory:"])
        .args([
            "--billmanager-url",
            &sandbox_url,
            "--billmanager-user",
            &user,
        ])
        .env("LICENSE_FACADE_BILLMANAGER_PASSWORD", PASSWORD)
        .env("LICENSE_FACADE_CLIENTS_FILE", &clients)
        .env("LICENSE_FACADE_LOG", "debug")
        .env("LICENSE_FACADE_LOG_FORMAT", "json")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("LICENSE_FACADE_SANDBOX")
        .env_remove("LICENSE_FACADE_DATABASE_URL")
        .env_remove("LICENSE_FACADE_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("the binary starts");
    let (http, grpc_addr) = listening(&stdout, &stderr);
    let base = format!("http://{http}");
    let api = http_client_with(Some(TOKEN));
    let mut seen = Seen::default();

    // A webhook whose URL carries a token, to a port nothing listens on: every event
    // below is a failed delivery, logged.
    let hook = api
        .post(format!("{base}/v1/webhooks"))
        .json(&json!({"url": format!("http://127.0.0.1:9/hook?token={URL_TOKEN}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 201, "{:?}", hook.text().await);

    // Act: every REST endpoint, with failures.
    let get = |path: &str| api.get(format!("{base}{path}")).send();
    seen.rest(get("/healthz").await.unwrap()).await;
    seen.rest(get("/readyz").await.unwrap()).await;
    seen.rest(get("/metrics").await.unwrap()).await;
    seen.rest(get("/openapi.json").await.unwrap()).await;
    seen.rest(get("/docs").await.unwrap()).await;
    seen.rest(get("/v1/panels").await.unwrap()).await;
    seen.rest(
        get("/v1/panels/ISPmanager%206%20Pro/quote?periodMonths=12")
            .await
            .unwrap(),
    )
    .await;
    seen.rest(get("/v1/panels/nope/quote").await.unwrap()).await;
    let order = |server: &str, ip: &str| json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Lite"});
    let license = seen
        .rest(
            api.post(format!("{base}/v1/licenses?wait=20s"))
                .header("Idempotency-Key", "canary-1")
                .json(&order("canary-1", "203.0.113.60"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    let id = license["id"].as_str().expect("ordered").to_owned();
    let lic = format!("{base}/v1/licenses/{id}");
    seen.rest(
        api.post(format!("{base}/v1/licenses"))
            .json(&json!({"server": {"id": "x", "ip": "203.0.113.61"}, "panel": "nope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.rest(get(&format!("/v1/licenses/{id}")).await.unwrap())
        .await;
    seen.rest(get("/v1/servers/canary-1/license").await.unwrap())
        .await;
    seen.rest(get("/v1/licenses?pageSize=5").await.unwrap())
        .await;
    seen.rest(get("/v1/licenses?pageToken=bogus").await.unwrap())
        .await;
    for (path, body) in [
        ("renew", json!({"periodMonths": 1})),
        ("change-ip", json!({"ip": "203.0.113.62"})),
        // Refused upstream: one IP change a month.
        ("change-ip", json!({"ip": "203.0.113.63"})),
        ("change-panel", json!({"panel": "ISPmanager 6 Pro"})),
        ("suspend", json!({})),
        ("resume", json!({})),
        ("reissue-key", json!({})),
    ] {
        seen.rest(
            api.post(format!("{lic}/{path}?wait=20s"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    seen.rest(
        api.put(format!("{base}/v1/servers/canary-2/license?wait=20s"))
            .json(&json!({"ip": "203.0.113.64", "panel": "ISPmanager 6 Lite"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.rest(
        api.delete(format!("{base}/v1/servers/canary-2/license?wait=20s"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.rest(api.delete(format!("{lic}?wait=20s")).send().await.unwrap())
        .await;
    // An order the upstream refuses.
    handle.set_faults(vec![Fault {
        func: "soft.order.param".into(),
        kind: FaultKind::DocError,
        rate: 1.0,
    }]);
    seen.rest(
        api.post(format!("{base}/v1/licenses?wait=5s"))
            .json(&order("canary-3", "203.0.113.65"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    handle.set_faults(Vec::new());
    let events = api.get(format!("{base}/v1/events")).send().await.unwrap();
    let mut events = events.bytes_stream();
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut events),
    )
    .await;
    drop(events);
    seen.rest(
        api.post(format!("{base}/v1/reconcile"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.rest(get("/v1/drift").await.unwrap()).await;
    seen.rest(
        api.post(format!("{base}/v1/drift/999999/adopt"))
            .json(&json!({"serverId": "canary-9"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.rest(get("/v1/audit").await.unwrap()).await;
    let (status, head, body) = post_announcing(&base, "/v1/licenses", TOKEN, 3 << 20).await;
    assert_eq!(
        status, 413,
        "a body over the limit is refused: {head} {body}"
    );
    seen.0.push_str(&format!("{head}\n{body}\n"));
    // Wrong tokens, one of them the canary with a suffix.
    for token in [
        None,
        Some("wrong"),
        Some(&*format!("{TOKEN}x")),
        Some("reader-token"),
    ] {
        let client = http_client_with(token);
        seen.rest(
            client
                .get(format!("{base}/v1/licenses"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        seen.rest(
            client
                .post(format!("{base}/v1/reconcile"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    seen.rest(
        crate::support::http_client()
            .build()
            .unwrap()
            .get(format!("{base}/v1/licenses"))
            .header("authorization", format!("Basic {TOKEN}"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Act: gRPC, with failures.
    let mut grpc = grpc_client_with(grpc_addr.parse().unwrap(), Some(TOKEN)).await;
    let r = grpc.list_panels(pb::ListPanelsRequest::default()).await;
    seen.grpc(&r);
    let r = grpc
        .order_license(pb::OrderLicenseRequest {
            wait_for_active: true,
            ..grpc_order("canary-4", "203.0.113.66", "ISPmanager 6 Lite")
        })
        .await;
    seen.grpc(&r);
    let r = grpc
        .order_license(grpc_order("canary-5", "203.0.113.67", "nope"))
        .await;
    seen.grpc(&r);
    let r = grpc.list_licenses(pb::ListLicensesRequest::default()).await;
    seen.grpc(&r);
    let r = grpc
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await;
    seen.grpc(&r);
    let r = grpc.list_drift(pb::ListDriftRequest::default()).await;
    seen.grpc(&r);
    for token in [None, Some("wrong"), Some(&*format!("{TOKEN}x"))] {
        let mut client = grpc_client_with(grpc_addr.parse().unwrap(), token).await;
        let r = client
            .list_licenses(pb::ListLicensesRequest::default())
            .await;
        seen.grpc(&r);
    }

    // Stop it (SIGTERM), so every log line is written.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs =
        std::fs::read_to_string(&stdout).unwrap() + &std::fs::read_to_string(&stderr).unwrap();

    // Assert: debug logging was on and saw the failures; no secret anywhere.
    assert!(logs.contains("\"level\":\"DEBUG\""), "debug logging was on");
    assert!(logs.contains("call refused"), "the bad tokens were logged");
    assert!(
        seen.0.contains("UNAUTHENTICATED") && seen.0.contains("UPSTREAM_REFUSED"),
        "{}",
        seen.0
    );
    for secret in [PASSWORD, TOKEN] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        assert!(!seen.0.contains(secret), "a secret reached a client");
    }
    assert!(
        logs.contains("webhook delivery failed"),
        "deliveries to the closed port failed and were logged"
    );
    assert!(
        !logs.contains(URL_TOKEN),
        "a webhook URL's token is in the logs"
    );
}

/// The REST and gRPC addresses from the child's start-up line.
fn listening(stdout: &std::path::Path, stderr: &std::path::Path) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(stdout).unwrap_or_default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["message"] == "license-facade listening" {
                return (
                    event["http"].as_str().unwrap().to_owned(),
                    event["grpc"].as_str().unwrap().to_owned(),
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "the service did not start: {}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Matches a form-encoded request for the function `func`.
struct FuncIs(&'static str);

impl wiremock::Match for FuncIs {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let wanted = format!("func={}", self.0);
        String::from_utf8_lossy(&request.body)
            .split('&')
            .any(|pair| pair == wanted)
    }
}

/// Refuses every call with a message that echoes the request's form body as it came
/// (the password form-encoded in `authinfo`), padded to 5 MB.
struct EchoingUpstream;

impl wiremock::Respond for EchoingUpstream {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let echoed = String::from_utf8_lossy(&request.body).replace('&', "&amp;");
        let padding = "x".repeat(5 * 1024 * 1024);
        wiremock::ResponseTemplate::new(200).set_body_raw(
            format!(
                r#"<doc><error type="value" object="ip"><msg>Bad request {echoed} {padding}</msg></error></doc>"#
            ),
            "text/xml",
        )
    }
}

#[tokio::test]
async fn an_upstream_error_echoing_the_request_is_stored_cut_and_without_the_password() {
    // Arrange: an upstream that echoes every request in a 5 MB refusal.
    let password = "p@ss w:rd&=%~*-echo";
    let server = wiremock::MockServer::start().await;
    // The license list answers (complete and empty, in the recorded shape), so that
    // the look-up that follows a refusal finds nothing and the order ends FAILED with
    // the refusal.
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(FuncIs("soft"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_raw(
            "<doc><p_elems>0</p_elems><saved_filters/></doc>",
            "text/xml",
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(EchoingUpstream)
        .mount(&server)
        .await;
    let (http, _db) = crate::helpers::spawn_app_on_upstream(
        &format!("{}/billmgr", server.uri()),
        "reseller",
        password,
        |s| s.billmanager.use_session = false,
    )
    .await;
    let client = crate::helpers::http_client();
    let mut seen = Seen::default();

    // Act
    let quote = seen
        .rest(
            client
                .get(format!("{http}/v1/panels/ISPmanager%206%20Pro/quote"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    let order =
        json!({"server": {"id": "srv-echo", "ip": "203.0.113.181"}, "panel": "ISPmanager 6 Pro"});
    let refused = seen
        .rest(
            client
                .post(format!("{http}/v1/licenses?wait=20s"))
                .json(&order)
                .send()
                .await
                .unwrap(),
        )
        .await;
    let license = seen
        .rest(
            client
                .get(format!("{http}/v1/servers/srv-echo/license"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    let listed = seen
        .rest(
            client
                .get(format!("{http}/v1/licenses"))
                .send()
                .await
                .unwrap(),
        )
        .await;
    let audit = seen
        .rest(client.get(format!("{http}/v1/audit")).send().await.unwrap())
        .await;

    // Assert
    assert!(quote["code"].is_string(), "{quote}");
    assert_eq!(refused["state"], "FAILED", "{refused}");
    let message = license["lastError"]["message"].as_str().unwrap();
    assert!(message.len() <= 1024, "{} bytes stored", message.len());
    assert!(message.contains("Bad request"), "{message}");
    assert!(message.contains("***"), "{message}");
    assert!(
        listed.to_string().len() < 16 * 1024,
        "the list answer is small"
    );
    assert!(audit["entries"].as_array().is_some_and(|e| !e.is_empty()));
    let encoded_forms = [
        password.to_owned(),
        "p%40ss%20w%3Ard%26%3D%25~*-echo".to_owned(),
        "p%40ss+w%3Ard%26%3D%25%7E*-echo".to_owned(),
        "p%40ss".to_owned(),
    ];
    for form in encoded_forms {
        assert!(!seen.0.contains(&form), "the password leaked as {form}");
    }
}
