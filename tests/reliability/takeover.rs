//! A single node on SQLite knows it is alone: after a crash, the restarted process
//! takes over the dead one's work at once (one request timeout later), not when its
//! lease runs out, and still buys nothing twice.

use std::time::{Duration, Instant};

use crate::support::{InProcess, Order, Timings, sandbox_config, start_sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_takes_over_an_order_killed_mid_call_long_before_its_lease_runs_out() {
    // Arrange: a long lease, and an upstream slow enough that the order call is still
    // under way when the application is killed.
    let lease = Duration::from_secs(30);
    let timings = Timings {
        lease,
        ..Timings::default()
    };
    let sandbox = start_sandbox(license_facade::sandbox::SandboxConfig {
        latency: Duration::from_millis(200),
        ..sandbox_config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let app = InProcess::start(&db, &sandbox.url, timings).await;
    let order = Order::new(42);
    let id = app.api.order(&order).await.expect("accepted");
    while sandbox.handle.call_count("soft.order.param") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Act: killed with the order call in flight (and its lease held), restarted.
    app.crash().await;
    let restarted = Instant::now();
    let app = InProcess::start(&db, &sandbox.url, timings).await;

    // Assert: ACTIVE well within the lease the dead process held, bought once.
    let deadline = restarted + lease / 2;
    loop {
        let license = app.api.license(&id).await;
        if license["state"] == "ACTIVE" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not taken over within {:?}: {license}",
            lease / 2
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let upstream: Vec<_> = sandbox
        .handle
        .licenses()
        .into_iter()
        .filter(|l| l.ip == order.ip)
        .collect();
    assert_eq!(upstream.len(), 1, "bought once: {upstream:?}");
    eprintln!("restart to ACTIVE: {:?}", restarted.elapsed());
    app.crash().await;
}
