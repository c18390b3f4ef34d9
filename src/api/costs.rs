//! Conversion of the cost report to the API message.

use time::OffsetDateTime;

use super::Timestamp;
use super::pb::v1 as pb;
use crate::domain::{CostReport, CostRow, cents_text};

/// The report as the API shows it, computed at `generated`.
pub fn cost_report_to_pb(report: &CostReport, generated: OffsetDateTime) -> pb::CostReport {
    pb::CostReport {
        month: report.month.to_string(),
        currency: report.currency.clone(),
        revenue_currency: report.revenue_currency.clone(),
        rows: report.rows.iter().map(|r| row_to_pb(report, r)).collect(),
        totals: Some(row_to_pb(report, &report.totals)),
        generate_time: Some(Timestamp::from(generated)),
    }
}

fn row_to_pb(report: &CostReport, row: &CostRow) -> pb::CostReportRow {
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    pb::CostReportRow {
        client: row.client.clone(),
        panel: row.panel.clone(),
        paid_calls: count(row.paid_calls),
        unpriced_calls: count(row.unpriced_calls),
        failed_calls: count(row.failed_calls),
        orders: cents_text(row.orders_cents),
        renewals: cents_text(row.renewals_cents),
        panel_changes: cents_text(row.panel_changes_cents),
        cost: cents_text(row.cost_cents()),
        revenue: report.revenue_text(row),
        margin: report.margin_cents(row).map(cents_text).unwrap_or_default(),
        unsold_calls: count(row.unsold_calls),
        live_at_month_end: count(row.live_at_month_end),
        next_month_renewals: count(row.next_month_renewals),
        next_month_committed: cents_text(row.next_month_committed_cents),
        next_month_unpriced: count(row.next_month_unpriced),
    }
}
