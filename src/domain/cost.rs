//! The cost report: what each client's paid calls cost in a calendar month (UTC), by
//! panel and kind, beside what the reseller sells them for, how many licenses were
//! live at the month's end and what the next month is already committed to (the live
//! licenses the upstream renews by itself). Computed here from what the store read,
//! without I/O, so every rule is unit-tested.
//!
//! Amounts are only ever added from recorded prices: a paid call whose price is
//! unknown is counted as such and left out of the amounts, never taken for zero.

use std::collections::BTreeMap;
use std::fmt;

use time::{Date, OffsetDateTime, Time};

use super::{CallPrice, ClientName, FieldViolation, Period, cents_text};

/// A calendar month, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: time::Month,
}

impl Month {
    /// Parses `YYYY-MM` (field `month`).
    pub fn parse(text: &str) -> Result<Self, FieldViolation> {
        let bad = || FieldViolation::new("month", "must be a month as YYYY-MM, e.g. 2026-11");
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: u8 = month.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        if year < 2000 {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// The month `t` falls in (UTC).
    pub fn of(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// Its first instant.
    pub fn start(self) -> OffsetDateTime {
        Date::from_calendar_date(self.year, self.month, 1)
            .expect("the first of a month is a date")
            .with_time(Time::MIDNIGHT)
            .assume_utc()
    }

    /// The first instant after it (the next month's start).
    pub fn end(self) -> OffsetDateTime {
        self.next().start()
    }

    /// The month after.
    pub fn next(self) -> Self {
        match self.month {
            time::Month::December => Self {
                year: self.year + 1,
                month: time::Month::January,
            },
            m => Self {
                year: self.year,
                month: m.next(),
            },
        }
    }

    /// The month before.
    pub fn previous(self) -> Self {
        match self.month {
            time::Month::January => Self {
                year: self.year - 1,
                month: time::Month::December,
            },
            m => Self {
                year: self.year,
                month: m.previous(),
            },
        }
    }

    /// `count` months ending with this one, oldest first.
    pub fn last(self, count: usize) -> Vec<Self> {
        let mut months = Vec::with_capacity(count);
        let mut m = self;
        for _ in 0..count {
            months.push(m);
            m = m.previous();
        }
        months.reverse();
        months
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

/// What kind of paid call an audit action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidKind {
    /// A new license (`ORDER`).
    Order,
    /// A renewal (`RENEW`).
    Renewal,
    /// A change of panel (`CHANGE_PANEL`).
    PanelChange,
}

impl PaidKind {
    /// The kind of the paid `action` (one of [`PAID_ACTIONS`](super::PAID_ACTIONS)).
    /// A new kind of paid call (a license taken from a pool of bought ones, once there
    /// is such a pool) gets its action in `PAID_ACTIONS`, its variant here and its
    /// column in [`CostRow`].
    pub fn of(action: &str) -> Option<Self> {
        match action {
            "ORDER" => Some(Self::Order),
            "RENEW" => Some(Self::Renewal),
            "CHANGE_PANEL" => Some(Self::PanelChange),
            _ => None,
        }
    }
}

/// One paid call of the month, as the audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidCall {
    /// The client that made it.
    pub client: ClientName,
    /// What kind of call.
    pub kind: PaidKind,
    /// The panel it bought.
    pub panel: String,
    /// The period it paid for.
    pub period: Period,
    /// Its recorded price; `None` for a call accepted before prices were recorded.
    pub price: Option<CallPrice>,
    /// Whether its upstream work ended FAILED: nothing was bought, so it costs
    /// nothing.
    pub failed: bool,
}

/// A license live at the month's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLicense {
    /// Its client.
    pub client: ClientName,
    /// Its panel.
    pub panel: String,
    /// When it renews in the next month by itself (auto-renewal), the price of that
    /// renewal at today's price list; `None` when it does not renew in the next month.
    pub renewal: Option<CallPrice>,
}

/// Whether a license with `auto_renew`, `period` and `expire_time` is renewed by the
/// upstream during `month`: it renews by itself, is not a trial (a trial is never
/// renewed) and its paid period ends within the month.
pub fn renews_in(
    month: Month,
    auto_renew: bool,
    period: Period,
    expire_time: Option<OffsetDateTime>,
) -> bool {
    auto_renew
        && period != Period::Trial
        && expire_time.is_some_and(|t| t >= month.start() && t < month.end())
}

/// The reseller's selling prices: per panel and period, in one currency.
pub trait SellingPrices {
    /// The selling price (hundredths) of `panel` for `period`, if one is set.
    fn selling_cents(&self, panel: &str, period: Period) -> Option<i64>;
    /// The currency the selling prices are in (empty: none are set).
    fn selling_currency(&self) -> &str;
}

/// One line of the report: a client's figures for a panel, or the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostRow {
    /// The client (empty on the totals).
    pub client: String,
    /// The panel (empty on the totals).
    pub panel: String,
    /// Paid calls of the month that did not end FAILED.
    pub paid_calls: u32,
    /// Of them, those whose price is unknown (or in another currency than the
    /// report's): left out of every amount.
    pub unpriced_calls: u32,
    /// Paid calls whose upstream work failed: nothing was bought, nothing counted.
    pub failed_calls: u32,
    /// What the orders cost (hundredths).
    pub orders_cents: i64,
    /// What the renewals cost.
    pub renewals_cents: i64,
    /// What the panel changes cost.
    pub panel_changes_cents: i64,
    /// Paid calls with a known cost above zero and no selling price for their panel
    /// and period.
    pub unsold_calls: u32,
    /// What the calls sell for at the selling prices (hundredths).
    pub revenue_cents: i64,
    /// Licenses live at the month's end.
    pub live_at_month_end: u32,
    /// Of them, those the upstream renews by itself in the next month.
    pub next_month_renewals: u32,
    /// What those renewals cost at today's prices (hundredths).
    pub next_month_committed_cents: i64,
    /// Of the next month's renewals, those whose price is unknown.
    pub next_month_unpriced: u32,
}

impl CostRow {
    /// What the month's paid calls cost in all.
    pub fn cost_cents(&self) -> i64 {
        self.orders_cents + self.renewals_cents + self.panel_changes_cents
    }

    fn add(&mut self, other: &Self) {
        self.paid_calls += other.paid_calls;
        self.unpriced_calls += other.unpriced_calls;
        self.failed_calls += other.failed_calls;
        self.orders_cents += other.orders_cents;
        self.renewals_cents += other.renewals_cents;
        self.panel_changes_cents += other.panel_changes_cents;
        self.unsold_calls += other.unsold_calls;
        self.revenue_cents += other.revenue_cents;
        self.live_at_month_end += other.live_at_month_end;
        self.next_month_renewals += other.next_month_renewals;
        self.next_month_committed_cents += other.next_month_committed_cents;
        self.next_month_unpriced += other.next_month_unpriced;
    }
}

/// The report of one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostReport {
    /// The month.
    pub month: Month,
    /// The currency of every cost amount (the price list's; empty when no price of
    /// the month is known).
    pub currency: String,
    /// The currency of the revenue (the selling prices'; empty when none are set).
    pub revenue_currency: String,
    /// One row per client and panel, ordered by client, then panel.
    pub rows: Vec<CostRow>,
    /// The sums of the rows.
    pub totals: CostRow,
}

impl CostReport {
    /// The month's report from its paid calls, the licenses live at its end and the
    /// selling prices.
    pub fn compute(
        month: Month,
        calls: &[PaidCall],
        live: &[LiveLicense],
        selling: &dyn SellingPrices,
    ) -> Self {
        // The report's currency: the first known price's (an upstream account has
        // one); a price in another currency is not added to it.
        let currency = calls
            .iter()
            .filter_map(|c| match &c.price {
                Some(CallPrice::Known(m)) if !c.failed => Some(m.currency.clone()),
                _ => None,
            })
            .chain(live.iter().filter_map(|l| match &l.renewal {
                Some(CallPrice::Known(m)) => Some(m.currency.clone()),
                _ => None,
            }))
            .next()
            .unwrap_or_default();
        let known = |price: &Option<CallPrice>| match price {
            Some(CallPrice::Known(m)) if m.currency == currency => Some(m.cents),
            _ => None,
        };
        let selling_nothing = selling.selling_currency().is_empty();
        let mut rows: BTreeMap<(String, String), CostRow> = BTreeMap::new();
        for call in calls {
            let r = row_of(&mut rows, &call.client, &call.panel);
            if call.failed {
                r.failed_calls += 1;
                continue;
            }
            r.paid_calls += 1;
            let Some(cents) = known(&call.price) else {
                r.unpriced_calls += 1;
                continue;
            };
            match call.kind {
                PaidKind::Order => r.orders_cents += cents,
                PaidKind::Renewal => r.renewals_cents += cents,
                PaidKind::PanelChange => r.panel_changes_cents += cents,
            }
            match selling.selling_cents(&call.panel, call.period) {
                Some(sold) => r.revenue_cents += sold,
                // Without selling prices nothing is sold; nothing bought for money (a
                // trial) is nothing to sell on.
                None if selling_nothing || cents == 0 => {}
                None => r.unsold_calls += 1,
            }
        }
        for license in live {
            let r = row_of(&mut rows, &license.client, &license.panel);
            r.live_at_month_end += 1;
            if license.renewal.is_some() {
                r.next_month_renewals += 1;
                match known(&license.renewal) {
                    Some(cents) => r.next_month_committed_cents += cents,
                    None => r.next_month_unpriced += 1,
                }
            }
        }
        let rows: Vec<CostRow> = rows.into_values().collect();
        let mut totals = CostRow::default();
        for r in &rows {
            totals.add(r);
        }
        Self {
            month,
            currency,
            revenue_currency: selling.selling_currency().to_owned(),
            rows,
            totals,
        }
    }

    /// The margin of `row` (revenue − cost, hundredths), when it can be told: every
    /// call priced and sold, revenue and cost in one currency.
    pub fn margin_cents(&self, row: &CostRow) -> Option<i64> {
        (!self.revenue_currency.is_empty()
            && self.revenue_currency == self.currency
            && row.unpriced_calls == 0
            && row.unsold_calls == 0)
            .then(|| row.revenue_cents - row.cost_cents())
    }

    /// The revenue of `row` as text: empty when no selling price is set.
    pub fn revenue_text(&self, row: &CostRow) -> String {
        if self.revenue_currency.is_empty() {
            String::new()
        } else {
            cents_text(row.revenue_cents)
        }
    }

    /// The report as CSV (RFC 4180: a header line, then one line per row and the
    /// totals last, with an empty client and panel), amounts with two decimals.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push_str("\r\n");
        for row in self.rows.iter().chain(std::iter::once(&self.totals)) {
            let margin = self.margin_cents(row).map(cents_text).unwrap_or_default();
            let fields = [
                self.month.to_string(),
                row.client.clone(),
                row.panel.clone(),
                self.currency.clone(),
                row.paid_calls.to_string(),
                row.unpriced_calls.to_string(),
                row.failed_calls.to_string(),
                cents_text(row.orders_cents),
                cents_text(row.renewals_cents),
                cents_text(row.panel_changes_cents),
                cents_text(row.cost_cents()),
                self.revenue_currency.clone(),
                self.revenue_text(row),
                margin,
                row.unsold_calls.to_string(),
                row.live_at_month_end.to_string(),
                row.next_month_renewals.to_string(),
                cents_text(row.next_month_committed_cents),
                row.next_month_unpriced.to_string(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// The row of `client` and `panel`, added empty when there is none yet.
fn row_of<'a>(
    rows: &'a mut BTreeMap<(String, String), CostRow>,
    client: &ClientName,
    panel: &str,
) -> &'a mut CostRow {
    rows.entry((client.as_str().to_owned(), panel.to_owned()))
        .or_insert_with(|| CostRow {
            client: client.as_str().to_owned(),
            panel: panel.to_owned(),
            ..CostRow::default()
        })
}

/// The CSV's header line.
pub const CSV_HEADER: &str = "month,client,panel,currency,paid_calls,unpriced_calls,failed_calls,\
orders,renewals,panel_changes,cost,revenue_currency,revenue,margin,unsold_calls,\
live_at_month_end,next_month_renewals,next_month_committed,next_month_unpriced";

/// A CSV field, quoted when it holds a comma, a quote or a line break; a leading
/// `=`, `+`, `-` or `@` of a name is defused so a spreadsheet does not run it.
fn csv_field(text: &str) -> String {
    let text = match text.chars().next() {
        Some('=' | '+' | '@') => format!("'{text}"),
        Some('-') if text.parse::<f64>().is_err() => format!("'{text}"),
        _ => text.to_owned(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    struct Selling(Vec<(&'static str, Period, i64)>);

    impl SellingPrices for Selling {
        fn selling_cents(&self, panel: &str, period: Period) -> Option<i64> {
            self.0
                .iter()
                .find(|(p, per, _)| *p == panel && *per == period)
                .map(|(_, _, c)| *c)
        }
        fn selling_currency(&self) -> &str {
            if self.0.is_empty() { "" } else { "EUR" }
        }
    }

    fn eur(cents: i64) -> Option<CallPrice> {
        Some(CallPrice::Known(Money {
            cents,
            currency: "EUR".into(),
        }))
    }

    fn call(client: &str, kind: PaidKind, panel: &str, price: Option<CallPrice>) -> PaidCall {
        PaidCall {
            client: ClientName::new(client.to_owned()),
            kind,
            panel: panel.into(),
            period: Period::Month,
            price,
            failed: false,
        }
    }

    const PRO: &str = "ISPmanager 6 Pro";
    const BUSINESS: &str = "ISPmanager 6 Business";

    #[test]
    fn months_parse_and_bound_in_utc() {
        let nov = Month::parse("2026-11").unwrap();
        assert_eq!(nov.to_string(), "2026-11");
        assert_eq!(nov.start().unix_timestamp(), 1_793_491_200);
        assert_eq!(nov.end(), Month::parse("2026-12").unwrap().start());
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert_eq!(
            Month::parse("2027-01").unwrap().previous().to_string(),
            "2026-12"
        );
        let year: Vec<String> = nov.last(12).iter().map(ToString::to_string).collect();
        assert_eq!(year.first().unwrap(), "2025-12");
        assert_eq!(year.last().unwrap(), "2026-11");
        for bad in [
            "",
            "2026",
            "2026-13",
            "2026-00",
            "26-11",
            "2026-1",
            "2026-11-01",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn calls_are_added_up_by_client_panel_and_kind_and_failed_ones_cost_nothing() {
        let mut failed = call("alpha", PaidKind::Order, PRO, eur(900));
        failed.failed = true;
        let calls = [
            call("beta", PaidKind::Order, PRO, eur(900)),
            call("alpha", PaidKind::Order, PRO, eur(900)),
            call("alpha", PaidKind::Renewal, PRO, eur(9_000)),
            call("alpha", PaidKind::PanelChange, BUSINESS, eur(2_500)),
            failed,
        ];

        let report = CostReport::compute(
            Month::parse("2026-11").unwrap(),
            &calls,
            &[],
            &Selling(vec![]),
        );

        assert_eq!(report.currency, "EUR");
        let keys: Vec<(&str, &str)> = report
            .rows
            .iter()
            .map(|r| (r.client.as_str(), r.panel.as_str()))
            .collect();
        assert_eq!(keys, [("alpha", BUSINESS), ("alpha", PRO), ("beta", PRO)]);
        let alpha_pro = &report.rows[1];
        assert_eq!(alpha_pro.paid_calls, 2);
        assert_eq!(alpha_pro.failed_calls, 1);
        assert_eq!(alpha_pro.orders_cents, 900);
        assert_eq!(alpha_pro.renewals_cents, 9_000);
        assert_eq!(report.totals.cost_cents(), 900 + 900 + 9_000 + 2_500);
        assert_eq!(report.totals.paid_calls, 4);
        assert_eq!(
            report.margin_cents(&report.totals),
            None,
            "no selling prices"
        );
    }

    #[test]
    fn an_unknown_price_is_counted_never_added_as_zero() {
        let calls = [
            call("alpha", PaidKind::Order, PRO, eur(900)),
            call(
                "alpha",
                PaidKind::Order,
                PRO,
                Some(CallPrice::unknown("the price list is unavailable")),
            ),
            call("alpha", PaidKind::Order, PRO, None),
            call(
                "alpha",
                PaidKind::Order,
                PRO,
                Some(CallPrice::Known(Money {
                    cents: 1_000,
                    currency: "USD".into(),
                })),
            ),
        ];

        let report = CostReport::compute(
            Month::parse("2026-11").unwrap(),
            &calls,
            &[],
            &Selling(vec![(PRO, Period::Month, 1_500)]),
        );

        assert_eq!(report.totals.paid_calls, 4);
        assert_eq!(report.totals.unpriced_calls, 3);
        assert_eq!(report.totals.cost_cents(), 900);
        assert_eq!(report.totals.revenue_cents, 1_500);
        assert_eq!(
            report.margin_cents(&report.totals),
            None,
            "a margin over unknown costs would be a guess"
        );
    }

    #[test]
    fn revenue_and_margin_come_from_the_selling_prices() {
        let mut yearly = call("alpha", PaidKind::Renewal, PRO, eur(9_000));
        yearly.period = Period::Year;
        let mut trial = call("alpha", PaidKind::Order, "ISPmanager 6 Trial", eur(0));
        trial.period = Period::Trial;
        let calls = [call("alpha", PaidKind::Order, PRO, eur(900)), yearly, trial];
        let selling = Selling(vec![
            (PRO, Period::Month, 1_500),
            (PRO, Period::Year, 12_000),
        ]);

        let report = CostReport::compute(Month::parse("2026-11").unwrap(), &calls, &[], &selling);

        assert_eq!(report.totals.revenue_cents, 13_500);
        assert_eq!(
            report.totals.unsold_calls, 0,
            "a free trial is nothing to sell"
        );
        assert_eq!(report.margin_cents(&report.totals), Some(13_500 - 9_900));
        let mut unsold = calls.to_vec();
        unsold.push(call("alpha", PaidKind::Order, BUSINESS, eur(2_500)));
        let report = CostReport::compute(Month::parse("2026-11").unwrap(), &unsold, &[], &selling);
        assert_eq!(report.totals.unsold_calls, 1);
        assert_eq!(report.margin_cents(&report.totals), None);
    }

    #[test]
    fn live_licenses_and_the_next_months_renewals_are_counted() {
        let live = |client: &str, renewal: Option<CallPrice>| LiveLicense {
            client: ClientName::new(client.to_owned()),
            panel: PRO.into(),
            renewal,
        };
        let licenses = [
            live("alpha", eur(900)),
            live("alpha", None),
            live("alpha", Some(CallPrice::unknown("no list"))),
            live("beta", eur(9_000)),
        ];

        let report = CostReport::compute(
            Month::parse("2026-11").unwrap(),
            &[],
            &licenses,
            &Selling(vec![]),
        );

        assert_eq!(report.rows[0].live_at_month_end, 3);
        assert_eq!(report.rows[0].next_month_renewals, 2);
        assert_eq!(report.rows[0].next_month_committed_cents, 900);
        assert_eq!(report.rows[0].next_month_unpriced, 1);
        assert_eq!(report.totals.next_month_committed_cents, 9_900);
        assert_eq!(report.totals.live_at_month_end, 4);
    }

    #[test]
    fn a_license_renews_in_a_month_if_it_renews_by_itself_and_expires_in_it() {
        let dec = Month::parse("2026-12").unwrap();
        let mid = dec.start() + time::Duration::days(10);

        assert!(renews_in(dec, true, Period::Month, Some(mid)));
        assert!(!renews_in(dec, false, Period::Month, Some(mid)));
        assert!(!renews_in(dec, true, Period::Trial, Some(mid)));
        assert!(!renews_in(dec, true, Period::Year, Some(dec.end())));
        assert!(!renews_in(dec, true, Period::Year, None));
    }

    #[test]
    fn the_csv_has_a_header_a_line_per_row_and_the_totals_and_quotes_what_it_must() {
        let calls = [
            call("a,\"b\"", PaidKind::Order, PRO, eur(900)),
            call("=cmd", PaidKind::Order, PRO, eur(900)),
        ];
        let report = CostReport::compute(
            Month::parse("2026-11").unwrap(),
            &calls,
            &[],
            &Selling(vec![]),
        );

        let csv = report.to_csv();

        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[1].starts_with("2026-11,'=cmd,"), "{}", lines[1]);
        assert!(lines[2].starts_with("2026-11,\"a,\"\"b\"\"\",ISPmanager 6 Pro,EUR,1,"));
        assert!(
            lines[3].starts_with("2026-11,,,EUR,2,0,0,18.00,0.00,0.00,18.00,,,,0,"),
            "{}",
            lines[3]
        );
        assert_eq!(lines[4], "");
        assert_eq!(lines.len(), 5);
    }
}
