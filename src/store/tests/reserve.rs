//! What a step in flight will occupy is reserved from its acceptance to its end, on
//! every backend: an IP change's target and an order's IP are refused to every other
//! order, IP change, adoption and retry meanwhile, and given back when the step ends
//! (done, refused, resolved), but not while a person must look.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{T0, adopted, claim_op_of, create, far_future, pending};
use super::{on_postgres, on_sqlite_file, on_sqlite_memory};
use crate::domain::{
    AuditEntry, AuditOutcome, EventKind, License, LicenseIp, LicenseState, Operation,
    OperationKind, Phase, UpstreamFailure,
};
use crate::store::{Inserted, IpTaken, Resolution, Resolved, Store, StoreError};

store_tests!(
    an_ip_change_reserves_its_target_against_orders_changes_and_adoptions_until_done,
    a_refused_ip_change_gives_its_target_back,
    an_order_reserves_its_ip_against_ip_changes_until_it_ends,
    a_step_left_to_a_person_keeps_its_ip_until_the_resolution,
    a_retry_is_refused_an_ip_another_license_holds,
    concurrent_orders_and_ip_changes_for_one_ip_accept_exactly_one,
);

fn ip(text: &str) -> LicenseIp {
    LicenseIp::parse(text, "ip").expect("a valid ip")
}

/// An ACTIVE license of `client`'s `server` on `at`, ordered upstream.
async fn active(store: &dyn Store, client: &str, server: &str, at: &str) -> License {
    let license = License {
        ip: ip(at),
        ..pending(client, server, T0)
    };
    create(store, &license, T0).await;
    finish(store, &license, Phase::Done, LicenseState::Active, None).await
}

/// Ends the open operation of `license` at `phase`, leaving it `state` and, when
/// given, bound to `moved_to`; returns it as stored.
async fn finish(
    store: &dyn Store,
    license: &License,
    phase: Phase,
    state: LicenseState,
    moved_to: Option<&str>,
) -> License {
    let mut op = claim_op_of(store, "finisher", license.id, far_future()).await;
    op.phase = phase;
    let mut ended = license.clone();
    ended.state = state;
    // Each license its own upstream id (the store holds one license per id).
    static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(5_000);
    ended.upstream_id = ended
        .upstream_id
        .or_else(|| Some(NEXT_UPSTREAM_ID.fetch_add(1, Ordering::Relaxed)));
    if let Some(moved_to) = moved_to {
        ended.ip = ip(moved_to);
    }
    if phase == Phase::Failed {
        ended.last_error = Some(UpstreamFailure {
            code: "UPSTREAM_REFUSED".into(),
            message: "refused".into(),
        });
    }
    ended.update_time = license.update_time + Duration::from_secs(1);
    store
        .save_progress(
            "finisher",
            &op,
            &ended,
            &[EventKind::StateChanged],
            true,
            None,
        )
        .await
        .expect("progress is saved");
    ended
}

fn change_ip(license: &License, to: &str) -> Operation {
    Operation::received(license.id, OperationKind::ChangeIp { ip: to.into() }, T0)
}

/// Queues `license`'s move to `to`.
async fn move_to(store: &dyn Store, license: &License, to: &str) -> Result<Vec<i64>, StoreError> {
    store
        .insert_operations(license.id, &[change_ip(license, to)], None, &[], None)
        .await
}

/// An order of `client`'s `server` on `at`, as the store answers it.
async fn order_on(store: &dyn Store, client: &str, server: &str, at: &str) -> (License, Inserted) {
    let license = License {
        ip: ip(at),
        ..pending(client, server, T0)
    };
    let op = Operation::received(license.id, OperationKind::Order, T0);
    let inserted = store
        .insert_order(&license, &op, None, &[], None)
        .await
        .expect("the order is answered");
    (license, inserted)
}

/// The refusal of a step for `at`: held by `holder`'s step `step` (or, with `None`,
/// by `holder` bound to it).
fn held(at: &str, holder: &License, step: Option<&str>) -> IpTaken {
    IpTaken {
        ip: at.into(),
        holder: holder.clone(),
        step: step.map(str::to_owned),
    }
}

/// Who holds `at`, as the store reads it: (license id, step).
async fn holder_of(store: &dyn Store, at: &str) -> Option<(String, Option<String>)> {
    store
        .ip_holder(at, None)
        .await
        .unwrap()
        .map(|t| (t.holder.id.to_string(), t.step))
}

async fn an_ip_change_reserves_its_target_against_orders_changes_and_adoptions_until_done(
    store: Arc<dyn Store>,
) {
    let (a, b, c) = ("192.0.2.1", "192.0.2.2", "192.0.2.3");
    let mover = active(&*store, "acme", "srv-1", a).await;
    let other = active(&*store, "beta", "srv-2", c).await;

    move_to(&*store, &mover, b)
        .await
        .expect("the change is queued");
    let (_, order) = order_on(&*store, "beta", "srv-3", b).await;
    let change = move_to(&*store, &other, b).await;
    let adoption = License {
        ip: ip(b),
        ..adopted("beta", "srv-4", 7001)
    };
    let adopt = store.insert_adopted(&adoption).await.unwrap();
    let reserved = holder_of(&*store, b).await;

    assert_eq!(order, Inserted::IpTaken(held(b, &mover, Some("CHANGE_IP"))));
    assert!(
        matches!(&change, Err(StoreError::IpTaken(t)) if **t == held(b, &mover, Some("CHANGE_IP"))),
        "{change:?}"
    );
    assert_eq!(adopt, Inserted::IpTaken(held(b, &mover, Some("CHANGE_IP"))));
    assert_eq!(store.get_license(adoption.id).await.unwrap(), None);
    assert!(!store.has_open_operation(other.id).await.unwrap());
    assert_eq!(
        reserved,
        Some((mover.id.to_string(), Some("CHANGE_IP".into())))
    );

    // Done: the license is bound to the IP, which holds it from now on.
    let moved = finish(&*store, &mover, Phase::Done, LicenseState::Active, Some(b)).await;
    let (_, order) = order_on(&*store, "beta", "srv-3", b).await;
    let change = move_to(&*store, &other, b).await;

    assert_eq!(order, Inserted::IpTaken(held(b, &moved, None)));
    assert!(
        matches!(&change, Err(StoreError::IpTaken(t)) if **t == held(b, &moved, None)),
        "{change:?}"
    );
    assert_eq!(
        holder_of(&*store, b).await,
        Some((moved.id.to_string(), None))
    );
    // The IP it left is free.
    assert_eq!(holder_of(&*store, a).await, None);
    let (_, on_left) = order_on(&*store, "beta", "srv-5", a).await;
    assert!(matches!(on_left, Inserted::Created(_)), "{on_left:?}");
}

async fn a_refused_ip_change_gives_its_target_back(store: Arc<dyn Store>) {
    let (a, b) = ("192.0.2.11", "192.0.2.12");
    let mover = active(&*store, "acme", "srv-1", a).await;
    move_to(&*store, &mover, b)
        .await
        .expect("the change is queued");

    finish(&*store, &mover, Phase::Failed, LicenseState::Active, None).await;
    let (ordered, order) = order_on(&*store, "beta", "srv-2", b).await;

    assert_eq!(order, Inserted::Created(ordered));
    assert_eq!(
        store.get_license(mover.id).await.unwrap().unwrap().ip,
        ip(a),
        "the license stays where it was"
    );
}

async fn an_order_reserves_its_ip_against_ip_changes_until_it_ends(store: Arc<dyn Store>) {
    let (a, b, c) = ("192.0.2.21", "192.0.2.22", "192.0.2.23");
    let mover = active(&*store, "acme", "srv-1", a).await;

    let (ordered, order) = order_on(&*store, "beta", "srv-2", b).await;
    let while_ordering = move_to(&*store, &mover, b).await;
    let reserved = holder_of(&*store, b).await;
    let ordered_live = finish(&*store, &ordered, Phase::Done, LicenseState::Active, None).await;
    let once_live = move_to(&*store, &mover, b).await;
    let (refused, _) = order_on(&*store, "beta", "srv-3", c).await;
    let refused = finish(&*store, &refused, Phase::Failed, LicenseState::Failed, None).await;
    let after_refusal = move_to(&*store, &mover, c).await;

    assert_eq!(order, Inserted::Created(ordered.clone()));
    assert!(
        matches!(&while_ordering, Err(StoreError::IpTaken(t)) if **t == held(b, &ordered, Some("ORDER"))),
        "{while_ordering:?}"
    );
    assert_eq!(
        reserved,
        Some((ordered.id.to_string(), Some("ORDER".into())))
    );
    assert!(
        matches!(&once_live, Err(StoreError::IpTaken(t)) if **t == held(b, &ordered_live, None)),
        "{once_live:?}"
    );
    assert_eq!(refused.state, LicenseState::Failed);
    assert!(after_refusal.is_ok(), "{after_refusal:?}");
}

/// A resolution of the stuck `license`: `to` its state, with `op` following.
fn resolution(license: &License, state: LicenseState, op: Option<Operation>) -> Resolution {
    let mut after = license.clone();
    after.state = state;
    after.last_error = None;
    after.update_time = license.update_time + Duration::from_secs(1);
    Resolution {
        events: EventKind::between(license, &after),
        op,
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
            detail: Some("resolved".into()),
            price: None,
            bought: None,
        },
        license: after,
        request: None,
    }
}

async fn a_step_left_to_a_person_keeps_its_ip_until_the_resolution(store: Arc<dyn Store>) {
    let (a, b) = ("192.0.2.31", "192.0.2.32");
    let mover = active(&*store, "acme", "srv-1", a).await;
    move_to(&*store, &mover, b)
        .await
        .expect("the change is queued");

    // The outcome is unknown: the upstream may have moved it.
    let stuck = finish(
        &*store,
        &mover,
        Phase::Failed,
        LicenseState::NeedsAttention,
        None,
    )
    .await;
    let (_, while_stuck) = order_on(&*store, "beta", "srv-2", b).await;
    let first_stuck = stuck.clone();
    // RETRY: the change again, holding its target anew.
    let retry = Operation {
        phase: Phase::Intent,
        ..change_ip(&stuck, b)
    };
    let retried = store
        .resolve_license(&resolution(&stuck, LicenseState::Active, Some(retry)))
        .await
        .unwrap();
    let (_, while_retried) = order_on(&*store, "beta", "srv-2", b).await;
    // Stuck again, then abandoned: nothing follows, and the IP is free.
    let stuck = finish(
        &*store,
        &stuck,
        Phase::Failed,
        LicenseState::NeedsAttention,
        None,
    )
    .await;
    let abandoned = store
        .resolve_license(&resolution(&stuck, LicenseState::Failed, None))
        .await
        .unwrap();
    let (ordered, after) = order_on(&*store, "beta", "srv-2", b).await;

    assert_eq!(
        while_stuck,
        Inserted::IpTaken(held(b, &first_stuck, Some("CHANGE_IP")))
    );
    assert!(matches!(retried, Resolved::Stored(Some(_))), "{retried:?}");
    assert!(
        matches!(&while_retried, Inserted::IpTaken(t) if t.holder.id == mover.id && t.step.as_deref() == Some("CHANGE_IP")),
        "{while_retried:?}"
    );
    assert_eq!(abandoned, Resolved::Stored(None));
    assert_eq!(after, Inserted::Created(ordered));
}

async fn a_retry_is_refused_an_ip_another_license_holds(store: Arc<dyn Store>) {
    let (a, b, c) = ("192.0.2.41", "192.0.2.42", "192.0.2.43");
    let mover = active(&*store, "acme", "srv-1", a).await;
    move_to(&*store, &mover, b)
        .await
        .expect("the change is queued");
    let stuck = finish(
        &*store,
        &mover,
        Phase::Failed,
        LicenseState::NeedsAttention,
        None,
    )
    .await;
    // Someone else's license on another IP moves to `c`; then the person retries the
    // stuck change under another target that license holds.
    let other = active(&*store, "beta", "srv-2", c).await;

    let retry = Operation {
        phase: Phase::Intent,
        ..change_ip(&stuck, c)
    };
    let refused = store
        .resolve_license(&resolution(&stuck, LicenseState::Active, Some(retry)))
        .await
        .unwrap();

    assert_eq!(refused, Resolved::IpTaken(Box::new(held(c, &other, None))));
    let now = store.get_license(mover.id).await.unwrap().unwrap();
    assert_eq!(now.state, LicenseState::NeedsAttention, "nothing stored");
    assert_eq!(
        holder_of(&*store, b).await,
        Some((mover.id.to_string(), Some("CHANGE_IP".into()))),
        "the stuck change still holds its target"
    );
}

async fn concurrent_orders_and_ip_changes_for_one_ip_accept_exactly_one(store: Arc<dyn Store>) {
    let target = "192.0.2.99";
    let mut movers = Vec::new();
    for n in 0..6 {
        let mover = active(
            &*store,
            "acme",
            &format!("srv-m{n}"),
            &format!("192.0.2.{}", 50 + n),
        )
        .await;
        movers.push(mover);
    }

    let mut tasks = Vec::new();
    for (n, mover) in movers.iter().enumerate() {
        let (changer, mover) = (store.clone(), mover.clone());
        tasks.push(tokio::spawn(async move {
            let change = change_ip(&mover, target);
            match changer
                .insert_operations(mover.id, &[change], None, &[], None)
                .await
            {
                Ok(_) => true,
                Err(StoreError::IpTaken(_)) => false,
                Err(e) => panic!("change {n}: {e:?}"),
            }
        }));
        let orderer = store.clone();
        tasks.push(tokio::spawn(async move {
            let (_, inserted) = order_on(&*orderer, "beta", &format!("srv-o{n}"), target).await;
            match inserted {
                Inserted::Created(_) => true,
                Inserted::IpTaken(_) => false,
                other => panic!("order {n}: {other:?}"),
            }
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.expect("the task finishes") {
            accepted += 1;
        }
    }

    assert_eq!(accepted, 1, "one step for the IP, whichever came first");
    assert!(holder_of(&*store, target).await.is_some());
}

/// Licenses and operations as a database holds them before reservations existed:
/// steps in flight and ended, one license handed to a person after an IP change and
/// one after a renewal (its earlier IP change long ended), and two open IP changes to
/// one address (the conflict this migration comes too late for).
fn rows_before_reservations() -> Vec<String> {
    let license = |n: u32, state: &str| {
        format!(
            "INSERT INTO licenses (id, client, server_id, ip, panel, tariff_id, period, \
             auto_renew, state, create_time, update_time) VALUES \
             ('0190a000-0000-7000-8000-00000000000{n}', 'acme', 'srv-{n}', '192.0.2.{n}', \
             'ispmanager6-lite', 3651, 1, true, '{state}', 0, 0)"
        )
    };
    let op = |n: u32, kind: &str, to: Option<&str>, phase: &str| {
        let params = match to {
            Some(ip) => format!(r#"{{"kind":"{kind}","ip":"{ip}"}}"#),
            None => format!(r#"{{"kind":"{kind}"}}"#),
        };
        format!(
            "INSERT INTO operations (license_id, kind, params, phase, run_after, create_time, \
             update_time) VALUES ('0190a000-0000-7000-8000-00000000000{n}', '{kind}', \
             '{params}', '{phase}', 0, 0, 0)"
        )
    };
    vec![
        license(1, "ACTIVE"),
        op(1, "CHANGE_IP", Some("192.0.2.91"), "INTENT"),
        license(2, "PENDING"),
        op(2, "ORDER", None, "RECEIVED"),
        license(3, "NEEDS_ATTENTION"),
        op(3, "CHANGE_IP", Some("192.0.2.93"), "FAILED"),
        license(4, "ACTIVE"),
        op(4, "CHANGE_IP", Some("192.0.2.4"), "DONE"),
        license(5, "NEEDS_ATTENTION"),
        op(5, "CHANGE_IP", Some("192.0.2.95"), "DONE"),
        op(5, "RENEW", None, "FAILED"),
        license(6, "ACTIVE"),
        op(6, "CHANGE_IP", Some("192.0.2.91"), "CONFIRMED"),
    ]
}

/// A migrator of the migrations in `dir` numbered up to 14, the last before
/// reservations, from a copy of their files.
async fn migrator_before_reservations(
    dir: &str,
    copy: &tempfile::TempDir,
) -> sqlx::migrate::Migrator {
    for entry in std::fs::read_dir(dir).expect("the migrations") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: u32 = name[..4].parse().expect("a numbered migration");
        if version <= 14 {
            std::fs::copy(&path, copy.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(copy.path())
        .await
        .expect("the copied migrations")
}

/// What the migration reserved, as the store reads it.
async fn reserved_after_migration(store: &dyn Store) {
    let holder = |n: u32| format!("0190a000-0000-7000-8000-00000000000{n}");
    for (ip, expected) in [
        (
            "192.0.2.91",
            Some((holder(1), Some("CHANGE_IP".to_owned()))),
        ),
        ("192.0.2.2", Some((holder(2), Some("ORDER".to_owned())))),
        (
            "192.0.2.93",
            Some((holder(3), Some("CHANGE_IP".to_owned()))),
        ),
        ("192.0.2.95", None),
        // Bound to license 4: a live license, no step.
        ("192.0.2.4", Some((holder(4), None))),
    ] {
        assert_eq!(holder_of(store, ip).await, expected, "{ip}");
    }
}

#[tokio::test]
async fn the_migration_reserves_what_steps_in_flight_will_occupy_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    migrator_before_reservations(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"),
        &copy,
    )
    .await
    .run(&pool)
    .await
    .unwrap();
    for row in rows_before_reservations() {
        sqlx::query(sqlx::AssertSqlSafe(row))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = crate::store::connect(&url)
        .await
        .expect("migrated to the end");

    reserved_after_migration(&*store).await;
}

#[tokio::test]
async fn the_migration_reserves_what_steps_in_flight_will_occupy_on_postgres() {
    super::in_postgres_database(async |url| {
        let copy = tempfile::tempdir().unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        migrator_before_reservations(
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"),
            &copy,
        )
        .await
        .run(&pool)
        .await
        .unwrap();
        for row in rows_before_reservations() {
            sqlx::query(sqlx::AssertSqlSafe(row))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        let store = crate::store::connect(&url)
            .await
            .expect("migrated to the end");

        reserved_after_migration(&*store).await;
    })
    .await;
}

/// A reservation whose step ended without giving it back (only a process that does
/// not know reservations, during an upgrade, leaves one) holds nothing: `sql` runs
/// the statements on the store's database.
async fn a_stale_reservation_is_taken_over<F, Fut>(store: Arc<dyn Store>, sql: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (a, b, stale, kept) = ("192.0.2.61", "192.0.2.62", "192.0.2.63", "192.0.2.64");
    let mover = active(&*store, "acme", "srv-1", a).await;
    let ids = move_to(&*store, &mover, b).await.unwrap();
    let moved = finish(&*store, &mover, Phase::Done, LicenseState::Active, Some(b)).await;
    let other = active(&*store, "beta", "srv-2", "192.0.2.65").await;
    move_to(&*store, &other, "192.0.2.66").await.unwrap();
    let stuck = finish(
        &*store,
        &other,
        Phase::Failed,
        LicenseState::NeedsAttention,
        None,
    )
    .await;
    let stuck_op = store.latest_operation(other.id).await.unwrap().unwrap().id;
    let row = |ip: &str, license: &License, op: i64| {
        format!(
            "INSERT INTO ip_reservations (ip, license_id, operation_id, kind, create_time) \
             VALUES ('{ip}', '{}', {op}, 'CHANGE_IP', 0)",
            license.id
        )
    };
    // Left by the ended change of `moved`; and one of the change a person must look at.
    sql(row(stale, &moved, ids[0])).await;
    sql(row(kept, &stuck, stuck_op)).await;

    let stale_holder = holder_of(&*store, stale).await;
    let (ordered, order) = order_on(&*store, "gamma", "srv-3", stale).await;
    let (_, refused) = order_on(&*store, "gamma", "srv-4", kept).await;

    assert_eq!(stale_holder, None);
    assert_eq!(order, Inserted::Created(ordered.clone()));
    assert_eq!(
        holder_of(&*store, stale).await,
        Some((ordered.id.to_string(), Some("ORDER".into())))
    );
    assert!(
        matches!(&refused, Inserted::IpTaken(t) if t.holder.id == stuck.id),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_stale_reservation_is_taken_over_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = crate::store::connect(&url).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    a_stale_reservation_is_taken_over(store, |statement| {
        let pool = pool.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn a_stale_reservation_is_taken_over_on_postgres() {
    super::in_postgres_database(async |url| {
        let store = crate::store::connect(&url).await.unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        a_stale_reservation_is_taken_over(store, |statement| {
            let pool = pool.clone();
            async move {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        })
        .await;
    })
    .await;
}
