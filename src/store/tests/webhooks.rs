//! Webhook subscriptions on every backend: one process at a time holds one, only the
//! holder moves its position, and a subscription with nothing to send is not taken.

use std::sync::Arc;
use std::time::Duration;

use super::{T0, on_postgres, on_sqlite_file, on_sqlite_memory, order_op, pending};
use crate::domain::{ClientName, EventKind, Webhook, WebhookState};
use crate::store::{Store, WebhookProgress};

store_tests!(
    a_subscription_is_leased_to_one_process_and_only_its_holder_moves_it,
    a_failed_attempt_waits_its_backoff_and_a_failing_subscription_is_not_taken,
);

const LEASE: Duration = Duration::from_secs(30);

fn webhook(client: &str, last_event_id: i64) -> Webhook {
    Webhook {
        id: uuid::Uuid::now_v7().to_string(),
        client: ClientName::new(client),
        all_clients: false,
        url: "https://hooks.example.com/x".into(),
        event_types: vec![EventKind::Created],
        secret: "s".repeat(20),
        last_event_id,
        state: WebhookState::Active,
        attempts: 0,
        first_failure: None,
        next_attempt: T0,
        last_error: None,
        delivered: 0,
        create_time: T0,
    }
}

async fn one_event(store: &dyn Store, client: &str, server: &str) -> i64 {
    let license = pending(client, server, T0);
    store
        .insert_order(&license, &order_op(&license, T0), None, &[], None)
        .await
        .unwrap();
    store.sequence_events().await.unwrap();
    store.latest_event_id().await.unwrap()
}

async fn a_subscription_is_leased_to_one_process_and_only_its_holder_moves_it(
    store: Arc<dyn Store>,
) {
    // Arrange: a subscription of acme's at the start of the feed; nothing to send yet.
    let hook = webhook("acme", store.latest_event_id().await.unwrap());
    store.insert_webhook(&hook).await.unwrap();
    let now = T0 + Duration::from_secs(1);
    let idle = store.claim_webhook("p1", now, LEASE).await.unwrap();
    let other_client = one_event(&*store, "other", "srv-0").await;
    let idle_still = store.claim_webhook("p1", now, LEASE).await.unwrap();
    let event = one_event(&*store, "acme", "srv-1").await;

    // Act: two processes try to take it.
    let first = store.claim_webhook("p1", now, LEASE).await.unwrap();
    let second = store.claim_webhook("p2", now, LEASE).await.unwrap();
    let by_other = store
        .record_webhook(
            &hook.id,
            "p2",
            now,
            &WebhookProgress::Delivered {
                through: event,
                delivered: 1,
                lease_until: now + LEASE,
            },
        )
        .await
        .unwrap();
    let by_holder = store
        .record_webhook(
            &hook.id,
            "p1",
            now,
            &WebhookProgress::Delivered {
                through: event,
                delivered: 1,
                lease_until: now + LEASE,
            },
        )
        .await
        .unwrap();
    store
        .record_webhook(&hook.id, "p1", now, &WebhookProgress::Release)
        .await
        .unwrap();
    let after = store.claim_webhook("p2", now, LEASE).await.unwrap();

    // Assert
    assert!(idle.is_none(), "nothing to send");
    assert!(other_client > 0);
    assert!(
        idle_still.is_none(),
        "another client's event is not its own"
    );
    assert_eq!(first.map(|w| w.id), Some(hook.id.clone()));
    assert!(second.is_none(), "held by p1");
    assert!(!by_other, "only the holder records");
    assert!(by_holder);
    assert!(after.is_none(), "delivered through the last event");
    let listed = store
        .list_webhooks(Some(&ClientName::new("acme")), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.last_event_id, event);
    assert_eq!(listed[0].0.delivered, 1);
    assert_eq!(listed[0].1, 0, "no backlog");
    assert!(
        store
            .list_webhooks(Some(&ClientName::new("other")), None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_failed_attempt_waits_its_backoff_and_a_failing_subscription_is_not_taken(
    store: Arc<dyn Store>,
) {
    // Arrange: one event waiting for the subscription.
    let hook = webhook("acme", store.latest_event_id().await.unwrap());
    store.insert_webhook(&hook).await.unwrap();
    one_event(&*store, "acme", "srv-1").await;
    let now = T0 + Duration::from_secs(1);
    store
        .claim_webhook("p1", now, LEASE)
        .await
        .unwrap()
        .unwrap();

    // Act: the attempt fails; retry in 2 s.
    store
        .record_webhook(
            &hook.id,
            "p1",
            now,
            &WebhookProgress::Failed {
                attempts: 2,
                first_failure: T0,
                next_attempt: now + Duration::from_secs(2),
                error: "the receiver answered 503".into(),
                state: WebhookState::Active,
            },
        )
        .await
        .unwrap();
    let early = store.claim_webhook("p2", now, LEASE).await.unwrap();
    let due = store
        .claim_webhook("p2", now + Duration::from_secs(2), LEASE)
        .await
        .unwrap();
    store
        .record_webhook(
            &hook.id,
            "p2",
            now,
            &WebhookProgress::Failed {
                attempts: 3,
                first_failure: T0,
                next_attempt: now,
                error: "gave up".into(),
                state: WebhookState::Failing,
            },
        )
        .await
        .unwrap();
    let failing = store
        .claim_webhook("p2", now + Duration::from_secs(10), LEASE)
        .await
        .unwrap();
    let listed = store.list_webhooks(None, Some(&hook.id)).await.unwrap();
    let resumed = store
        .resume_webhook(&hook.id, Some(&ClientName::new("acme")), now)
        .await
        .unwrap();
    let again = store.claim_webhook("p3", now, LEASE).await.unwrap();

    // Assert
    assert!(early.is_none(), "not before its back-off");
    let due = due.expect("due after it");
    assert_eq!(due.attempts, 2);
    assert_eq!(due.last_error.as_deref(), Some("the receiver answered 503"));
    assert!(failing.is_none(), "a FAILING subscription waits");
    assert_eq!(listed[0].0.state, WebhookState::Failing);
    assert_eq!(listed[0].1, 1, "its event waits in the backlog");
    assert!(resumed);
    assert_eq!(
        again.map(|w| (w.state, w.attempts)),
        Some((WebhookState::Active, 0))
    );
}
