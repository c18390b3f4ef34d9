//! The change feed is read from the database: a watcher connected to replica A sees
//! the events of orders placed through replica B.

use std::time::Duration;

use futures::StreamExt;
use license_facade::api::pb::v1 as pb;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use license_facade::sandbox::SandboxConfig;

use crate::support::{DEADLINE, InProcess, Order, TestDb, start_sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_one_replica_receives_events_of_orders_placed_through_another() {
    // Arrange
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig {
        key_delay: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let a = InProcess::start(&db.url, &sandbox.url).await;
    let b = InProcess::start(&db.url, &sandbox.url).await;
    let mut client = LicenseServiceClient::connect(format!("http://{}", a.grpc_addr))
        .await
        .expect("gRPC connects to A");
    let mut events = client
        .watch_licenses(pb::WatchLicensesRequest { after_event_id: 0 })
        .await
        .expect("watching A")
        .into_inner();

    // Act: order through B only.
    let id = b.api.order_until_acknowledged(&Order::new(7)).await;

    // Assert: A's feed carries the order's creation and its activation, in order.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last_id = 0;
    loop {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("A's feed never showed the activation; saw {seen:?}"))
            .expect("the stream stays open")
            .expect("an event")
            .event
            .expect("an event body");
        assert!(event.id > last_id, "event ids increase");
        last_id = event.id;
        let license = event.license.expect("a license");
        if license.id != id {
            continue;
        }
        seen.push((event.kind, license.state));
        if license.state == pb::license::State::Active as i32 {
            break;
        }
    }
    assert_eq!(
        seen.first().map(|(kind, _)| *kind),
        Some(pb::license_event::Kind::Created as i32),
        "the first event is the creation: {seen:?}"
    );

    a.stop().await;
    b.stop().await;
    drop(db);
}
