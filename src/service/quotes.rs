//! Prices from the upstream price list (`pricelist.export`), cached for a while: prices
//! change rarely and pricing must not cost an upstream call each time. One fetch runs
//! at a time and every caller that needs the list shares it; it runs to its end in the
//! background even when its callers stop waiting, so the next call finds the list. A
//! list past half its life is refreshed in the background while it is still used, so
//! under steady traffic no call waits for the export.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::{LicenseService, ServiceError};
use crate::billmanager::UpstreamTariff;
use crate::domain::{AddonUnits, CallPrice, FieldViolation, MAX_NODES, Period, Purchase};

/// How long a fetched price list is used.
const PRICE_TTL: Duration = Duration::from_secs(300);

/// From this age on a list is refreshed in the background while it is still used.
const REFRESH_AFTER: Duration = Duration::from_secs(150);

/// The price of a panel for a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// Canonical panel name.
    pub panel: String,
    /// Tariff id.
    pub tariff_id: u32,
    /// Months (0 for a trial).
    pub period_months: i32,
    /// Price with two decimals, e.g. `9.00`.
    pub price: String,
    /// Currency code, e.g. `EUR`.
    pub currency: String,
}

type Fetched = Result<Arc<Vec<UpstreamTariff>>, String>;
type Fetch = Shared<BoxFuture<'static, Fetched>>;

/// The cached price list and the fetch under way.
#[derive(Default)]
pub(super) struct PriceCache {
    // A std mutex: held only to read or swap these, never across an await.
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    list: Option<(Instant, Arc<Vec<UpstreamTariff>>)>,
    fetching: Option<Fetch>,
}

impl PriceCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LicenseService {
    /// The upstream price list, from the cache while it is fresh; waits for the fetch
    /// otherwise.
    pub async fn price_list(&self) -> Result<Arc<Vec<UpstreamTariff>>, ServiceError> {
        match self.cached_or_fetch() {
            Ok(list) => Ok(list),
            Err(fetch) => fetch.await.map_err(ServiceError::UpstreamUnavailable),
        }
    }

    /// The price list if it is at hand within `bound`; else why not (the fetch goes
    /// on for the calls after).
    pub(super) async fn price_list_within(&self, bound: Duration) -> Fetched {
        match self.cached_or_fetch() {
            Ok(list) => Ok(list),
            Err(fetch) => tokio::time::timeout(bound, fetch)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "the price list did not arrive within {} ms",
                        bound.as_millis()
                    ))
                }),
        }
    }

    /// The fresh cached list, or the fetch to wait for (started if none runs).
    fn cached_or_fetch(&self) -> Result<Arc<Vec<UpstreamTariff>>, Fetch> {
        let mut state = self.prices.state();
        if let Some((at, list)) = state.list.clone()
            && at.elapsed() < PRICE_TTL
        {
            if at.elapsed() >= REFRESH_AFTER {
                // Runs in the background (see `start_fetch`); this call uses the list
                // it has.
                let _refresh = self.start_fetch(&mut state);
            }
            return Ok(list);
        }
        Err(self.start_fetch(&mut state))
    }

    fn start_fetch(&self, state: &mut CacheState) -> Fetch {
        if let Some(fetch) = &state.fetching {
            return fetch.clone();
        }
        let upstream = self.upstream.clone();
        let cache = self.prices.clone();
        let fetch = async move {
            let fetched = upstream
                .price_list()
                .await
                .map(Arc::new)
                .map_err(|e| e.to_string());
            let mut state = cache.state();
            state.fetching = None;
            if let Ok(list) = &fetched {
                state.list = Some((Instant::now(), list.clone()));
            }
            fetched
        }
        .boxed()
        .shared();
        state.fetching = Some(fetch.clone());
        // Driven to its end in the background as well: a caller that stops waiting
        // does not cancel the fetch the calls after it would use.
        self.tasks.spawn(fetch.clone());
        fetch
    }

    /// The price of `panel` for `period_months` (1 or 12; ignored for trials) with
    /// `nodes` where it is sold per node, as an order for it would be priced.
    pub async fn quote(
        &self,
        panel: &str,
        period_months: i32,
        nodes: Option<u32>,
    ) -> Result<Quote, ServiceError> {
        let panel = self.catalog.resolve(panel)?.clone();
        let period = if panel.trial {
            Period::Trial
        } else {
            Period::paid_months(period_months, "periodMonths")
                .map_err(|v| ServiceError::InvalidArgument(vec![v]))?
        };
        let addon = match (panel.nodes_addon, nodes) {
            (_, None) => None,
            (Some(addon_id), Some(units @ 1..=MAX_NODES)) => Some(AddonUnits { addon_id, units }),
            (Some(_), Some(_)) => {
                return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "nodes",
                    format!("must be between 1 and {MAX_NODES}"),
                )]));
            }
            (None, Some(_)) => {
                return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "nodes",
                    format!("{} is not sold per node; leave nodes unset", panel.name),
                )]));
            }
        };
        let list = self.price_list().await?;
        if !list.iter().any(|t| t.id == panel.tariff_id) {
            return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                "panel",
                format!(
                    "{} (tariff {}) is not in the upstream price list",
                    panel.name, panel.tariff_id
                ),
            )]));
        }
        let purchase = Purchase {
            panel: panel.name.clone(),
            tariff_id: panel.tariff_id,
            period,
            addon,
        };
        match super::pricing::price_in(&list, &purchase) {
            CallPrice::Known(money) => Ok(Quote {
                panel: panel.name,
                tariff_id: panel.tariff_id,
                period_months: period.months(),
                price: money.amount(),
                currency: money.currency,
            }),
            CallPrice::Unknown(why) => {
                Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "periodMonths",
                    format!("price unknown: {why}"),
                )]))
            }
        }
    }
}
