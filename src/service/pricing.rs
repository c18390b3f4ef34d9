//! One price for a paid call (design §11): what an order, a renewal or a panel change
//! buys — the tariff for the period plus the add-on units it carries (Business nodes)
//! — priced from the upstream price list in one place. The money cap, the console's
//! confirmation, the audit log and the change feed all use the price computed here and
//! recorded with the call; a price that cannot be read is recorded as unknown with its
//! reason, never guessed.

use std::time::Duration;

use super::{LicenseService, ServiceError};
use crate::billmanager::UpstreamTariff;
use crate::domain::{
    AddonUnits, CallPrice, License, ListedPrice, NewLicense, OperationKind, Period, Purchase,
    price_of,
};

/// How long a paid call of a client without a money cap waits for a price list that
/// is not at hand: its acceptance must not hang on a slow upstream (the price is then
/// recorded as unknown, and the list is still fetched for the calls after). A call
/// under a money cap waits as long as the export takes, since it cannot be accepted
/// without its price.
pub(super) const UNCAPPED_PRICE_WAIT: Duration = Duration::from_millis(250);

/// How long a paid call waits for the price list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PriceWait {
    /// Until the export answers (or fails).
    Full,
    /// At most [`UNCAPPED_PRICE_WAIT`].
    Bounded,
}

/// The price of `purchase` in `list`: unknown when the list lacks its tariff, its
/// period or its add-on.
pub(super) fn price_in(list: &[UpstreamTariff], purchase: &Purchase) -> CallPrice {
    let Some(tariff) = list.iter().find(|t| t.id == purchase.tariff_id) else {
        return CallPrice::unknown(format!(
            "{} (tariff {}) is not in the upstream price list",
            purchase.panel, purchase.tariff_id
        ));
    };
    let period = purchase.period.upstream_value();
    fn cost_of(prices: &[(i32, String)], period: i32) -> Option<&str> {
        prices
            .iter()
            .find(|(p, _)| *p == period)
            .map(|(_, cost)| cost.as_str())
    }
    let addon_cost = purchase.addon.and_then(|wanted| {
        tariff
            .addons
            .iter()
            .find(|a| a.id == wanted.addon_id)
            .and_then(|a| cost_of(&a.prices, period))
    });
    price_of(
        purchase,
        ListedPrice {
            tariff_cost: cost_of(&tariff.prices, period),
            addon_cost,
            currency: tariff.currency.as_deref(),
        },
    )
}

impl LicenseService {
    /// What an order buys: its panel for its period, with its nodes.
    pub(super) fn order_purchase(&self, new: &NewLicense) -> Purchase {
        Purchase {
            panel: new.panel.clone(),
            tariff_id: new.tariff_id,
            period: new.period,
            addon: self.nodes_of(new.tariff_id, new.nodes),
        }
    }

    /// What `change` of `license` buys, if it is paid: a renewal buys the license's
    /// tariff for the period, a panel change the new tariff for the period (its list
    /// price: the most a change can charge, and what converting a trial costs); both
    /// with the license's nodes where the tariff is sold per node.
    pub(super) fn change_purchase(
        &self,
        license: &License,
        change: &OperationKind,
    ) -> Option<Purchase> {
        let (panel, tariff_id, period) = match change {
            OperationKind::Renew { period, .. } => {
                (license.panel.clone(), license.tariff_id, *period)
            }
            OperationKind::ChangePanel {
                tariff_id,
                panel,
                period,
            } => (panel.clone(), *tariff_id, *period),
            _ => return None,
        };
        Some(Purchase {
            panel,
            tariff_id,
            // A stored change always has a paid period; anything else cannot be
            // priced and is shown as such rather than as a month.
            period: Period::from_upstream(period).unwrap_or(Period::Trial),
            addon: self.nodes_of(tariff_id, license.nodes),
        })
    }

    /// `nodes` as units of the node add-on of `tariff_id`, when it is sold per node.
    pub(super) fn nodes_of(&self, tariff_id: u32, nodes: Option<u32>) -> Option<AddonUnits> {
        let addon_id = self.catalog.by_tariff(tariff_id)?.nodes_addon?;
        nodes
            .filter(|n| *n > 0)
            .map(|units| AddonUnits { addon_id, units })
    }

    /// The price of `purchase`, from the cached price list; unknown (with the reason)
    /// when the list is unavailable within `wait` or lacks a part of it.
    pub(super) async fn price(&self, purchase: &Purchase, wait: PriceWait) -> CallPrice {
        let list = match wait {
            PriceWait::Full => self.price_list().await.map_err(|e| e.to_string()),
            PriceWait::Bounded => self.price_list_within(UNCAPPED_PRICE_WAIT).await,
        };
        match list {
            Ok(list) => price_in(&list, purchase),
            Err(why) => CallPrice::unknown(format!("the price list is unavailable: {why}")),
        }
    }

    /// The price a renewal of `license` by `period_months` would be recorded with
    /// (the console's confirmation shows it).
    pub async fn renewal_price(
        &self,
        license: &License,
        period_months: i32,
    ) -> Result<CallPrice, ServiceError> {
        let period = Period::paid_months(period_months, "periodMonths")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let change = OperationKind::Renew {
            period: period.upstream_value(),
            previous_expiry: None,
        };
        Ok(self.price_of_change(license, &change).await)
    }

    /// The price a change of `license` to `panel` for `period_months` would be
    /// recorded with (the console's confirmation shows it).
    pub async fn panel_change_price(
        &self,
        license: &License,
        panel: &str,
        period_months: i32,
    ) -> Result<CallPrice, ServiceError> {
        let change = self.panel_change(license, panel, period_months)?;
        Ok(self.price_of_change(license, &change).await)
    }

    async fn price_of_change(&self, license: &License, change: &OperationKind) -> CallPrice {
        match self.change_purchase(license, change) {
            Some(purchase) => self.price(&purchase, PriceWait::Full).await,
            None => CallPrice::unknown("the change is not paid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billmanager::UpstreamAddon;
    use crate::domain::Money;

    fn sandbox_list() -> Vec<UpstreamTariff> {
        vec![UpstreamTariff {
            id: 55230,
            name: Some("ispmanager 6 business".into()),
            currency: Some("EUR".into()),
            prices: vec![(1, "25.0000".into()), (12, "250.0000".into())],
            addons: vec![UpstreamAddon {
                id: 55236,
                prices: vec![(1, "5.0000".into()), (12, "50.0000".into())],
            }],
        }]
    }

    fn business(period: Period, units: u32) -> Purchase {
        Purchase {
            panel: "ISPmanager 6 Business".into(),
            tariff_id: 55230,
            period,
            addon: Some(AddonUnits {
                addon_id: 55236,
                units,
            }),
        }
    }

    #[test]
    fn business_nodes_are_priced_with_the_tariff_for_the_period() {
        let list = sandbox_list();

        let month = price_in(&list, &business(Period::Month, 100));
        let year = price_in(&list, &business(Period::Year, 2));

        assert_eq!(
            month,
            CallPrice::Known(Money {
                cents: 52_500,
                currency: "EUR".into()
            })
        );
        assert_eq!(year.cents(), Some(35_000));
    }

    #[test]
    fn a_tariff_period_or_add_on_missing_from_the_list_is_unknown() {
        let list = sandbox_list();
        let mut other_addon = business(Period::Month, 1);
        other_addon.addon = Some(AddonUnits {
            addon_id: 1,
            units: 1,
        });
        let mut other_tariff = business(Period::Month, 0);
        other_tariff.tariff_id = 1;

        let unknown = [
            price_in(&list, &other_addon),
            price_in(&list, &other_tariff),
            price_in(&list, &business(Period::Trial, 0)),
        ];

        for price in &unknown {
            assert_eq!(price.cents(), None, "{price}");
        }
        assert!(
            unknown[1]
                .unknown_reason()
                .unwrap()
                .contains("not in the upstream price list")
        );
    }
}
