//! A replica killed with SIGKILL while orders are in flight: the other replicas take
//! its operations over when its leases run out; no duplicates, nothing lost.

use std::collections::HashSet;

use crate::support::{
    DEADLINE, Order, ReplicaSet, SENDING_LOG, assert_exactly_once, slow_upstream, wait_all_active,
};

const ORDERS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replicas_orders_are_finished_by_the_others_exactly_once() {
    // Arrange: three replicas as processes; the upstream is slow enough that the
    // victim is mid-call when it dies.
    let Some(mut set) = ReplicaSet::start(slow_upstream(), None).await else {
        return;
    };
    let orders: Vec<Order> = (0..ORDERS).map(|n| 1000 + n).map(Order::new).collect();

    // Act: fire every order, a third through each replica; kill replica 0 once it is
    // sending orders upstream.
    let mut in_flight = set.fire(&orders, |n| n % 3);
    set.until_sending(0, 3, DEADLINE).await;
    set.replicas[0].kill();
    let started_by_victim: HashSet<String> = set.replicas[0]
        .logged(SENDING_LOG)
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
        let api = &set.replicas[1 + n % 2].api;
        ids.push(api.order_until_acknowledged(order).await);
    }
    let licenses = wait_all_active(&set.replicas[1].api, &ids).await;

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
    assert_exactly_once(&set.sandbox, &orders, &licenses);
}
