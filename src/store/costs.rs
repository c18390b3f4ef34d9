//! The cost report's reads, on either database: a month's paid calls from the audit
//! log and the licenses live at an instant.

use anyhow::Context;
use futures::TryStreamExt;
use time::OffsetDateTime;

use super::StoreError;
use super::codec::{self, to_micros};
use super::sql::exec::{Conn, Row, args, fixed};
use super::sql::rows::{license_from_row, licenses_where};
use crate::domain::{ClientName, License, PaidCall, PaidKind};

/// The paid calls accepted in `[since, until)` (of `client` when set), oldest first,
/// each with its recorded price, what it bought (else the license's current panel and
/// period, for a call recorded before that was kept) and whether its upstream work
/// ended FAILED (the operation's ending entry: the next non-ACCEPTED entry of the
/// same license and action, since a license runs one operation at a time).
pub(super) async fn paid_calls<C: Conn>(
    conn: &mut C,
    since: OffsetDateTime,
    until: OffsetDateTime,
    client: Option<&ClientName>,
) -> Result<Vec<PaidCall>, StoreError> {
    let rows = conn
        .fetch_all(
            fixed(
                "SELECT a.client, a.action, a.cost_cents, a.cost_currency, a.cost_unknown, \
                 COALESCE(a.cost_panel, l.panel) AS panel, \
                 COALESCE(a.cost_period, l.period) AS period, \
                 (SELECT e.outcome FROM audit_log e WHERE e.license_id = a.license_id \
                   AND e.action = a.action AND e.id > a.id AND e.outcome <> 'ACCEPTED' \
                   ORDER BY e.id LIMIT 1) AS ended \
                 FROM audit_log a LEFT JOIN licenses l ON l.id = a.license_id \
                 WHERE a.outcome = 'ACCEPTED' AND a.action IN ('ORDER', 'RENEW', 'CHANGE_PANEL') \
                 AND a.time >= $1 AND a.time < $2 \
                 AND (CAST($3 AS TEXT) IS NULL OR a.client = $3) \
                 ORDER BY a.id",
            ),
            args![
                to_micros(since),
                to_micros(until),
                client.map(ClientName::as_str)
            ],
        )
        .await
        .context("cannot read the month's paid calls")?;
    let mut calls = Vec::with_capacity(rows.len());
    for row in &rows {
        calls.push(paid_call(row)?);
    }
    Ok(calls)
}

fn paid_call(row: &impl Row) -> anyhow::Result<PaidCall> {
    let action = row.text("action")?;
    let kind = PaidKind::of(&action)
        .with_context(|| format!("audit action {action:?} is not a paid call"))?;
    Ok(PaidCall {
        client: ClientName::new(row.text("client")?),
        kind,
        panel: row.opt_text("panel")?.unwrap_or_default(),
        period: match row.opt_int("period")? {
            Some(p) => codec::period(p)?,
            None => crate::domain::Period::Month,
        },
        price: codec::price_from_row(row)?,
        failed: row.opt_text("ended")?.as_deref() == Some("FAILED"),
    })
}

/// The licenses (of `client` when set) live at `at`: accepted before it, not FAILED
/// (nothing was bought) and not CANCELLED or REUSED before it (a cancelled license's
/// last change is its cancellation; a reused one's upstream license went on as the
/// license that took it).
pub(super) async fn licenses_live_at<C: Conn>(
    conn: &mut C,
    at: OffsetDateTime,
    client: Option<&ClientName>,
) -> Result<Vec<License>, StoreError> {
    let mut rows = conn.fetch(
        licenses_where(
            "create_time < $1 AND state <> 'FAILED' \
             AND NOT (state IN ('CANCELLED', 'REUSED') AND update_time < $1) \
             AND (CAST($2 AS TEXT) IS NULL OR client = $2) ORDER BY id",
        ),
        args![to_micros(at), client.map(ClientName::as_str)],
    );
    let mut licenses = Vec::new();
    while let Some(row) = rows
        .try_next()
        .await
        .context("cannot read the live licenses")?
    {
        licenses.push(license_from_row(&row)?);
    }
    Ok(licenses)
}
