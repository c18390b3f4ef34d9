//! Prices from the upstream price list (`pricelist.export`), cached for a while: prices
//! change rarely and quoting must not cost an upstream call each time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{LicenseService, ServiceError};
use crate::billmanager::UpstreamTariff;
use crate::domain::{FieldViolation, Period};

/// How long a fetched price list is used.
const PRICE_TTL: Duration = Duration::from_secs(300);

/// The price of a panel for a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// Canonical panel name.
    pub panel: String,
    /// Tariff id.
    pub tariff_id: u32,
    /// Months (0 for a trial).
    pub period_months: i32,
    /// Price as the upstream states it, e.g. `9.00`.
    pub price: String,
    /// Currency code, e.g. `EUR`.
    pub currency: String,
}

/// The cached price list.
#[derive(Default)]
pub(super) struct PriceCache {
    cached: Mutex<Option<(Instant, Arc<Vec<UpstreamTariff>>)>>,
}

impl LicenseService {
    /// The upstream price list, from the cache while it is fresh.
    pub async fn price_list(&self) -> Result<Arc<Vec<UpstreamTariff>>, ServiceError> {
        if let Some((at, list)) = self.prices.cached.lock().expect("not poisoned").as_ref()
            && at.elapsed() < PRICE_TTL
        {
            return Ok(list.clone());
        }
        let list = Arc::new(
            self.upstream
                .price_list()
                .await
                .map_err(|e| ServiceError::UpstreamUnavailable(e.to_string()))?,
        );
        *self.prices.cached.lock().expect("not poisoned") = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// The price of `panel` for `period_months` (1 or 12; ignored for trials).
    pub async fn quote(&self, panel: &str, period_months: i32) -> Result<Quote, ServiceError> {
        let panel = self.catalog.resolve(panel)?.clone();
        let period = if panel.trial {
            Period::Trial
        } else {
            Period::paid_months(period_months, "periodMonths")
                .map_err(|v| ServiceError::InvalidArgument(vec![v]))?
        };
        let list = self.price_list().await?;
        let tariff = list
            .iter()
            .find(|t| t.id == panel.tariff_id)
            .ok_or_else(|| {
                ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "panel",
                    format!(
                        "{} (tariff {}) is not in the upstream price list",
                        panel.name, panel.tariff_id
                    ),
                )])
            })?;
        let unknown = |why: &str| {
            ServiceError::InvalidArgument(vec![FieldViolation::new(
                "periodMonths",
                format!(
                    "price unknown: the upstream price list has {why} for {} (tariff {}) and {} months",
                    panel.name,
                    panel.tariff_id,
                    period.months()
                ),
            )])
        };
        let cost = tariff
            .prices
            .iter()
            .find(|(p, _)| *p == period.upstream_value())
            .map(|(_, cost)| cost.as_str())
            .ok_or_else(|| unknown("no price"))?;
        // An empty or unreadable cost is not a price of 0.
        let price = normalise_price(cost).ok_or_else(|| unknown("no readable price"))?;
        Ok(Quote {
            panel: panel.name,
            tariff_id: panel.tariff_id,
            period_months: period.months(),
            price,
            currency: tariff.currency.clone().unwrap_or_default(),
        })
    }
}

/// A cost as the export prints it (`490.0000`, `6.00`, `12`) with two decimals,
/// rounded half up; `None` for an empty, negative or unreadable one.
fn normalise_price(cost: &str) -> Option<String> {
    let cost = cost.trim();
    let (whole, frac) = cost.split_once('.').unwrap_or((cost, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || whole.len() > 15 {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac = format!("{frac:0<3}");
    let hundredths: u64 = frac[..2].parse().ok()?;
    let round_up = frac.as_bytes()[2] >= b'5';
    let cents = whole * 100 + hundredths + u64::from(round_up);
    Some(format!("{}.{:02}", cents / 100, cents % 100))
}

#[cfg(test)]
mod tests {
    use super::normalise_price;

    #[test]
    fn prices_are_shown_with_two_decimals_and_empty_ones_are_unknown() {
        assert_eq!(normalise_price("490.0000").as_deref(), Some("490.00"));
        assert_eq!(normalise_price("6.00").as_deref(), Some("6.00"));
        assert_eq!(normalise_price("12").as_deref(), Some("12.00"));
        assert_eq!(normalise_price("0.1250").as_deref(), Some("0.13"));
        assert_eq!(normalise_price("9.9999").as_deref(), Some("10.00"));
        for bad in ["", " ", "-1.00", "abc", "1.2.3", ".5"] {
            assert_eq!(normalise_price(bad), None, "{bad:?}");
        }
    }
}
