//! One suite for every [`Store`]: each body below runs against a fresh SQLite file, an
//! in-memory SQLite database and, when `LICENSE_FACADE_TEST_POSTGRES_URL` names a
//! server, a fresh PostgreSQL database created for the test and dropped after it
//! (without one the PostgreSQL variants are skipped, or with `CI=true` fail).
//!
//! Run only the PostgreSQL variants with `cargo test --lib store::tests -- --skip sqlite`.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::Semaphore;

use super::{Inserted, LicenseFilter, PgStore, Store, StoreError, connect};
use crate::domain::{
    ClientName, EventKind, Hostname, License, LicenseId, LicenseIp, LicenseState, NewLicense,
    Operation, OperationKind, Period, Phase, ServerId, UpstreamFailure,
};

/// The PostgreSQL server to test against (any database on it; the tests create their
/// own).
const POSTGRES_URL_VAR: &str = "LICENSE_FACADE_TEST_POSTGRES_URL";

/// PostgreSQL tests running at once: each may open a pool of 16 connections, and the
/// server's default limit is 100.
static POSTGRES_SLOTS: Semaphore = Semaphore::const_new(4);

/// A moment every test starts at; whole seconds, so values survive the store's
/// microsecond precision unchanged.
pub(crate) const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

const LEASE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------

/// Generates, for each body, a module with one test per backend.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::on_sqlite_file(super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_in_memory() {
                super::on_sqlite_memory(super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::on_postgres(super::$name).await;
            }
        }
    )*};
}

store_tests!(
    an_inserted_order_reads_back_unchanged,
    a_second_order_for_a_live_server_returns_the_existing_license_and_stores_nothing,
    a_server_whose_license_failed_can_be_ordered_again,
    the_same_server_id_under_another_client_is_independent,
    concurrent_orders_for_one_server_create_exactly_one_license,
    claims_hand_out_only_due_operations_in_due_order,
    an_operation_whose_lease_expired_is_handed_out_again,
    an_order_stored_taken_is_at_intent_under_its_lease_until_it_runs_out,
    concurrent_claimers_never_get_the_same_operation,
    progress_under_a_lost_lease_is_refused_and_changes_nothing,
    released_progress_is_saved_and_claimable_again,
    listings_filter_by_every_field,
    listings_page_newest_first_each_license_once,
    a_page_token_the_store_did_not_issue_is_refused,
    server_license_prefers_the_live_license_over_a_newer_failed_one,
    next_due_is_the_earliest_moment_an_open_operation_can_be_claimed,
    operations_are_not_queued_while_one_is_open,
    no_operation_is_queued_for_a_license_that_ended_after_it_was_read,
    concurrent_requests_for_one_license_queue_operations_once,
    only_the_oldest_open_operation_of_a_license_is_claimed,
    events_record_each_change_with_the_license_after_it,
    a_reader_resuming_after_the_last_event_id_misses_nothing,
    an_adopted_license_is_stored_with_an_event_and_no_operation,
    adopting_a_known_upstream_id_or_a_live_server_stores_nothing,
    concurrent_adoptions_of_one_upstream_license_store_it_once,
    licenses_with_an_upstream_id_are_listed_in_id_order_in_any_state,
    only_a_newer_drift_report_replaces_the_stored_one,
    concurrent_writes_commit_or_fail_each_on_its_own,
    licenses_get_increasing_item_ids_that_find_them_again,
);

/// A SQLite file as `serve` opens it: with the license cache (the in-memory variant
/// runs without, so both read paths are covered).
async fn on_sqlite_file<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let serving = super::connect_serving(&url)
        .await
        .expect("the SQLite store opens");
    body(serving.store).await;
}

async fn on_sqlite_memory<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = connect("sqlite::memory:")
        .await
        .expect("the in-memory SQLite store opens");
    body(store).await;
}

async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    in_postgres_database(async |url| {
        let store = connect(&url).await.expect("the PostgreSQL store opens");
        body(store).await;
    })
    .await;
}

/// Runs `test` with the URL of a fresh, empty PostgreSQL database, dropped afterwards
/// whether the test passed or panicked; skips when no server is configured (with
/// `CI=true`, fails).
async fn in_postgres_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(server_url) = std::env::var(POSTGRES_URL_VAR) else {
        crate::test_skip::skip_unless_ci(&format!(
            "{POSTGRES_URL_VAR} is not set (no PostgreSQL server)"
        ));
        return;
    };
    let _slot = POSTGRES_SLOTS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let name = format!("lf_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = PgConnection::connect(&server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("the test database is created");

    let outcome = AssertUnwindSafe(test(with_database(&server_url, &name)))
        .catch_unwind()
        .await;

    // FORCE ends the sessions the test left open (its pools).
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.expect("the test database is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_starting_together_all_migrate() {
    in_postgres_database(async |url| {
        let replicas: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PgStore::connect(&url).await })
            })
            .collect();

        for replica in replicas {
            let store = replica
                .await
                .expect("the replica starts")
                .unwrap_or_else(|e| panic!("a replica failed to start: {e:#}"));
            store.ping().await.expect("the replica answers");
        }
        let again = PgStore::connect(&url).await;
        assert!(again.is_ok(), "a restart finds nothing to migrate");
    })
    .await;
}

/// `url` with its database (path) replaced by `database`, keeping any parameters.
fn with_database(url: &str, database: &str) -> String {
    let (base, params) = match url.split_once('?') {
        Some((base, params)) => (base, format!("?{params}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{database}{params}", &base[..path])
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
}

#[tokio::test]
async fn connect_refuses_a_url_of_another_database() {
    let refused = connect("mysql://root@127.0.0.1/licenses").await;

    assert!(refused.is_err());
}

// ---------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------

fn client(name: &str) -> ClientName {
    ClientName::new(name)
}

fn server(id: &str) -> ServerId {
    ServerId::parse(id, "serverId").expect("a valid server id")
}

/// A PENDING license of `client` for `server`, created at `at`.
pub(crate) fn pending(client_name: &str, server_id: &str, at: OffsetDateTime) -> License {
    pending_with(LicenseId::generate(), client_name, server_id, at)
}

fn pending_with(id: LicenseId, client_name: &str, server_id: &str, at: OffsetDateTime) -> License {
    NewLicense {
        client: client(client_name),
        server_id: server(server_id),
        ip: fixture_ip(client_name, server_id),
        hostname: None,
        panel: "ispmanager6-lite".into(),
        tariff_id: 3651,
        nodes: None,
        period: Period::Month,
        auto_renew: true,
    }
    .into_pending(id, at)
}

/// The address of `client`'s `server` in these tests: one per server, as the store
/// refuses a second live license on an IP.
pub(super) fn fixture_ip(client_name: &str, server_id: &str) -> LicenseIp {
    // FNV-1a: stable across runs and platforms.
    let hash = format!("{client_name}/{server_id}")
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    LicenseIp::parse(
        &format!("2001:db8::{:x}:{:x}", hash >> 16, hash & 0xffff),
        "ip",
    )
    .expect("a valid ip")
}

pub(super) fn order_op(license: &License, run_after: OffsetDateTime) -> Operation {
    Operation::received(license.id, OperationKind::Order, run_after)
}

/// Stores `license` with an order operation due at `run_after`; it must be new.
async fn create(store: &dyn Store, license: &License, run_after: OffsetDateTime) {
    match store
        .insert_order(license, &order_op(license, run_after), None, &[], None)
        .await
        .expect("the order is stored")
    {
        Inserted::Created(stored) => assert_eq!(&stored, license),
        other => panic!("expected a new license, found {other:?}"),
    }
}

/// Claims, as `owner` at `now`, the open operation of `license_id`, releasing any
/// other operation claimed on the way.
pub(super) async fn claim_op_of(
    store: &dyn Store,
    owner: &str,
    license_id: LicenseId,
    now: OffsetDateTime,
) -> Operation {
    let mut others = Vec::new();
    let found = loop {
        let op = store
            .claim_operation(owner, now, LEASE)
            .await
            .expect("claiming works")
            .unwrap_or_else(|| panic!("license {license_id} has no due operation"));
        if op.license_id == license_id {
            break op;
        }
        others.push(op);
    };
    for op in others {
        let license = store.get_license(op.license_id).await.unwrap().unwrap();
        store
            .save_progress(owner, &op, &license, &[], true, None)
            .await
            .unwrap();
    }
    found
}

/// Ends `license`'s operation, leaving the license in `state`; returns it as stored.
async fn end(store: &dyn Store, license: &License, state: LicenseState) -> License {
    let mut op = claim_op_of(store, "ender", license.id, far_future()).await;
    op.phase = if state.is_live() {
        Phase::Done
    } else {
        Phase::Failed
    };
    let mut ended = license.clone();
    ended.state = state;
    ended.update_time = license.update_time + Duration::from_secs(1);
    if !state.is_live() {
        ended.last_error = Some(UpstreamFailure {
            code: "UPSTREAM_REFUSED".into(),
            message: "not enough money".into(),
        });
    }
    store
        .save_progress("ender", &op, &ended, &[EventKind::StateChanged], true, None)
        .await
        .expect("progress is saved");
    ended
}

fn far_future() -> OffsetDateTime {
    datetime!(2100-01-01 00:00 UTC)
}

/// Claims everything claimable at `now` (each for a long lease) and returns it.
async fn claim_all(store: &dyn Store, now: OffsetDateTime) -> Vec<Operation> {
    let mut ops = Vec::new();
    while let Some(op) = store
        .claim_operation("counter", now, Duration::from_secs(3600))
        .await
        .expect("claiming works")
    {
        ops.push(op);
    }
    ops
}

// ---------------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------------

async fn licenses_get_increasing_item_ids_that_find_them_again(store: Arc<dyn Store>) {
    let licenses: Vec<License> = ["srv-1", "srv-2", "srv-3"]
        .iter()
        .map(|server| pending("acme", server, T0))
        .collect();
    for license in &licenses {
        create(&*store, license, T0).await;
    }
    let mut ids: Vec<LicenseId> = licenses.iter().map(|l| l.id).collect();
    ids.push(LicenseId::generate());

    let items: std::collections::HashMap<LicenseId, u64> =
        store.item_ids(&ids).await.unwrap().into_iter().collect();

    assert_eq!(items.len(), 3, "an id of no license has no item");
    let numbers: Vec<u64> = licenses.iter().map(|l| items[&l.id]).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    for license in &licenses {
        let item = items[&license.id];
        assert_eq!(store.license_by_item(item).await.unwrap(), Some(license.id));
    }
    assert_eq!(store.license_by_item(u64::MAX).await.unwrap(), None);
    assert_eq!(store.item_ids(&[]).await.unwrap(), vec![]);
    end(&*store, &licenses[0], LicenseState::Cancelled).await;
    let again: Vec<(LicenseId, u64)> = store.item_ids(&ids[..1]).await.unwrap();
    assert_eq!(
        again,
        vec![(licenses[0].id, numbers[0])],
        "kept across changes"
    );
}

async fn an_inserted_order_reads_back_unchanged(store: Arc<dyn Store>) {
    let mut license = pending("acme", "srv-1", T0);
    license.hostname = Hostname::parse("node1.example.com", "hostname").unwrap();
    license.nodes = Some(3);
    license.period = Period::Trial;
    license.auto_renew = false;
    license.tariff_id = u32::MAX;

    create(&*store, &license, T0).await;

    store.ping().await.expect("the store answers");
    assert_eq!(
        store.get_license(license.id).await.unwrap(),
        Some(license.clone())
    );
    assert_eq!(
        store.get_license(LicenseId::generate()).await.unwrap(),
        None
    );
    let op = claim_op_of(&*store, "w", license.id, T0).await;
    assert_eq!(op.kind, OperationKind::Order);
    assert_eq!(op.phase, Phase::Received);
    assert_eq!((op.attempt, op.checks, op.failures), (0, 0, 0));
    assert_eq!(op.run_after, T0);
    assert_eq!(op.last_error, None);
}

async fn a_second_order_for_a_live_server_returns_the_existing_license_and_stores_nothing(
    store: Arc<dyn Store>,
) {
    let first = pending("acme", "srv-1", T0);
    create(&*store, &first, T0).await;
    let second = pending("acme", "srv-1", T0 + Duration::from_secs(5));

    let inserted = store
        .insert_order(&second, &order_op(&second, T0), None, &[], None)
        .await
        .unwrap();

    assert_eq!(inserted, Inserted::Existing(first.clone()));
    assert_eq!(store.get_license(second.id).await.unwrap(), None);
    let ops = claim_all(&*store, far_future()).await;
    assert_eq!(ops.len(), 1, "one operation row: {ops:?}");
    assert_eq!(ops[0].license_id, first.id);
}

async fn a_server_whose_license_failed_can_be_ordered_again(store: Arc<dyn Store>) {
    let first = pending("acme", "srv-1", T0);
    create(&*store, &first, T0).await;
    let failed = end(&*store, &first, LicenseState::Failed).await;
    let second = pending("acme", "srv-1", T0 + Duration::from_secs(60));

    let inserted = store
        .insert_order(&second, &order_op(&second, T0), None, &[], None)
        .await
        .unwrap();

    assert_eq!(inserted, Inserted::Created(second.clone()));
    assert_eq!(store.get_license(first.id).await.unwrap(), Some(failed));
    let again = pending("acme", "srv-1", T0 + Duration::from_secs(61));
    assert_eq!(
        store
            .insert_order(&again, &order_op(&again, T0), None, &[], None)
            .await
            .unwrap(),
        Inserted::Existing(second)
    );
}

async fn the_same_server_id_under_another_client_is_independent(store: Arc<dyn Store>) {
    let mine = pending("acme", "srv-1", T0);
    let theirs = pending("globex", "srv-1", T0);

    create(&*store, &mine, T0).await;
    create(&*store, &theirs, T0).await;

    let server_id = server("srv-1");
    assert_eq!(
        store
            .server_license(Some(&client("acme")), &server_id)
            .await
            .unwrap(),
        Some(mine.clone())
    );
    assert_eq!(
        store
            .server_license(Some(&client("globex")), &server_id)
            .await
            .unwrap(),
        Some(theirs.clone())
    );
    assert_eq!(
        store
            .server_license(Some(&client("initech")), &server_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(claim_all(&*store, far_future()).await.len(), 2);
}

async fn concurrent_orders_for_one_server_create_exactly_one_license(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let license = pending("acme", "srv-1", T0 + Duration::from_millis(i));
                let inserted = store
                    .insert_order(&license, &order_op(&license, T0), None, &[], None)
                    .await
                    .expect("the order is stored or found");
                (license, inserted)
            })
        })
        .collect();

    let mut created = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.expect("the task finishes") {
            (license, Inserted::Created(stored)) => {
                assert_eq!(stored, license);
                created.push(stored);
            }
            (_, Inserted::Existing(found)) => existing.push(found),
            (_, Inserted::IpTaken(found)) => panic!("the IP is this server's: {found:?}"),
            (_, taken @ Inserted::Taken { .. }) => panic!("taken unasked: {taken:?}"),
        }
    }

    assert_eq!(created.len(), 1, "exactly one order creates a license");
    assert_eq!(existing.len(), 49);
    assert!(existing.iter().all(|l| l.id == created[0].id));
    let ops = claim_all(&*store, far_future()).await;
    assert_eq!(ops.len(), 1, "one operation row: {ops:?}");
    assert_eq!(ops[0].license_id, created[0].id);
}

// ---------------------------------------------------------------------------------
// Claims and progress
// ---------------------------------------------------------------------------------

async fn claims_hand_out_only_due_operations_in_due_order(store: Arc<dyn Store>) {
    let later = pending("acme", "srv-later", T0);
    let sooner = pending("acme", "srv-sooner", T0);
    let soonest = pending("acme", "srv-soonest", T0);
    create(&*store, &later, T0 + Duration::from_secs(60)).await;
    create(&*store, &sooner, T0).await;
    create(&*store, &soonest, T0 - Duration::from_secs(1)).await;

    let before = store
        .claim_operation("w", T0 - Duration::from_secs(2), LEASE)
        .await
        .unwrap();
    // Leases outlast the test, so nothing is handed out twice.
    let long = Duration::from_secs(3600);
    let first = store.claim_operation("w", T0, long).await.unwrap();
    let second = store.claim_operation("w", T0, long).await.unwrap();
    let none_due = store.claim_operation("w", T0, long).await.unwrap();
    let last = store
        .claim_operation("w", T0 + Duration::from_secs(60), long)
        .await
        .unwrap();

    assert_eq!(before, None, "nothing is due yet");
    assert_eq!(first.map(|op| op.license_id), Some(soonest.id));
    assert_eq!(second.map(|op| op.license_id), Some(sooner.id));
    assert_eq!(
        none_due, None,
        "the third is not due and the others are leased"
    );
    assert_eq!(last.map(|op| op.license_id), Some(later.id));
}

async fn an_operation_whose_lease_expired_is_handed_out_again(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    let claimed = store
        .claim_operation("w1", T0, LEASE)
        .await
        .unwrap()
        .expect("due");

    let while_leased = store
        .claim_operation("w2", T0 + LEASE - Duration::from_secs(1), LEASE)
        .await
        .unwrap();
    let after_expiry = store
        .claim_operation("w2", T0 + LEASE + Duration::from_secs(1), LEASE)
        .await
        .unwrap();

    assert_eq!(while_leased, None);
    assert_eq!(after_expiry, Some(claimed));
}

/// An order taken at its acceptance is stored at INTENT (its first attempt, with its
/// send time) under the taker's lease: no claim finds it before the lease runs out,
/// one after it does (the taker died), and the taker's progress is saved under it.
async fn an_order_stored_taken_is_at_intent_under_its_lease_until_it_runs_out(
    store: Arc<dyn Store>,
) {
    let license = pending("acme", "srv-1", T0);
    let take = super::TakeOrder {
        owner: "taker".into(),
        until: T0 + LEASE,
        sent_at: T0 + Duration::from_secs(2),
    };
    let inserted = store
        .insert_order_from_pool(
            &license,
            &order_op(&license, T0),
            None,
            &[],
            None,
            None,
            Some(&take),
        )
        .await
        .unwrap();
    let Inserted::Taken {
        license: stored,
        op,
    } = inserted
    else {
        panic!("expected a taken order, found {inserted:?}");
    };
    assert_eq!(stored, license);
    assert_eq!(
        (op.phase, op.attempt, op.sent_at, op.kind.name()),
        (Phase::Intent, 1, Some(take.sent_at), "ORDER")
    );
    assert_eq!(store.get_operation(op.id).await.unwrap(), Some(op.clone()));

    let while_taken = store
        .claim_operation("w", T0 + LEASE - Duration::from_secs(1), LEASE)
        .await
        .unwrap();
    assert_eq!(while_taken, None, "a taken order is not claimed");
    assert!(
        store
            .renew_lease(op.id, "taker", T0 + LEASE * 2)
            .await
            .unwrap(),
        "the taker holds the lease"
    );
    let after_expiry = store
        .claim_operation("w", T0 + LEASE * 2 + Duration::from_secs(1), LEASE)
        .await
        .unwrap()
        .expect("claimed once the lease ran out");
    assert_eq!(
        (after_expiry.id, after_expiry.phase),
        (op.id, Phase::Intent)
    );
}

async fn concurrent_claimers_never_get_the_same_operation(store: Arc<dyn Store>) {
    let mut expected = HashSet::new();
    for i in 0..20 {
        let license = pending("acme", &format!("srv-{i}"), T0);
        create(&*store, &license, T0).await;
        expected.insert(license.id);
    }

    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let owner = format!("worker-{w}");
                let mut mine = Vec::new();
                while let Some(op) = store
                    .claim_operation(&owner, T0, Duration::from_secs(3600))
                    .await
                    .expect("claiming works")
                {
                    mine.push(op);
                    tokio::task::yield_now().await;
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("the claimer finishes"));
    }

    let ids: HashSet<i64> = claimed.iter().map(|op| op.id).collect();
    assert_eq!(claimed.len(), 20, "every operation claimed exactly once");
    assert_eq!(ids.len(), 20, "no operation claimed twice");
    let licenses: HashSet<LicenseId> = claimed.iter().map(|op| op.license_id).collect();
    assert_eq!(licenses, expected);
}

async fn progress_under_a_lost_lease_is_refused_and_changes_nothing(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    let stale = store
        .claim_operation("w1", T0, LEASE)
        .await
        .unwrap()
        .expect("due");
    let taken_over = store
        .claim_operation("w2", T0 + LEASE + Duration::from_secs(1), LEASE)
        .await
        .unwrap()
        .expect("the lease expired");
    let mut op = stale.clone();
    op.phase = Phase::Intent;
    op.attempt = 1;
    let mut changed = license.clone();
    changed.state = LicenseState::Provisioning;
    changed.upstream_id = Some(4242);
    changed.update_time = T0 + Duration::from_secs(40);

    let saved = store
        .save_progress("w1", &op, &changed, &[EventKind::StateChanged], true, None)
        .await;

    assert!(
        matches!(saved, Err(StoreError::LeaseLost(id)) if id == stale.id),
        "{saved:?}"
    );
    assert_eq!(store.get_license(license.id).await.unwrap(), Some(license));
    let events = store.events_after(0, 100, None).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Created],
        "the refused save recorded no event"
    );
    // The new holder still holds it: the refused save released nothing.
    assert_eq!(
        store
            .claim_operation("w3", T0 + LEASE + Duration::from_secs(2), LEASE)
            .await
            .unwrap(),
        None
    );
    store
        .save_progress(
            "w2",
            &taken_over,
            &changed,
            &[EventKind::StateChanged],
            false,
            None,
        )
        .await
        .expect("the holder saves");
    assert_eq!(store.get_license(changed.id).await.unwrap(), Some(changed));
}

async fn released_progress_is_saved_and_claimable_again(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    let mut op = store
        .claim_operation("w1", T0, LEASE)
        .await
        .unwrap()
        .expect("due");
    op.phase = Phase::Confirmed;
    op.attempt = 2;
    op.checks = 3;
    op.failures = 1;
    op.run_after = T0 + Duration::from_secs(10);
    op.last_error = Some("timeout".into());
    let mut active = license.clone();
    active.state = LicenseState::Active;
    active.upstream_id = Some(u64::from(u32::MAX) + 7);
    active.license_key = Some("KEY-123".into());
    active.expire_time = Some(T0 + Duration::from_secs(30 * 86_400));
    active.ip = LicenseIp::parse("2001:db8::1", "ip").unwrap();
    active.update_time = T0 + Duration::from_secs(1);

    store
        .save_progress("w1", &op, &active, &[], true, None)
        .await
        .expect("progress is saved");

    assert_eq!(store.get_license(license.id).await.unwrap(), Some(active));
    assert_eq!(
        store
            .claim_operation("w2", T0 + Duration::from_secs(9), LEASE)
            .await
            .unwrap(),
        None,
        "not due before its new run_after"
    );
    let again = store
        .claim_operation("w2", T0 + Duration::from_secs(10), LEASE)
        .await
        .unwrap();
    assert_eq!(again, Some(op), "released at once, with the saved progress");
}

// ---------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------

async fn listings_filter_by_every_field(store: Arc<dyn Store>) {
    let a = pending("acme", "srv-1", T0);
    let mut b = pending("acme", "srv-2", T0);
    b.ip = LicenseIp::parse("198.51.100.7", "ip").unwrap();
    let mut c = pending("globex", "srv-1", T0);
    c.tariff_id = 4000;
    for license in [&a, &b, &c] {
        create(&*store, license, T0).await;
    }
    let c = end(&*store, &c, LicenseState::Failed).await;
    let ids = |page: super::Page<License>| page.items.into_iter().map(|l| l.id).collect::<Vec<_>>();
    let list =
        async |filter: LicenseFilter| ids(store.list_licenses(&filter, 10, None).await.unwrap());

    let all = list(LicenseFilter::default()).await;
    let by_client = list(LicenseFilter {
        client: Some(client("acme")),
        ..Default::default()
    })
    .await;
    let by_server = list(LicenseFilter {
        server_id: Some(server("srv-1")),
        ..Default::default()
    })
    .await;
    let by_ip = list(LicenseFilter {
        ip: Some("198.51.100.7".into()),
        ..Default::default()
    })
    .await;
    let by_tariff = list(LicenseFilter {
        tariff_id: Some(4000),
        ..Default::default()
    })
    .await;
    let by_state = list(LicenseFilter {
        state: Some(LicenseState::Pending),
        ..Default::default()
    })
    .await;
    let combined = list(LicenseFilter {
        client: Some(client("acme")),
        server_id: Some(server("srv-1")),
        ip: Some(fixture_ip("acme", "srv-1").to_string()),
        tariff_id: Some(3651),
        state: Some(LicenseState::Pending),
        item_id: None,
    })
    .await;
    let nothing = list(LicenseFilter {
        client: Some(client("globex")),
        state: Some(LicenseState::Active),
        ..Default::default()
    })
    .await;

    assert_eq!(all, [c.id, b.id, a.id]);
    assert_eq!(by_client, [b.id, a.id]);
    assert_eq!(by_server, [c.id, a.id]);
    assert_eq!(by_ip, [b.id]);
    assert_eq!(by_tariff, [c.id]);
    assert_eq!(by_state, [b.id, a.id]);
    assert_eq!(combined, [a.id]);
    assert_eq!(nothing, []);
}

async fn listings_page_newest_first_each_license_once(store: Arc<dyn Store>) {
    let mut created = Vec::new();
    for i in 0..7 {
        let license = pending("acme", &format!("srv-{i}"), T0);
        create(&*store, &license, T0).await;
        created.push(license.id);
    }
    // Ids are UUIDv7, so their order is creation order.
    let mut newest_first = created.clone();
    newest_first.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(
        newest_first,
        created.iter().rev().copied().collect::<Vec<_>>()
    );

    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list_licenses(&LicenseFilter::default(), 3, token.as_deref())
            .await
            .unwrap();
        pages.push(page.items.iter().map(|l| l.id).collect::<Vec<_>>());
        token = page.next_token;
        if token.is_none() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
    }

    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), newest_first);
    let exact = store
        .list_licenses(&LicenseFilter::default(), 7, None)
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 7);
    assert_eq!(exact.next_token, None, "no token when nothing follows");
}

async fn a_page_token_the_store_did_not_issue_is_refused(store: Arc<dyn Store>) {
    create(&*store, &pending("acme", "srv-1", T0), T0).await;

    for token in [
        "",
        "nonsense",
        "a",
        "anot-a-uuid",
        "b0190d1a0-0000-7000-8000-000000000000",
    ] {
        let listed = store
            .list_licenses(&LicenseFilter::default(), 10, Some(token))
            .await;

        assert!(
            matches!(listed, Err(StoreError::BadPageToken)),
            "token {token:?}: {listed:?}"
        );
    }
}

async fn server_license_prefers_the_live_license_over_a_newer_failed_one(store: Arc<dyn Store>) {
    let older_id = LicenseId::generate();
    let newer_id = LicenseId::generate();
    assert!(older_id < newer_id);
    let newer = pending_with(newer_id, "acme", "srv-1", T0);
    create(&*store, &newer, T0).await;
    let newer = end(&*store, &newer, LicenseState::Failed).await;
    let older = pending_with(older_id, "acme", "srv-1", T0);
    create(&*store, &older, T0).await;
    let srv = server("srv-1");

    let live = store
        .server_license(Some(&client("acme")), &srv)
        .await
        .unwrap();
    let any_client = store.server_license(None, &srv).await.unwrap();
    let cancelled = end(&*store, &older, LicenseState::Cancelled).await;
    let latest = store
        .server_license(Some(&client("acme")), &srv)
        .await
        .unwrap();
    let unknown = store
        .server_license(None, &server("srv-unknown"))
        .await
        .unwrap();

    assert_eq!(live, Some(older.clone()));
    assert_eq!(any_client, Some(older));
    assert_eq!(latest, Some(newer), "without a live one, the most recent");
    assert_ne!(latest, Some(cancelled));
    assert_eq!(unknown, None);
}

async fn next_due_is_the_earliest_moment_an_open_operation_can_be_claimed(store: Arc<dyn Store>) {
    assert_eq!(store.next_due().await.unwrap(), None, "empty store");
    let a = pending("acme", "srv-a", T0);
    let b = pending("acme", "srv-b", T0);
    create(&*store, &a, T0 + Duration::from_secs(60)).await;
    create(&*store, &b, T0 + Duration::from_secs(30)).await;

    let both_open = store.next_due().await.unwrap();
    store
        .claim_operation("w", T0 + Duration::from_secs(30), Duration::from_secs(100))
        .await
        .unwrap()
        .expect("b is due");
    let b_leased = store.next_due().await.unwrap();
    let mut a_op = store
        .claim_operation("w", T0 + Duration::from_secs(60), LEASE)
        .await
        .unwrap()
        .expect("a is due");
    assert_eq!(a_op.license_id, a.id);
    a_op.phase = Phase::Done;
    store
        .save_progress("w", &a_op, &a, &[], true, None)
        .await
        .unwrap();
    let a_done = store.next_due().await.unwrap();

    assert_eq!(both_open, Some(T0 + Duration::from_secs(30)));
    assert_eq!(b_leased, Some(T0 + Duration::from_secs(60)));
    assert_eq!(
        a_done,
        Some(T0 + Duration::from_secs(130)),
        "when b's lease ends"
    );
}

// ---------------------------------------------------------------------------------
// Queued operations
// ---------------------------------------------------------------------------------

/// A change is checked against the license as the caller read it; a cancellation
/// that ended between that read and the change's transaction leaves nothing open for
/// the open-operation check to meet. The transaction refuses the ended license, so
/// no renewal goes out for a license deleted upstream.
async fn no_operation_is_queued_for_a_license_that_ended_after_it_was_read(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    let active = end(&*store, &license, LicenseState::Active).await;
    // The caller has read it ACTIVE; its cancellation ends now.
    let cancel = Operation::received(license.id, OperationKind::Cancel, T0);
    store
        .insert_operations(license.id, &[cancel], None, &[], None)
        .await
        .expect("the cancellation is queued");
    let mut op = claim_op_of(&*store, "ender", license.id, far_future()).await;
    op.phase = Phase::Done;
    let cancelled = License {
        state: LicenseState::Cancelled,
        update_time: active.update_time + Duration::from_secs(1),
        ..active
    };
    store
        .save_progress(
            "ender",
            &op,
            &cancelled,
            &[EventKind::StateChanged],
            true,
            None,
        )
        .await
        .expect("the cancellation ends");
    let renew = renewal_of(&license);
    let refused = store
        .insert_operations(license.id, std::slice::from_ref(&renew), None, &[], None)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Refused(p)) if p.code == "INVALID_LICENSE_STATE"),
        "{refused:?}"
    );
    assert_eq!(
        store
            .latest_operation(license.id)
            .await
            .unwrap()
            .map(|op| op.kind.name()),
        Some("CANCEL"),
        "nothing queued after the cancellation"
    );
}

/// A year's renewal of `license`, received at T0.
fn renewal_of(license: &License) -> Operation {
    Operation::received(
        license.id,
        OperationKind::Renew {
            period: 12,
            previous_expiry: Some("2030-02-01".into()),
        },
        T0,
    )
}

async fn operations_are_not_queued_while_one_is_open(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    let renew = renewal_of(&license);

    let while_ordering = store
        .insert_operations(license.id, std::slice::from_ref(&renew), None, &[], None)
        .await;
    end(&*store, &license, LicenseState::Active).await;
    let suspend = Operation::received(license.id, OperationKind::Suspend, T0);
    let ids = store
        .insert_operations(
            license.id,
            &[renew.clone(), suspend.clone()],
            None,
            &[],
            None,
        )
        .await
        .expect("queued once the order is done");
    let while_renewing = store
        .insert_operations(license.id, std::slice::from_ref(&suspend), None, &[], None)
        .await;

    assert!(
        matches!(while_ordering, Err(StoreError::OperationInProgress(id)) if id == license.id),
        "{while_ordering:?}"
    );
    assert!(
        matches!(while_renewing, Err(StoreError::OperationInProgress(id)) if id == license.id),
        "{while_renewing:?}"
    );
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids follow the given order: {ids:?}");
    let stored_renew = store.get_operation(ids[0]).await.unwrap();
    let stored_suspend = store.get_operation(ids[1]).await.unwrap();
    assert_eq!(
        stored_renew,
        Some(Operation {
            id: ids[0],
            ..renew
        })
    );
    assert_eq!(
        stored_suspend,
        Some(Operation {
            id: ids[1],
            ..suspend
        })
    );
    assert_eq!(store.get_operation(ids[1] + 1000).await.unwrap(), None);
}

async fn concurrent_requests_for_one_license_queue_operations_once(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    end(&*store, &license, LicenseState::Active).await;

    let requests: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            let op = Operation::received(license.id, OperationKind::Cancel, T0);
            tokio::spawn(async move {
                store
                    .insert_operations(op.license_id, &[op], None, &[], None)
                    .await
            })
        })
        .collect();
    let mut queued = 0;
    let mut refused = 0;
    for request in requests {
        match request.await.expect("the request finishes") {
            Ok(ids) => {
                assert_eq!(ids.len(), 1);
                queued += 1;
            }
            Err(StoreError::OperationInProgress(_)) => refused += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    assert_eq!((queued, refused), (1, 9));
    let open = claim_all(&*store, far_future()).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, OperationKind::Cancel);
}

async fn only_the_oldest_open_operation_of_a_license_is_claimed(store: Arc<dyn Store>) {
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    let active = end(&*store, &license, LicenseState::Active).await;
    // The second is due earlier, but must wait for the first.
    let ids = store
        .insert_operations(
            license.id,
            &[
                Operation::received(
                    license.id,
                    OperationKind::Suspend,
                    T0 + Duration::from_secs(5),
                ),
                Operation::received(license.id, OperationKind::Resume, T0),
            ],
            None,
            &[],
            None,
        )
        .await
        .unwrap();

    let first = store
        .claim_operation("w", T0 + Duration::from_secs(5), LEASE)
        .await
        .unwrap()
        .expect("the first is due");
    let blocked = store
        .claim_operation("w", T0 + Duration::from_secs(5), LEASE)
        .await
        .unwrap();
    let done = Operation {
        phase: Phase::Done,
        ..first.clone()
    };
    store
        .save_progress("w", &done, &active, &[], true, None)
        .await
        .unwrap();
    let second = store
        .claim_operation("w", T0 + Duration::from_secs(5), LEASE)
        .await
        .unwrap();

    assert_eq!(first.id, ids[0]);
    assert_eq!(blocked, None, "the second waits while the first is open");
    assert_eq!(second.map(|op| op.id), Some(ids[1]));
}

// ---------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------

async fn events_record_each_change_with_the_license_after_it(store: Arc<dyn Store>) {
    let mine = pending("acme", "srv-1", T0);
    let theirs = pending("globex", "srv-1", T0);
    create(&*store, &mine, T0).await;
    create(&*store, &theirs, T0).await;
    let op = claim_op_of(&*store, "w", mine.id, T0).await;
    let mut active = mine.clone();
    active.state = LicenseState::Active;
    active.license_key = Some("KEY-1".into());
    active.update_time = T0 + Duration::from_secs(9);
    store
        .save_progress(
            "w",
            &Operation {
                phase: Phase::Done,
                ..op
            },
            &active,
            &[EventKind::StateChanged, EventKind::KeyIssued],
            true,
            None,
        )
        .await
        .unwrap();

    let all = store.events_after(0, 100, None).await.unwrap();
    let acme = store
        .events_after(0, 100, Some(&client("acme")))
        .await
        .unwrap();
    let after_first = store.events_after(all[0].id, 100, None).await.unwrap();
    let limited = store.events_after(0, 2, None).await.unwrap();
    let at_end = store
        .events_after(all.last().unwrap().id, 100, None)
        .await
        .unwrap();

    let summary = |events: &[crate::domain::Event]| {
        events
            .iter()
            .map(|e| (e.kind, e.license.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        summary(&all),
        [
            (EventKind::Created, mine.id),
            (EventKind::Created, theirs.id),
            (EventKind::StateChanged, mine.id),
            (EventKind::KeyIssued, mine.id),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{all:?}");
    assert_eq!(all[0].license, mine);
    assert_eq!(all[0].time, T0);
    assert_eq!(all[3].license, active);
    assert_eq!(all[3].time, active.update_time);
    assert_eq!(
        summary(&acme),
        [
            (EventKind::Created, mine.id),
            (EventKind::StateChanged, mine.id),
            (EventKind::KeyIssued, mine.id),
        ]
    );
    assert_eq!(after_first, all[1..]);
    assert_eq!(limited, all[..2]);
    assert_eq!(at_end, []);
}

async fn a_reader_resuming_after_the_last_event_id_misses_nothing(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const ORDERS: usize = 15;
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
    let writers_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = Arc::clone(&store);
        let writers_done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                // Read the flag first: once it is set, every event is committed, so an
                // empty read after it means the reader has reached the end.
                let finished = writers_done.load(Ordering::SeqCst);
                let events = store.events_after(last, 7, None).await.unwrap();
                match events.last() {
                    Some(event) => last = event.id,
                    None if finished => break seen,
                    None => tokio::task::yield_now().await,
                }
                seen.extend(events.into_iter().map(|e| e.license.id));
            }
        })
    };

    for writer in writers {
        writer.await.expect("the writer finishes");
    }
    writers_done.store(true, Ordering::SeqCst);
    let seen = reader.await.expect("the reader finishes");

    let all = store.events_after(0, 1000, None).await.unwrap();
    assert_eq!(all.len(), WRITERS * ORDERS);
    assert_eq!(
        seen,
        all.iter().map(|e| e.license.id).collect::<Vec<_>>(),
        "the resuming reader skipped events that committed late"
    );
}

// ---------------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------------

/// A license found upstream (ordered elsewhere), as the reconciler adopts it.
fn adopted(client_name: &str, server_id: &str, upstream_id: u64) -> License {
    License {
        state: LicenseState::Active,
        upstream_id: Some(upstream_id),
        license_key: Some(format!("KEY-{upstream_id}")),
        expire_time: Some(T0 + Duration::from_secs(30 * 86_400)),
        ..pending(client_name, server_id, T0)
    }
}

async fn an_adopted_license_is_stored_with_an_event_and_no_operation(store: Arc<dyn Store>) {
    let license = adopted("acme", "srv-1", 9001);

    let inserted = store.insert_adopted(&license).await.unwrap();

    assert_eq!(inserted, Inserted::Created(license.clone()));
    assert_eq!(
        store.get_license(license.id).await.unwrap(),
        Some(license.clone())
    );
    let events = store.events_after(0, 10, None).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, &events[0].license),
        (EventKind::Created, &license)
    );
    assert_eq!(claim_all(&*store, far_future()).await, []);
    assert_eq!(store.next_due().await.unwrap(), None);
}

async fn adopting_a_known_upstream_id_or_a_live_server_stores_nothing(store: Arc<dyn Store>) {
    let known = adopted("acme", "srv-1", 9001);
    store.insert_adopted(&known).await.unwrap();
    let ordered = pending("acme", "srv-2", T0);
    create(&*store, &ordered, T0).await;
    let cancelled = adopted("acme", "srv-3", 9003);
    store.insert_adopted(&cancelled).await.unwrap();
    let cancelled = License {
        state: LicenseState::Cancelled,
        ..cancelled
    };
    store
        .insert_operations(
            cancelled.id,
            &[Operation::received(cancelled.id, OperationKind::Cancel, T0)],
            None,
            &[],
            None,
        )
        .await
        .unwrap();
    let op = claim_op_of(&*store, "w", cancelled.id, T0).await;
    store
        .save_progress(
            "w",
            &Operation {
                phase: Phase::Done,
                ..op
            },
            &cancelled,
            &[],
            true,
            None,
        )
        .await
        .unwrap();

    let same_upstream_id = store
        .insert_adopted(&adopted("globex", "srv-9", 9001))
        .await
        .unwrap();
    let live_server = store
        .insert_adopted(&adopted("acme", "srv-2", 9002))
        .await
        .unwrap();
    let cancelled_upstream_id = store
        .insert_adopted(&adopted("acme", "srv-3", 9003))
        .await
        .unwrap();
    let other_client = store
        .insert_adopted(&adopted("globex", "srv-2", 9004))
        .await
        .unwrap();

    assert_eq!(same_upstream_id, Inserted::Existing(known));
    assert_eq!(live_server, Inserted::Existing(ordered));
    assert_eq!(cancelled_upstream_id, Inserted::Existing(cancelled));
    assert!(
        matches!(other_client, Inserted::Created(_)),
        "{other_client:?}"
    );
    let events = store.events_after(0, 100, None).await.unwrap();
    assert_eq!(
        events.len(),
        4,
        "one CREATED per stored license: {events:?}"
    );
}

async fn concurrent_adoptions_of_one_upstream_license_store_it_once(store: Arc<dyn Store>) {
    // Every replica reconciles, so several may adopt the same orphan at once; some
    // under another server id.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let license = adopted("acme", &format!("srv-{}", i % 3), 7777);
                store
                    .insert_adopted(&license)
                    .await
                    .expect("adopted or found")
            })
        })
        .collect();

    let mut created = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.expect("the task finishes") {
            Inserted::Created(l) => created.push(l),
            Inserted::Existing(l) => existing.push(l),
            Inserted::IpTaken(l) => panic!("the IP is this server's: {l:?}"),
            taken @ Inserted::Taken { .. } => panic!("taken unasked: {taken:?}"),
        }
    }

    assert_eq!(created.len(), 1, "{created:?}");
    assert!(existing.iter().all(|l| l.id == created[0].id));
    assert_eq!(store.licenses_with_upstream_id().await.unwrap(), created);
}

async fn licenses_with_an_upstream_id_are_listed_in_id_order_in_any_state(store: Arc<dyn Store>) {
    let first = adopted("acme", "srv-1", 3);
    let second = adopted("globex", "srv-1", 2);
    let third = adopted("acme", "srv-2", u64::from(u32::MAX) + 1);
    for license in [&third, &first, &second] {
        store.insert_adopted(license).await.unwrap();
    }
    create(&*store, &pending("acme", "srv-3", T0), T0).await;
    let failed_before_ordering = pending("acme", "srv-4", T0);
    create(&*store, &failed_before_ordering, T0).await;
    end(&*store, &failed_before_ordering, LicenseState::Failed).await;

    let listed = store.licenses_with_upstream_id().await.unwrap();

    let mut expected = vec![first, second, third];
    expected.sort_by_key(|l| l.id);
    assert_eq!(listed, expected);
}

async fn only_a_newer_drift_report_replaces_the_stored_one(store: Arc<dyn Store>) {
    let t1 = T0 + Duration::from_secs(60);
    let t2 = T0 + Duration::from_secs(120);

    let empty = store.latest_drift_report(None).await.unwrap();
    store.save_drift_report(t1, r#"{"run":1}"#).await.unwrap();
    store.save_drift_report(t2, r#"{"run":2}"#).await.unwrap();
    store
        .save_drift_report(t1, r#"{"run":"stale"}"#)
        .await
        .unwrap();

    assert_eq!(empty, None);
    let latest = Some((t2, r#"{"run":2}"#.to_owned()));
    assert_eq!(store.latest_drift_report(None).await.unwrap(), latest);
    assert_eq!(store.latest_drift_report(Some(t1)).await.unwrap(), latest);
    assert_eq!(store.latest_drift_report(Some(t2)).await.unwrap(), None);
    store
        .save_drift_report(t2, r#"{"run":"again"}"#)
        .await
        .unwrap();
    assert_eq!(
        store.latest_drift_report(None).await.unwrap(),
        Some((t2, r#"{"run":"again"}"#.to_owned())),
        "a report of the same moment replaces it (a re-run)"
    );
}

mod audit;
mod console;
mod feed;
mod labels;
mod reserve;
mod resolve;
mod webhooks;

/// The license cache of a serving SQLite store: every write is seen by the next read,
/// with other readers filling the cache meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_license_cache_never_serves_a_license_older_than_the_last_write() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = super::connect_serving(&url).await.unwrap().store;
    let license = pending("acme", "srv-1", T0);
    create(&*store, &license, T0).await;
    assert_eq!(
        store.get_license(license.id).await.unwrap().as_ref(),
        Some(&license)
    );
    let op = claim_op_of(&*store, "w", license.id, T0).await;

    // Many writes, each read back at once, with readers running alongside.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    store.get_license(license.id).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    let mut current = license.clone();
    for i in 1..=50u64 {
        current.update_time = T0 + Duration::from_secs(i);
        current.license_key = Some(format!("KEY-{i}"));
        store
            .save_progress("w", &op, &current, &[], false, None)
            .await
            .unwrap();
        assert_eq!(
            store.get_license(license.id).await.unwrap().as_ref(),
            Some(&current)
        );
    }
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(
        store.get_license(license.id).await.unwrap().as_ref(),
        Some(&current)
    );
}

/// A second serving process on one SQLite file is refused, with a message that says why.
#[tokio::test]
async fn a_sqlite_file_is_served_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let first = super::connect_serving(&url).await.unwrap();
    let refused = super::connect_serving(&url).await.err().expect("refused");
    assert!(
        format!("{refused:#}").contains("another license-facade process is serving"),
        "{refused:#}"
    );
    drop(first);
    super::connect_serving(&url)
        .await
        .expect("free again once the first one stopped");
}

/// Writes arriving together (SQLite commits them as one group): each one that fails
/// (a request id taken, a lease lost) leaves nothing behind, and every other one is
/// stored and answered as if it had been alone.
async fn concurrent_writes_commit_or_fail_each_on_its_own(store: Arc<dyn Store>) {
    // Arrange: a license whose operation a worker holds, and 24 orders of which every
    // third reuses the request id of the one before it.
    let held = pending("acme", "held", T0);
    create(&*store, &held, T0).await;
    let op = claim_op_of(&*store, "w", held.id, T0).await;
    let record = |key: usize| super::RequestRecord {
        client: client("acme"),
        key: format!("key-{key}"),
        fingerprint: format!("fp-{key}"),
        response: "{}".into(),
        busy_until: None,
        create_time: T0,
    };
    let orders: Vec<(License, usize)> = (0..24)
        .map(|i| {
            let key = if i % 3 == 2 { i - 1 } else { i };
            (pending("acme", &format!("srv-{i}"), T0), key)
        })
        .collect();

    // Act: all at once, with a save under a lease that is not the saver's.
    let mut calls = Vec::new();
    for (license, key) in &orders {
        let (store, license, request) = (store.clone(), license.clone(), record(*key));
        calls.push(tokio::spawn(async move {
            let op = order_op(&license, T0);
            store
                .insert_order(&license, &op, Some(&request), &[], None)
                .await
        }));
    }
    let lost = {
        let store = store.clone();
        let (op, held) = (op.clone(), held.clone());
        tokio::spawn(async move {
            store
                .save_progress(
                    "someone-else",
                    &op,
                    &held,
                    &[EventKind::StateChanged],
                    true,
                    None,
                )
                .await
        })
    };
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }

    // Assert
    assert!(matches!(lost.await.unwrap(), Err(StoreError::LeaseLost(_))));
    for ((license, _), result) in orders.iter().zip(results) {
        let stored = store.get_license(license.id).await.unwrap();
        match result {
            Ok(Inserted::Created(created)) => {
                assert_eq!(&created, license);
                assert_eq!(stored.as_ref(), Some(license));
            }
            Err(StoreError::RequestKeyTaken) => assert_eq!(stored, None, "nothing kept"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let created = (0..24).filter(|i| i % 3 != 2).count();
    let listed = store
        .list_licenses(&LicenseFilter::default(), 100, None)
        .await
        .unwrap()
        .items;
    assert_eq!(
        listed.len(),
        created + 1,
        "the orders that kept a request id, and `held`"
    );
    assert_eq!(store.get_license(held.id).await.unwrap(), Some(held));
}
