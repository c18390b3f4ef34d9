//! `GET /console/pool` (admins): what the license pool holds per tariff, what the
//! parked licenses cost a month and what reuse saved (the figures of `GET /v1/pool`),
//! then every parked license with when the upstream lets it move. Also what the
//! license page's Release action says before it is confirmed: where the pool's rules
//! would send the license.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use time::OffsetDateTime;

use super::ConsoleState;
use super::error::PageError;
use super::session::Session;
use super::views::{Chrome, day, render, when};
use crate::auth::Scope;
use crate::domain::{License, PARKED_IP, PoolConfig, Release, cents_text};
use crate::service::{PoolEntry, PoolTariff};

/// One tariff's pool as the page shows it; amounts are text with their currency,
/// `None` where a price is not known.
pub struct TariffRow {
    pub panel: String,
    pub tariff_id: u32,
    pub parked: u32,
    pub reusable: u32,
    pub monthly_cost: Option<String>,
    pub reuses: u64,
    pub saved: Option<String>,
}

/// One parked license.
pub struct EntryRow {
    pub id: String,
    pub server_id: String,
    pub client: String,
    pub panel: String,
    pub tariff_id: u32,
    pub paid_until: String,
    /// When its cooldowns pass; empty while its park is being finished.
    pub reusable_from: String,
    pub reusable: bool,
    /// Why an order could not take it now; empty when it could.
    pub why_not: String,
}

/// The whole pool in a few figures.
pub struct Totals {
    pub parked: u32,
    pub reusable: u32,
    pub reuses: u64,
    /// `None`: a price is not known, or the tariffs' currencies differ.
    pub monthly_cost: Option<String>,
    pub saved: Option<String>,
    /// The tariffs' amounts are in more than one currency: not summed.
    pub several_currencies: bool,
}

/// `pool.html`.
#[derive(Template)]
#[template(path = "console/pool.html")]
pub struct PoolPage {
    pub chrome: Chrome,
    pub tariffs: Vec<TariffRow>,
    pub totals: Totals,
    pub entries: Vec<EntryRow>,
    pub ip_cooldown_days: u32,
    pub key_cooldown_days: u32,
    /// The address a parked license is bound to upstream.
    pub parked_ip: &'static str,
}

/// `GET /console/pool`.
pub async fn pool(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, PageError> {
    session.require(Scope::Admin)?;
    let view = state.service.pool_view().await?;
    let rules = state.service.pool_config();
    let now = OffsetDateTime::now_utc();
    let page = PoolPage {
        chrome: Chrome::of(&session, "pool"),
        totals: totals(&view.tariffs),
        tariffs: view.tariffs.iter().map(tariff_row).collect(),
        entries: view
            .entries
            .iter()
            .map(|e| entry_row(e, rules, now))
            .collect(),
        ip_cooldown_days: rules.ip_change_cooldown_days,
        key_cooldown_days: rules.key_change_cooldown_days,
        parked_ip: PARKED_IP,
    };
    Ok(render(&page))
}

/// `cents` as text with `currency` (which is empty when no price of the tariff was
/// read, and then left out).
fn amount(cents: i64, currency: &str) -> String {
    match currency {
        "" => cents_text(cents),
        c => format!("{} {c}", cents_text(cents)),
    }
}

fn tariff_row(t: &PoolTariff) -> TariffRow {
    TariffRow {
        panel: t.panel.clone().unwrap_or_default(),
        tariff_id: t.tariff_id,
        parked: t.parked,
        reusable: t.reusable,
        monthly_cost: t.monthly_cost.map(|c| amount(c, &t.currency)),
        reuses: t.reuses,
        // No reuse saved nothing, which is known; reuses without a price are not.
        saved: match t.reuses {
            0 => Some(amount(0, &t.currency)),
            _ => t.saved.map(|c| amount(c, &t.currency)),
        },
    }
}

/// The sums over every tariff; an amount is summed only when each tariff's is known
/// and they share one currency.
fn totals(tariffs: &[PoolTariff]) -> Totals {
    let currencies: std::collections::BTreeSet<&str> = tariffs
        .iter()
        .map(|t| t.currency.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    let one_currency = match currencies.len() {
        0 => Some(""),
        1 => currencies.first().copied(),
        _ => None,
    };
    let sum = |cents: &dyn Fn(&PoolTariff) -> Option<i64>| -> Option<String> {
        let currency = one_currency?;
        let total = tariffs
            .iter()
            .try_fold(0_i64, |sum, t| Some(sum + cents(t)?))?;
        Some(amount(total, currency))
    };
    Totals {
        parked: tariffs.iter().map(|t| t.parked).sum(),
        reusable: tariffs.iter().map(|t| t.reusable).sum(),
        reuses: tariffs.iter().map(|t| t.reuses).sum(),
        monthly_cost: sum(&|t| t.monthly_cost),
        saved: sum(&|t| if t.reuses == 0 { Some(0) } else { t.saved }),
        several_currencies: one_currency.is_none(),
    }
}

fn entry_row(e: &PoolEntry, rules: &PoolConfig, now: OffsetDateTime) -> EntryRow {
    let l = &e.license;
    let tariff = rules.rules(l.tariff_id);
    let why_not = if e.reusable {
        String::new()
    } else {
        match e.reusable_time {
            None => "its park is being finished".to_owned(),
            Some(t) if t > now => "the upstream's cooldowns have not passed".to_owned(),
            Some(_) if !tariff.park => {
                format!("the pool's rules of tariff {} do not reuse", l.tariff_id)
            }
            Some(_) if l.expire_time.is_none() => "its paid period is not known".to_owned(),
            Some(_) => format!(
                "less than {} days of its paid period are left",
                tariff.reuse_min_days_left
            ),
        }
    };
    EntryRow {
        id: l.id.to_string(),
        server_id: l.server_id.to_string(),
        client: l.client.to_string(),
        panel: l.panel.clone(),
        tariff_id: l.tariff_id,
        paid_until: l.expire_time.map(day).unwrap_or_default(),
        reusable_from: e.reusable_time.map(when).unwrap_or_default(),
        reusable: e.reusable,
        why_not,
    }
}

/// What the Release confirmation says of `license`: where the pool's rules send it
/// now, and whether that is a cancellation.
pub async fn release_outlook(
    state: &ConsoleState,
    license: &License,
) -> Result<(String, bool), PageError> {
    let outlook = match state.service.release_outlook(license).await? {
        Release::Park => {
            let until = license
                .expire_time
                .map(|t| format!(" until {}", day(t)))
                .unwrap_or_default();
            (
                format!(
                    "By the pool's rules it is parked: suspended upstream and bound to \
                     {PARKED_IP}, it keeps its paid time{until}, and the next order of tariff \
                     {} takes it instead of buying once the upstream lets it move.",
                    license.tariff_id
                ),
                false,
            )
        }
        Release::Cancel(why) => (
            format!(
                "By the pool's rules it is not worth keeping ({why}): it is cancelled. This \
                 cannot be undone and nothing is refunded."
            ),
            true,
        ),
    };
    Ok(outlook)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tariff(tariff_id: u32, parked: u32, cost: Option<i64>, reuses: u64) -> PoolTariff {
        PoolTariff {
            tariff_id,
            panel: Some("ISPmanager 6 Lite".into()),
            parked,
            reusable: parked,
            monthly_cost: cost,
            reuses,
            saved: (reuses > 0).then_some(cost.unwrap_or(0) * 2),
            currency: "EUR".into(),
        }
    }

    #[test]
    fn an_unknown_price_is_shown_as_unknown_in_its_row_and_the_totals() {
        let unknown = PoolTariff {
            saved: None,
            ..tariff(3651, 1, None, 2)
        };
        let known = tariff(55228, 2, Some(1_800), 0);

        let row = tariff_row(&unknown);
        let totals = totals(&[unknown, known.clone()]);

        assert_eq!((row.monthly_cost, row.saved), (None, None));
        assert_eq!((totals.monthly_cost, totals.saved), (None, None));
        assert_eq!((totals.parked, totals.reuses), (3, 2));
        let row = tariff_row(&known);
        assert_eq!(row.monthly_cost.as_deref(), Some("18.00 EUR"));
        assert_eq!(
            row.saved.as_deref(),
            Some("0.00 EUR"),
            "no reuse saved nothing"
        );
    }

    #[test]
    fn totals_sum_known_amounts_of_one_currency_only() {
        let a = tariff(3651, 1, Some(900), 1);
        let b = tariff(55228, 1, Some(1_800), 0);
        let summed = totals(&[a.clone(), b.clone()]);
        assert_eq!(summed.monthly_cost.as_deref(), Some("27.00 EUR"));
        assert_eq!(summed.saved.as_deref(), Some("18.00 EUR"));

        let dollars = PoolTariff {
            currency: "USD".into(),
            ..b
        };
        let mixed = totals(&[a, dollars]);
        assert_eq!((mixed.monthly_cost, mixed.saved), (None, None));
        assert!(mixed.several_currencies && !summed.several_currencies);
    }
}
