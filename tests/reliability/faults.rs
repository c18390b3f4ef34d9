//! Lost and timed-out upstream answers: the order ends with exactly one upstream
//! license, found by recovery (not ordered again) when the upstream performed it, sent
//! again only after recovery proved it absent (on a list that shows every status an
//! order may be in).

use std::time::{Duration, Instant};

use crate::figures::{Figures, duplicates_and_lost};
use crate::support::{
    DEADLINE, InProcess, Order, Stuck, Timings, assert_agree, bought, sandbox_config,
    start_sandbox, stuck_order,
};

const ORDERS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_dropped_after_commit_are_found_by_recovery_not_reordered() {
    let sandbox = start_sandbox(sandbox_config()).await;
    sandbox.set_fault("soft.order.param:drop-after-commit:1.0");
    let dir = tempfile::tempdir().unwrap();
    let app = InProcess::start(
        &dir.path().join("db.sqlite"),
        &sandbox.url,
        Timings::default(),
    )
    .await;
    let orders: Vec<Order> = (0..ORDERS).map(|n| Order::new(200 + n)).collect();

    let mut ids = Vec::new();
    for order in &orders {
        ids.push(app.api.order(order).await.expect("acknowledged"));
    }
    for (order, id) in orders.iter().zip(&ids) {
        let license = app.api.license_until(id, &["ACTIVE"]).await;
        assert_agree(&sandbox.handle, order, &license);
    }

    assert_eq!(
        sandbox.orders_sent(),
        ORDERS as u64,
        "every order was sent once: the lost answers were recovered by look-up"
    );
    assert!(
        sandbox.handle.call_count("soft") >= ORDERS as u64,
        "recovery listed the upstream licenses"
    );
    let (duplicates, lost) =
        duplicates_and_lost(&sandbox.handle, orders.iter().map(|o| o.ip.as_str()));
    Figures {
        runs: 1,
        orders: ORDERS as u64,
        changes: 0,
        upstream_calls: sandbox.orders_sent(),
        crashes: 0,
        duplicates,
        lost,
        recovered: None,
    }
    .report("drop-after-commit:1.0");
    app.crash().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_orders_are_sent_again_only_after_recovery_proves_them_absent() {
    // (The list shows licenses bought elsewhere in every status an order may be in:
    // it can prove an order absent.)
    let sandbox = start_sandbox(sandbox_config()).await;
    sandbox.set_fault("soft.order.param:timeout:1.0");
    let dir = tempfile::tempdir().unwrap();
    // The fault is cleared once every first attempt was seen; on a loaded machine
    // one order's re-send can come before another's first attempt and time out too,
    // so more than one re-send is allowed (the limit has its own tests).
    let timings = Timings {
        max_resends: Some(3),
        ..Timings::default()
    };
    let app = InProcess::start(&dir.path().join("db.sqlite"), &sandbox.url, timings).await;
    let orders: Vec<Order> = (0..ORDERS).map(|n| Order::new(300 + n)).collect();

    let mut ids = Vec::new();
    for order in &orders {
        ids.push(app.api.order(order).await.expect("acknowledged"));
    }
    // Every first attempt reached the sandbox and timed out there (nothing performed).
    let deadline = Instant::now() + DEADLINE;
    while sandbox.orders_sent() < ORDERS as u64 {
        assert!(Instant::now() < deadline, "the orders were never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        bought(&sandbox.handle).is_empty(),
        "timed-out orders are not performed"
    );
    for id in &ids {
        let license = app.api.license(id).await;
        assert_ne!(license["state"], "ACTIVE", "{license}");
    }
    sandbox.handle.set_faults(vec![]);

    for (order, id) in orders.iter().zip(&ids) {
        let license = app.api.license_until(id, &["ACTIVE"]).await;
        assert_agree(&sandbox.handle, order, &license);
    }
    assert_eq!(bought(&sandbox.handle).len(), ORDERS);
    assert!(
        sandbox.orders_sent() >= 2 * ORDERS as u64,
        "each order was sent again after its absence was proven"
    );
    let (duplicates, lost) =
        duplicates_and_lost(&sandbox.handle, orders.iter().map(|o| o.ip.as_str()));
    Figures {
        runs: 1,
        orders: ORDERS as u64,
        changes: 0,
        upstream_calls: sandbox.orders_sent(),
        crashes: 0,
        duplicates,
        lost,
        recovered: None,
    }
    .report("timeout:1.0 then cleared");
    app.crash().await;
}

/// The answer is lost and the look-up is impossible too (the listing fails): the
/// service never guesses. After `max_lookup_failures` look-ups the license is
/// NEEDS_ATTENTION with UPSTREAM_OUTCOME_UNKNOWN, and the order is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_that_cannot_be_looked_up_needs_attention_and_is_not_resent() {
    let sandbox = start_sandbox(sandbox_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let timings = Timings {
        max_lookup_failures: 3,
        ..Timings::default()
    };
    let app = InProcess::start(&dir.path().join("db.sqlite"), &sandbox.url, timings).await;
    let order = Order::new(500);

    let stuck = stuck_order(&app.api, &sandbox.handle, &order.body(), Stuck::Bought).await;
    let (id, license) = (stuck.id, stuck.license);

    assert_eq!(
        license["lastError"]["code"], "UPSTREAM_OUTCOME_UNKNOWN",
        "{license}"
    );
    assert_eq!(sandbox.orders_sent(), 1, "never sent twice");
    assert_eq!(
        sandbox.live_on(&order.ip).len(),
        1,
        "the one bought license"
    );
    assert!(sandbox.handle.call_count("soft") >= 3, "it did look");
    // A retry by the client does not order again either.
    assert_eq!(app.api.order(&order).await.as_deref(), Ok(id.as_str()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sandbox.orders_sent(), 1);
    app.crash().await;
}

/// A change whose outcome stays unknown (every renewal request times out, and the
/// sandbox does not carry out timed-out requests) is sent, re-sent at most
/// `max_resends` times (1 by default) once recovery finds it not made, and then handed
/// to a person: a paid change is never re-sent without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_outcome_stays_unknown_is_resent_at_most_the_limit_then_needs_attention() {
    let sandbox = start_sandbox(sandbox_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = InProcess::start(
        &dir.path().join("db.sqlite"),
        &sandbox.url,
        Timings::default(),
    )
    .await;
    let order = Order::new(230);
    let id = app.api.order(&order).await.expect("acknowledged");
    let before = app.api.license_until(&id, &["ACTIVE"]).await;
    sandbox.set_fault("service.prolong:timeout:1.0");

    let (status, body) = app.api.renew(&id).await.expect("answered");
    assert_eq!(status, 202, "{body}");
    let license = app.api.license_until(&id, &["NEEDS_ATTENTION"]).await;

    assert_eq!(
        license["lastError"]["code"], "UPSTREAM_OUTCOME_UNKNOWN",
        "{license}"
    );
    assert_eq!(
        sandbox.handle.call_count("service.prolong"),
        2,
        "sent once and re-sent once (max_resends = 1)"
    );
    assert_eq!(sandbox.handle.carried_out("service.prolong"), 0);
    assert_eq!(license["expireTime"], before["expireTime"]);
    assert_eq!(app.api.audit_count("RENEW", "NEEDS_ATTENTION").await, 1);
    app.crash().await;
}
