//! A claimed operation's lease, kept while its step runs.
//!
//! Leases are short (10 s by default) so that a dead replica's work is taken over
//! within seconds; a heartbeat renews the lease every third of its length while the
//! step runs, an upstream call of up to the request timeout included. The renewal is
//! fenced by the owner: once another worker has the operation, the heartbeat learns
//! it and the step sends nothing more (its saves are refused by the same fence). A
//! step whose renewals fail stops sending once the lease it last renewed runs short.
//!
//! What keeps a takeover from sending an order twice is not the lease but the stored
//! send time (`Operation::sent_at`): whoever takes an operation over at INTENT
//! re-sends nothing before one request timeout after it. The lease only keeps two
//! workers from running steps of one operation at the same time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::Store;

/// Until when this worker holds the lease of the operation it runs, as it last
/// wrote it to the store.
#[derive(Debug)]
pub(super) struct HeldLease {
    /// Unix microseconds; `i64::MIN` once the lease is known lost.
    until: AtomicI64,
}

impl HeldLease {
    /// A lease held until `until` (what the claim wrote).
    pub(super) fn new(until: OffsetDateTime) -> Self {
        Self {
            until: AtomicI64::new(micros(until)),
        }
    }

    /// Whether the lease is still ours for at least `margin` from now. A lease that
    /// is not cannot be relied on to keep another worker away.
    pub(super) fn covers(&self, margin: Duration) -> bool {
        micros(OffsetDateTime::now_utc() + margin) < self.until.load(Ordering::Acquire)
    }

    fn renewed(&self, until: OffsetDateTime) {
        // Never moves back from "lost": a renewal that raced the loss is stale.
        let _ = self
            .until
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held != i64::MIN).then_some(micros(until))
            });
    }

    fn lost(&self) {
        self.until.store(i64::MIN, Ordering::Release);
    }
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// Renews `owner`'s lease on operation `op_id` every third of `lease` until dropped
/// (the step it guards ended). Never returns: once the lease is lost it only waits.
pub(super) async fn keep(
    store: &dyn Store,
    op_id: i64,
    owner: &str,
    lease: Duration,
    held: &HeldLease,
) -> Infallible {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        // The new end counts from before the write: the store holds it exactly.
        let until = OffsetDateTime::now_utc() + lease;
        match store.renew_lease(op_id, owner, until).await {
            Ok(true) => held.renewed(until),
            Ok(false) => {
                tracing::warn!(
                    op_id,
                    "the lease on the operation was lost; sending nothing more for it"
                );
                held.lost();
                return std::future::pending().await;
            }
            Err(e) => {
                tracing::warn!(op_id, error.message = %e, error.cause_chain = ?e, "cannot renew the lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_covers_a_margin_only_while_it_lasts_and_never_after_it_was_lost() {
        let now = OffsetDateTime::now_utc();
        let held = HeldLease::new(now + Duration::from_secs(10));
        assert!(held.covers(Duration::from_secs(1)));
        assert!(!held.covers(Duration::from_secs(11)));

        held.renewed(now + Duration::from_secs(30));
        assert!(held.covers(Duration::from_secs(20)));

        held.lost();
        assert!(!held.covers(Duration::ZERO));
        held.renewed(now + Duration::from_secs(60));
        assert!(!held.covers(Duration::ZERO), "a lost lease stays lost");
    }
}
