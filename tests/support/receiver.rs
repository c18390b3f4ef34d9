//! A webhook receiver for the suites: an HTTP server on 127.0.0.1 (bound before it is
//! used) that checks the signature of every POST as a receiver would, records it, and
//! can hold each request a while, so that a kill lands mid-delivery.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The signing secret the suites subscribe with.
pub const WEBHOOK_SECRET: &str = "suite-webhook-secret-0123456789";

/// One POST the receiver answered 2xx.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: i64,
    pub signature_ok: bool,
    pub license_id: String,
}

#[derive(Clone)]
pub struct WebhookReceiver {
    pub addr: Option<SocketAddr>,
    got: Arc<Mutex<Vec<Received>>>,
    in_flight: Arc<AtomicUsize>,
    arrived: Arc<AtomicUsize>,
    hold: Duration,
    /// While true, requests are held after `hold` until it is false again.
    holding: Arc<tokio::sync::watch::Sender<bool>>,
}

impl WebhookReceiver {
    /// A receiver that holds every request `hold` before it answers 204.
    pub async fn start(hold: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            addr: Some(listener.local_addr().unwrap()),
            got: Arc::default(),
            in_flight: Arc::default(),
            arrived: Arc::default(),
            hold,
            holding: Arc::new(tokio::sync::watch::channel(false).0),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// The URL to subscribe.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.expect("started"))
    }

    /// Subscribes this receiver through `api` with [`WEBHOOK_SECRET`]; the
    /// subscription's id and the last event id before it (deliveries start after it).
    pub async fn subscribe(&self, api: &super::Api) -> (String, i64) {
        let (status, created) = api
            .post(
                "/v1/webhooks",
                &serde_json::json!({"url": self.url(), "secret": WEBHOOK_SECRET}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{created}");
        let id = created["webhook"]["id"].as_str().unwrap().to_owned();
        let start = created["webhook"]["lastEventId"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap();
        (id, start)
    }

    /// Every delivery answered so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests that arrived, answered or not (a sender killed while the request was
    /// held cut it: the receiver never answered and records nothing of it).
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Requests being held now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Holds every request (after its `hold`) unanswered while `on`: a test that kills
    /// the sender once a request is in flight then cuts it for certain, however long
    /// the kill takes to land on a loaded machine.
    pub fn hold_answers(&self, on: bool) {
        self.holding.send_replace(on);
    }
}

async fn receive(State(r): State<WebhookReceiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.arrived.fetch_add(1, Ordering::SeqCst);
    r.in_flight.fetch_add(1, Ordering::SeqCst);
    // A cut connection drops this future here: nothing is recorded.
    struct Leaving(Arc<AtomicUsize>);
    impl Drop for Leaving {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _leaving = Leaving(r.in_flight.clone());
    tokio::time::sleep(r.hold).await;
    let _ = r.holding.subscribe().wait_for(|holding| !holding).await;
    let event_id = headers
        .get("license-facade-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push(Received {
        event_id,
        signature_ok: signature_ok(&headers, &body),
        license_id: json["license"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    });
    StatusCode::NO_CONTENT
}

/// `License-Facade-Signature: t=…,v1=…` checked against HMAC-SHA-256 of "<t>.<body>".
fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("license-facade-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let field = |name: &str| {
        header
            .split(',')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(t), Some(v1)) = (field("t"), field("v1")) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Checks what `received` holds against `expected` (the event ids delivery had to
/// cover, in feed order): every one at least once, every delivery signed, and the
/// first deliveries of each license's events in feed order. Returns how many
/// deliveries were repeats (de-duplicable by id).
pub fn check_deliveries(received: &[Received], expected: &[i64]) -> usize {
    assert!(
        received.iter().all(|r| r.signature_ok),
        "an unsigned delivery"
    );
    let mut first_seen: Vec<&Received> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in received {
        if seen.insert(r.event_id) {
            first_seen.push(r);
        }
    }
    let mut ids: Vec<i64> = seen.iter().copied().collect();
    ids.sort_unstable();
    assert_eq!(
        ids, expected,
        "every event delivered at least once, nothing else"
    );
    let mut by_license: std::collections::HashMap<&str, i64> = Default::default();
    for r in &first_seen {
        let last = by_license.entry(&r.license_id).or_insert(0);
        assert!(
            r.event_id > *last,
            "license {}: event {} delivered before {}",
            r.license_id,
            *last,
            r.event_id
        );
        *last = r.event_id;
    }
    received.len() - first_seen.len()
}
