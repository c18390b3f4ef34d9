//! The real binary killed with SIGKILL at random moments while orders are in flight
//! against a sandbox with latency, restarted, every order retried: no duplicates,
//! nothing lost.
//!
//! The service reaches the sandbox through a proxy that delays every answer, so that a
//! kill often falls between "the sandbox bought the license" and "the service recorded
//! it": the case only recovery by look-up can settle. The restarted services' logs
//! count how often that happened (`adopted_by_recovery`).
//!
//! A kill lands at a random one of the upstream calls the service makes for its orders
//! (sending one, looking one up, reading a key), the moment that call reaches the
//! sandbox: the proxy holds its answer back, so the order it serves is unfinished when
//! the process dies. Each kill is then checked against the dead process's own database:
//! it must have left orders unfinished, or the round proved nothing about recovery.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::figures::{Figures, duplicates_and_lost};
use crate::support::{
    ADOPTED_LOG, Api, DEADLINE, Order, ServiceDir, TestSandbox, assert_agree, sandbox_config,
    slow_answer_proxy, start_sandbox,
};

const ORDERS: usize = 20;

/// The upstream functions a service calls to work on an order: `soft.order.param`
/// sends it, `soft` looks it up after a lost answer, `soft.edit` reads its key. With
/// reconciliation not due and no changes asked for, nothing else calls them.
const ORDER_WORK: [&str; 3] = ["soft.order.param", "soft", "soft.edit"];

/// Calls of [`ORDER_WORK`] the sandbox received so far.
fn order_work(sandbox: &TestSandbox) -> u64 {
    ORDER_WORK
        .iter()
        .map(|func| sandbox.handle.call_count(func))
        .sum()
}

/// Waits until the sandbox has received `n` calls of order work after `from` (the
/// service is then waiting for that call's answer, which the proxy holds back).
async fn until_order_work(sandbox: &TestSandbox, from: u64, n: u64) {
    let deadline = Instant::now() + DEADLINE;
    while order_work(sandbox) < from + n {
        assert!(
            Instant::now() < deadline,
            "the service made {} of {n} order calls",
            order_work(sandbox) - from
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Fires every order at once, ignoring the outcome (the process may die under them).
fn fire(api: &Api, orders: &[Order]) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for order in orders {
        let api = api.clone();
        let order = order.clone();
        set.spawn(async move {
            let _ = api.order(&order).await;
        });
    }
    set
}

async fn round(kills: usize) -> Figures {
    let mut config = sandbox_config();
    config.latency = Duration::from_millis(20);
    config.key_delay = Duration::from_millis(100);
    // Orders cut by a kill before they were carried out are sent again where the list
    // proves them absent: it shows licenses in every status an order may be in.
    let sandbox = start_sandbox(config).await;
    let upstream_url = slow_answer_proxy(sandbox.addr, Duration::from_millis(60)).await;
    let mut dir = ServiceDir::new();
    let orders: Vec<Order> = (0..ORDERS).map(|n| Order::new(100 + n)).collect();
    let mut crashes = 0;

    for life in 0..kills {
        // The first life makes at least two order calls per order (send it, read its
        // key); a later one at least one, for an order the kill before left unfinished.
        let calls = if life == 0 { 2 * ORDERS as u64 } else { 1 };
        let kill_at = rand::rng().random_range(1..=calls);
        let from = order_work(&sandbox);
        let mut service = dir.start(&upstream_url, None);
        let in_flight = fire(&service.api, &orders);
        until_order_work(&sandbox, from, kill_at).await;
        service.kill();
        crashes += 1;
        in_flight.join_all().await;
        let unfinished = dir.unfinished_orders().await;
        assert!(
            unfinished > 0,
            "kill {crashes} (at order call {kill_at}) landed with no order in flight"
        );
        for order in &orders {
            assert!(
                sandbox.purchased_on(&order.ip).len() <= 1,
                "a duplicate after a kill, deleted licenses included"
            );
        }
    }

    let service = dir.start(&upstream_url, None);
    let mut ids = Vec::new();
    for order in &orders {
        let id = service
            .api
            .order(order)
            .await
            .expect("the retried order is acknowledged");
        ids.push(id);
    }
    for (order, id) in orders.iter().zip(&ids) {
        let license = service.api.license_until(id, &["ACTIVE"]).await;
        assert_agree(&sandbox.handle, order, &license);
    }
    let (duplicates, lost) =
        duplicates_and_lost(&sandbox.handle, orders.iter().map(|o| o.ip.as_str()));
    assert_eq!(
        sandbox.purchases(),
        ORDERS as u64,
        "one upstream purchase per server, deleted licenses included"
    );
    // Every line the last service logged is in its file once it has stopped.
    service.stop().await;
    Figures {
        runs: 1,
        orders: ORDERS as u64,
        changes: 0,
        upstream_calls: sandbox.orders_sent(),
        crashes,
        duplicates,
        lost,
        recovered: Some(dir.log_count(ADOPTED_LOG)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_orders_are_in_flight_loses_and_duplicates_nothing() {
    let mut total = Figures::default();
    for kills in [1, 2] {
        total.add(round(kills).await);
    }
    total.report("SIGKILL rounds (fast)");
    assert_eq!((total.duplicates, total.lost), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow tier: cargo test -- --ignored"]
async fn sigkill_at_random_moments_many_rounds() {
    let mut rounds = tokio::task::JoinSet::new();
    for worker in 0..2 {
        rounds.spawn(async move {
            let mut total = Figures::default();
            for r in 0..5 {
                total.add(round(1 + (r + worker) % 3).await);
            }
            total
        });
    }
    let mut total = Figures::default();
    while let Some(done) = rounds.join_next().await {
        total.add(done.expect("a round panicked"));
    }
    total.report("SIGKILL rounds (slow)");
    assert_eq!((total.duplicates, total.lost), (0, 0));
}
