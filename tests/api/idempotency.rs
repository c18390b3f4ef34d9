//! Request ids: replays, reuse with other parameters, concurrent duplicates.

use std::collections::HashSet;

use license_facade::api::pb::v1 as pb;
use serde_json::{Value, json};

use crate::helpers::{grpc_order, reason, spawn_app, spawn_app_with_key_delay};

fn body(server: &str, panel: &str) -> Value {
    json!({"server": {"id": server, "ip": "203.0.113.150"}, "panel": panel})
}

#[tokio::test]
async fn two_hundred_concurrent_orders_for_one_server_buy_exactly_one_license() {
    let app = spawn_app().await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let http = app.http.clone();
        let grpc_addr = app.grpc_addr;
        // A mix: some callers share a request id, others have their own, some none.
        let key = match i % 4 {
            0 => Some("shared-key".to_owned()),
            1 => Some(format!("own-key-{i}")),
            _ => None,
        };
        calls.spawn(async move {
            if i % 2 == 0 {
                let mut request = crate::helpers::http_client()
                    .post(format!("{http}/v1/licenses"))
                    .json(&body("srv-200", "ISPmanager 6 Pro"));
                if let Some(key) = &key {
                    request = request.header("Idempotency-Key", key);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (status, body["id"].as_str().map(str::to_owned))
            } else {
                let mut grpc = crate::helpers::grpc_client(grpc_addr).await;
                let mut request = grpc_order("srv-200", "203.0.113.150", "ISPmanager 6 Pro");
                request.request_id = key.unwrap_or_default();
                match grpc.order_license(request).await {
                    Ok(r) => (200, Some(r.into_inner().license.unwrap().id)),
                    Err(s) if s.code() == tonic::Code::Aborted => (409, None),
                    Err(s) => panic!("unexpected {s:?}"),
                }
            }
        });
    }
    let mut ids = HashSet::new();
    while let Some(result) = calls.join_next().await {
        let (status, id) = result.unwrap();
        match status {
            200..=202 => {
                ids.insert(id.expect("a license id"));
            }
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }

    assert_eq!(ids.len(), 1, "every caller got the same license: {ids:?}");
    let id = ids.into_iter().next().unwrap();
    app.license_until(&id, |l| l["state"] == "ACTIVE").await;
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
    assert_eq!(app.sandbox.licenses().len(), 1);
}

#[tokio::test]
async fn a_replay_returns_the_first_result_and_a_reuse_with_other_parameters_is_refused() {
    let app = spawn_app().await;
    let post = |b: Value, key: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/v1/licenses", app.http))
                .header("Idempotency-Key", key)
                .json(&b)
                .send()
                .await
                .unwrap()
        }
    };

    let first = post(body("srv-idem", "ISPmanager 6 Pro"), "key-1").await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    app.license_until(first["id"].as_str().unwrap(), |l| l["state"] == "ACTIVE")
        .await;

    let replay = post(body("srv-idem", "ISPmanager 6 Pro"), "key-1").await;
    assert_eq!(replay.status(), 202, "the first status");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay, first, "the first body, unchanged");

    let reuse = post(body("srv-idem", "ISPmanager 6 Lite"), "key-1").await;
    assert_eq!(reuse.status(), 422);
    assert_eq!(
        reuse.json::<Value>().await.unwrap()["code"],
        "IDEMPOTENCY_KEY_REUSED"
    );
    let mut other = grpc_order("srv-idem", "203.0.113.150", "ISPmanager 6 Host");
    other.request_id = "key-1".into();
    let status = app.grpc().await.order_license(other).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(reason(&status), "IDEMPOTENCY_KEY_REUSED");

    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
    let again = post(body("srv-idem", "ISPmanager 6 Pro"), "key-1").await;
    assert_eq!(again.json::<Value>().await.unwrap(), first);
}

#[tokio::test]
async fn a_replayed_renewal_is_not_sent_twice() {
    let app = spawn_app().await;
    let l = app
        .order_and_wait(&body("srv-renew", "ISPmanager 6 Lite"))
        .await;
    let id = l["id"].as_str().unwrap();

    for _ in 0..3 {
        let r = app
            .client
            .post(format!("{}/v1/licenses/{id}/renew?wait=20s", app.http))
            .header("Idempotency-Key", "renew-once")
            .json(&json!({"periodMonths": 12}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut grpc = app.grpc().await;
    for _ in 0..2 {
        grpc.renew_license(pb::RenewLicenseRequest {
            id: id.to_owned(),
            // A month (not a year): two years ahead is the prepaid limit.
            period_months: 1,
            wait: true,
            request_id: "renew-grpc".into(),
        })
        .await
        .unwrap();
    }

    assert_eq!(
        app.sandbox.call_count("service.prolong"),
        2,
        "one per request id"
    );
}

#[tokio::test]
async fn a_replay_while_the_first_call_is_still_waiting_is_told_to_retry() {
    let app = spawn_app_with_key_delay(3_000).await;
    let first = {
        let client = app.client.clone();
        let url = format!("{}/v1/licenses?wait=20s", app.http);
        tokio::spawn(async move {
            client
                .post(url)
                .header("Idempotency-Key", "slow-key")
                .json(&body("srv-slow", "ISPmanager 6 Pro"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Wait until the first call has stored its order (without a blind sleep).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.sandbox.call_count("soft.order.param") == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let replay = app
        .client
        .post(format!("{}/v1/licenses", app.http))
        .header("Idempotency-Key", "slow-key")
        .json(&body("srv-slow", "ISPmanager 6 Pro"))
        .send()
        .await
        .unwrap();
    let mut grpc_replay = grpc_order("srv-slow", "203.0.113.150", "ISPmanager 6 Pro");
    grpc_replay.request_id = "slow-key".into();
    let status = app
        .grpc()
        .await
        .order_license(grpc_replay)
        .await
        .unwrap_err();

    assert_eq!(replay.status(), 409);
    assert!(replay.headers().contains_key("retry-after"));
    assert_eq!(
        replay.json::<Value>().await.unwrap()["code"],
        "REQUEST_IN_PROGRESS"
    );
    assert_eq!(status.code(), tonic::Code::Aborted);
    use tonic_types::StatusExt;
    assert!(status.get_details_retry_info().is_some());
    assert_eq!(first.await.unwrap(), 201);
}

#[tokio::test]
async fn malformed_request_ids_are_a_400() {
    let app = spawn_app().await;

    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        let r = app
            .client
            .post(format!("{}/v1/licenses", app.http))
            .header("Idempotency-Key", key)
            .json(&body("srv-bad-key", "ISPmanager 6 Pro"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{key:?}");
    }
    let mut request = grpc_order("srv-bad-key", "203.0.113.150", "ISPmanager 6 Pro");
    request.request_id = long;
    let status = app.grpc().await.order_license(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(app.sandbox.call_count("soft.order.param"), 0);
}

#[tokio::test]
async fn a_retry_that_spells_the_same_order_another_way_is_a_replay_not_a_reuse() {
    let app = spawn_app().await;
    let post = |b: Value| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/v1/licenses", app.http))
                .header("Idempotency-Key", "same-meaning")
                .json(&b)
                .send()
                .await
                .unwrap()
        }
    };
    let first = post(serde_json::json!({
        "server": {"id": "srv-spell", "ip": "2001:db8::7", "hostname": "Host.Example.com"},
        "panel": "ISPmanager 6 Pro",
    }))
    .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();

    // Another name of the panel, the default period stated, the IP in its long form,
    // the host name in other case: the same order.
    let retry = post(serde_json::json!({
        "server": {"id": "srv-spell", "ip": "2001:0db8:0:0:0:0:0:7", "hostname": "host.example.com"},
        "panel": "ispmanager-6-pro",
        "periodMonths": 1,
    }))
    .await;

    assert_eq!(retry.status(), 202, "a replay, not 422");
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], first["id"]);
    app.license_until(first["id"].as_str().unwrap(), |l| l["state"] == "ACTIVE")
        .await;
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn an_ensure_that_ordered_answers_a_replay_of_its_request_id_with_the_first_result() {
    // Arrange: a server without a license; a desired-state call that orders one.
    let app = spawn_app().await;
    let request = || pb::EnsureServerLicenseRequest {
        server: Some(pb::Server {
            id: "ensure-replay-1".into(),
            ip: "203.0.113.160".into(),
            hostname: String::new(),
        }),
        panel: "ispmanager-6-pro".into(),
        request_id: "ensure-replay-key".into(),
        ..Default::default()
    };
    let first = app
        .grpc()
        .await
        .ensure_server_license(request())
        .await
        .expect("the first call orders")
        .into_inner();

    // Act: the same call again (a caller that did not see the answer retries).
    let replay = app
        .grpc()
        .await
        .ensure_server_license(request())
        .await
        .expect("a replay is answered, not refused as a reused key")
        .into_inner();

    // Assert: the first result, ORDERED, one license.
    assert_eq!(first.action(), pb::EnsureAction::Ordered);
    assert_eq!(replay.action(), pb::EnsureAction::Ordered);
    assert_eq!(replay.license.unwrap().id, first.license.unwrap().id);
    let listed = app
        .grpc()
        .await
        .list_licenses(pb::ListLicensesRequest {
            server_id: "ensure-replay-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.licenses.len(), 1);
}
