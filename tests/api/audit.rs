//! The audit log: every action that buys or changes a license, with who, what, when,
//! the request id, the upstream id and the outcome, readable by admins.

use license_facade::api::pb::v1 as pb;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Sends `method path?wait=20s` with an `Idempotency-Key`; returns status and body.
async fn step(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    let response = app
        .client
        .request(method, format!("{}{path}?wait=20s", app.http))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every audit entry of `license_id` over REST, oldest first, read in pages of 4.
async fn audit_trail(app: &TestApp, license_id: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut token = String::new();
    loop {
        let page: Value = app
            .get(&format!(
                "/v1/audit?licenseId={license_id}&pageSize=4&pageToken={token}"
            ))
            .await
            .json()
            .await
            .unwrap();
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        token = page["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() {
            break;
        }
    }
    entries.reverse();
    entries
}

#[tokio::test]
async fn a_full_license_walk_leaves_a_complete_audit_trail() {
    // Arrange
    let app = spawn_app().await;
    let (status, license) = step(
        &app,
        reqwest::Method::POST,
        "/v1/licenses",
        "walk-order",
        json!({"server": {"id": "audit-1", "ip": "203.0.113.90"}, "panel": "ISPmanager 6 Lite"}),
    )
    .await;
    assert!(status == 200 || status == 201, "{status}: {license}");
    let id = license["id"].as_str().unwrap().to_owned();
    let base = format!("/v1/licenses/{id}");
    let post = reqwest::Method::POST;
    let walk = [
        (
            "CHANGE_IP",
            "change-ip",
            "walk-ip",
            json!({"ip": "203.0.113.91"}),
            200,
        ),
        (
            "CHANGE_PANEL",
            "change-panel",
            "walk-panel",
            json!({"panel": "ISPmanager 6 Business"}),
            200,
        ),
        ("SUSPEND", "suspend", "walk-suspend", json!({}), 200),
        ("RESUME", "resume", "walk-resume", json!({}), 200),
        (
            "RENEW",
            "renew",
            "walk-renew",
            json!({"periodMonths": 12}),
            200,
        ),
        ("REISSUE_KEY", "reissue-key", "walk-key", json!({}), 200),
        // The sandbox allows one IP change a month: the upstream refuses this one.
        (
            "CHANGE_IP",
            "change-ip",
            "walk-ip-2",
            json!({"ip": "203.0.113.92"}),
            422,
        ),
    ];

    // Act
    for (_, path, key, body, expected) in &walk {
        let (status, answer) = step(
            &app,
            post.clone(),
            &format!("{base}/{path}"),
            key,
            body.clone(),
        )
        .await;
        assert_eq!(status, *expected, "{path}: {answer}");
    }
    let (status, cancelled) = step(
        &app,
        reqwest::Method::DELETE,
        &base,
        "walk-cancel",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let trail = audit_trail(&app, &id).await;
    let mut grpc = app.grpc().await;
    let grpc_trail = grpc
        .list_audit_entries(pb::ListAuditEntriesRequest {
            license_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Assert: each action has its ACCEPTED entry and its outcome, by the sandbox
    // client, with its request id and the upstream id.
    let upstream_id = cancelled["upstreamId"].as_str().unwrap();
    let mut expected = vec![("ORDER", "walk-order", "SUCCEEDED")];
    expected.extend(walk.iter().map(|(action, _, key, _, status)| {
        (
            *action,
            *key,
            if *status == 200 {
                "SUCCEEDED"
            } else {
                "FAILED"
            },
        )
    }));
    expected.push(("CANCEL", "walk-cancel", "SUCCEEDED"));
    assert_eq!(trail.len(), expected.len() * 2, "{trail:#?}");
    for (action, key, outcome) in &expected {
        let of = |wanted: &str| {
            trail.iter().find(|e| {
                e["action"] == *action && e["requestId"] == *key && e["outcome"] == wanted
            })
        };
        let accepted =
            of("ACCEPTED").unwrap_or_else(|| panic!("{action} {key} ACCEPTED: {trail:#?}"));
        let ended = of(outcome).unwrap_or_else(|| panic!("{action} {key} {outcome}: {trail:#?}"));
        for entry in [accepted, ended] {
            assert_eq!(entry["client"], "sandbox");
            assert_eq!(entry["licenseId"], id.as_str());
            assert_eq!(entry["serverId"], "audit-1");
            assert!(entry["time"].as_str().is_some());
        }
        assert_eq!(ended["upstreamId"], upstream_id, "{ended}");
        if *outcome == "FAILED" {
            assert!(
                ended["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{ended}"
            );
        }
    }
    let rest_ids: Vec<i64> = trail
        .iter()
        .rev()
        .map(|e| {
            e["id"]
                .as_str()
                .map_or_else(|| e["id"].as_i64().unwrap(), |s| s.parse().unwrap())
        })
        .collect();
    let grpc_ids: Vec<i64> = grpc_trail.entries.iter().map(|e| e.id).collect();
    assert_eq!(grpc_ids, rest_ids, "both transports read the same log");
}

#[tokio::test]
async fn the_audit_log_refuses_a_bad_license_id_and_page_size() {
    let app = spawn_app().await;

    let bad_id = app.get("/v1/audit?licenseId=nope").await;
    let bad_size = app.get("/v1/audit?pageSize=-1").await;
    let bad_token = app.get("/v1/audit?pageToken=nope").await;
    let empty: Value = app.get("/v1/audit").await.json().await.unwrap();

    assert_eq!(bad_id.status(), 400);
    assert_eq!(bad_size.status(), 400);
    assert_eq!(bad_token.status(), 400);
    assert!(
        empty["entries"].as_array().is_none_or(Vec::is_empty),
        "{empty}"
    );
}
