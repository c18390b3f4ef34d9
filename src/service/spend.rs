//! The spend guard: per-client caps on paid calls (orders, renewals, panel changes)
//! per hour and per day, on what they cost in a day, and on how far ahead a call may
//! pay, checked before the call is stored, so a refused call never reaches the
//! upstream. Every paid call is priced here (add-ons included, see `pricing`) whether
//! or not a cap is set, and the price is recorded with it. The counts come from the
//! store (licenses the client created and paid changes it queued in the window), so
//! they survive restarts and are shared by replicas; within one process a client's
//! paid calls are checked and stored one at a time, so concurrent calls cannot
//! overshoot the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::OwnedMutexGuard;

use super::pricing::PriceWait;
use super::{LicenseService, ServiceError};
use crate::domain::{
    Bought, CallPrice, ClientName, DEFAULT_MAX_PREPAID_MONTHS, OrderCaps, Purchase, ServerId,
    cents_text,
};
use crate::store::{SpendExceeded, SpendLimit};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What the guard let through: held until the paid call is stored, so a client's
/// paid calls are counted one at a time.
pub(super) struct Permit {
    _guard: Option<OwnedMutexGuard<()>>,
    /// The call's price, recorded with it (known or unknown with its reason).
    pub price: CallPrice,
    /// What the call buys (its panel and period), recorded beside the price.
    pub bought: Bought,
    /// The limits the store checks again inside the transaction that stores the call
    /// (the guard's lock is per process; replicas share only the database).
    pub limit: Option<SpendLimit>,
}

/// The caps of every client that has one, and a lock per such client.
#[derive(Debug, Default)]
pub(super) struct SpendGuard {
    caps: HashMap<ClientName, OrderCaps>,
    // A std mutex: it guards only a map look-up and is never held across an await.
    locks: Mutex<HashMap<ClientName, Arc<tokio::sync::Mutex<()>>>>,
}

impl SpendGuard {
    /// `client`'s caps (the defaults, none, when it has none).
    pub(super) fn caps_of(&self, client: &ClientName) -> OrderCaps {
        self.caps.get(client).copied().unwrap_or_default()
    }

    fn lock_of(&self, client: &ClientName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(client.clone()).or_default().clone()
    }
}

impl Permit {
    /// The permit of a client without caps: the call is only priced.
    fn free(price: CallPrice, bought: Bought) -> Self {
        Self {
            _guard: None,
            price,
            bought,
            limit: None,
        }
    }

    fn checked(
        guard: OwnedMutexGuard<()>,
        client: &ClientName,
        caps: &OrderCaps,
        price: CallPrice,
        bought: Bought,
    ) -> Self {
        Self {
            _guard: Some(guard),
            bought,
            limit: Some(SpendLimit {
                client: client.clone(),
                per_hour: caps.per_hour,
                per_day: caps.per_day,
                per_day_cents: caps.spend_per_day_cents,
                cost_cents: price.cents(),
                now: OffsetDateTime::now_utc(),
            }),
            price,
        }
    }

    /// The refusal for a limit the store found passed (another replica's paid calls
    /// got there first).
    pub(super) fn refusal(&self, exceeded: SpendExceeded) -> ServiceError {
        let now = OffsetDateTime::now_utc();
        let retry = |oldest: Option<OffsetDateTime>, window: Duration| {
            oldest
                .map(|t| t + window - now)
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(window)
                .max(Duration::from_secs(1))
        };
        match exceeded {
            SpendExceeded::Count {
                cap,
                window,
                oldest,
            } => ServiceError::SpendCapReached {
                cap,
                window,
                retry_after: retry(oldest, if window == "hour" { HOUR } else { DAY }),
            },
            SpendExceeded::Money {
                cap_cents,
                spent_cents,
                oldest,
            } => {
                let (cost, currency) = match &self.price {
                    CallPrice::Known(m) => (m.amount(), m.currency.clone()),
                    CallPrice::Unknown(_) => (String::new(), String::new()),
                };
                ServiceError::MoneyCapReached {
                    cap: cents_text(cap_cents),
                    spent: cents_text(spent_cents),
                    cost,
                    currency,
                    retry_after: retry(oldest, DAY),
                }
            }
            SpendExceeded::Unpriced { calls } => unpriced(&self.price, calls),
        }
    }
}

/// The refusal of a call under a money cap when a price it needs is unknown: its own
/// (`calls` 0) or that of `calls` paid calls of the window.
fn unpriced(price: &CallPrice, calls: u64) -> ServiceError {
    match (calls, price.unknown_reason()) {
        (0, why) => ServiceError::PriceUnknown(format!(
            "the price of this call is unknown ({})",
            why.unwrap_or("not priced")
        )),
        (n, _) => ServiceError::PriceUnknown(format!(
            "{n} paid call(s) of the last 24 hours have no known price, so what was spent is \
             unknown"
        )),
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

    /// Prices an order for `server_id` and checks `client`'s caps before it is
    /// stored; the permit must be held until the order is stored. An order for a
    /// server that already has a live license buys nothing (it answers that license
    /// or is refused), so it passes; the store counts it only if it creates a license
    /// after all.
    pub(super) async fn spend_permit(
        &self,
        client: &ClientName,
        server_id: &ServerId,
        buys: &Purchase,
    ) -> Result<Permit, ServiceError> {
        let caps = self.spend.caps.get(client);
        let price = self.price(buys, price_wait(caps)).await;
        let Some(caps) = caps else {
            return Ok(Permit::free(price, bought_by(buys)));
        };
        let guard = self.spend.lock_of(client).lock_owned().await;
        let has_live = self
            .store
            .server_license(Some(client), server_id)
            .await?
            .is_some_and(|l| l.state.is_live());
        if !has_live {
            self.check_caps(client, caps, &price).await?;
        }
        Ok(Permit::checked(guard, client, caps, price, bought_by(buys)))
    }

    /// Prices a paid change (a renewal or a panel change) and checks `client`'s caps
    /// before it is queued; the permit must be held until it is stored.
    pub(super) async fn paid_change_permit(
        &self,
        client: &ClientName,
        buys: &Purchase,
    ) -> Result<Permit, ServiceError> {
        let caps = self.spend.caps.get(client);
        let price = self.price(buys, price_wait(caps)).await;
        let Some(caps) = caps else {
            return Ok(Permit::free(price, bought_by(buys)));
        };
        let guard = self.spend.lock_of(client).lock_owned().await;
        self.check_caps(client, caps, &price).await?;
        Ok(Permit::checked(guard, client, caps, price, bought_by(buys)))
    }

    /// How many months ahead `client` may have a license paid for.
    pub(super) fn max_prepaid_months(&self, client: &ClientName) -> u32 {
        self.spend
            .caps
            .get(client)
            .map_or(DEFAULT_MAX_PREPAID_MONTHS, |c| c.max_prepaid_months)
    }

    /// The count caps, then the money cap with the call's `price`: an unknown price
    /// (the call's own, or that of a paid call in the window) is refused, never
    /// counted as zero.
    async fn check_caps(
        &self,
        client: &ClientName,
        caps: &OrderCaps,
        price: &CallPrice,
    ) -> Result<(), ServiceError> {
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
        let Some(cap_cents) = caps.spend_per_day_cents else {
            return Ok(());
        };
        let CallPrice::Known(cost) = price else {
            tracing::warn!(client = %client, price = %price, "paid call refused: price unknown under a money cap");
            return Err(unpriced(price, 0));
        };
        let spent = self.store.spend_since(client, now - DAY).await?;
        if spent.unpriced > 0 {
            tracing::warn!(client = %client, unpriced = spent.unpriced, "paid call refused: spending of the day unknown under a money cap");
            return Err(unpriced(price, spent.unpriced));
        }
        if spent.cents.saturating_add(cost.cents) > cap_cents {
            let retry_after = spent
                .oldest
                .map(|t| t + DAY - now)
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(DAY)
                .max(Duration::from_secs(1));
            tracing::warn!(client = %client, cap_cents, spent = spent.cents, cost = cost.cents, "paid call refused: money cap reached");
            return Err(ServiceError::MoneyCapReached {
                cap: cents_text(cap_cents),
                spent: cents_text(spent.cents),
                cost: cost.amount(),
                currency: cost.currency.clone(),
                retry_after,
            });
        }
        Ok(())
    }
}

/// What `purchase` buys, as the audit log records it beside the price.
fn bought_by(purchase: &Purchase) -> Bought {
    Bought {
        panel: purchase.panel.clone(),
        period: purchase.period,
    }
}

/// How long a client with `caps` waits for the price list: a call under a money cap
/// cannot be accepted without its price; any other call is not held up by a slow
/// export.
fn price_wait(caps: Option<&OrderCaps>) -> PriceWait {
    match caps.and_then(|c| c.spend_per_day_cents) {
        Some(_) => PriceWait::Full,
        None => PriceWait::Bounded,
    }
}
