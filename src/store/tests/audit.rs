//! The audit log and the spend guard's order count, on every backend.

use std::sync::Arc;
use std::time::Duration;

use super::{
    T0, claim_op_of, create, on_postgres, on_sqlite_file, on_sqlite_memory, order_op, pending,
};
use crate::domain::{
    AuditEntry, AuditFilter, AuditOutcome, CallPrice, ClientName, LicenseId, Money,
};
use crate::domain::{EventKind, LicenseState, Operation, OperationKind, Phase};
use crate::store::{Store, StoreError};

store_tests!(
    audit_entries_page_newest_first_and_filter_by_license_action_and_outcome,
    orders_since_counts_a_clients_licenses_created_in_the_window,
    accepted_entries_are_stored_with_the_work_they_record,
    the_save_that_closes_an_operation_records_its_end_once_for_the_accepting_client,
    paid_calls_are_counted_and_priced_calls_added_up_in_the_window,
    the_spend_limit_is_checked_in_the_transaction_that_stores_a_paid_call,
    a_money_cap_refuses_an_unknown_price_in_the_transaction,
    the_event_of_a_paid_call_carries_its_recorded_price,
    the_cost_report_reads_a_windows_paid_calls_and_the_licenses_live_at_an_instant,
);

async fn the_spend_limit_is_checked_in_the_transaction_that_stores_a_paid_call(
    store: Arc<dyn Store>,
) {
    // Arrange: one paid call an hour; two orders (renewals are checked the same way,
    // by `insert_operations`, and counted from their ACCEPTED entries).
    let now = T0 + Duration::from_secs(10);
    let limit = crate::store::SpendLimit {
        client: ClientName::new("acme"),
        per_hour: Some(1),
        per_day: None,
        per_day_cents: None,
        cost_cents: None,
        now,
    };
    let first = pending("acme", "srv-1", now);
    let second = pending("acme", "srv-2", now);

    // Act
    let ordered = store
        .insert_order(&first, &order_op(&first, now), None, &[], Some(&limit))
        .await;
    let again = store
        .insert_order(&second, &order_op(&second, now), None, &[], Some(&limit))
        .await;

    // Assert: the first fits; the second would pass the cap, and stores nothing.
    assert!(
        matches!(ordered, Ok(crate::store::Inserted::Created(_))),
        "{ordered:?}"
    );
    match again {
        Err(StoreError::SpendLimit(crate::store::SpendExceeded::Count {
            cap: 1,
            window: "hour",
            ..
        })) => {}
        other => panic!("expected the hourly cap, got {other:?}"),
    }
    assert!(store.get_license(second.id).await.unwrap().is_none());
    let (n, _) = store
        .orders_since(&ClientName::new("acme"), T0)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the first paid call was stored");
}

async fn paid_calls_are_counted_and_priced_calls_added_up_in_the_window(store: Arc<dyn Store>) {
    // Arrange: renewals and a panel change accepted at 1, 2 and 3 s; other actions
    // and outcomes cost nothing; another client's spending is its own.
    let id = LicenseId::generate();
    for e in [
        entry(id, "RENEW", AuditOutcome::Accepted, 1),
        entry(id, "CHANGE_PANEL", AuditOutcome::Accepted, 2),
        entry(id, "RENEW", AuditOutcome::Accepted, 3),
        entry(id, "RENEW", AuditOutcome::Succeeded, 4),
        AuditEntry {
            price: None,
            bought: None,
            ..entry(id, "SUSPEND", AuditOutcome::Accepted, 5)
        },
        AuditEntry {
            client: ClientName::new("globex"),
            ..entry(id, "RENEW", AuditOutcome::Accepted, 6)
        },
        AuditEntry {
            price: Some(CallPrice::unknown("the price list is unavailable")),
            bought: None,
            ..entry(id, "ORDER", AuditOutcome::Accepted, 7)
        },
    ] {
        store.insert_audit(&e).await.unwrap();
    }
    let acme = ClientName::new("acme");

    // Act
    let counted = store
        .orders_since(&acme, T0 + Duration::from_secs(2))
        .await
        .unwrap();
    let spent = store
        .spend_since(&acme, T0 + Duration::from_secs(2))
        .await
        .unwrap();
    let listed = store
        .list_audit(&AuditFilter::default(), 10, None)
        .await
        .unwrap();

    // Assert
    assert_eq!(counted, (2, Some(T0 + Duration::from_secs(2))));
    assert_eq!(
        spent,
        crate::store::Spent {
            cents: 200 + 300,
            unpriced: 1,
            oldest: Some(T0 + Duration::from_secs(2)),
        },
        "the unknown price is counted as unknown, not as 0"
    );
    assert!(
        listed.items.iter().any(|e| e.price == Some(eur(300))),
        "the price is stored with the entry"
    );
    assert!(
        listed
            .items
            .iter()
            .any(|e| e.price == Some(CallPrice::Unknown("the price list is unavailable".into()))),
        "an unknown price is stored with its reason"
    );
}

fn eur(cents: i64) -> CallPrice {
    CallPrice::Known(Money {
        cents,
        currency: "EUR".into(),
    })
}

async fn a_money_cap_refuses_an_unknown_price_in_the_transaction(store: Arc<dyn Store>) {
    // Arrange: a money cap of 50.00 a day.
    let now = T0 + Duration::from_secs(10);
    let limit = |cost_cents| crate::store::SpendLimit {
        client: ClientName::new("acme"),
        per_hour: None,
        per_day: None,
        per_day_cents: Some(5_000),
        cost_cents,
        now,
    };
    let first = pending("acme", "srv-1", now);
    let second = pending("acme", "srv-2", now);
    let third = pending("acme", "srv-3", now);
    let unpriced = AuditEntry {
        price: Some(CallPrice::unknown("no price list")),
        bought: None,
        ..entry(second.id, "ORDER", AuditOutcome::Accepted, 5)
    };

    // Act: a call without a price; one with a price (fits); an unpriced entry in the
    // window (accepted while no cap was set), then another priced call.
    let unknown = store
        .insert_order(
            &first,
            &order_op(&first, now),
            None,
            &[],
            Some(&limit(None)),
        )
        .await;
    let priced = store
        .insert_order(
            &second,
            &order_op(&second, now),
            None,
            &[unpriced],
            Some(&limit(Some(900))),
        )
        .await;
    let after_unpriced = store
        .insert_order(
            &third,
            &order_op(&third, now),
            None,
            &[],
            Some(&limit(Some(900))),
        )
        .await;

    // Assert
    match unknown {
        Err(StoreError::SpendLimit(crate::store::SpendExceeded::Unpriced { calls: 0 })) => {}
        other => panic!("expected the unknown price refused, got {other:?}"),
    }
    assert!(store.get_license(first.id).await.unwrap().is_none());
    assert!(
        matches!(priced, Ok(crate::store::Inserted::Created(_))),
        "{priced:?}"
    );
    match after_unpriced {
        Err(StoreError::SpendLimit(crate::store::SpendExceeded::Unpriced { calls: 1 })) => {}
        other => panic!("expected the unknown spending refused, got {other:?}"),
    }
    assert!(store.get_license(third.id).await.unwrap().is_none());
}

async fn the_event_of_a_paid_call_carries_its_recorded_price(store: Arc<dyn Store>) {
    // Arrange: an order priced 525.00 EUR, carried out; then a renewal priced 250.00.
    let license = pending("acme", "srv-1", T0);
    let ordered = AuditEntry {
        price: Some(eur(52_500)),
        bought: None,
        ..entry(license.id, "ORDER", AuditOutcome::Accepted, 1)
    };
    store
        .insert_order(&license, &order_op(&license, T0), None, &[ordered], None)
        .await
        .unwrap();
    let op = claim_op_of(&*store, "w", license.id, T0).await;
    let mut active = license.clone();
    active.state = LicenseState::Active;
    active.expire_time = Some(T0 + Duration::from_secs(30 * 86_400));
    let done = Operation {
        phase: Phase::Done,
        ..op
    };
    store
        .save_progress("w", &done, &active, &[EventKind::StateChanged], true, None)
        .await
        .unwrap();
    let renew = Operation::received(
        license.id,
        OperationKind::Renew {
            period: 1,
            previous_expiry: None,
        },
        T0,
    );
    let renewal = AuditEntry {
        price: Some(eur(25_000)),
        bought: None,
        ..entry(license.id, "RENEW", AuditOutcome::Accepted, 2)
    };
    store
        .insert_operations(license.id, &[renew], None, &[renewal], None)
        .await
        .unwrap();
    let renew = claim_op_of(&*store, "w", license.id, T0).await;
    let mut renewed = active.clone();
    renewed.expire_time = Some(T0 + Duration::from_secs(60 * 86_400));

    // Act: the step that shows the renewal carried out.
    store
        .save_progress(
            "w",
            &Operation {
                phase: Phase::Done,
                ..renew
            },
            &renewed,
            &[EventKind::Renewed],
            true,
            None,
        )
        .await
        .unwrap();
    store.sequence_events().await.unwrap();
    let events = store.events_after(0, 10, None).await.unwrap();

    // Assert
    let priced: Vec<_> = events.iter().map(|e| (e.kind, e.price.clone())).collect();
    assert_eq!(
        priced,
        [
            (EventKind::Created, Some(eur(52_500))),
            (EventKind::StateChanged, None),
            (EventKind::Renewed, Some(eur(25_000))),
        ]
    );
}

async fn the_cost_report_reads_a_windows_paid_calls_and_the_licenses_live_at_an_instant(
    store: Arc<dyn Store>,
) {
    // Arrange: `a` ordered (Pro for a month, 9.00) and carried out, then renewed for a
    // year; `b` ordered before what was bought was recorded, and failed; a change of
    // IP (not paid) and an order after the window.
    let a = pending("acme", "srv-1", T0);
    let b = pending("acme", "srv-2", T0);
    for license in [&a, &b] {
        store
            .insert_order(license, &order_op(license, T0), None, &[], None)
            .await
            .unwrap();
    }
    let bought = |period| {
        Some(crate::domain::Bought {
            panel: "ISPmanager 6 Pro".into(),
            period,
        })
    };
    let entries = [
        AuditEntry {
            bought: bought(crate::domain::Period::Month),
            price: Some(eur(900)),
            ..entry(a.id, "ORDER", AuditOutcome::Accepted, 1)
        },
        entry(a.id, "ORDER", AuditOutcome::Succeeded, 2),
        AuditEntry {
            price: Some(CallPrice::unknown("no list")),
            ..entry(b.id, "ORDER", AuditOutcome::Accepted, 3)
        },
        entry(b.id, "ORDER", AuditOutcome::Failed, 4),
        AuditEntry {
            bought: bought(crate::domain::Period::Year),
            price: Some(eur(9_000)),
            ..entry(a.id, "RENEW", AuditOutcome::Accepted, 5)
        },
        entry(a.id, "CHANGE_IP", AuditOutcome::Accepted, 6),
        entry(a.id, "ORDER", AuditOutcome::Accepted, 100),
    ];
    for e in &entries {
        store.insert_audit(e).await.unwrap();
    }
    let window = (T0, T0 + Duration::from_secs(100));

    // Act
    let calls = store.paid_calls(window.0, window.1, None).await.unwrap();
    let others = store
        .paid_calls(window.0, window.1, Some(&ClientName::new("other")))
        .await
        .unwrap();
    let live_before = store
        .licenses_live_at(T0 - Duration::from_secs(1), None)
        .await
        .unwrap();
    let live_after = store
        .licenses_live_at(T0 + Duration::from_secs(1), Some(&ClientName::new("acme")))
        .await
        .unwrap();

    // Assert
    use crate::domain::{PaidKind, Period};
    let seen: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.kind,
                c.panel.as_str(),
                c.period,
                c.price.clone(),
                c.failed,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                PaidKind::Order,
                "ISPmanager 6 Pro",
                Period::Month,
                Some(eur(900)),
                false
            ),
            (
                PaidKind::Order,
                "ispmanager6-lite",
                Period::Month,
                Some(CallPrice::unknown("no list")),
                true
            ),
            (
                PaidKind::Renewal,
                "ISPmanager 6 Pro",
                Period::Year,
                Some(eur(9_000)),
                false
            ),
        ],
        "the failed order is marked; the one recorded without what it bought reads the \
         license's panel"
    );
    assert!(others.is_empty());
    assert!(live_before.is_empty());
    let mut live: Vec<_> = live_after.iter().map(|l| l.id).collect();
    live.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(live, expected);
}

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
        price: (outcome == AuditOutcome::Accepted).then(|| eur(100 * at as i64)),
        bought: None,
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
                ..AuditFilter::default()
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

async fn accepted_entries_are_stored_with_the_work_they_record(store: Arc<dyn Store>) {
    // Arrange
    let license = pending("acme", "srv-1", T0);
    let order = entry(license.id, "ORDER", AuditOutcome::Accepted, 1);
    let suspend = entry(license.id, "SUSPEND", AuditOutcome::Accepted, 2);
    let again = pending("acme", "srv-1", T0);

    // Act: an order, a second order for the same server (nothing stored), a change.
    store
        .insert_order(
            &license,
            &order_op(&license, T0),
            None,
            std::slice::from_ref(&order),
            None,
        )
        .await
        .unwrap();
    store
        .insert_order(
            &again,
            &order_op(&again, T0),
            None,
            &[entry(again.id, "ORDER", AuditOutcome::Accepted, 3)],
            None,
        )
        .await
        .unwrap();
    let refused = store
        .insert_operations(
            license.id,
            &[Operation::received(license.id, OperationKind::Suspend, T0)],
            None,
            std::slice::from_ref(&suspend),
            None,
        )
        .await;

    // Assert: the order's entry is there, the refused work left none.
    assert!(matches!(refused, Err(StoreError::OperationInProgress(_))));
    let all = store
        .list_audit(&AuditFilter::default(), 10, None)
        .await
        .unwrap();
    let kept: Vec<_> = all
        .items
        .iter()
        .map(|e| (e.license_id, &e.action))
        .collect();
    assert_eq!(kept, vec![(license.id, &order.action)]);
}

async fn the_save_that_closes_an_operation_records_its_end_once_for_the_accepting_client(
    store: Arc<dyn Store>,
) {
    // Arrange: an order accepted for client "acme" with request id key-1.
    let license = pending("acme", "srv-1", T0);
    let accepted = entry(license.id, "ORDER", AuditOutcome::Accepted, 1);
    store
        .insert_order(&license, &order_op(&license, T0), None, &[accepted], None)
        .await
        .unwrap();
    let op = claim_op_of(&*store, "w", license.id, T0).await;
    // The worker's entry names the owner and no request id; the store attributes it.
    let mut ending = entry(license.id, "ORDER", AuditOutcome::Succeeded, 2);
    ending.client = ClientName::new("owner-stand-in");
    ending.request_id = None;
    let mut active = license.clone();
    active.state = LicenseState::Active;

    // Act: an open save, the closing save, and a second closing save.
    let open = store
        .save_progress("w", &op, &license, &[], false, Some(&ending))
        .await
        .unwrap();
    let done = Operation {
        phase: Phase::Done,
        ..op
    };
    let closed = store
        .save_progress(
            "w",
            &done,
            &active,
            &[EventKind::StateChanged],
            false,
            Some(&ending),
        )
        .await
        .unwrap();
    let again = store
        .save_progress("w", &done, &active, &[], true, Some(&ending))
        .await
        .unwrap();

    // Assert
    assert!(!open && closed && !again, "{open} {closed} {again}");
    let ends = store
        .list_audit(
            &AuditFilter {
                outcome: Some(AuditOutcome::Succeeded),
                ..AuditFilter::default()
            },
            10,
            None,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].client, ClientName::new("acme"));
    assert_eq!(ends[0].request_id.as_deref(), Some("key-1"));
    assert_eq!(ends[0].upstream_id, ending.upstream_id);
}
