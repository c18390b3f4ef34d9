use license_facade::api::pb::v1 as pb;
use license_facade::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::helpers::{
    grpc_order, reason, spawn_app, spawn_app_on_standalone_sandbox, spawn_app_with_key_delay,
};

fn order_body(server: &str, ip: &str, panel: &str) -> Value {
    json!({"server": {"id": server, "ip": ip}, "panel": panel})
}

#[tokio::test]
async fn rest_order_is_accepted_then_becomes_active_with_a_key() {
    let app = spawn_app_with_key_delay(300).await;

    let response = app
        .post_json(
            "/v1/licenses",
            &order_body("srv-1", "203.0.113.10", "ISPmanager 6 Pro"),
        )
        .await;

    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/licenses/{id}"));
    assert_eq!(accepted["state"], "PENDING");
    assert_eq!(accepted["tariffId"], 55228);
    assert_eq!(accepted["panel"], "ISPmanager 6 Pro");

    let active = app.license_until(&id, |l| l["state"] == "ACTIVE").await;
    assert!(!active["licenseKey"].as_str().unwrap().is_empty());
    assert!(!active["upstreamId"].as_str().unwrap().is_empty());
    assert!(active["expireTime"].is_string());

    let by_server: Value = app
        .get("/v1/servers/srv-1/license")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_server, active);
    let upstream = app
        .sandbox
        .license(active["upstreamId"].as_str().unwrap().parse().unwrap())
        .expect("the sandbox holds the license");
    assert_eq!(upstream.license_key, active["licenseKey"].as_str().unwrap());
    assert_eq!(upstream.tariff_id, 55228);
    assert_eq!(upstream.remote_id, id);
}

#[tokio::test]
async fn rest_wait_returns_the_active_license() {
    let app = spawn_app().await;

    let response = app
        .post_json(
            "/v1/licenses?wait=20s",
            &order_body("srv-w", "203.0.113.11", "ispmanager-6-lite"),
        )
        .await;

    assert_eq!(response.status(), 201);
    let license: Value = response.json().await.unwrap();
    assert_eq!(license["state"], "ACTIVE");
    assert_eq!(license["tariffId"], 55227);
}

#[tokio::test]
async fn rest_wait_that_runs_out_answers_202_with_the_license_still_being_ordered() {
    let app = spawn_app_with_key_delay(10_000).await;

    let response = app
        .post_json(
            "/v1/licenses?wait=1s",
            &order_body("srv-slow", "203.0.113.12", "ISPmanager 6 Pro"),
        )
        .await;

    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let license: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/licenses/{}", license["id"].as_str().unwrap())
    );
    assert!(
        license["state"] == "PENDING" || license["state"] == "PROVISIONING",
        "{license}"
    );
}

#[tokio::test]
async fn rest_wait_through_an_upstream_refusal_answers_200_with_the_failed_license() {
    // Arrange: a trial on an IP, cancelled; the upstream gives each IP one trial.
    let app = spawn_app().await;
    let trial = |server: &str| json!({"server": {"id": server, "ip": "203.0.113.13"}, "panel": "ISPmanager 6 Pro", "trial": true});
    let first = app.order_and_wait(&trial("srv-t1")).await;
    let id = first["id"].as_str().unwrap();
    let cancelled = app
        .client
        .delete(format!("{}/v1/licenses/{id}?wait=20s", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    // Act
    let response = app
        .post_json("/v1/licenses?wait=20s", &trial("srv-t2"))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let license: Value = response.json().await.unwrap();
    assert_eq!(license["state"], "FAILED", "{license}");
    assert_eq!(
        license["lastError"]["code"], "UPSTREAM_REFUSED",
        "{license}"
    );
}

#[tokio::test]
async fn grpc_order_waits_for_active_and_rest_sees_it() {
    let app = spawn_app().await;
    let mut grpc = app.grpc().await;

    let mut request = grpc_order("srv-g", "2001:db8::10", "ISPmanager 6 Host");
    request.wait_for_active = true;
    let response = grpc.order_license(request).await.unwrap().into_inner();

    assert!(response.created);
    let license = response.license.unwrap();
    assert_eq!(license.state(), pb::license::State::Active);
    assert!(!license.license_key.is_empty());
    let over_rest: Value = app
        .get(&format!("/v1/licenses/{}", license.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(over_rest["licenseKey"], license.license_key.as_str());
    assert_eq!(over_rest["serverId"], "srv-g");
}

#[tokio::test]
async fn a_rest_order_is_visible_over_grpc_by_id_and_by_server() {
    let app = spawn_app().await;
    let ordered = app
        .order_and_wait(&order_body(
            "srv-x",
            "198.51.100.7",
            "ISPmanager 6 Business",
        ))
        .await;
    let id = ordered["id"].as_str().unwrap().to_owned();
    let mut grpc = app.grpc().await;

    let by_id = grpc
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::Id(id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    let by_server = grpc
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::ServerId("srv-x".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();

    assert_eq!(by_id, by_server);
    assert_eq!(by_id.id, id);
    assert_eq!(by_id.state(), pb::license::State::Active);
    assert_eq!(by_id.license_key, ordered["licenseKey"].as_str().unwrap());
}

#[tokio::test]
async fn ordering_the_same_panel_again_returns_the_existing_license() {
    let app = spawn_app().await;
    let first = app
        .order_and_wait(&order_body("srv-2", "203.0.113.20", "ISPmanager 6 Pro"))
        .await;

    let again = app
        .post_json(
            "/v1/licenses",
            &order_body("srv-2", "203.0.113.20", "ispmanager6_pro"),
        )
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    let over_grpc = app
        .grpc()
        .await
        .order_license(grpc_order("srv-2", "203.0.113.20", "ISPmanager 6 Pro"))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(again["id"], first["id"]);
    assert!(!over_grpc.created);
    assert_eq!(over_grpc.license.unwrap().id, first["id"].as_str().unwrap());
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn another_panel_for_the_same_server_is_a_conflict_naming_change_license_panel() {
    let app = spawn_app().await;
    let first = app
        .order_and_wait(&order_body("srv-3", "203.0.113.30", "ISPmanager 6 Lite"))
        .await;

    let response = app
        .post_json(
            "/v1/licenses",
            &order_body("srv-3", "203.0.113.30", "ISPmanager 6 Pro"),
        )
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "SERVER_HAS_LICENSE");
    assert_eq!(problem["licenseId"], first["id"]);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("ChangeLicensePanel")
    );

    let status = app
        .grpc()
        .await
        .order_license(grpc_order("srv-3", "203.0.113.30", "ISPmanager 6 Pro"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&status), "SERVER_HAS_LICENSE");
    assert!(status.message().contains("ChangeLicensePanel"));
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn repeated_concurrent_orders_leave_one_license_per_server_in_the_standalone_sandbox() {
    let app = spawn_app_on_standalone_sandbox(SandboxConfig::default()).await;
    let servers = [
        ("srv-a", "203.0.113.41"),
        ("srv-b", "203.0.113.42"),
        ("srv-c", "2001:db8::43"),
    ];

    let mut calls = tokio::task::JoinSet::new();
    for round in 0..4 {
        for (server, ip) in servers {
            let http = app.http.clone();
            let grpc_addr = app.grpc_addr;
            calls.spawn(async move {
                if round % 2 == 0 {
                    let response = crate::helpers::http_client()
                        .post(format!("{http}/v1/licenses"))
                        .json(&order_body(server, ip, "ISPmanager 6 Pro"))
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    let body: Value = response.json().await.unwrap();
                    body["id"].as_str().unwrap().to_owned()
                } else {
                    let mut grpc = crate::helpers::grpc_client(grpc_addr).await;
                    grpc.order_license(grpc_order(server, ip, "ISPmanager 6 Pro"))
                        .await
                        .unwrap()
                        .into_inner()
                        .license
                        .unwrap()
                        .id
                }
            });
        }
    }
    let mut ids = Vec::new();
    while let Some(id) = calls.join_next().await {
        ids.push(id.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), servers.len(), "one license id per server");
    for id in &ids {
        app.license_until(id, |l| l["state"] == "ACTIVE").await;
    }

    let upstream = app.upstream_list().await;
    for (_, ip) in servers {
        let held = upstream.iter().filter(|e| e["ip"]["$"] == ip).count();
        assert_eq!(held, 1, "exactly one upstream license for {ip}");
    }
    assert_eq!(upstream.len(), servers.len());
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        servers.len() as u64
    );
}

#[tokio::test]
async fn an_upstream_refusal_fails_the_license_with_the_reason() {
    let app = spawn_app().await;
    app.sandbox.set_balance(0);

    let license = app
        .order_and_wait(&order_body("srv-poor", "203.0.113.50", "ISPmanager 6 Pro"))
        .await;

    assert_eq!(license["state"], "FAILED");
    assert_eq!(license["lastError"]["code"], "UPSTREAM_REFUSED");
    assert!(
        license["lastError"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("money"),
        "{license}"
    );
    assert!(app.sandbox.licenses().is_empty());
}

#[tokio::test]
async fn business_orders_carry_the_node_count_upstream() {
    let app = spawn_app().await;

    let license = app
        .order_and_wait(&json!({
            "server": {"id": "srv-biz", "ip": "203.0.113.60"},
            "panel": "ISPmanager 6 Business",
            "nodes": 3,
            "periodMonths": 12
        }))
        .await;

    assert_eq!(license["nodes"], 3);
    assert_eq!(license["periodMonths"], 12);
    let upstream = app.sandbox.licenses();
    assert_eq!(upstream.len(), 1);
    assert_eq!(upstream[0].period, 12);
    assert_eq!(upstream[0].tariff_id, 55230);
}

#[tokio::test]
async fn a_refused_server_can_order_again() {
    let app = spawn_app().await;
    app.sandbox.set_balance(0);
    let failed = app
        .order_and_wait(&order_body("srv-r", "203.0.113.70", "ISPmanager 6 Lite"))
        .await;
    assert_eq!(failed["state"], "FAILED");
    app.sandbox.set_balance(1_000_000);

    let retried = app
        .order_and_wait(&order_body("srv-r", "203.0.113.70", "ISPmanager 6 Lite"))
        .await;

    assert_eq!(retried["state"], "ACTIVE");
    assert_ne!(retried["id"], failed["id"]);
}
