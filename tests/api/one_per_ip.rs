//! One live license per IP, whoever orders it: a panel license is bound to its IP, so
//! a second live license on one IP is money paid for nothing.

use license_facade::api::pb::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::auth::{order_body, problem_code, rest, spawn_with_clients};
use crate::helpers::{grpc_client_with, reason};

#[tokio::test]
async fn server_ids_that_differ_by_case_order_once_per_ip_and_invisible_characters_are_refused() {
    let app = spawn_with_clients().await;
    let ip = "203.0.113.201";
    let first = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("dupip-1", ip)),
    )
    .await;
    assert!(first.status().is_success(), "{}", first.status());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["state"], "ACTIVE");

    let upper = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("DUPIP-1", ip)),
    )
    .await;
    assert_eq!(upper.status(), 409);
    let problem: Value = upper.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    assert_eq!(
        problem["licenseId"], first["id"],
        "the caller's own license is named"
    );

    let invisible = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("dupip-1\u{200B}", ip)),
    )
    .await;
    assert_eq!(invisible.status(), 400);

    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        1,
        "one purchase"
    );
}

#[tokio::test]
async fn another_client_cannot_order_for_an_ip_that_has_a_license_and_is_not_told_whose() {
    let app = spawn_with_clients().await;
    let ip = "203.0.113.202";
    // Waited for, so its one purchase is made before the count below.
    let first = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("a-1", ip)),
    )
    .await;
    assert!(first.status().is_success(), "{}", first.status());

    let second = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("b-1", ip)),
    )
    .await;
    assert_eq!(second.status(), 409);
    let problem: Value = second.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    assert!(
        problem.get("licenseId").is_none_or(Value::is_null),
        "{problem}"
    );

    // The same over gRPC.
    let mut grpc = grpc_client_with(app.grpc_addr, Some("beta-token")).await;
    let status = grpc
        .order_license(pb::OrderLicenseRequest {
            server: Some(pb::Server {
                id: "b-2".into(),
                ip: ip.into(),
                hostname: String::new(),
            }),
            panel: "ISPmanager 6 Lite".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "IP_HAS_LICENSE");
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        1,
        "one purchase"
    );
}

#[tokio::test]
async fn a_license_cannot_move_onto_an_ip_that_has_another_live_license() {
    let app = spawn_with_clients().await;
    let taken = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("m-1", "203.0.113.203")),
    )
    .await;
    assert_eq!(taken.status(), 202);
    let mover: Value = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("m-2", "203.0.113.204")),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(mover["state"], "ACTIVE");

    let moved = rest(
        &app,
        Some("beta"),
        Method::POST,
        &format!("/v1/licenses/{}/change-ip", mover["id"].as_str().unwrap()),
        Some(&json!({"ip": "203.0.113.203"})),
    )
    .await;

    assert_eq!(moved.status(), 409);
    assert_eq!(problem_code(moved).await, "IP_HAS_LICENSE");
    let upstream_ips: Vec<String> = app.sandbox.licenses().into_iter().map(|l| l.ip).collect();
    assert!(
        upstream_ips.contains(&"203.0.113.204".to_owned()),
        "the license stayed on its IP upstream: {upstream_ips:?}"
    );
}
