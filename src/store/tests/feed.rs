//! The change feed's retention and positions, on every backend.

use std::sync::Arc;
use std::time::Duration;

use super::{T0, create, on_postgres, on_sqlite_file, on_sqlite_memory, pending};
use crate::domain::ClientName;
use crate::store::Store;

store_tests!(
    purging_deletes_old_events_and_raises_the_horizon_to_the_last_deleted_id,
    the_latest_event_id_follows_commits,
);

async fn purging_deletes_old_events_and_raises_the_horizon_to_the_last_deleted_id(
    store: Arc<dyn Store>,
) {
    let old = pending("acme", "srv-old", T0);
    let new = pending("acme", "srv-new", T0 + Duration::from_secs(100));
    create(&*store, &old, T0).await;
    create(&*store, &new, T0).await;
    let before = store.events_after(0, 100, None).await.unwrap();

    let purged = store
        .purge_events(T0 + Duration::from_secs(50))
        .await
        .unwrap();
    let again = store
        .purge_events(T0 + Duration::from_secs(50))
        .await
        .unwrap();

    assert_eq!(before.len(), 2);
    assert_eq!(purged, 1);
    assert_eq!(again, 0);
    assert_eq!(store.events_horizon().await.unwrap(), before[0].id);
    let left = store.events_after(0, 100, None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].license.id, new.id);
    let acme = store
        .events_after(0, 100, Some(&ClientName::new("acme")))
        .await
        .unwrap();
    assert_eq!(acme.len(), 1);
}

async fn the_latest_event_id_follows_commits(store: Arc<dyn Store>) {
    let empty = store.latest_event_id().await.unwrap();
    create(&*store, &pending("acme", "srv-1", T0), T0).await;
    let one = store.latest_event_id().await.unwrap();
    create(&*store, &pending("globex", "srv-2", T0), T0).await;
    let two = store.latest_event_id().await.unwrap();

    assert_eq!(empty, 0);
    assert!(one > 0);
    assert!(two > one);
    assert_eq!(store.events_horizon().await.unwrap(), 0);
}
