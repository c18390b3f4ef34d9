//! Tests of fault injection over HTTP: each kind, whether the operation was performed,
//! and what the client sees.

use std::time::Duration;

use tokio::sync::oneshot;

use super::tests::{error_of, order_params, start, start_default, with_query};
use super::{Fault, Sandbox, SandboxConfig};

fn err(t: &str, o: &str) -> Option<(String, String)> {
    Some((t.to_owned(), o.to_owned()))
}

fn faults(spec: &str) -> Vec<Fault> {
    vec![spec.parse().unwrap()]
}

#[tokio::test]
async fn error5xx_malformed_and_doc_error_perform_nothing() {
    let sb = start_default().await;
    let order = order_params("203.0.113.5", "55228", "1");

    sb.handle.set_faults(faults("soft.order.param:error5xx:1"));
    let mut all = vec![("authinfo", "demo:demo")];
    all.extend_from_slice(&order);
    let resp = sb
        .client
        .get(with_query(&sb.url, &all))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("<html>"));

    sb.handle.set_faults(faults("*:malformed:1"));
    let body = sb.call(&order).await;
    assert!(body.starts_with("<?xml") && !body.contains("</doc>"));

    sb.handle.set_faults(faults("soft.order.param:doc-error:1"));
    assert_eq!(
        error_of(&sb.call(&order).await),
        err("api_error", "soft.order.param")
    );

    assert!(sb.handle.licenses().is_empty());
    assert_eq!(sb.handle.balance(), 1_000_000);
    assert_eq!(sb.handle.call_count("soft.order.param"), 3);
}

#[tokio::test]
async fn a_timeout_fault_hangs_and_performs_nothing() {
    let sb = start_default().await;
    sb.handle.set_faults(faults("soft.order.param:timeout:1"));
    let mut all = vec![("authinfo", "demo:demo")];
    all.extend(order_params("203.0.113.5", "55228", "1"));

    let sent = sb
        .client
        .get(with_query(&sb.url, &all))
        .timeout(Duration::from_millis(100))
        .send()
        .await;

    assert!(sent.unwrap_err().is_timeout());
    assert!(sb.handle.licenses().is_empty());
    assert_eq!(sb.handle.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn drop_after_commit_buys_the_license_but_the_client_gets_no_answer() {
    let sb = start_default().await;
    sb.handle
        .set_faults(faults("soft.order.param:drop-after-commit:1"));
    let mut all = vec![("authinfo", "demo:demo")];
    all.extend(order_params("203.0.113.5", "55228", "1"));

    let outcome = match sb.client.get(with_query(&sb.url, &all)).send().await {
        Ok(resp) => resp.text().await.map(|_| ()),
        Err(e) => Err(e),
    };

    assert!(outcome.is_err(), "the client must see a transport error");
    assert_eq!(sb.handle.licenses().len(), 1, "the order was committed");
    assert_eq!(sb.handle.balance(), 1_000_000 - 900);
    sb.handle.set_faults(Vec::new());
    assert_eq!(sb.handle.licenses()[0].remote_id, "abc");
}

#[tokio::test]
async fn shutdown_releases_a_hanging_timeout_fault() {
    let config = SandboxConfig {
        faults: faults("*:timeout:1"),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (url, handle) = (sandbox.url(), sandbox.handle());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(sandbox.run(async move {
        let _ = stopped.await;
    }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let request = tokio::spawn(async move {
        let url = with_query(&url, &[("func", "soft")]);
        client.get(url).send().await
    });
    while handle.call_count("soft") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    stop.send(()).unwrap();

    let drained = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(
        drained.is_ok(),
        "run() must return despite the hanging request"
    );
    assert_eq!(request.await.unwrap().unwrap().status(), 504);
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let sb = start(SandboxConfig {
        latency: Duration::from_millis(50),
        ..SandboxConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    sb.call(&[("func", "subaccount")]).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_delay_fault_holds_the_request_then_carries_it_out() {
    let sb = start_default().await;
    sb.handle
        .set_faults(faults("soft.order.param:delay-300ms:1"));
    let order = order_params("203.0.113.5", "55228", "1");

    let started = std::time::Instant::now();
    let body = sb.call(&order).await;

    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(error_of(&body), None, "{body}");
    assert_eq!(sb.handle.licenses().len(), 1, "carried out after the delay");
    assert_eq!(sb.handle.carried_out("soft.order.param"), 1);
    let other = std::time::Instant::now();
    sb.call(&[("func", "subaccount")]).await;
    assert!(
        other.elapsed() < Duration::from_millis(300),
        "other functions are not held"
    );
}
