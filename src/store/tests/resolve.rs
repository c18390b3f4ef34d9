//! Resolving a license that needs a person, on every backend: one transaction,
//! conditional on the state, and never onto an upstream id another license holds.

use std::sync::Arc;
use std::time::Duration;

use super::{T0, adopted, create, end, on_postgres, on_sqlite_file, on_sqlite_memory, pending};
use crate::domain::{
    AuditEntry, AuditFilter, AuditOutcome, EventKind, License, LicenseState, Operation,
    OperationKind,
};
use crate::store::{Resolution, Resolved, Store};

store_tests!(
    a_resolution_is_stored_once_and_only_while_the_license_needs_a_person,
    concurrent_resolutions_of_one_license_store_one,
    binding_an_upstream_id_another_license_holds_stores_nothing,
);

/// A license of `server_id` that needs a person.
async fn stuck(store: &dyn Store, server_id: &str) -> License {
    let license = pending("acme", server_id, T0);
    create(store, &license, T0).await;
    end(store, &license, LicenseState::NeedsAttention).await
}

/// A RETRY of `license`'s order: PENDING again with a fresh operation.
fn retry(license: &License) -> Resolution {
    let mut after = license.clone();
    after.state = LicenseState::Pending;
    after.last_error = None;
    after.update_time = license.update_time + Duration::from_secs(1);
    Resolution {
        events: EventKind::between(license, &after),
        op: Some(Operation::received(license.id, OperationKind::Order, T0)),
        audit: AuditEntry {
            id: 0,
            time: after.update_time,
            client: after.client.clone(),
            action: "RESOLVE".into(),
            license_id: after.id,
            server_id: after.server_id.to_string(),
            request_id: None,
            upstream_id: None,
            outcome: AuditOutcome::Succeeded,
            detail: Some("RETRY: nothing bought".into()),
            price: None,
            bought: None,
        },
        license: after,
        request: None,
    }
}

async fn a_resolution_is_stored_once_and_only_while_the_license_needs_a_person(
    store: Arc<dyn Store>,
) {
    let license = stuck(&*store, "srv-1").await;
    let events_before = store.license_events(license.id, 100).await.unwrap().len();

    let first = store.resolve_license(&retry(&license)).await.unwrap();
    let second = store.resolve_license(&retry(&license)).await.unwrap();

    let Resolved::Stored(Some(op_id)) = first else {
        panic!("stored with its operation: {first:?}")
    };
    let op = store.get_operation(op_id).await.unwrap().unwrap();
    assert_eq!(op.kind, OperationKind::Order);
    assert!(store.has_open_operation(license.id).await.unwrap());
    let now = store.get_license(license.id).await.unwrap().unwrap();
    assert_eq!(now.state, LicenseState::Pending);
    assert!(matches!(second, Resolved::NotNeedsAttention(l) if l.state == LicenseState::Pending));
    let events = store.license_events(license.id, 100).await.unwrap();
    assert_eq!(events.len(), events_before + 1, "one STATE_CHANGED");
    assert_eq!(events[0].kind, EventKind::StateChanged);
    let audit = store
        .list_audit(
            &AuditFilter {
                license_id: Some(license.id),
                action: Some("RESOLVE".into()),
                ..AuditFilter::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 1);
}

async fn concurrent_resolutions_of_one_license_store_one(store: Arc<dyn Store>) {
    let license = stuck(&*store, "srv-2").await;

    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let (store, resolution) = (store.clone(), retry(&license));
            tokio::spawn(async move { store.resolve_license(&resolution).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for attempt in attempts {
        if matches!(attempt.await.unwrap(), Resolved::Stored(_)) {
            stored += 1;
        }
    }

    assert_eq!(stored, 1);
}

async fn binding_an_upstream_id_another_license_holds_stores_nothing(store: Arc<dyn Store>) {
    let holder = adopted("acme", "srv-held", 4242);
    store.insert_adopted(&holder).await.unwrap();
    let license = stuck(&*store, "srv-3").await;
    let mut bind = retry(&license);
    bind.op = None;
    bind.license.state = LicenseState::Active;
    bind.license.upstream_id = Some(4242);

    let refused = store.resolve_license(&bind).await.unwrap();
    bind.license.upstream_id = Some(4243);
    let bound = store.resolve_license(&bind).await.unwrap();

    assert!(matches!(refused, Resolved::UpstreamBound(l) if l.id == holder.id));
    assert_eq!(bound, Resolved::Stored(None));
    let now = store.get_license(license.id).await.unwrap().unwrap();
    assert_eq!(
        (now.state, now.upstream_id),
        (LicenseState::Active, Some(4243))
    );
}
