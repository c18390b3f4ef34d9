//! 300 concurrent orders for 100 servers, each server ordered once through each of
//! three replicas: exactly 100 upstream licenses, all active.

use std::time::Duration;

use crate::support::{
    InProcess, Order, TestDb, Timings, assert_exactly_once, bought, start_sandbox, wait_all_active,
};
use license_facade::sandbox::SandboxConfig;

const SERVERS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_place_300_concurrent_orders_for_100_servers_exactly_once() {
    // Arrange
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig {
        key_delay: Duration::from_millis(50),
        latency: Duration::from_millis(5),
        ..SandboxConfig::default()
    })
    .await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(InProcess::start(&db.url, &sandbox.url, Timings::replicas()).await);
    }
    let orders: Vec<Order> = (0..SERVERS).map(Order::new).collect();

    // Act: every server ordered through every replica, all at once.
    let mut calls = tokio::task::JoinSet::new();
    for (n, order) in orders.iter().enumerate() {
        for (r, replica) in replicas.iter().enumerate() {
            let api = replica.api.clone();
            let order = order.clone();
            calls.spawn(async move { (n, r, api.order_until_acknowledged(&order).await) });
        }
    }
    let mut ids = vec![Vec::new(); SERVERS];
    while let Some(result) = calls.join_next().await {
        let (n, _, id) = result.expect("the call task");
        ids[n].push(id);
    }

    // Assert: one license per server, whichever replica answered; all active; one
    // upstream order each.
    for (n, same) in ids.iter().enumerate() {
        assert_eq!(same.len(), 3);
        assert!(
            same.iter().all(|id| id == &same[0]),
            "server {n} got one license from every replica: {same:?}"
        );
    }
    let first: Vec<String> = ids.iter().map(|same| same[0].clone()).collect();
    let licenses = wait_all_active(&replicas[2].api, &first).await;
    assert_exactly_once(&sandbox, &orders, &licenses);
    // Purchases, not requests: on a starved machine an order request can time out
    // before the upstream takes it (the call is cut and nothing is bought), and the
    // worker then sends it again after recovery found nothing. What must hold is that
    // nothing was bought twice: every license the upstream ever created is one of the
    // live ones above.
    assert_eq!(
        bought(&sandbox.handle).len(),
        SERVERS,
        "no order was bought twice"
    );
    assert!(sandbox.handle.call_count("soft.order.param") >= SERVERS as u64);

    for replica in replicas {
        replica.stop().await;
    }
    drop(db);
}
