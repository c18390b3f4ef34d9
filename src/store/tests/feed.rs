//! The change feed's retention and positions, on every backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use super::{
    T0, create, in_postgres_database, on_postgres, on_sqlite_file, on_sqlite_memory, pending,
};
use crate::domain::{ClientName, Event, EventKind, License};
use crate::store::{Store, codec, connect};

store_tests!(
    purging_deletes_old_events_and_raises_the_horizon_to_the_last_deleted_id,
    the_latest_event_id_follows_commits,
    concurrent_readers_see_every_event_of_concurrent_writers_once_in_one_order,
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
    store
        .purge_events(T0 + Duration::from_secs(500))
        .await
        .unwrap();
    assert_eq!(
        store.latest_event_id().await.unwrap(),
        before[1].id,
        "the feed stands where it was when every event is gone"
    );
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

/// Writers commit events in parallel (on PostgreSQL each on its own connection, with
/// no lock between them) while readers page through the feed in small pages: every
/// reader sees every event exactly once, in the one order the whole feed has at the
/// end, and never finds nothing after its position while the latest position is
/// beyond it (the change feed waits on that position before reading).
async fn concurrent_readers_see_every_event_of_concurrent_writers_once_in_one_order(
    store: Arc<dyn Store>,
) {
    const WRITERS: usize = 8;
    const ORDERS: usize = 20;
    const READERS: usize = 3;
    let writers_done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let store = Arc::clone(&store);
            let writers_done = Arc::clone(&writers_done);
            tokio::spawn(async move {
                let mut seen: Vec<(i64, crate::domain::LicenseId)> = Vec::new();
                let mut last = 0;
                loop {
                    // Once the flag is set every event is committed, so an empty read
                    // after it is the end.
                    let finished = writers_done.load(Ordering::SeqCst);
                    let latest = store.latest_event_id().await.unwrap();
                    let events = store.events_after(last, 5, None).await.unwrap();
                    match events.last() {
                        Some(event) => last = event.id,
                        None => {
                            assert!(
                                latest <= last,
                                "the latest position is {latest}, yet nothing follows {last}"
                            );
                            if finished {
                                break seen;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                    seen.extend(events.iter().map(|e| (e.id, e.license.id)));
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..ORDERS {
                    let license = pending("acme", &format!("srv-{w}-{i}"), T0);
                    create(&*store, &license, T0).await;
                }
            })
        })
        .collect();

    for writer in writers {
        writer.await.expect("the writer finishes");
    }
    writers_done.store(true, Ordering::SeqCst);
    let all = store.events_after(0, 1000, None).await.unwrap();
    let all: Vec<_> = all.iter().map(|e| (e.id, e.license.id)).collect();
    assert_eq!(all.len(), WRITERS * ORDERS);
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "positions increase: {all:?}"
    );
    for reader in readers {
        let seen = reader.await.expect("the reader finishes");
        assert_eq!(seen, all, "a reader skipped, repeated or reordered events");
    }
}

/// Records `kind` for `license` as a writer does: an event row without a position.
async fn insert_event_row(
    executor: impl sqlx::PgExecutor<'_>,
    license: &License,
    kind: EventKind,
    time: time::OffsetDateTime,
) {
    sqlx::query(
        "INSERT INTO events (license_id, client, kind, license, time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(license.id.to_string())
    .bind(license.client.as_str())
    .bind(kind.as_str())
    .bind(codec::license_to_json(license))
    .bind(codec::to_micros(time))
    .execute(executor)
    .await
    .expect("the event is inserted");
}

fn kinds(events: &[Event]) -> Vec<(EventKind, crate::domain::LicenseId)> {
    events.iter().map(|e| (e.kind, e.license.id)).collect()
}

/// The case an id-ordered feed gets wrong: an event inserted first (lower id) but
/// committed after a later one was read. It gets a position after the one already
/// read, so a reader resuming there still receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_an_event_committed_after_a_later_one_was_read_is_not_skipped() {
    in_postgres_database(async |url| {
        let store = connect(&url).await.expect("the store opens");
        let pool = PgPool::connect(&url).await.expect("a pool opens");
        let (a, b) = (pending("acme", "srv-a", T0), pending("acme", "srv-b", T0));
        create(&*store, &a, T0).await;
        create(&*store, &b, T0).await;
        let created = store.events_after(0, 100, None).await.unwrap();

        let mut slow = pool.begin().await.unwrap();
        insert_event_row(&mut *slow, &a, EventKind::StateChanged, T0).await;
        insert_event_row(&pool, &b, EventKind::StateChanged, T0).await;
        let read = store.events_after(created[1].id, 100, None).await.unwrap();
        let latest_then = store.latest_event_id().await.unwrap();
        slow.commit().await.unwrap();
        let resumed = store.events_after(read[0].id, 100, None).await.unwrap();

        assert_eq!(
            kinds(&created),
            [(EventKind::Created, a.id), (EventKind::Created, b.id)]
        );
        assert_eq!(kinds(&read), [(EventKind::StateChanged, b.id)]);
        assert_eq!(
            latest_then, read[0].id,
            "the uncommitted event has no position"
        );
        assert_eq!(kinds(&resumed), [(EventKind::StateChanged, a.id)]);
        assert!(resumed[0].id > read[0].id);
        let all = store.events_after(0, 100, None).await.unwrap();
        assert_eq!(all, [created, read, resumed].concat());
    })
    .await;
}

/// A replica that committed events and died before anything read them: the sweep
/// (`Store::sequence_events`) of a surviving one numbers them, in commit order, above
/// positions already handed out, even after retention deleted every numbered event;
/// retention never deletes an event without a position.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_events_of_a_dead_writer_are_numbered_by_the_sweep() {
    in_postgres_database(async |url| {
        let survivor = connect(&url).await.expect("the store opens");
        let pool = PgPool::connect(&url).await.expect("a pool opens");
        let unnumbered = async || -> i64 {
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE seq IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        let old = pending("acme", "srv-old", T0);
        create(&*survivor, &old, T0).await;
        let first = survivor.events_after(0, 100, None).await.unwrap();
        survivor
            .purge_events(T0 + Duration::from_secs(1))
            .await
            .unwrap();

        let dead = connect(&url).await.expect("the other replica opens");
        let (a, b) = (pending("acme", "srv-a", T0), pending("globex", "srv-b", T0));
        create(&*dead, &a, T0).await;
        create(&*dead, &b, T0).await;
        insert_event_row(&pool, &a, EventKind::StateChanged, T0).await;
        dead.close().await;
        drop(dead);
        let left_behind = unnumbered().await;
        let purged_meanwhile = survivor
            .purge_events(T0 + Duration::from_secs(1))
            .await
            .unwrap();
        let swept = survivor.sequence_events().await.unwrap();
        let swept_again = survivor.sequence_events().await.unwrap();

        assert_eq!(kinds(&first), [(EventKind::Created, old.id)]);
        assert_eq!(left_behind, 3, "writers leave numbering to the sequencer");
        assert_eq!(purged_meanwhile, 0, "events without a position are kept");
        assert_eq!(swept, 3);
        assert_eq!(swept_again, 0);
        assert_eq!(unnumbered().await, 0);
        let feed = survivor.events_after(0, 100, None).await.unwrap();
        assert_eq!(
            kinds(&feed),
            [
                (EventKind::Created, a.id),
                (EventKind::Created, b.id),
                (EventKind::StateChanged, a.id),
            ]
        );
        let positions: Vec<i64> = feed.iter().map(|e| e.id).collect();
        let horizon = first[0].id;
        assert_eq!(survivor.events_horizon().await.unwrap(), horizon);
        assert_eq!(positions, [horizon + 1, horizon + 2, horizon + 3]);
        assert_eq!(survivor.latest_event_id().await.unwrap(), horizon + 3);
        let of_globex = survivor
            .events_after(0, 100, Some(&ClientName::new("globex")))
            .await
            .unwrap();
        assert_eq!(kinds(&of_globex), [(EventKind::Created, b.id)]);
        let history = survivor.license_events(a.id, 10).await.unwrap();
        assert_eq!(
            kinds(&history),
            [(EventKind::StateChanged, a.id), (EventKind::Created, a.id)]
        );
    })
    .await;
}

/// Concurrent readers of one process share sequencing passes, and passes of several
/// replicas serialise on the database lock: many callers at once all see the events
/// committed before they asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_concurrent_sweeps_of_two_replicas_number_each_event_once() {
    in_postgres_database(async |url| {
        let one = connect(&url).await.expect("the store opens");
        let two = connect(&url).await.expect("the other replica opens");
        let licenses: Vec<_> = (0..40)
            .map(|i| pending("acme", &format!("srv-{i}"), T0))
            .collect();
        let sweeping = Arc::new(AtomicBool::new(true));
        let sweepers: Vec<_> = [&one, &two, &one, &two]
            .into_iter()
            .map(|store| {
                let store = Arc::clone(store);
                let sweeping = Arc::clone(&sweeping);
                tokio::spawn(async move {
                    let mut numbered = 0;
                    while sweeping.load(Ordering::SeqCst) {
                        numbered += store.sequence_events().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    numbered
                })
            })
            .collect();
        for (i, license) in licenses.iter().enumerate() {
            let store = if i % 2 == 0 { &one } else { &two };
            create(&**store, license, T0).await;
        }
        sweeping.store(false, Ordering::SeqCst);
        let mut numbered = 0;
        for sweeper in sweepers {
            numbered += sweeper.await.expect("the sweeper finishes");
        }
        numbered += one.sequence_events().await.unwrap();

        let feed = two.events_after(0, 100, None).await.unwrap();
        assert_eq!(numbered, 40, "each event is numbered once");
        let positions: Vec<i64> = feed.iter().map(|e| e.id).collect();
        assert_eq!(positions, (1..=40).collect::<Vec<i64>>());
        let mut per_license: HashMap<_, usize> = HashMap::new();
        for event in &feed {
            *per_license.entry(event.license.id).or_default() += 1;
        }
        assert!(per_license.values().all(|&n| n == 1), "{per_license:?}");
        assert_eq!(per_license.len(), 40);
    })
    .await;
}

/// A client's feed read seeks the index instead of scanning the history: without it
/// 500 read-only streams took 1.5 cores at 4,766 events.
#[tokio::test]
async fn a_clients_feed_read_uses_the_client_index_on_sqlite() {
    use sqlx::Row as _;
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .unwrap();

    let plan = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {}",
        crate::store::sql::events::EVENTS_AFTER_OF_CLIENT
    )))
    .bind("acme")
    .bind(0_i64)
    .bind(500_i64)
    .fetch_all(&pool)
    .await
    .unwrap();

    let detail: Vec<String> = plan.iter().map(|r| r.get::<String, _>("detail")).collect();
    assert!(
        detail
            .iter()
            .any(|d| d.contains("USING INDEX events_client")),
        "{detail:?}"
    );
}
