//! Limits: the spend guard, the per-client request rate, body and message sizes, and
//! gRPC deadlines.

use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

use crate::auth::{order_body, problem_code, rest, spawn_with_clients};
use crate::helpers::{
    grpc_client_with, grpc_client_without_local_deadline, grpc_order, post_announcing, reason,
    spawn_app, spawn_app_with,
};
use crate::support::TOKEN;

#[tokio::test]
async fn past_the_order_cap_orders_are_refused_with_429_and_nothing_is_bought() {
    // Arrange: `capped` may place two orders an hour; both are bought.
    let app = spawn_with_clients().await;
    for (server, ip) in [("srv-c1", "203.0.113.11"), ("srv-c2", "203.0.113.12")] {
        let r = rest(
            &app,
            Some("capped"),
            reqwest::Method::POST,
            "/v1/licenses?wait=30s",
            Some(&order_body(server, ip)),
        )
        .await;
        assert_eq!(r.status(), 201);
    }

    // Act
    let third = rest(
        &app,
        Some("capped"),
        reqwest::Method::POST,
        "/v1/licenses",
        Some(&order_body("srv-c3", "203.0.113.13")),
    )
    .await;
    let mut grpc = grpc_client_with(app.grpc_addr, Some("capped-token")).await;
    let grpc_third = grpc
        .order_license(grpc_order("srv-c4", "203.0.113.14", "ISPmanager 6 Pro"))
        .await
        .unwrap_err();
    let repeat = rest(
        &app,
        Some("capped"),
        reqwest::Method::POST,
        "/v1/licenses",
        Some(&order_body("srv-c1", "203.0.113.11")),
    )
    .await;
    let other = rest(
        &app,
        Some("alpha"),
        reqwest::Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("srv-c3", "203.0.113.13")),
    )
    .await;

    // Assert
    assert_eq!(third.status(), 429);
    let retry_after: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(problem_code(third).await, "SPEND_CAP_REACHED");
    assert_eq!(grpc_third.code(), Code::ResourceExhausted);
    assert_eq!(reason(&grpc_third), "SPEND_CAP_REACHED");
    assert!(grpc_third.get_details_retry_info().is_some(), "RetryInfo");
    assert_eq!(
        repeat.status(),
        200,
        "re-ordering a license it has buys nothing"
    );
    assert_eq!(other.status(), 201, "other clients are not capped");
    let listed: Value = rest(
        &app,
        Some("ops"),
        reqwest::Method::GET,
        "/v1/licenses",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let servers: Vec<&str> = listed["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["serverId"].as_str())
        .collect();
    assert!(!servers.contains(&"srv-c4"), "{servers:?}");
    assert_eq!(servers.len(), 3, "{servers:?}");
    // Upstream: the two capped orders and alpha's were bought, nothing else (every
    // accepted order was waited for, so nothing is still on its way).
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        3,
        "three orders sent upstream"
    );
    let mut bought: Vec<String> = app.sandbox.licenses().into_iter().map(|l| l.ip).collect();
    bought.sort();
    assert_eq!(bought, ["203.0.113.11", "203.0.113.12", "203.0.113.13"]);
}

#[tokio::test]
async fn a_client_over_its_request_rate_is_told_to_retry() {
    let app = spawn_with_clients().await;

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = rest(&app, Some("slow"), reqwest::Method::GET, "/v1/panels", None).await;
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").cloned()));
    }
    let mut grpc = grpc_client_with(app.grpc_addr, Some("slow-token")).await;
    let grpc_status = grpc
        .list_panels(pb::ListPanelsRequest::default())
        .await
        .unwrap_err();
    let others = rest(
        &app,
        Some("alpha"),
        reqwest::Method::GET,
        "/v1/panels",
        None,
    )
    .await;

    assert_eq!(statuses[0].0, 200);
    assert_eq!(statuses[3].0, 429, "{statuses:?}");
    assert!(statuses[3].1.is_some(), "Retry-After");
    assert_eq!(grpc_status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&grpc_status), "RATE_LIMITED");
    assert!(grpc_status.get_details_retry_info().is_some());
    assert_eq!(others.status(), 200, "limits are per client");
}

#[tokio::test]
async fn a_3_mib_body_is_refused_with_a_problem_json_413() {
    let app = spawn_app().await;

    let (status, head, body) =
        post_announcing(&app.http, "/v1/licenses", TOKEN, 3 * 1024 * 1024).await;

    assert_eq!(status, 413, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let problem: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE", "{problem}");
    assert!(app.sandbox.licenses().is_empty());
}

#[tokio::test]
async fn an_oversized_grpc_message_is_refused() {
    let app = spawn_app().await;
    let mut grpc = app.grpc().await;
    let mut order = grpc_order("srv-big", "203.0.113.20", "ISPmanager 6 Pro");
    order.server.as_mut().unwrap().hostname = "h".repeat(3 * 1024 * 1024);

    let status = grpc.order_license(order).await.unwrap_err();

    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(app.sandbox.licenses().is_empty());
}

// Two worker threads, as the service has in production: on the one thread of a plain
// `#[tokio::test]` the service, the sandbox and this client take turns, and the
// answer, due 100 ms before the caller's deadline, once came later than the deadline
// in the gate (a loaded machine: the slow tier beside four tests at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_fails_and_the_worker_finishes_what_was_accepted() {
    // Arrange: every upstream answer takes 1.5 s.
    let app = spawn_app_with(0, |s| {
        s.sandbox.as_mut().unwrap().latency = Duration::from_millis(1500);
    })
    .await;
    let mut grpc = app.grpc().await;
    let mut bare = grpc_client_without_local_deadline(app.grpc_addr);

    // Act: a quote needs the upstream and cannot finish in 300 ms; an order that
    // waits for the license answers at its deadline with the order accepted.
    let mut quote = tonic::Request::new(pb::QuoteLicenseRequest {
        panel: "ISPmanager 6 Pro".into(),
        period_months: 1,
        ..Default::default()
    });
    quote.set_timeout(Duration::from_millis(300));
    let quote = bare.quote_license(quote).await.unwrap_err();
    let mut order = tonic::Request::new(pb::OrderLicenseRequest {
        wait_for_active: true,
        ..grpc_order("srv-deadline", "203.0.113.21", "ISPmanager 6 Pro")
    });
    order.set_timeout(Duration::from_millis(1000));
    let accepted = grpc.order_license(order).await;
    // A caller that drops the call mid-way (no deadline header at all).
    let dropped = tokio::time::timeout(
        Duration::from_millis(30),
        grpc.order_license(pb::OrderLicenseRequest {
            wait_for_active: true,
            ..grpc_order("srv-dropped", "203.0.113.22", "ISPmanager 6 Pro")
        }),
    )
    .await;

    // Assert
    assert_eq!(quote.code(), Code::DeadlineExceeded, "{quote:?}");
    let accepted = accepted.expect("answered before the deadline").into_inner();
    let license = accepted.license.unwrap();
    assert_ne!(
        license.state(),
        pb::license::State::Active,
        "not waited for"
    );
    assert!(dropped.is_err(), "the caller gave up");
    let done = app
        .license_until(&license.id, |l| l["state"] == "ACTIVE")
        .await;
    assert!(done["licenseKey"].as_str().is_some_and(|k| !k.is_empty()));
    // The dropped call either stored nothing or its order is finished too: never a
    // half-done order.
    let dropped_license = app.get("/v1/servers/srv-dropped/license").await;
    if dropped_license.status() == 200 {
        let l: Value = dropped_license.json().await.unwrap();
        let id = l["id"].as_str().unwrap().to_owned();
        app.license_until(&id, |l| l["state"] == "ACTIVE").await;
    }
    let live: Vec<_> = app.sandbox.licenses();
    let stored = if app.get("/v1/servers/srv-dropped/license").await.status() == 200 {
        2
    } else {
        1
    };
    assert_eq!(
        live.len(),
        stored,
        "exactly one upstream license per stored order"
    );
}
