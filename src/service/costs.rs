//! The cost report of a month (see `domain::cost`): the store reads the month's paid
//! calls and the licenses live at its end, the next month's renewals are priced from
//! the cached upstream price list, and the catalog's selling prices are set beside.

use time::OffsetDateTime;

use super::pricing::price_in;
use super::{LicenseService, ServiceError};
use crate::domain::{
    CallPrice, ClientName, CostReport, LiveLicense, Month, OperationKind, renews_in,
};

impl LicenseService {
    /// The report of `month` (`YYYY-MM`; empty: the current month), of every client's
    /// calls for an admin (`owner` `None`), else of `owner`'s.
    pub async fn cost_report(
        &self,
        owner: Option<&ClientName>,
        month: &str,
    ) -> Result<CostReport, ServiceError> {
        let month = match month.trim() {
            "" => Month::of(OffsetDateTime::now_utc()),
            text => Month::parse(text).map_err(|v| ServiceError::InvalidArgument(vec![v]))?,
        };
        self.report_of(owner, month).await
    }

    /// The reports of the `count` months ending with `last`, oldest first (the
    /// console's chart).
    pub async fn cost_history(
        &self,
        owner: Option<&ClientName>,
        last: Month,
        count: usize,
    ) -> Result<Vec<CostReport>, ServiceError> {
        let mut reports = Vec::with_capacity(count);
        for month in last.last(count) {
            reports.push(self.report_of(owner, month).await?);
        }
        Ok(reports)
    }

    async fn report_of(
        &self,
        owner: Option<&ClientName>,
        month: Month,
    ) -> Result<CostReport, ServiceError> {
        let calls = self
            .store
            .paid_calls(month.start(), month.end(), owner)
            .await?;
        let licenses = self.store.licenses_live_at(month.end(), owner).await?;
        let next = month.next();
        let renewing = licenses
            .iter()
            .any(|l| renews_in(next, l.auto_renew, l.period, l.expire_time));
        // Read only when a renewal needs pricing; a list that cannot be read makes
        // those renewals' price unknown, with why, not the report fail.
        let list = if renewing {
            Some(self.price_list().await.map_err(|e| e.to_string()))
        } else {
            None
        };
        let live: Vec<LiveLicense> = licenses
            .iter()
            .map(|license| {
                let renewal = renews_in(
                    next,
                    license.auto_renew,
                    license.period,
                    license.expire_time,
                )
                .then(|| {
                    let renew = OperationKind::Renew {
                        period: license.period.upstream_value(),
                        previous_expiry: None,
                    };
                    let purchase = self.change_purchase(license, &renew)?;
                    Some(match list.as_ref()? {
                        Ok(list) => price_in(list, &purchase),
                        Err(why) => {
                            CallPrice::unknown(format!("the price list is unavailable: {why}"))
                        }
                    })
                })
                .map(|price| {
                    price.unwrap_or_else(|| CallPrice::unknown("the renewal is not paid"))
                });
                LiveLicense {
                    client: license.client.clone(),
                    panel: license.panel.clone(),
                    renewal,
                }
            })
            .collect();
        Ok(CostReport::compute(month, &calls, &live, &*self.catalog))
    }
}
