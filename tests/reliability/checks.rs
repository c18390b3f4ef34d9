//! The exactly-once check every reliability and replica test ends with must be able to
//! fail: a second purchase for one server fails it even after that duplicate was
//! cancelled upstream (a cancelled duplicate was still paid for).

use license_facade::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::{
    Order, TestSandbox, UPSTREAM_DELETED, assert_exactly_once, http_client, start_sandbox,
};

/// Calls `func` on the sandbox over its HTTP API as its user would, with `sok`; the
/// answer must not be an error.
async fn carry_out(sandbox: &TestSandbox, form: &[(&str, &str)]) -> Value {
    let mut form = form.to_vec();
    form.extend([("sok", "ok"), ("out", "sjson"), ("authinfo", "demo:demo")]);
    let answer: Value = http_client()
        .build()
        .unwrap()
        .post(&sandbox.url)
        .form(&form)
        .send()
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("a JSON answer");
    assert!(answer["doc"]["error"].is_null(), "{answer}");
    answer
}

/// Buys a license for `order` on the sandbox, named after `license_id`; its upstream id.
async fn buy(sandbox: &TestSandbox, order: &Order, license_id: &str) -> u64 {
    let answer = carry_out(
        sandbox,
        &[
            ("func", "soft.order.param"),
            ("clicked_button", "finish"),
            ("skipbasket", "on"),
            ("pricelist", "55228"),
            ("period", "1"),
            ("ip", &order.ip),
            ("licname", license_id),
            ("remoteid", license_id),
        ],
    )
    .await;
    answer["doc"]["id"]["$"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("an id: {answer}"))
}

/// The license the service would show for `order`, holding upstream license `id`.
fn active_license(sandbox: &TestSandbox, license_id: &str, id: u64) -> Value {
    let upstream = sandbox.handle.license(id).expect("bought");
    json!({
        "id": license_id,
        "state": "ACTIVE",
        "upstreamId": id.to_string(),
        "licenseKey": upstream.license_key,
    })
}

#[tokio::test]
#[should_panic(expected = "exactly one upstream purchase per server")]
async fn a_duplicate_cancelled_afterwards_fails_the_exactly_once_check() {
    // Arrange: one server bought twice; the second purchase deleted again.
    let sandbox = start_sandbox(SandboxConfig::default()).await;
    let order = Order::new(1);
    let kept = buy(&sandbox, &order, "license-1").await;
    let duplicate = buy(&sandbox, &order, "license-1").await;
    carry_out(
        &sandbox,
        &[("func", "soft.delete"), ("elid", &duplicate.to_string())],
    )
    .await;
    assert_eq!(
        sandbox.handle.license(duplicate).unwrap().status,
        UPSTREAM_DELETED
    );
    sandbox.handle.advance_clock(time::Duration::hours(1));
    let license = active_license(&sandbox, "license-1", kept);

    // Act and assert: one live license on the IP, but two purchases.
    assert_exactly_once(&sandbox, &[order], &[license]);
}

#[tokio::test]
async fn one_purchase_per_server_passes_the_exactly_once_check() {
    let sandbox = start_sandbox(SandboxConfig::default()).await;
    let order = Order::new(2);
    let bought = buy(&sandbox, &order, "license-2").await;
    sandbox.handle.advance_clock(time::Duration::hours(1));
    let license = active_license(&sandbox, "license-2", bought);

    assert_exactly_once(&sandbox, &[order], &[license]);
}
