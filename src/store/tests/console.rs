//! What the console needs of the store, on every backend: revoked sessions, and
//! licenses found by their downstream item id.

use std::sync::Arc;
use std::time::Duration;

use super::{T0, create, on_postgres, on_sqlite_file, on_sqlite_memory, pending};
use crate::store::{LicenseFilter, Store};

store_tests!(
    a_revoked_session_stays_revoked_until_it_expires,
    listings_filter_by_item_id,
);

async fn a_revoked_session_stays_revoked_until_it_expires(store: Arc<dyn Store>) {
    let hour = Duration::from_secs(3600);

    store.revoke_session("a", T0 + hour, T0).await.unwrap();
    store.revoke_session("a", T0 + hour, T0).await.unwrap();
    store
        .revoke_session("b", T0 + 3 * hour, T0 + hour)
        .await
        .unwrap();

    assert!(store.session_revoked("b").await.unwrap());
    assert!(
        !store.session_revoked("a").await.unwrap(),
        "expired by the second revocation, so dropped"
    );
    assert!(!store.session_revoked("c").await.unwrap(), "never revoked");
    store
        .revoke_session("c", T0 + 3 * hour, T0 + hour)
        .await
        .unwrap();
    assert!(store.session_revoked("b").await.unwrap(), "b is still live");
    assert!(store.session_revoked("c").await.unwrap());
}

async fn listings_filter_by_item_id(store: Arc<dyn Store>) {
    let a = pending("acme", "srv-1", T0);
    let b = pending("globex", "srv-2", T0);
    for license in [&a, &b] {
        create(&*store, license, T0).await;
    }
    let items: std::collections::HashMap<_, _> = store
        .item_ids(&[a.id, b.id])
        .await
        .unwrap()
        .into_iter()
        .collect();
    let list = async |filter: LicenseFilter| {
        let page = store.list_licenses(&filter, 10, None).await.unwrap();
        page.items.into_iter().map(|l| l.id).collect::<Vec<_>>()
    };

    let by_item = list(LicenseFilter {
        item_id: Some(items[&b.id]),
        ..Default::default()
    })
    .await;
    let other_client = list(LicenseFilter {
        item_id: Some(items[&b.id]),
        client: Some(crate::domain::ClientName::new("acme")),
        ..Default::default()
    })
    .await;
    let none = list(LicenseFilter {
        item_id: Some(u64::MAX),
        ..Default::default()
    })
    .await;

    assert_eq!(by_item, [b.id]);
    assert_eq!(other_client, [], "with the other filters");
    assert_eq!(none, []);
}
