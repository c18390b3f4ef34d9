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
use crate::domain::{ClientName, DEFAULT_MAX_PREPAID_MONTHS, OrderCaps, ServerId};
use crate::store::{SpendExceeded, SpendLimit};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What the guard let through: held until the paid call is stored, so a client's
/// paid calls are counted one at a time.
pub(super) struct Permit {
    _guard: Option<OwnedMutexGuard<()>>,
    /// The call's price, when the client has a money cap (recorded with the call).
    pub cost_cents: Option<i64>,
    /// The limits the store checks again inside the transaction that stores the call
    /// (the guard's lock is per process; replicas share only the database).
    pub limit: Option<SpendLimit>,
    /// The account's currency, for a refusal's message.
    currency: String,
}

/// What a paid call buys, to price it: a panel (by name) for a number of months.
pub(super) struct Priced<'a> {
    pub panel: &'a str,
    pub months: i32,
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
    fn free() -> Self {
        Self {
            _guard: None,
            cost_cents: None,
            limit: None,
            currency: String::new(),
        }
    }

    fn checked(
        guard: OwnedMutexGuard<()>,
        client: &ClientName,
        caps: &OrderCaps,
        priced: Option<(i64, String)>,
    ) -> Self {
        let (cost_cents, currency) = match priced {
            Some((cost, currency)) => (Some(cost), currency),
            None => (None, String::new()),
        };
        Self {
            _guard: Some(guard),
            cost_cents,
            limit: Some(SpendLimit {
                client: client.clone(),
                per_hour: caps.per_hour,
                per_day: caps.per_day,
                per_day_cents: caps.spend_per_day_cents,
                cost_cents,
                now: OffsetDateTime::now_utc(),
            }),
            currency,
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
            } => ServiceError::MoneyCapReached {
                cap: cents_text(cap_cents),
                spent: cents_text(spent_cents),
                cost: cents_text(self.cost_cents.unwrap_or(0)),
                currency: self.currency.clone(),
                retry_after: retry(oldest, DAY),
            },
        }
    }
}

/// A price as the upstream states it (`490.0000`, `9.5`) in hundredths, rounded up
/// (a cap must not let a fraction through); `None` for an empty, negative or
/// malformed price.
pub(super) fn parse_cents(price: &str) -> Option<i64> {
    let price = price.trim();
    let (whole, fraction) = price.split_once('.').unwrap_or((price, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut cents = whole.checked_mul(100)?;
    let digits: Vec<i64> = fraction.bytes().map(|b| i64::from(b - b'0')).collect();
    cents += digits.first().copied().unwrap_or(0) * 10 + digits.get(1).copied().unwrap_or(0);
    if digits.iter().skip(2).any(|&d| d != 0) {
        cents += 1;
    }
    Some(cents)
}

/// Hundredths as a decimal amount, e.g. `1234` → `12.34`.
pub(super) fn cents_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
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
    /// [`ServiceError::SpendCapReached`] when one is reached. The permit must be held
    /// until the order is stored. An order for a server that already has a live
    /// license buys nothing (it answers that license or is refused), so it passes.
    pub(super) async fn spend_permit(
        &self,
        client: &ClientName,
        server_id: &ServerId,
        buys: Priced<'_>,
    ) -> Result<Permit, ServiceError> {
        let Some(caps) = self.spend.caps.get(client) else {
            return Ok(Permit::free());
        };
        let guard = self.spend.lock_of(client).lock_owned().await;
        let has_live = self
            .store
            .server_license(Some(client), server_id)
            .await?
            .is_some_and(|l| l.state.is_live());
        if has_live {
            // Buys nothing; the store counts it only if it creates a license after all.
            return Ok(Permit::checked(guard, client, caps, None));
        }
        let priced = self.check_caps(client, caps, buys).await?;
        Ok(Permit::checked(guard, client, caps, priced))
    }

    /// Checks `client`'s caps before a paid change (a renewal or a panel change) is
    /// queued; the permit must be held until it is stored.
    pub(super) async fn paid_change_permit(
        &self,
        client: &ClientName,
        buys: Priced<'_>,
    ) -> Result<Permit, ServiceError> {
        let Some(caps) = self.spend.caps.get(client) else {
            return Ok(Permit::free());
        };
        let guard = self.spend.lock_of(client).lock_owned().await;
        let priced = self.check_caps(client, caps, buys).await?;
        Ok(Permit::checked(guard, client, caps, priced))
    }

    /// How many months ahead `client` may have a license paid for.
    pub(super) fn max_prepaid_months(&self, client: &ClientName) -> u32 {
        self.spend
            .caps
            .get(client)
            .map_or(DEFAULT_MAX_PREPAID_MONTHS, |c| c.max_prepaid_months)
    }

    /// The count caps, then the money cap; returns the call's price and the account's
    /// currency when the client has a money cap.
    async fn check_caps(
        &self,
        client: &ClientName,
        caps: &OrderCaps,
        buys: Priced<'_>,
    ) -> Result<Option<(i64, String)>, ServiceError> {
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
            return Ok(None);
        };
        // A money cap needs the price: a call that cannot be priced is refused.
        let quote = self
            .quote(buys.panel, buys.months)
            .await
            .map_err(|e| ServiceError::PriceUnknown(e.to_string()))?;
        let cost = parse_cents(&quote.price).ok_or_else(|| {
            ServiceError::PriceUnknown(format!("the price list states {:?}", quote.price))
        })?;
        let (spent, oldest) = self.store.spend_since(client, now - DAY).await?;
        if spent.saturating_add(cost) > cap_cents {
            let retry_after = oldest
                .map(|t| t + DAY - now)
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(DAY)
                .max(Duration::from_secs(1));
            tracing::warn!(client = %client, cap_cents, spent, cost, "paid call refused: money cap reached");
            return Err(ServiceError::MoneyCapReached {
                cap: cents_text(cap_cents),
                spent: cents_text(spent),
                cost: cents_text(cost),
                currency: quote.currency,
                retry_after,
            });
        }
        Ok(Some((cost, quote.currency)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_in_hundredths_rounding_fractions_up() {
        assert_eq!(parse_cents("490.0000"), Some(49_000));
        assert_eq!(parse_cents("9.5"), Some(950));
        assert_eq!(parse_cents("12"), Some(1_200));
        assert_eq!(parse_cents("0.001"), Some(1));
        assert_eq!(parse_cents(""), None);
        assert_eq!(parse_cents("-1.00"), None);
        assert_eq!(parse_cents("1,50"), None);
        assert_eq!(cents_text(1_234), "12.34");
    }
}
