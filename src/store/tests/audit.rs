//! The audit log and the spend guard's order count, on every backend.

use std::sync::Arc;
use std::time::Duration;

use super::{T0, create, on_postgres, on_sqlite_file, on_sqlite_memory, pending};
use crate::domain::{AuditEntry, AuditFilter, AuditOutcome, ClientName, LicenseId};
use crate::store::{Store, StoreError};

store_tests!(
    audit_entries_page_newest_first_and_filter_by_license_action_and_outcome,
    orders_since_counts_a_clients_licenses_created_in_the_window,
);

fn entry(license_id: LicenseId, action: &str, outcome: AuditOutcome, at: u64) -> AuditEntry {
    AuditEntry {
        id: 0,
        time: T0 + Duration::from_secs(at),
        client: ClientName::new("acme"),
        action: action.into(),
        license_id,
        server_id: "srv-1".into(),
        request_id: (outcome == AuditOutcome::Accepted).then(|| format!("key-{at}")),
        upstream_id: (outcome != AuditOutcome::Accepted).then_some(u64::from(u32::MAX) + at),
        outcome,
        detail: (outcome == AuditOutcome::Failed).then(|| "refused".to_owned()),
    }
}

async fn audit_entries_page_newest_first_and_filter_by_license_action_and_outcome(
    store: Arc<dyn Store>,
) {
    // Arrange: two licenses, five entries.
    let (a, b) = (LicenseId::generate(), LicenseId::generate());
    let written = [
        entry(a, "ORDER", AuditOutcome::Accepted, 1),
        entry(b, "ORDER", AuditOutcome::Accepted, 2),
        entry(a, "ORDER", AuditOutcome::Succeeded, 3),
        entry(a, "RENEW", AuditOutcome::Accepted, 4),
        entry(a, "RENEW", AuditOutcome::Failed, 5),
    ];
    let mut ids = Vec::new();
    for e in &written {
        ids.push(store.insert_audit(e).await.unwrap());
    }

    // Act: all of `a`'s, two per page.
    let filter = AuditFilter {
        license_id: Some(a),
        ..AuditFilter::default()
    };
    let first = store.list_audit(&filter, 2, None).await.unwrap();
    let second = store
        .list_audit(&filter, 2, first.next_token.as_deref())
        .await
        .unwrap();
    let accepted_renew = store
        .list_audit(
            &AuditFilter {
                license_id: Some(a),
                action: Some("RENEW".into()),
                outcome: Some(AuditOutcome::Accepted),
            },
            10,
            None,
        )
        .await
        .unwrap();
    let everything = store
        .list_audit(&AuditFilter::default(), 10, None)
        .await
        .unwrap();

    // Assert
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let read: Vec<AuditEntry> = first.items.into_iter().chain(second.items).collect();
    let mut expected: Vec<AuditEntry> = written
        .iter()
        .zip(&ids)
        .filter(|(e, _)| e.license_id == a)
        .map(|(e, id)| AuditEntry {
            id: *id,
            ..e.clone()
        })
        .collect();
    expected.reverse();
    assert_eq!(read, expected);
    assert_eq!(second.next_token, None);
    assert_eq!(accepted_renew.items.len(), 1);
    assert_eq!(accepted_renew.items[0].request_id.as_deref(), Some("key-4"));
    assert_eq!(everything.items.len(), 5);
    assert!(matches!(
        store.list_audit(&filter, 2, Some("nope")).await,
        Err(StoreError::BadPageToken)
    ));
}

async fn orders_since_counts_a_clients_licenses_created_in_the_window(store: Arc<dyn Store>) {
    for (server, at) in [("s1", 0), ("s2", 600), ("s3", 1200)] {
        let license = pending("acme", server, T0 + Duration::from_secs(at));
        create(&*store, &license, T0).await;
    }
    create(
        &*store,
        &pending("globex", "s1", T0 + Duration::from_secs(900)),
        T0,
    )
    .await;

    let all = store
        .orders_since(&ClientName::new("acme"), T0)
        .await
        .unwrap();
    let recent = store
        .orders_since(&ClientName::new("acme"), T0 + Duration::from_secs(300))
        .await
        .unwrap();
    let none = store
        .orders_since(&ClientName::new("initech"), T0)
        .await
        .unwrap();

    assert_eq!(all, (3, Some(T0)));
    assert_eq!(recent, (2, Some(T0 + Duration::from_secs(600))));
    assert_eq!(none, (0, None));
}
