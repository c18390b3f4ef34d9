//! The spend guard: per-client caps on paid calls (orders, renewals, panel changes)
//! per hour and per day, and on how far ahead a renewal may pay, checked before the
//! call is stored, so a refused call never reaches the upstream. The count comes from
//! the store (licenses the client created and paid changes it queued in the window),
//! so it survives restarts and is shared by replicas; within one process a client's
//! paid calls are checked and stored one at a time, so concurrent calls cannot
//! overshoot the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::OwnedMutexGuard;

use super::{LicenseService, ServiceError};
use crate::auth::OrderCaps;
use crate::domain::{ClientName, ServerId};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The caps of every client that has one, and a lock per such client.
#[derive(Debug, Default)]
pub(super) struct SpendGuard {
    caps: HashMap<ClientName, OrderCaps>,
    // A std mutex: it guards only a map look-up and is never held across an await.
    locks: Mutex<HashMap<ClientName, Arc<tokio::sync::Mutex<()>>>>,
}

impl SpendGuard {
    fn lock_of(&self, client: &ClientName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(client.clone()).or_default().clone()
    }
}

impl LicenseService {
    /// The service with per-client order caps (clients without one are not capped).
    pub fn with_spend_caps(mut self, caps: &HashMap<ClientName, OrderCaps>) -> Self {
        self.spend = Arc::new(SpendGuard {
            caps: caps.clone(),
            locks: Mutex::default(),
        });
        self
    }

    /// Checks `client`'s caps before an order for `server_id` is stored;
    /// [`ServiceError::SpendCapReached`] when one is reached. The returned guard must be
    /// held until the order is stored. An order for a server that already has a live
    /// license buys nothing (it answers that license or is refused), so it passes.
    pub(super) async fn spend_permit(
        &self,
        client: &ClientName,
        server_id: &ServerId,
    ) -> Result<Option<OwnedMutexGuard<()>>, ServiceError> {
        let Some(caps) = self.spend.caps.get(client) else {
            return Ok(None);
        };
        let guard = self.spend.lock_of(client).lock_owned().await;
        let has_live = self
            .store
            .server_license(Some(client), server_id)
            .await?
            .is_some_and(|l| l.state.is_live());
        if has_live {
            return Ok(Some(guard));
        }
        self.check_caps(client, caps).await?;
        Ok(Some(guard))
    }

    /// Checks `client`'s caps before a paid change (a renewal or a panel change) is
    /// queued; the guard must be held until it is stored.
    pub(super) async fn paid_change_permit(
        &self,
        client: &ClientName,
    ) -> Result<Option<OwnedMutexGuard<()>>, ServiceError> {
        let Some(caps) = self.spend.caps.get(client) else {
            return Ok(None);
        };
        let guard = self.spend.lock_of(client).lock_owned().await;
        self.check_caps(client, caps).await?;
        Ok(Some(guard))
    }

    /// How many months ahead `client` may have a license paid for.
    pub(super) fn max_prepaid_months(&self, client: &ClientName) -> u32 {
        self.spend
            .caps
            .get(client)
            .map_or(crate::auth::DEFAULT_MAX_PREPAID_MONTHS, |c| {
                c.max_prepaid_months
            })
    }

    async fn check_caps(&self, client: &ClientName, caps: &OrderCaps) -> Result<(), ServiceError> {
        let now = OffsetDateTime::now_utc();
        for (cap, window, length) in [(caps.per_hour, "hour", HOUR), (caps.per_day, "day", DAY)] {
            let Some(cap) = cap else { continue };
            let (count, oldest) = self.store.orders_since(client, now - length).await?;
            if count >= u64::from(cap) {
                let retry_after = oldest
                    .map(|t| t + length - now)
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(length)
                    .max(Duration::from_secs(1));
                tracing::warn!(client = %client, cap, window, "paid call refused: spend cap reached");
                return Err(ServiceError::SpendCapReached {
                    cap,
                    window,
                    retry_after,
                });
            }
        }
        Ok(())
    }
}
