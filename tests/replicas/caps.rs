//! Spend caps are exact across replicas: the cap is checked inside the transaction
//! that stores the order, under a lock of the client's that every replica takes.

use std::time::Duration;

use crate::support::{InProcess, Order, TestDb, Timings, bought, start_sandbox};
use license_facade::sandbox::SandboxConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_accept_exactly_the_cap_of_twenty_concurrent_orders_from_one_client() {
    // Arrange: one client that may place 5 orders an hour, on two replicas.
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig {
        key_delay: Duration::from_millis(20),
        ..SandboxConfig::default()
    })
    .await;
    let timings = Timings {
        paid_call_cap: Some(5),
        ..Timings::replicas()
    };
    let replicas = [
        InProcess::start(&db.url, &sandbox.url, timings).await,
        InProcess::start(&db.url, &sandbox.url, timings).await,
    ];

    // Act: 20 orders for 20 servers at once, alternating between the replicas.
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..20 {
        let api = replicas[n % 2].api.clone();
        calls.spawn(async move { api.order(&Order::new(500 + n)).await });
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    while let Some(answer) = calls.join_next().await {
        match answer.unwrap() {
            Ok(id) => accepted.push(id),
            Err(e) => refused.push(e),
        }
    }

    // Assert
    assert_eq!(
        accepted.len(),
        5,
        "accepted: {accepted:?}; refused: {refused:?}"
    );
    assert_eq!(refused.len(), 15);
    assert!(
        refused
            .iter()
            .all(|e| e.starts_with("429") && e.contains("SPEND_CAP_REACHED")),
        "{refused:?}"
    );
    crate::support::wait_all_active(&replicas[0].api, &accepted).await;
    // Purchases, not requests (a request cut before the upstream took it is sent again).
    assert_eq!(bought(&sandbox.handle).len(), 5, "five purchases");
    for replica in replicas {
        replica.stop().await;
    }
}
