//! Restart to ACTIVE: the real binary aborted at each crash point of an order and
//! restarted at once on the same SQLite file, with the default workflow settings.
//! The guarantee: the order is ACTIVE within `request_timeout + 15 s` of the restart
//! and bought exactly once, on an account whose list can prove an unsent order
//! absent (it shows licenses in every status an order may be in; elsewhere an order
//! killed before it was known sent goes to a person, `crash_points.rs`). The restarted node takes the dead one's work over at once
//! (it holds the file's lock) and waits for a request that may still land only until
//! one request timeout after the stored send time, not after the restart; the
//! look-ups after that are seconds apart.
//!
//! The fast tier uses a 2 s request timeout (everything else default); the slow tier
//! runs every point with the defaults as shipped (30 s request timeout).

use std::time::{Duration, Instant};

use license_facade::crash;

use crate::figures::report_time;
use crate::support::{Order, ServiceDir, assert_agree, bought, sandbox_config, start_sandbox};

/// What the guarantee allows beyond the request timeout.
const BEYOND_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A configuration with the default workflow settings and this request timeout.
fn config(request_timeout: Duration) -> String {
    format!(
        "[billmanager]\nrequest_timeout_ms = {}\nprobe_interval_secs = 3600\n",
        request_timeout.as_millis()
    )
}

/// Aborts at `point` with the order in flight, restarts at once, and returns the time
/// from the restart (the new process spawned) to ACTIVE; asserts the bound and that
/// exactly one order request reached the upstream.
async fn restart_to_active(point: &'static str, request_timeout: Duration) -> Duration {
    // Arrange (the list shows licenses bought elsewhere in every status an order may
    // be in, so that an order killed before it was sent can be proven unplaced)
    let sandbox = start_sandbox(sandbox_config()).await;
    let mut dir = ServiceDir::with_config(&config(request_timeout));
    let order = Order::new(11);
    let mut first = dir.start(&sandbox.url, Some(point));
    let first_id = first.api.order(&order).await.ok();
    first.expect_abort_at(point).await;
    drop(first);

    // Act: restart at once; the order is not placed again (only asked for, when the
    // abort cut the first answer and its id is unknown).
    let restarted = Instant::now();
    let second = dir.start(&sandbox.url, None);
    let id = match first_id {
        Some(id) => id,
        None => second.api.order(&order).await.expect("acknowledged"),
    };
    let bound = request_timeout + BEYOND_REQUEST_TIMEOUT;
    let license = loop {
        let license = second.api.license(&id).await;
        if license["state"] == "ACTIVE" {
            break license;
        }
        assert!(
            restarted.elapsed() <= bound,
            "crash point {point}: not ACTIVE within {bound:?} of the restart: {license}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = restarted.elapsed();

    // Assert
    assert!(
        took <= bound,
        "crash point {point}: ACTIVE {took:?} after the restart, more than {bound:?}"
    );
    assert_agree(&sandbox.handle, &order, &license);
    assert_eq!(
        sandbox.orders_sent(),
        1,
        "crash point {point}: one upstream order request in all"
    );
    assert_eq!(bought(&sandbox.handle).len(), 1, "bought once");
    report_time(
        &format!("restart to ACTIVE, crash point {point}, request timeout {request_timeout:?}"),
        took,
        bound,
    );
    took
}

const FAST_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_intent_a_restarted_node_has_the_order_active_within_the_bound() {
    restart_to_active(crash::BEFORE_INTENT, FAST_REQUEST_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_intent_a_restarted_node_has_the_order_active_within_the_bound() {
    restart_to_active(crash::AFTER_INTENT, FAST_REQUEST_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_send_a_restarted_node_has_the_order_active_within_the_bound() {
    restart_to_active(crash::AFTER_SEND, FAST_REQUEST_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_response_a_restarted_node_has_the_order_active_within_the_bound() {
    restart_to_active(crash::AFTER_RESPONSE, FAST_REQUEST_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_confirmed_a_restarted_node_has_the_order_active_within_the_bound() {
    restart_to_active(crash::AFTER_CONFIRMED, FAST_REQUEST_TIMEOUT).await;
}

/// Slow tier: every crash point with the settings as shipped (a 30 s request
/// timeout: the bound is 45 s), the points in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow tier: cargo test -- --ignored"]
async fn with_default_settings_every_crash_point_is_active_within_request_timeout_plus_15_s() {
    let defaults = license_facade::billmanager::ClientConfig::default().request_timeout;
    let mut runs = tokio::task::JoinSet::new();
    for point in crash::ALL {
        runs.spawn(async move { (point, restart_to_active(point, defaults).await) });
    }
    while let Some(done) = runs.join_next().await {
        let (point, took) = done.expect("a crash point run panicked");
        eprintln!("restart to ACTIVE with default settings, {point}: {took:?}");
    }
}
