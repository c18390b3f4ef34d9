use license_facade::api::pb::v1 as pb;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

async fn seed(app: &crate::helpers::TestApp) {
    for (i, panel) in ["ISPmanager 6 Lite", "ISPmanager 6 Pro", "ISPmanager 6 Pro"]
        .iter()
        .enumerate()
    {
        app.order_and_wait(&json!({
            "server": {"id": format!("srv-{i}"), "ip": format!("203.0.113.{}", 100 + i)},
            "panel": panel
        }))
        .await;
    }
}

#[tokio::test]
async fn rest_filters_by_panel_ip_server_and_state() {
    let app = spawn_app().await;
    seed(&app).await;

    let count = |body: Value| body["licenses"].as_array().unwrap().len();
    let by_panel: Value = app
        .get("/v1/licenses?panel=ispmanager-6-pro")
        .await
        .json()
        .await
        .unwrap();
    let by_ip: Value = app
        .get("/v1/licenses?ip=203.0.113.100")
        .await
        .json()
        .await
        .unwrap();
    let by_server: Value = app
        .get("/v1/licenses?serverId=srv-2")
        .await
        .json()
        .await
        .unwrap();
    let active: Value = app
        .get("/v1/licenses?state=ACTIVE")
        .await
        .json()
        .await
        .unwrap();
    let pending: Value = app
        .get("/v1/licenses?state=PENDING")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(count(by_panel), 2);
    assert_eq!(by_ip["licenses"][0]["serverId"], "srv-0");
    assert_eq!(count(by_server), 1);
    assert_eq!(count(active), 3);
    assert_eq!(count(pending), 0);
}

#[tokio::test]
async fn pages_cover_every_license_once_over_grpc() {
    let app = spawn_app().await;
    seed(&app).await;
    let mut grpc = app.grpc().await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = grpc
            .list_licenses(pb::ListLicensesRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.licenses.into_iter().map(|l| l.server_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    assert_eq!(seen, ["srv-2", "srv-1", "srv-0"], "newest first, each once");
}

#[tokio::test]
async fn bad_listing_parameters_are_a_400() {
    let app = spawn_app().await;

    for path in [
        "/v1/licenses?state=SLEEPING",
        "/v1/licenses?pageSize=5000",
        "/v1/licenses?pageSize=abc",
        "/v1/licenses?pageToken=forged",
        "/v1/licenses?panel=cPanel",
        "/v1/licenses?ip=1.2.3",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
}

#[tokio::test]
async fn an_invalid_page_token_is_named_as_such_on_both_apis() {
    let app = spawn_app().await;
    let mut grpc = app.grpc().await;

    let rest: serde_json::Value = app
        .get("/v1/licenses?pageToken=forged")
        .await
        .json()
        .await
        .unwrap();
    let status = grpc
        .list_licenses(license_facade::api::pb::v1::ListLicensesRequest {
            page_token: "forged".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();

    assert_eq!(rest["code"], "INVALID_PAGE_TOKEN", "{rest}");
    let detail = rest["detail"].as_str().unwrap();
    assert!(detail.contains("pageToken"), "{detail}");
    assert!(!detail.contains("unavailable"), "{detail}");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("pageToken"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains("unavailable"),
        "{}",
        status.message()
    );
}
