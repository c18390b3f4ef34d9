//! A change queued with a stale view of its license: what its recovery compares
//! against (the key before a reissue, the expiry before a renewal) is taken when the
//! change is about to be sent, not when it was accepted.
//!
//! A change accepted while another one was still finishing (a reissue reading its new
//! key) saw the license before that finish. Had recovery compared the upstream's state
//! with that view, the new key or the later expiry would have looked like this change
//! done, and a crash between its intent and its send would have ended it SUCCEEDED
//! without it ever being sent: a renewal paid for and never bought, a key never
//! reissued. Here the stale view is stored directly, the real binary aborts after the
//! intent, and the restarted one must still send the change exactly once.

use license_facade::crash;
use license_facade::domain::{LicenseId, Operation, OperationKind};
use time::OffsetDateTime;

use crate::support::{Order, ServiceDir, bought, sandbox_config, start_sandbox};

/// Orders a license, queues `stale` on it straight into the store, aborts the service
/// after the change's intent, restarts, and checks that `func` was carried out once.
async fn stale_view_is_sent_once(stale: OperationKind, func: &str) {
    // Arrange: an ACTIVE license; no service running.
    let sandbox = start_sandbox(sandbox_config()).await;
    let mut dir = ServiceDir::new();
    let order = Order::new(12);
    let setup = dir.start(&sandbox.url, None);
    let id = setup.api.order(&order).await.expect("acknowledged");
    setup.api.license_until(&id, &["ACTIVE"]).await;
    drop(setup);
    let before = bought(&sandbox.handle)[0].clone();

    // The change as a request that read the license before another change finished.
    let store = license_facade::store::connect(&dir.database_url())
        .await
        .expect("the store opens");
    let license_id = LicenseId::parse(&id).expect("a license id");
    let op = Operation::received(license_id, stale, OffsetDateTime::now_utc());
    store
        .insert_operations(license_id, &[op], None, &[], None)
        .await
        .expect("the change is queued");
    store.close().await;

    // Act: the worker takes it, stores its intent, and the process aborts before the
    // send; a restarted service recovers it.
    let mut armed = dir.start(&sandbox.url, Some(crash::AFTER_INTENT));
    armed.expect_abort_at(crash::AFTER_INTENT).await;
    drop(armed);
    assert_eq!(sandbox.handle.carried_out(func), 0, "nothing sent before");
    let service = dir.start(&sandbox.url, None);

    // Assert: recovery did not take the upstream's state for the change done; it sent
    // it, once.
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    while sandbox.handle.carried_out(func) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{func} was never sent after the restart: {}",
            service.api.license(&id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let action = stale_action(func);
    while service.api.audit_count(action, "SUCCEEDED").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{action} never finished: {}",
            service.api.license(&id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let license = service.api.license(&id).await;
    let after = bought(&sandbox.handle)[0].clone();
    assert_eq!(
        sandbox.handle.carried_out(func),
        1,
        "{func} sent exactly once"
    );
    match func {
        "soft.edit" => {
            assert_ne!(after.license_key, before.license_key, "a new key upstream");
            assert_eq!(license["licenseKey"], after.license_key.as_str());
        }
        _ => {
            assert!(after.expire_date > before.expire_date, "one period bought");
            assert!(
                license["expireTime"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&after.expire_date.to_string())),
                "the service shows the new expiry {}: {license}",
                after.expire_date
            );
        }
    }
}

/// The audit action of the change `func` carries out here.
fn stale_action(func: &str) -> &'static str {
    if func == "soft.edit" {
        "REISSUE_KEY"
    } else {
        "RENEW"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissue_queued_with_a_stale_key_is_still_sent_once_after_a_crash() {
    stale_view_is_sent_once(
        OperationKind::ReissueKey {
            previous_key: Some("a-key-from-before-another-change".into()),
        },
        "soft.edit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_queued_with_a_stale_expiry_is_still_sent_once_after_a_crash() {
    stale_view_is_sent_once(
        OperationKind::Renew {
            period: 1,
            previous_expiry: Some("2001-01-01".into()),
        },
        "service.prolong",
    )
    .await;
}
