//! Bad orders are refused before any upstream call, with the same reason on both APIs.

use license_facade::api::pb::v1 as pb;
use serde_json::{Value, json};

use crate::helpers::{grpc_order, reason, spawn_app};

/// (case, REST body, gRPC request, reason code, offending field)
fn cases() -> Vec<(
    &'static str,
    Value,
    pb::OrderLicenseRequest,
    &'static str,
    &'static str,
)> {
    let mut period_seven = grpc_order("srv-1", "203.0.113.10", "ISPmanager 6 Pro");
    period_seven.period_months = 7;
    let mut nodes_on_lite = grpc_order("srv-1", "203.0.113.10", "ISPmanager 6 Lite");
    nodes_on_lite.nodes = Some(2);
    vec![
        (
            "unknown panel",
            json!({"server": {"id": "srv-1", "ip": "203.0.113.10"}, "panel": "cPanel"}),
            grpc_order("srv-1", "203.0.113.10", "cPanel"),
            "UNKNOWN_PANEL",
            "panel",
        ),
        (
            "malformed ip",
            json!({"server": {"id": "srv-1", "ip": "203.0.113.300"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "203.0.113.300", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "missing server id",
            json!({"server": {"ip": "203.0.113.10"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("", "203.0.113.10", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.id",
        ),
        (
            "period 7",
            json!({"server": {"id": "srv-1", "ip": "203.0.113.10"}, "panel": "ISPmanager 6 Pro", "periodMonths": 7}),
            period_seven,
            "INVALID_ARGUMENT",
            "periodMonths",
        ),
        (
            "nodes on lite",
            json!({"server": {"id": "srv-1", "ip": "203.0.113.10"}, "panel": "ISPmanager 6 Lite", "nodes": 2}),
            nodes_on_lite,
            "INVALID_ARGUMENT",
            "nodes",
        ),
        (
            "loopback ip",
            json!({"server": {"id": "srv-1", "ip": "127.0.0.1"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "127.0.0.1", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "loopback ip in IPv4-compatible form",
            json!({"server": {"id": "srv-1", "ip": "::127.0.0.1"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "::127.0.0.1", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "loopback ip behind NAT64",
            json!({"server": {"id": "srv-1", "ip": "64:ff9b::127.0.0.1"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "64:ff9b::127.0.0.1", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "loopback ip behind local-use NAT64",
            json!({"server": {"id": "srv-1", "ip": "64:ff9b:1::7f00:1"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "64:ff9b:1::7f00:1", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "an IPv4 address behind NAT64",
            json!({"server": {"id": "srv-1", "ip": "64:ff9b::203.0.113.10"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "64:ff9b::203.0.113.10", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "link-local ip behind 6to4",
            json!({"server": {"id": "srv-1", "ip": "2002:a9fe:0101::1"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "2002:a9fe:0101::1", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "link-local ipv4",
            json!({"server": {"id": "srv-1", "ip": "169.254.169.254"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "169.254.169.254", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
        (
            "link-local ipv6",
            json!({"server": {"id": "srv-1", "ip": "fe80::1"}, "panel": "ISPmanager 6 Pro"}),
            grpc_order("srv-1", "fe80::1", "ISPmanager 6 Pro"),
            "INVALID_ARGUMENT",
            "server.ip",
        ),
    ]
}

#[tokio::test]
async fn bad_rest_orders_get_a_400_problem_and_no_upstream_call() {
    let app = spawn_app().await;

    for (case, body, _, code, field) in cases() {
        let response = app.post_json("/v1/licenses", &body).await;

        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code, "{case}: {problem}");
        assert_eq!(problem["status"], 400, "{case}");
        assert_eq!(problem["errors"][0]["field"], field, "{case}: {problem}");
    }
    assert_eq!(app.sandbox.call_count("soft.order.param"), 0);
    let listed: Value = app.get("/v1/licenses").await.json().await.unwrap();
    assert_eq!(listed["licenses"], json!([]));
}

#[tokio::test]
async fn bad_grpc_orders_get_invalid_argument_with_details_and_no_upstream_call() {
    use tonic_types::StatusExt;
    let app = spawn_app().await;
    let mut grpc = app.grpc().await;

    for (case, _, request, code, field) in cases() {
        let status = grpc.order_license(request).await.unwrap_err();

        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{case}");
        assert_eq!(reason(&status), code, "{case}");
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        assert_eq!(violations[0].field, field, "{case}");
    }
    assert_eq!(app.sandbox.call_count("soft.order.param"), 0);
}

#[tokio::test]
async fn unknown_panel_lists_the_known_names() {
    let app = spawn_app().await;

    let problem: Value = app
        .post_json(
            "/v1/licenses",
            &json!({"server": {"id": "s", "ip": "203.0.113.1"}, "panel": "Plesk"}),
        )
        .await
        .json()
        .await
        .unwrap();

    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("ISPmanager 6 Lite") && detail.contains("ISPmanager 6 Business Trial"),
        "{detail}"
    );
}
