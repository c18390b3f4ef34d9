//! A replica killed with SIGKILL while orders are in flight: the other replicas take
//! its operations over when its leases run out; no duplicates, nothing lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use license_facade::sandbox::SandboxConfig;

use crate::support::{
    ChildReplica, DEADLINE, Order, TestDb, assert_exactly_once, start_sandbox, wait_all_active,
};

const ORDERS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replicas_orders_are_finished_by_the_others_exactly_once() {
    // Arrange: three replicas as processes; the upstream is slow enough that the
    // victim is mid-call when it dies.
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig {
        key_delay: Duration::from_millis(300),
        latency: Duration::from_millis(150),
        ..SandboxConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<ChildReplica> = (0..3)
        .map(|i| ChildReplica::start(dir.path(), &format!("r{i}"), &db.url, &sandbox.url, &[]))
        .collect();
    let orders: Vec<Order> = (0..ORDERS).map(|n| 1000 + n).map(Order::new).collect();

    // Act: fire every order, a third through each replica; kill replica 0 once it is
    // sending orders upstream.
    let mut in_flight = tokio::task::JoinSet::new();
    for (n, order) in orders.iter().enumerate() {
        let api = replicas[n % 3].api.clone();
        let order = order.clone();
        in_flight.spawn(async move { api.order(&order).await });
    }
    let deadline = Instant::now() + DEADLINE;
    while replicas[0].logged("sending the order upstream").len() < 3 {
        assert!(Instant::now() < deadline, "replica 0 never sent an order");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replicas[0].kill();
    let started_by_victim: HashSet<String> = replicas[0]
        .logged("sending the order upstream")
        .iter()
        .filter_map(|e| e["span"]["license_id"].as_str().map(str::to_owned))
        .collect();
    let mut acknowledged = HashSet::new();
    while let Some(result) = in_flight.join_next().await {
        if let Ok(id) = result.unwrap() {
            acknowledged.insert(id);
        }
    }

    // Clients retry every order through the survivors (an order is idempotent per
    // server), then wait for all of them.
    let mut ids = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let api = &replicas[1 + n % 2].api;
        ids.push(api.order_until_acknowledged(order).await);
    }
    let licenses = wait_all_active(&replicas[1].api, &ids).await;

    eprintln!(
        "victim: {} orders in flight when killed, {} acknowledged in all",
        started_by_victim.len(),
        acknowledged.len()
    );

    // Assert
    assert!(
        !started_by_victim.is_empty(),
        "the victim had orders in flight (its log names their licenses)"
    );
    let finished: HashSet<String> = ids.iter().cloned().collect();
    for id in &started_by_victim {
        assert!(
            finished.contains(id),
            "license {id}, in flight on the killed replica, was finished by another"
        );
    }
    for id in &acknowledged {
        assert!(finished.contains(id), "acknowledged license {id} was lost");
    }
    assert_exactly_once(&sandbox, &orders, &licenses);
    drop(replicas);
    drop(db);
}
