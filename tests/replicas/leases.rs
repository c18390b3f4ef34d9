//! The store leases replicas share, on both stores: the named lease that makes the
//! periodic reconciliation run once per period, and releasing a stopping worker's
//! operation leases so another replica claims them at once.

use std::sync::Arc;
use std::time::Duration;

use license_facade::domain::{
    ClientName, License, LicenseId, LicenseIp, NewLicense, Operation, OperationKind, Period,
    ServerId,
};
use license_facade::store::{Store, connect};
use time::OffsetDateTime;

use crate::support::TestDb;

async fn check_named_lease(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let ttl = Duration::from_secs(60);
    assert!(
        store
            .try_take_lease("reconcile", "a", now, ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_take_lease("reconcile", "b", now, ttl)
            .await
            .unwrap(),
        "a held lease is not taken"
    );
    assert!(
        store.try_take_lease("other", "b", now, ttl).await.unwrap(),
        "leases are per name"
    );
    let later = now + ttl + Duration::from_millis(1);
    assert!(
        store
            .try_take_lease("reconcile", "b", later, ttl)
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !store
            .try_take_lease("reconcile", "a", later, ttl)
            .await
            .unwrap()
    );
}

/// Stores an order for `server` on `ip`, due at `now`; returns its license.
pub async fn store_order(
    store: &dyn Store,
    server: &str,
    ip: &str,
    now: OffsetDateTime,
) -> License {
    let license = NewLicense {
        client: ClientName::new("lease-test".to_owned()),
        server_id: ServerId::parse(server, "serverId").unwrap(),
        ip: LicenseIp::parse(ip, "ip").unwrap(),
        hostname: None,
        panel: "ISPmanager 6 Pro".into(),
        tariff_id: 3651,
        nodes: None,
        period: Period::Month,
        auto_renew: true,
    }
    .into_pending(LicenseId::generate(), now);
    let op = Operation::received(license.id, OperationKind::Order, now);
    store
        .insert_order(&license, &op, None, &[], None)
        .await
        .unwrap();
    license
}

async fn check_release(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    store_order(&*store, "srv-lease", "192.0.2.10", now).await;
    let lease = Duration::from_secs(60);
    let claimed = store.claim_operation("w1", now, lease).await.unwrap();
    assert!(claimed.is_some(), "w1 claims the order");
    assert!(
        store
            .claim_operation("w2", now, lease)
            .await
            .unwrap()
            .is_none(),
        "w1's lease holds"
    );
    assert_eq!(store.release_leases("w2").await.unwrap(), 0);
    assert_eq!(store.release_leases("w1").await.unwrap(), 1);
    assert!(
        store
            .claim_operation("w2", now, lease)
            .await
            .unwrap()
            .is_some(),
        "released at once, not when the lease runs out"
    );
}

#[tokio::test]
async fn sqlite_named_leases_and_released_operation_leases() {
    check_named_lease(connect("sqlite::memory:").await.unwrap()).await;
    check_release(connect("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn postgres_named_leases_and_released_operation_leases() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = connect(&db.url).await.unwrap();
    check_named_lease(store.clone()).await;
    check_release(store).await;
}
