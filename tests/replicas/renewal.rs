//! The heartbeat's store operations, on both stores: a lease is renewed only by its
//! owner, a renewed lease keeps other workers away past its first end, a worker whose
//! lease was taken over cannot renew it, and the send time of an attempt is stored
//! with the operation's progress.

use std::sync::Arc;
use std::time::Duration;

use license_facade::domain::Phase;
use license_facade::store::{Store, connect};
use time::OffsetDateTime;

use crate::leases::store_order;
use crate::support::TestDb;

async fn check_renewal(store: Arc<dyn Store>) {
    // Arrange: an order claimed by w1 for 10 s.
    let now = OffsetDateTime::now_utc();
    let license = store_order(&*store, "srv-renewal", "192.0.2.20", now).await;
    let lease = Duration::from_secs(10);
    let mut op = store
        .claim_operation("w1", now, lease)
        .await
        .unwrap()
        .expect("w1 claims the order");
    assert_eq!(op.sent_at, None, "nothing sent yet");

    // The send time goes with the INTENT save.
    let sent = now + Duration::from_secs(1);
    op.phase = Phase::Intent;
    op.attempt = 1;
    op.sent_at = Some(sent);
    store
        .save_progress("w1", &op, &license, &[], false, None)
        .await
        .unwrap();
    let stored = store.get_operation(op.id).await.unwrap().unwrap();
    assert_eq!(
        stored.sent_at.map(|t| t.unix_timestamp_nanos() / 1_000),
        Some(sent.unix_timestamp_nanos() / 1_000),
        "the send time is stored"
    );

    // Only the owner renews; a renewal keeps others away past the first end.
    assert!(
        !store
            .renew_lease(op.id, "w2", now + Duration::from_secs(30))
            .await
            .unwrap(),
        "w2 does not hold the lease"
    );
    assert!(
        store
            .renew_lease(op.id, "w1", now + Duration::from_secs(30))
            .await
            .unwrap(),
        "w1 renews its lease"
    );
    let after_first_end = now + Duration::from_secs(20);
    assert!(
        store
            .claim_operation("w2", after_first_end, lease)
            .await
            .unwrap()
            .is_none(),
        "the renewed lease holds past its first end"
    );

    // Act: the lease runs out and w2 takes the operation over.
    let after_renewed_end = now + Duration::from_secs(31);
    let taken = store
        .claim_operation("w2", after_renewed_end, lease)
        .await
        .unwrap();

    // Assert: w2 resumes it with the stored send time; w1 can neither renew nor save.
    let taken = taken.expect("w2 takes the operation over");
    assert_eq!(taken.phase, Phase::Intent);
    assert!(taken.sent_at.is_some(), "the takeover sees the send time");
    assert!(
        !store
            .renew_lease(op.id, "w1", after_renewed_end + lease)
            .await
            .unwrap(),
        "a lease taken over cannot be renewed by its old owner"
    );
    assert!(
        store
            .save_progress("w1", &op, &license, &[], true, None)
            .await
            .is_err(),
        "nor can the old owner save"
    );
}

#[tokio::test]
async fn sqlite_leases_are_renewed_only_by_their_owner_and_the_send_time_is_stored() {
    check_renewal(connect("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn postgres_leases_are_renewed_only_by_their_owner_and_the_send_time_is_stored() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    check_renewal(connect(&db.url).await.unwrap()).await;
}
