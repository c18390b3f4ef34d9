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
        let price = tariff
            .prices
            .iter()
            .find(|(p, _)| *p == period.upstream_value())
            .map(|(_, cost)| cost.clone())
            .ok_or_else(|| {
                ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "periodMonths",
                    format!("the upstream has no price for {} months", period.months()),
                )])
            })?;
        Ok(Quote {
            panel: panel.name,
            tariff_id: panel.tariff_id,
            period_months: period.months(),
            price,
            currency: tariff.currency.clone().unwrap_or_default(),
        })
    }
}
