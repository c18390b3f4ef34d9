//! Client authentication on both transports: tokens, scopes, ownership and request
//! ids per client.

use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use license_facade::auth::{Clients, token_sha256_hex};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{
    TestApp, grpc_client_with, grpc_order, http_client_with, reason, spawn_app_with,
};

/// The clients of these tests: two writers, a reader, an admin, writers with caps
/// (on paid calls, on money, on prepaid months) and a slow one.
pub fn test_clients() -> Clients {
    let entry = |name: &str, scopes: &str, extra: &str| {
        format!(
            "[[client]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\n{extra}",
            token_sha256_hex(&format!("{name}-token"))
        )
    };
    let rw = r#"["licenses.read", "licenses.write"]"#;
    let text = [
        entry("alpha", rw, ""),
        entry("beta", rw, ""),
        entry("reader", r#"["licenses.read"]"#, ""),
        entry("ops", r#"["admin"]"#, ""),
        entry(
            "capped",
            rw,
            "max_orders_per_hour = 2\nmax_orders_per_day = 10\n",
        ),
        entry("slow", rw, "max_requests_per_second = 1\n"),
        entry("budget", rw, "max_spend_per_day = 20.00\n"),
        entry("frugal", rw, "max_spend_per_day = 50.00\n"),
        entry("shortterm", rw, "max_prepaid_months = 6\n"),
    ]
    .concat();
    Clients::from_toml(&text).expect("valid clients")
}

pub async fn spawn_with_clients() -> TestApp {
    spawn_app_with(0, |s| s.clients = Some(test_clients())).await
}

pub fn order_body(server: &str, ip: &str) -> Value {
    json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Pro"})
}

/// A REST call as `client` (its token is `<client>-token`).
pub async fn rest(
    app: &TestApp,
    client: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let token = client.map(|c| format!("{c}-token"));
    let mut request =
        http_client_with(token.as_deref()).request(method, format!("{}{path}", app.http));
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

pub async fn problem_code(response: reqwest::Response) -> String {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    problem["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn no_token_or_a_wrong_token_is_unauthenticated_on_both_transports() {
    let app = spawn_with_clients().await;

    let none = rest(&app, None, reqwest::Method::GET, "/v1/licenses", None).await;
    let wrong = http_client_with(Some("alpha-token-but-wrong"))
        .get(format!("{}/v1/licenses", app.http))
        .send()
        .await
        .unwrap();
    let mut grpc_none = grpc_client_with(app.grpc_addr, None).await;
    let mut grpc_wrong = grpc_client_with(app.grpc_addr, Some("nobody")).await;
    let grpc_none = grpc_none
        .list_licenses(pb::ListLicensesRequest::default())
        .await
        .unwrap_err();
    let grpc_wrong = grpc_wrong
        .order_license(grpc_order("srv-1", "203.0.113.1", "ISPmanager 6 Pro"))
        .await
        .unwrap_err();

    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem_code(none).await, "UNAUTHENTICATED");
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem_code(wrong).await, "UNAUTHENTICATED");
    assert_eq!(grpc_none.code(), Code::Unauthenticated);
    assert_eq!(reason(&grpc_none), "UNAUTHENTICATED");
    assert_eq!(grpc_wrong.code(), Code::Unauthenticated);
    assert!(app.sandbox.licenses().is_empty(), "nothing was ordered");
}

#[tokio::test]
async fn health_readiness_and_grpc_health_need_no_token() {
    let app = spawn_with_clients().await;

    let live = rest(&app, None, reqwest::Method::GET, "/healthz", None).await;
    let ready = rest(&app, None, reqwest::Method::GET, "/readyz", None).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;

    assert_eq!(live.status(), 200);
    assert_ne!(ready.status(), 401);
    assert!(health.is_ok(), "{health:?}");
}

#[tokio::test]
async fn a_client_without_the_scope_is_permission_denied() {
    let app = spawn_with_clients().await;

    let order = rest(
        &app,
        Some("reader"),
        reqwest::Method::POST,
        "/v1/licenses",
        Some(&order_body("srv-1", "203.0.113.2")),
    )
    .await;
    let drift = rest(&app, Some("alpha"), reqwest::Method::GET, "/v1/drift", None).await;
    let audit = rest(&app, Some("alpha"), reqwest::Method::GET, "/v1/audit", None).await;
    let list = rest(
        &app,
        Some("reader"),
        reqwest::Method::GET,
        "/v1/licenses",
        None,
    )
    .await;
    let mut reader = grpc_client_with(app.grpc_addr, Some("reader-token")).await;
    let grpc_order = reader
        .order_license(grpc_order("srv-1", "203.0.113.2", "ISPmanager 6 Pro"))
        .await
        .unwrap_err();
    let grpc_audit = reader
        .list_audit_entries(pb::ListAuditEntriesRequest::default())
        .await
        .unwrap_err();

    assert_eq!(order.status(), 403);
    assert_eq!(problem_code(order).await, "PERMISSION_DENIED");
    assert_eq!(drift.status(), 403);
    assert_eq!(audit.status(), 403);
    assert_eq!(list.status(), 200);
    assert_eq!(grpc_order.code(), Code::PermissionDenied);
    assert_eq!(reason(&grpc_order), "PERMISSION_DENIED");
    assert_eq!(grpc_audit.code(), Code::PermissionDenied);
    assert!(app.sandbox.licenses().is_empty(), "nothing was ordered");
}

#[tokio::test]
async fn another_clients_license_is_not_found_also_in_lists_and_the_change_feed() {
    // Arrange: alpha owns a license.
    let app = spawn_with_clients().await;
    let created = rest(
        &app,
        Some("alpha"),
        reqwest::Method::POST,
        "/v1/licenses?wait=20s",
        Some(&order_body("srv-own", "203.0.113.3")),
    )
    .await;
    assert!(created.status().is_success(), "{}", created.status());
    let license: Value = created.json().await.unwrap();
    let id = license["id"].as_str().unwrap().to_owned();

    // Act: beta looks at it and tries to change it.
    let get = rest(
        &app,
        Some("beta"),
        reqwest::Method::GET,
        &format!("/v1/licenses/{id}"),
        None,
    )
    .await;
    let by_server = rest(
        &app,
        Some("beta"),
        reqwest::Method::GET,
        "/v1/servers/srv-own/license",
        None,
    )
    .await;
    let suspend = rest(
        &app,
        Some("beta"),
        reqwest::Method::POST,
        &format!("/v1/licenses/{id}/suspend"),
        None,
    )
    .await;
    let cancel = rest(
        &app,
        Some("beta"),
        reqwest::Method::DELETE,
        &format!("/v1/licenses/{id}"),
        None,
    )
    .await;
    let list: Value = rest(
        &app,
        Some("beta"),
        reqwest::Method::GET,
        "/v1/licenses",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let mut beta = grpc_client_with(app.grpc_addr, Some("beta-token")).await;
    let grpc_get = beta
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::Id(id.clone())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let beta_events = first_events(&app, "beta-token").await;
    let alpha_events = first_events(&app, "alpha-token").await;
    let admin = rest(
        &app,
        Some("ops"),
        reqwest::Method::GET,
        &format!("/v1/licenses/{id}"),
        None,
    )
    .await;

    // Assert
    for response in [get, by_server, suspend, cancel] {
        assert_eq!(response.status(), 404);
        assert_eq!(problem_code(response).await, "LICENSE_NOT_FOUND");
    }
    assert_eq!(
        list["licenses"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{list}"
    );
    assert_eq!(grpc_get.code(), Code::NotFound);
    assert!(beta_events.is_empty(), "{beta_events:?}");
    assert!(alpha_events.iter().any(|e| e == &id), "{alpha_events:?}");
    assert_eq!(admin.status(), 200, "an admin sees every client's");
    let mut alpha = grpc_client_with(app.grpc_addr, Some("alpha-token")).await;
    let own = alpha
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::Id(id.clone())),
            ..Default::default()
        })
        .await;
    assert!(own.is_ok(), "{own:?}");
    let by_admin = rest(
        &app,
        Some("ops"),
        reqwest::Method::POST,
        &format!("/v1/licenses/{id}/suspend?wait=20s"),
        None,
    )
    .await;
    assert_eq!(by_admin.status(), 200, "an admin changes every client's");
    let suspended: Value = by_admin.json().await.unwrap();
    assert_eq!(suspended["state"], "SUSPENDED");
}

/// The license ids of the events a client's change feed shows within half a second.
async fn first_events(app: &TestApp, token: &str) -> Vec<String> {
    let mut client = grpc_client_with(app.grpc_addr, Some(token)).await;
    let mut stream = client
        .watch_licenses(pb::WatchLicensesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Ok(Ok(Some(item))) =
        tokio::time::timeout(Duration::from_millis(500), stream.message()).await
    {
        let event = item.event.unwrap();
        ids.push(event.license.map(|l| l.id).unwrap_or_default());
    }
    ids
}

#[tokio::test]
async fn request_ids_are_scoped_per_client() {
    let app = spawn_with_clients().await;
    let order = |client: &'static str, server: &'static str, ip: &'static str| {
        let app = &app;
        async move {
            http_client_with(Some(&format!("{client}-token")))
                .post(format!("{}/v1/licenses", app.http))
                .header("Idempotency-Key", "same-key")
                .json(&order_body(server, ip))
                .send()
                .await
                .unwrap()
        }
    };

    let alpha = order("alpha", "srv-a", "203.0.113.4").await;
    let beta = order("beta", "srv-b", "203.0.113.5").await;

    assert_eq!(alpha.status(), 202);
    assert_eq!(
        beta.status(),
        202,
        "the same key of another client is a new request"
    );
    assert!(beta.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn an_admin_reading_a_server_id_that_several_clients_use_is_told_to_choose_one() {
    // Arrange: two clients, one server id, two addresses.
    let app = spawn_with_clients().await;
    let shared = "srv-shared-name";
    for (client, ip) in [("alpha", "203.0.113.151"), ("beta", "203.0.113.152")] {
        let ordered = rest(
            &app,
            Some(client),
            reqwest::Method::POST,
            "/v1/licenses",
            Some(&order_body(shared, ip)),
        )
        .await;
        assert!(ordered.status().is_success(), "{}", ordered.status());
    }
    let path = format!("/v1/servers/{shared}/license");

    // Act
    let ambiguous = rest(&app, Some("ops"), reqwest::Method::GET, &path, None).await;
    let chosen: Value = rest(
        &app,
        Some("ops"),
        reqwest::Method::GET,
        &format!("{path}?client=beta"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let own: Value = rest(&app, Some("alpha"), reqwest::Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    let other = rest(
        &app,
        Some("alpha"),
        reqwest::Method::GET,
        &format!("{path}?client=beta"),
        None,
    )
    .await;
    let mut ops = grpc_client_with(app.grpc_addr, Some("ops-token")).await;
    let grpc_ambiguous = ops
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::ServerId(shared.into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let grpc_chosen = ops
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::ServerId(shared.into())),
            client: "alpha".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();

    // Assert
    assert_eq!(ambiguous.status(), 409);
    let problem: Value = ambiguous.json().await.unwrap();
    assert_eq!(problem["code"], "SERVER_ID_AMBIGUOUS", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    for needed in ["alpha", "beta", "?client="] {
        assert!(detail.contains(needed), "{detail}");
    }
    assert_eq!(chosen["ip"], "203.0.113.152", "{chosen}");
    assert_eq!(own["ip"], "203.0.113.151", "a client reads its own: {own}");
    assert_eq!(other.status(), 404, "a client cannot name another");
    assert_eq!(grpc_ambiguous.code(), Code::FailedPrecondition);
    assert_eq!(reason(&grpc_ambiguous), "SERVER_ID_AMBIGUOUS");
    assert_eq!(grpc_chosen.ip, "203.0.113.151");
}
