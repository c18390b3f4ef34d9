//! Two replicas on one PostgreSQL database, both delivering webhooks: each event
//! reaches the receiver once (the subscription's lease lets one replica deliver at a
//! time), signed, each license's in order, whichever replica took the orders.

use std::time::Duration;

use futures::StreamExt;
use license_facade::api::pb::v1 as pb;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use license_facade::sandbox::SandboxConfig;

use crate::support::{
    DEADLINE, InProcess, Order, TOKEN, TestDb, Timings, WebhookReceiver, check_deliveries,
    start_sandbox,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_each_event_is_delivered_once() {
    // Arrange
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig {
        key_delay: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let receiver = WebhookReceiver::start(Duration::from_millis(5)).await;
    let a = InProcess::start(&db.url, &sandbox.url, Timings::replicas()).await;
    let b = InProcess::start(&db.url, &sandbox.url, Timings::replicas()).await;
    let (id, start) = receiver.subscribe(&a.api).await;

    // Act: orders through both replicas.
    let mut ids = Vec::new();
    for n in 0..6 {
        let api = if n % 2 == 0 { &a.api } else { &b.api };
        ids.push(api.order_until_acknowledged(&Order::new(500 + n)).await);
    }
    for id in &ids {
        a.api.license_until(id, &["ACTIVE"]).await;
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let hook = loop {
        let (_, hook) = b.api.get(&format!("/v1/webhooks/{id}")).await.unwrap();
        if hook["backlog"] == "0" || hook.get("backlog").is_none() {
            break hook;
        }
        assert!(tokio::time::Instant::now() < deadline, "{hook}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let through: i64 = hook["lastEventId"].as_str().unwrap().parse().unwrap();
    let mut client = LicenseServiceClient::connect(format!("http://{}", b.grpc_addr))
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::WatchLicensesRequest {
        after_event_id: start,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let mut events = client.watch_licenses(request).await.unwrap().into_inner();
    let mut expected = Vec::new();
    while expected.last().is_none_or(|last| *last < through) {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("the feed answers")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        expected.push(event.id);
    }

    // Assert
    let repeats = check_deliveries(&receiver.received(), &expected);
    assert_eq!(repeats, 0, "each event delivered once");
    assert!(expected.len() >= 18, "{expected:?}");
    a.stop().await;
    b.stop().await;
}
