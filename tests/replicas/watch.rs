//! The change feed is read from the database: a watcher connected to replica A sees
//! the events of orders placed through replica B.

use std::time::Duration;

use futures::StreamExt;
use license_facade::api::pb::v1 as pb;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use license_facade::sandbox::SandboxConfig;

use crate::support::{DEADLINE, InProcess, Order, TOKEN, TestDb, Timings, start_sandbox};

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("valid metadata"),
    );
    request
}

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
    let a = InProcess::start(&db.url, &sandbox.url, Timings::replicas()).await;
    let b = InProcess::start(&db.url, &sandbox.url, Timings::replicas()).await;
    let mut client = LicenseServiceClient::connect(format!("http://{}", a.grpc_addr))
        .await
        .expect("gRPC connects to A");
    let mut events = client
        .watch_licenses(authorized(pb::WatchLicensesRequest { after_event_id: 0 }))
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

    // A drain does not wait for the open watcher: its stream ends (the client resumes
    // elsewhere from its last event id) and A stops well within its drain bound.
    let stopping = std::time::Instant::now();
    a.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "the watcher held the drain open for {:?}",
        stopping.elapsed()
    );
    let rest = tokio::time::timeout(DEADLINE, async {
        let mut more = 0;
        while let Some(Ok(_)) = events.next().await {
            more += 1;
        }
        more
    })
    .await
    .expect("the stream ended");
    assert!(rest < 100, "the stream ended after what was committed");
    b.stop().await;
    drop(db);
}
