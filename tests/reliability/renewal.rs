//! A step longer than the lease keeps its lease: the heartbeat renews it while the
//! upstream call runs, so another worker on the same database cannot take the
//! operation over mid-call, and the order is bought once.

use std::time::Duration;

use license_facade::store::connect;
use time::OffsetDateTime;

use crate::support::{InProcess, Order, Timings, assert_agree, sandbox_config, start_sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_the_upstream_call_is_renewed_and_never_taken_over_mid_call() {
    // Arrange: every upstream call takes 1 s, the lease is 500 ms.
    let sandbox = start_sandbox(license_facade::sandbox::SandboxConfig {
        latency: Duration::from_secs(1),
        ..sandbox_config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let lease = Duration::from_millis(500);
    let timings = Timings {
        request_timeout: Duration::from_secs(5),
        lease,
        ..Timings::default()
    };
    let app = InProcess::start(&db, &sandbox.url, timings).await;
    // Another worker on the same file.
    let intruder = connect(&format!("sqlite:{}", db.display())).await.unwrap();
    let order = Order::new(21);

    // Act: order; while the order (and then the activation read) is under way, the
    // other worker keeps trying to claim it.
    let id = app.api.order(&order).await.expect("accepted");
    let mut attempts = 0;
    let license = loop {
        let license = app.api.license(&id).await;
        if license["state"] == "ACTIVE" {
            break license;
        }
        let stolen = intruder
            .claim_operation("intruder", OffsetDateTime::now_utc(), lease)
            .await
            .unwrap();
        attempts += 1;

        // Assert (throughout): never claimable while the step runs.
        assert!(
            stolen.is_none(),
            "claimed by another worker after {attempts} attempts, mid-step: {stolen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        attempts >= 20,
        "the step outlasted the lease several times over ({attempts} claims tried)"
    );
    assert_agree(&sandbox.handle, &order, &license);
    assert_eq!(sandbox.orders_sent(), 1, "one order request");
    intruder.close().await;
    app.crash().await;
}
