//! Webhooks: a client's subscription receives its licenses' change-feed events as
//! signed POSTs, in feed order, retried while the receiver is down and delivered
//! after; management over REST and gRPC is scoped like licenses; a target on a
//! loopback, link-local or metadata address is refused unless allowed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use license_facade::api::pb::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::auth::{order_body, problem_code, rest, spawn_with_clients, test_clients};
use crate::helpers::{TestApp, grpc_client_with, spawn_app_with};

const SECRET: &str = "receiver-test-secret-0123456789";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    status: u16,
    event_id: i64,
    signature_ok: bool,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    /// Requests still answered 503 (the receiver is "down").
    failures_left: Arc<AtomicU32>,
}

/// Checks `License-Facade-Signature: t=…,v1=…` as a receiver would: HMAC-SHA-256 of
/// "<t>.<body>" with the shared secret, compared in constant time.
fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("license-facade-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let down = r
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    };
    let event_id = headers
        .get("license-facade-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    r.got.lock().unwrap().push(Delivery {
        status: status.as_u16(),
        event_id,
        signature_ok: signature_ok(&headers, &body),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    status
}

/// A receiver on 127.0.0.1 (bound before it is used), answering 503 to the first
/// `failures` requests.
async fn start_receiver(failures: u32) -> (Receiver, SocketAddr) {
    let receiver = Receiver::default();
    receiver.failures_left.store(failures, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, addr)
}

/// The app with the test clients, deliveries allowed to 127.0.0.1 and looked for
/// often.
async fn spawn_allowing_loopback() -> TestApp {
    spawn_app_with(0, |s| {
        s.clients = Some(test_clients());
        s.webhooks.allow_private_targets = true;
        s.webhooks.poll = Duration::from_millis(50);
    })
    .await
}

async fn subscribe(app: &TestApp, client: &str, body: Value) -> reqwest::Response {
    rest(app, Some(client), Method::POST, "/v1/webhooks", Some(&body)).await
}

/// Waits until the subscription has delivered everything it may see.
async fn caught_up(app: &TestApp, client: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hook: Value = rest(
            app,
            Some(client),
            Method::GET,
            &format!("/v1/webhooks/{id}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        let backlog: i64 = hook["backlog"].as_str().unwrap_or("0").parse().unwrap();
        if backlog == 0 && hook["attempts"].as_i64().unwrap_or(0) == 0 {
            return hook;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered in time: {hook}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn deliveries_are_signed_and_arrive_in_order_after_the_receiver_was_down() {
    // Arrange: the receiver answers 503 to its first two requests.
    let app = spawn_allowing_loopback().await;
    let (receiver, addr) = start_receiver(2).await;
    let created = subscribe(
        &app,
        "alpha",
        json!({"url": format!("http://{addr}/hook"), "secret": SECRET}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["secret"], SECRET);
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();

    // Act: alpha orders two licenses, beta one (not alpha's to see).
    rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("srv-w1", "203.0.113.71")),
    )
    .await;
    rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("srv-w2", "203.0.113.72")),
    )
    .await;
    rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("srv-w3", "203.0.113.73")),
    )
    .await;
    let hook = caught_up(&app, "alpha", &id).await;

    // Assert: every POST is signed; the two refused ones were the first event, sent
    // again; after them every event of alpha's, once each, in feed order.
    let got = receiver.got.lock().unwrap().clone();
    assert!(got.iter().all(|d| d.signature_ok), "{got:?}");
    assert_eq!(got[0].status, 503);
    assert_eq!(got[1].status, 503);
    assert_eq!(
        got[2].event_id, got[0].event_id,
        "the failed event is retried"
    );
    let delivered: Vec<&Delivery> = got.iter().filter(|d| d.status == 204).collect();
    let ids: Vec<i64> = delivered.iter().map(|d| d.event_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "in feed order, each once");
    assert_eq!(hook["delivered"], ids.len().to_string());
    for d in &delivered {
        assert_eq!(d.body["id"], d.event_id.to_string(), "{:?}", d.body);
        let server = d.body["license"]["serverId"].as_str().unwrap();
        assert!(server == "srv-w1" || server == "srv-w3", "{server}");
    }
    // What alpha's change feed holds is what was delivered.
    let mut alpha = grpc_client_with(app.grpc_addr, Some("alpha-token")).await;
    let mut feed = alpha
        .watch_licenses(pb::WatchLicensesRequest { after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut fed = Vec::new();
    while fed.last() != ids.last() {
        let item = tokio::time::timeout(Duration::from_secs(10), feed.message())
            .await
            .expect("the feed answers")
            .unwrap()
            .unwrap();
        fed.push(item.event.unwrap().id);
    }
    let first = ids[0];
    let fed: Vec<i64> = fed.into_iter().filter(|id| *id >= first).collect();
    assert_eq!(fed, ids);
    let per_license: HashSet<&str> = delivered
        .iter()
        .map(|d| d.body["license"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(per_license.len(), 2);
}

#[tokio::test]
async fn a_target_on_loopback_link_local_or_metadata_is_refused_by_default() {
    let app = spawn_with_clients().await;
    let mut alpha = grpc_client_with(app.grpc_addr, Some("alpha-token")).await;

    let mut codes = Vec::new();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        codes.push(problem_code(subscribe(&app, "alpha", json!({"url": url})).await).await);
    }
    let grpc = alpha
        .create_webhook(pb::CreateWebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let bad_scheme = subscribe(&app, "alpha", json!({"url": "ftp://example.com/"})).await;
    let listed: Value = rest(&app, Some("alpha"), Method::GET, "/v1/webhooks", None)
        .await
        .json()
        .await
        .unwrap();

    assert!(
        codes.iter().all(|c| c == "WEBHOOK_TARGET_REFUSED"),
        "{codes:?}"
    );
    assert_eq!(grpc.code(), tonic::Code::InvalidArgument);
    assert_eq!(crate::helpers::reason(&grpc), "WEBHOOK_TARGET_REFUSED");
    assert_eq!(bad_scheme.status(), 400);
    assert_eq!(
        listed["webhooks"].as_array().map_or(0, Vec::len),
        0,
        "nothing stored: {listed}"
    );
}

#[tokio::test]
async fn subscriptions_are_managed_by_their_client_and_seen_by_admins() {
    let app = spawn_allowing_loopback().await;
    let (_receiver, addr) = start_receiver(0).await;
    let url = format!("http://{addr}/hook");
    let created: Value = subscribe(
        &app,
        "alpha",
        json!({"url": url, "eventTypes": ["CREATED", "RENEWED"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{id}");

    let beta_get = rest(&app, Some("beta"), Method::GET, &path, None).await;
    let beta_delete = rest(&app, Some("beta"), Method::DELETE, &path, None).await;
    let ops_list: Value = rest(&app, Some("ops"), Method::GET, "/v1/webhooks", None)
        .await
        .json()
        .await
        .unwrap();
    let mut alpha = grpc_client_with(app.grpc_addr, Some("alpha-token")).await;
    let grpc_list = alpha
        .list_webhooks(pb::ListWebhooksRequest {})
        .await
        .unwrap()
        .into_inner();
    let resumed = rest(
        &app,
        Some("alpha"),
        Method::POST,
        &format!("{path}/resume"),
        None,
    )
    .await;
    let deleted = rest(&app, Some("alpha"), Method::DELETE, &path, None).await;
    let gone = rest(&app, Some("alpha"), Method::GET, &path, None).await;

    assert!(created["secret"].as_str().unwrap().len() >= 32, "{created}");
    assert_eq!(
        created["webhook"]["eventTypes"],
        json!(["CREATED", "RENEWED"])
    );
    assert_eq!(created["webhook"]["state"], "ACTIVE");
    assert!(
        created["webhook"].get("secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(beta_get.status(), 404);
    assert_eq!(problem_code(beta_delete).await, "WEBHOOK_NOT_FOUND");
    assert_eq!(ops_list["webhooks"][0]["id"], id.as_str());
    assert_eq!(grpc_list.webhooks.len(), 1);
    assert_eq!(resumed.status(), 200);
    assert_eq!(deleted.status(), 200);
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn the_console_subscribes_and_shows_a_failing_receivers_backlog() {
    // Arrange: a receiver that is down throughout.
    let app = spawn_allowing_loopback().await;
    let (receiver, addr) = start_receiver(u32::MAX).await;
    let mut browser = crate::console::Browser::new(&app);
    browser.log_in("alpha-token").await;
    let csrf = browser.csrf().await;
    let url = format!("http://{addr}/hook");

    // Act: subscribe from the console; an order makes events it cannot deliver.
    let created = browser
        .post(
            "/console/webhooks",
            &[("csrf", &csrf), ("url", &url), ("event_types", "created")],
        )
        .await;
    rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("srv-w9", "203.0.113.79")),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.got.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no attempt made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed: Value = rest(&app, Some("alpha"), Method::GET, "/v1/webhooks", None)
        .await
        .json()
        .await
        .unwrap();
    let hook = listed["webhooks"][0].clone();
    let id = hook["id"].as_str().unwrap().to_owned();
    let page = loop {
        let page = browser.get("/console/webhooks").await;
        if page.body.contains("the receiver answered 503") {
            break page;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deleted = browser
        .post(
            &format!("/console/webhooks/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    let after: Value = rest(&app, Some("alpha"), Method::GET, "/v1/webhooks", None)
        .await
        .json()
        .await
        .unwrap();

    // Assert
    assert_eq!(created.status, 200);
    assert!(
        created.body.contains("id=\"secret\">whsec_"),
        "{}",
        created.body
    );
    assert_eq!(hook["eventTypes"], json!(["CREATED"]));
    assert!(page.body.contains(&format!("id=\"webhook-{id}\"")));
    assert!(
        page.body.contains("<td class=\"num backlog\">1</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("badge warn"));
    assert!(
        receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .all(|d| d.signature_ok || d.status == 503)
    );
    assert_eq!(deleted.status, 303);
    assert_eq!(after["webhooks"].as_array().map_or(0, Vec::len), 0);
}
