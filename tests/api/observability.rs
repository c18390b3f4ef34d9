//! Metrics, request ids, the upstream circuit breaker's effect on readiness, and the
//! OpenAPI document and reference page.

use std::time::Duration;

use license_facade::billmanager::BreakerConfig;
use license_facade::sandbox::Fault;
use serde_json::{Value, json};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const DEADLINE: Duration = Duration::from_secs(15);

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn grpc_health(app: &TestApp) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "licensefacade.v1.LicenseService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

async fn ready(app: &TestApp) -> bool {
    app.get("/readyz").await.status() == 200 && grpc_health(app).await == ServingStatus::Serving
}

#[tokio::test]
async fn metrics_after_an_order_show_requests_upstream_calls_licenses_and_orders() {
    let app = spawn_app().await;
    let order =
        json!({"server": {"id": "srv-metrics", "ip": "203.0.113.90"}, "panel": "ISPmanager 6 Pro"});
    app.order_and_wait(&order).await;
    let mut grpc = app.grpc().await;
    grpc.list_panels(license_facade::api::pb::v1::ListPanelsRequest {})
        .await
        .unwrap();

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for series in [
        "license_facade_requests_total{transport=\"rest\",method=\"POST /v1/licenses\"",
        "license_facade_request_duration_seconds_bucket{transport=\"rest\"",
        "license_facade_requests_total{transport=\"grpc\",method=\"/licensefacade.v1.LicenseService/ListPanels\",code=\"OK\"}",
        "license_facade_upstream_calls_total{function=\"soft.order.param\",outcome=\"ok\"}",
        "license_facade_upstream_call_duration_seconds_bucket{function=\"soft.order.param\"",
        "license_facade_licenses{state=\"ACTIVE\"}",
        "license_facade_licenses_needs_attention",
        "license_facade_orders_total{client=\"sandbox\"}",
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_given_one_is_echoed() {
    let app = spawn_app().await;

    let given = app
        .client
        .get(format!("{}/v1/panels", app.http))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    let made = app.get("/v1/panels").await;

    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    assert!(!made.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn an_open_circuit_breaker_makes_the_service_not_ready_until_the_upstream_is_back() {
    let app = spawn_app_with(0, |s| {
        s.billmanager.breaker = BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_millis(200),
        };
    })
    .await;
    until("ready at start", async || ready(&app).await).await;

    app.sandbox
        .set_faults(vec!["*:error5xx:1.0".parse::<Fault>().unwrap()]);
    // Listings go through the breaker (the price-list export does not).
    for _ in 0..2 {
        let reconcile = app.post_json("/v1/reconcile", &json!({})).await;
        assert_eq!(reconcile.status(), 503);
    }
    until("NOT_SERVING while open", async || {
        grpc_health(&app).await == ServingStatus::NotServing
    })
    .await;
    let readyz: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(readyz["upstream_circuit_open"], true, "{readyz}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("license_facade_upstream_circuit_transitions_total{to=\"open\"}"));

    app.sandbox.set_faults(vec![]);

    until("ready again once the upstream answers", async || {
        ready(&app).await
    })
    .await;
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;

    for op in license_facade::http::openapi::operations() {
        if op.path == "/v1/events" {
            continue; // a stream that does not end; served, see the feed tests
        }
        let path = op.path.replace('{', "x").replace('}', "");
        let method = op.method.to_uppercase().parse().unwrap();
        let response = app
            .client
            .request(method, format!("{}{path}", app.http))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);

        assert_ne!(status, 405, "{} {} is not routed", op.method, op.path);
        assert!(
            !(status == 404 && body["detail"] == "no such resource"),
            "{} {} is not routed",
            op.method,
            op.path
        );
    }
}

#[tokio::test]
async fn the_spec_and_the_offline_reference_page_are_served_without_a_token() {
    let app = spawn_app().await;
    let anonymous = crate::support::http_client().build().unwrap();

    let spec: Value = anonymous
        .get(format!("{}/openapi.json", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = anonymous
        .get(format!("{}/docs", app.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/v1/licenses"]["post"].is_object());
    assert!(page.contains("openapi.json"));
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"),
        "the page loads nothing from elsewhere"
    );
}

/// The `license_facade_requests_total` series whose method label is `unmatched`.
fn unmatched_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("license_facade_requests_total{"))
        .filter(|l| l.contains("method=\"unmatched\""))
        .collect()
}

#[tokio::test]
async fn invented_paths_methods_and_grpc_services_fold_into_one_metrics_label() {
    use futures::StreamExt as _;
    let app = spawn_app().await;
    let anonymous = crate::support::http_client().build().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();

    futures::stream::iter(0..1000)
        .for_each_concurrent(16, |i| {
            let (anonymous, channel, http) = (anonymous.clone(), channel.clone(), &app.http);
            async move {
                let method =
                    reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
                let _ = anonymous
                    .request(method, format!("{http}/invented-{i}"))
                    .send()
                    .await
                    .unwrap();
                let _ = anonymous
                    .get(format!("{http}/v1/invented-path-{i}"))
                    .send()
                    .await
                    .unwrap();
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready().await.unwrap();
                let path = format!("/invented{i}.Service/Method{i}").parse().unwrap();
                let codec = tonic_prost::ProstCodec::<(), ()>::default();
                let _ = grpc.unary(tonic::Request::new(()), path, codec).await;
            }
        })
        .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();

    assert!(
        !metrics.contains("invented") && !metrics.contains("INVENTED"),
        "an invented name became a label"
    );
    // One series per status code at most (404, 405, UNIMPLEMENTED, …), however many
    // names were invented.
    let unmatched = unmatched_series(&metrics);
    assert!(!unmatched.is_empty());
    assert!(unmatched.len() <= 8, "{unmatched:#?}");
}

/// With `RUST_BACKTRACE=1` in the environment (common on hosts and in containers), an
/// error the service logs carries its cause chain and no stack backtrace: resolving
/// the first one parsed the binary's debug information and kept it resident (35 MB)
/// for the rest of the process's life.
#[test]
fn a_logged_error_has_its_cause_chain_and_no_backtrace_under_rust_backtrace() {
    // Arrange: a database in a directory that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing").join("x.db");

    // Act: start, which fails on the database.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
        ])
        .arg("--database-url")
        .arg(format!("sqlite:{}", db.display()))
        .arg("--sandbox")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("LICENSE_FACADE_LOG_FORMAT", "json")
        .env_remove("LICENSE_FACADE_SANDBOX")
        .env_remove("LICENSE_FACADE_DATABASE_URL")
        .env_remove("LICENSE_FACADE_CONFIG")
        .env_remove("LICENSE_FACADE_CLIENTS_FILE")
        .output()
        .expect("the binary runs");

    // Assert: it failed, logged why with the cause, and printed no backtrace.
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{logs}");
    assert!(logs.contains("\"error.cause_chain\""), "{logs}");
    assert!(
        logs.contains("No such file or directory"),
        "the cause: {logs}"
    );
    assert!(!logs.contains("Stack backtrace"), "{logs}");
    assert!(!logs.contains("stack backtrace"), "{logs}");
}
