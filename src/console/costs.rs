//! `GET /console/costs`: a month's cost report (an admin's of every client, anyone
//! else's of its own), a chart of the twelve months up to it, drawn here as SVG (no
//! script), and its CSV download at `/console/costs.csv`.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;

use super::ConsoleState;
use super::error::PageError;
use super::session::Session;
use super::views::{Chart, ChartBar, ChartTick, CostLine, Costs, render};
use crate::auth::Scope;
use crate::domain::{CostReport, CostRow, Month, cents_text};
use crate::service::ServiceError;

/// Months the chart shows.
const CHART_MONTHS: usize = 12;

/// The chart's drawing area, in SVG units.
const CHART_WIDTH: u32 = 720;
const CHART_HEIGHT: u32 = 220;
const PLOT_LEFT: u32 = 64;
const PLOT_TOP: u32 = 12;
const PLOT_BOTTOM: u32 = 190;

/// The query of both routes.
#[derive(Debug, Default, Deserialize)]
pub struct MonthQuery {
    #[serde(default)]
    month: String,
}

fn month_of(q: &MonthQuery) -> Result<Month, PageError> {
    match q.month.trim() {
        "" => Ok(Month::of(OffsetDateTime::now_utc())),
        text => Month::parse(text).map_err(|v| ServiceError::InvalidArgument(vec![v]).into()),
    }
}

/// `GET /console/costs?month=YYYY-MM`.
pub async fn costs(
    State(state): State<ConsoleState>,
    session: Session,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    session.require(Scope::Read)?;
    let month = month_of(&q)?;
    let history = state
        .service
        .cost_history(session.principal.owner_filter(), month, CHART_MONTHS)
        .await?;
    let report = history.last().expect("the history ends with the month");
    let line = |row: &CostRow| CostLine {
        client: row.client.clone(),
        panel: row.panel.clone(),
        paid_calls: row.paid_calls,
        unpriced_calls: row.unpriced_calls,
        failed_calls: row.failed_calls,
        orders: cents_text(row.orders_cents),
        renewals: cents_text(row.renewals_cents),
        panel_changes: cents_text(row.panel_changes_cents),
        cost: cents_text(row.cost_cents()),
        revenue: report.revenue_text(row),
        margin: report.margin_cents(row).map(cents_text).unwrap_or_default(),
        live: row.live_at_month_end,
        next_renewals: row.next_month_renewals,
        committed: cents_text(row.next_month_committed_cents),
        next_unpriced: row.next_month_unpriced,
    };
    let page = Costs {
        chrome: super::views::Chrome::of(&session, "costs"),
        month: month.to_string(),
        previous: month.previous().to_string(),
        next: month.next().to_string(),
        next_month: month.next().to_string(),
        currency: report.currency.clone(),
        revenue_currency: report.revenue_currency.clone(),
        rows: report.rows.iter().map(line).collect(),
        totals: line(&report.totals),
        chart: chart(&history),
    };
    Ok(render(&page))
}

/// `GET /console/costs.csv?month=YYYY-MM`: what `GET /v1/reports/costs` answers for
/// `Accept: text/csv`.
pub async fn costs_csv(
    State(state): State<ConsoleState>,
    session: Session,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    session.require(Scope::Read)?;
    let month = month_of(&q)?;
    let report = state
        .service
        .cost_report(session.principal.owner_filter(), &month.to_string())
        .await?;
    Ok(crate::edge::csv_response(&report))
}

/// The bars of cost (and revenue, when selling prices are set) per month, scaled to
/// the largest amount, with three ticks on the amount axis.
fn chart(history: &[CostReport]) -> Chart {
    let with_revenue = history.iter().any(|r| !r.revenue_currency.is_empty());
    let top = history
        .iter()
        .map(|r| r.totals.cost_cents().max(r.totals.revenue_cents))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = i64::from(PLOT_BOTTOM - PLOT_TOP);
    let height = |cents: i64| u32::try_from(cents.max(0) * plot / top).unwrap_or(0);
    let slot = (CHART_WIDTH - PLOT_LEFT) / u32::try_from(history.len().max(1)).unwrap_or(1);
    let bar = if with_revenue {
        slot * 2 / 5
    } else {
        slot * 3 / 5
    };
    let mut bars = Vec::new();
    for (i, report) in history.iter().enumerate() {
        let x = PLOT_LEFT + slot * u32::try_from(i).unwrap_or(0) + slot / 10;
        let month = report.month.to_string();
        let cost = report.totals.cost_cents();
        let h = height(cost);
        bars.push(ChartBar {
            x,
            y: PLOT_BOTTOM - h,
            width: bar,
            height: h,
            class: "cost",
            title: format!("{month}: cost {} {}", cents_text(cost), report.currency),
            label: (i % 2 == history.len() % 2).then(|| month.clone()),
            label_x: x + bar / 2 + if with_revenue { bar / 2 } else { 0 },
        });
        if with_revenue {
            let revenue = report.totals.revenue_cents;
            let h = height(revenue);
            bars.push(ChartBar {
                x: x + bar,
                y: PLOT_BOTTOM - h,
                width: bar,
                height: h,
                class: "revenue",
                title: format!(
                    "{month}: revenue {} {}",
                    cents_text(revenue),
                    report.revenue_currency
                ),
                label: None,
                label_x: 0,
            });
        }
    }
    let ticks = [0, top / 2, top]
        .into_iter()
        .map(|cents| ChartTick {
            y: PLOT_BOTTOM - height(cents),
            label: cents_text(cents),
        })
        .collect();
    Chart {
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        left: PLOT_LEFT,
        right: CHART_WIDTH,
        bottom: PLOT_BOTTOM,
        label_y: PLOT_BOTTOM + 18,
        bars,
        ticks,
        with_revenue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallPrice, ClientName, Money, PaidCall, PaidKind, Period};

    struct NoSelling;
    impl crate::domain::SellingPrices for NoSelling {
        fn selling_cents(&self, _: &str, _: Period) -> Option<i64> {
            None
        }
        fn selling_currency(&self) -> &str {
            ""
        }
    }

    fn month_costing(month: &str, cents: &[i64]) -> CostReport {
        let calls: Vec<PaidCall> = cents
            .iter()
            .map(|c| PaidCall {
                client: ClientName::new("alpha".to_owned()),
                kind: PaidKind::Order,
                panel: "ISPmanager 6 Pro".into(),
                period: Period::Month,
                price: Some(CallPrice::Known(Money {
                    cents: *c,
                    currency: "EUR".into(),
                })),
                failed: false,
            })
            .collect();
        CostReport::compute(Month::parse(month).unwrap(), &calls, &[], &NoSelling)
    }

    #[test]
    fn bars_are_scaled_to_the_largest_month_and_stay_in_the_plot() {
        let history = [
            month_costing("2026-10", &[]),
            month_costing("2026-11", &[900, 900]),
            month_costing("2026-12", &[900]),
        ];

        let chart = chart(&history);

        let heights: Vec<u32> = chart.bars.iter().map(|b| b.height).collect();
        let full = PLOT_BOTTOM - PLOT_TOP;
        assert_eq!(heights, [0, full, full / 2]);
        for bar in &chart.bars {
            assert_eq!(bar.y + bar.height, PLOT_BOTTOM);
            assert!(bar.x + bar.width <= CHART_WIDTH);
        }
        assert_eq!(chart.bars[1].title, "2026-11: cost 18.00 EUR");
        assert_eq!(chart.ticks.last().unwrap().label, "18.00");
        assert!(!chart.with_revenue);
    }
}
