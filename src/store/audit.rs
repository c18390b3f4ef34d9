//! The audit log and the spend guard's counts, on either database.

use anyhow::Context;
use time::OffsetDateTime;

use super::codec::{self, from_micros, to_micros};
use super::sql::exec::{Args, Conn, Row, args, dynamic, fixed};
use super::{Page, Spent, StoreError};
use crate::domain::{
    AuditEntry, AuditFilter, AuditOutcome, Bought, CallPrice, ClientName, LicenseId,
};

const COLUMNS: &str = "id, time, client, action, license_id, server_id, request_id, upstream_id, outcome, detail, \
     cost_cents, cost_currency, cost_unknown, cost_panel, cost_period";

/// Audit page tokens are the last id of the previous page behind a prefix, so a
/// license page token is not taken for one.
const TOKEN_PREFIX: &str = "audit-";

fn decode_token(token: Option<&str>) -> Result<Option<i64>, StoreError> {
    match token {
        None | Some("") => Ok(None),
        Some(t) => t
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .map(Some)
            .ok_or(StoreError::BadPageToken),
    }
}

fn page(mut items: Vec<AuditEntry>, page_size: u32) -> Page<AuditEntry> {
    let next_token = if items.len() > page_size as usize {
        items.truncate(page_size as usize);
        items.last().map(|e| format!("{TOKEN_PREFIX}{}", e.id))
    } else {
        None
    };
    Page { items, next_token }
}

fn entry_from_row(row: &impl Row) -> anyhow::Result<AuditEntry> {
    let outcome = row.str("outcome")?;
    Ok(AuditEntry {
        id: row.int("id")?,
        time: from_micros(row.int("time")?)?,
        client: ClientName::new(row.text("client")?),
        action: row.text("action")?,
        license_id: codec::license_id(row.str("license_id")?)?,
        server_id: row.text("server_id")?,
        request_id: row.opt_text("request_id")?,
        upstream_id: row.opt_int("upstream_id")?.map(u64::try_from).transpose()?,
        outcome: AuditOutcome::parse(outcome)
            .with_context(|| format!("unknown stored audit outcome {outcome:?}"))?,
        detail: row.opt_text("detail")?,
        price: codec::price_from_row(row)?,
        bought: bought_from_row(row)?,
    })
}

/// What a paid call bought, from the `cost_panel` and `cost_period` columns (an entry
/// written before they were recorded has neither).
fn bought_from_row(row: &impl Row) -> anyhow::Result<Option<Bought>> {
    Ok(
        match (row.opt_text("cost_panel")?, row.opt_int("cost_period")?) {
            (Some(panel), Some(period)) => Some(Bought {
                panel,
                period: codec::period(period)?,
            }),
            _ => None,
        },
    )
}

fn upstream_id(entry: &AuditEntry) -> anyhow::Result<Option<i64>> {
    entry
        .upstream_id
        .map(i64::try_from)
        .transpose()
        .context("upstream id out of range")
}

/// The audit log's columns, in the order [`values`] gives them.
const INSERT_COLUMNS: &str = "INSERT INTO audit_log (time, client, action, license_id, \
     server_id, request_id, upstream_id, outcome, detail, cost_cents, cost_currency, \
     cost_unknown, cost_panel, cost_period)";

/// `entry`'s values for [`INSERT_COLUMNS`], as `$1` … `$14`.
fn values(entry: &AuditEntry) -> Result<Args, StoreError> {
    let price = codec::PriceColumns::of(entry.price.as_ref());
    Ok(args![
        to_micros(entry.time),
        entry.client.as_str(),
        entry.action.as_str(),
        entry.license_id.to_string(),
        entry.server_id.as_str(),
        entry.request_id.clone(),
        upstream_id(entry)?,
        entry.outcome.as_str(),
        entry.detail.clone(),
        price.cents,
        price.currency,
        price.unknown,
        entry.bought.as_ref().map(|b| b.panel.clone()),
        entry
            .bought
            .as_ref()
            .map(|b| i64::from(b.period.upstream_value())),
    ])
}

/// Appends `entry`, on a pool's connection or inside a transaction.
pub(super) async fn insert<C: Conn>(conn: &mut C, entry: &AuditEntry) -> Result<i64, StoreError> {
    let row = conn
        .fetch_one(
            dynamic(format!(
                "{INSERT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14) RETURNING id"
            )),
            values(entry)?,
        )
        .await
        .context("cannot append to the audit log")?;
    Ok(row.int("id").context("cannot read the audit entry's id")?)
}

/// Appends the entry that ends an operation, inside the transaction that closes it:
/// on behalf of the client and request id of the latest ACCEPTED entry of the same
/// license and action, else as `entry` has it (the license's owner). One statement:
/// the closing transaction runs on the one SQLite writer, a round trip each.
pub(super) async fn append_ending<C: Conn>(
    conn: &mut C,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    conn.execute(
        dynamic(format!(
            "{INSERT_COLUMNS} SELECT $1, COALESCE(a.client, $2), $3, $4, $5, \
             CASE WHEN a.client IS NULL THEN $6 ELSE a.request_id END, \
             $7, $8, $9, $10, $11, $12, $13, $14 \
             FROM (SELECT 1 AS one) AS one LEFT JOIN (SELECT client, request_id FROM audit_log \
               WHERE license_id = $4 AND action = $3 AND outcome = 'ACCEPTED' \
               ORDER BY id DESC LIMIT 1) AS a ON 1 = 1"
        )),
        values(entry)?,
    )
    .await
    .context("cannot append the ending audit entry")?;
    Ok(())
}

/// The price recorded on the latest ACCEPTED entry of `action` on `license_id`: the
/// price of the paid call whose operation is running.
pub(super) async fn accepted_price<C: Conn>(
    conn: &mut C,
    license_id: LicenseId,
    action: &str,
) -> Result<Option<CallPrice>, StoreError> {
    let row = conn
        .fetch_optional(
            fixed(
                "SELECT cost_cents, cost_currency, cost_unknown FROM audit_log \
                 WHERE license_id = $1 AND action = $2 AND outcome = 'ACCEPTED' \
                 ORDER BY id DESC LIMIT 1",
            ),
            args![license_id.to_string(), action],
        )
        .await
        .context("cannot read the accepted audit entry")?;
    Ok(match row {
        Some(row) => codec::price_from_row(&row)?,
        None => None,
    })
}

/// Entries matching `filter`, newest first.
pub(super) async fn list<C: Conn>(
    conn: &mut C,
    filter: &AuditFilter,
    page_size: u32,
    page_token: Option<&str>,
) -> Result<Page<AuditEntry>, StoreError> {
    let before = decode_token(page_token)?;
    let rows = conn
        .fetch_all(
            dynamic(format!(
                "SELECT {COLUMNS} FROM audit_log \
                 WHERE (CAST($1 AS TEXT) IS NULL OR license_id = $1) \
                 AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
                 AND (CAST($3 AS TEXT) IS NULL OR outcome = $3) \
                 AND (CAST($4 AS BIGINT) IS NULL OR id < $4) \
                 AND (CAST($6 AS TEXT) IS NULL OR client = $6) \
                 AND (CAST($7 AS BIGINT) IS NULL OR time >= $7) \
                 AND (CAST($8 AS BIGINT) IS NULL OR time < $8) \
                 ORDER BY id DESC LIMIT $5"
            )),
            args![
                filter.license_id.map(|id| id.to_string()),
                filter.action.clone(),
                filter.outcome.map(AuditOutcome::as_str),
                before,
                i64::from(page_size) + 1,
                filter.client.as_ref().map(ClientName::as_str),
                filter.since.map(to_micros),
                filter.until.map(to_micros),
            ],
        )
        .await
        .context("cannot read the audit log")?;
    let items = rows
        .iter()
        .map(entry_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(page(items, page_size))
}

/// How many paid calls `client` made at or after `since` (licenses created, renewals
/// and panel changes accepted), and when the oldest of them was created.
pub(super) async fn orders_since<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    since: OffsetDateTime,
) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
    let row = conn
        .fetch_one(
            fixed(
                "SELECT COUNT(*) AS n, MIN(t) AS oldest FROM ( \
                   SELECT create_time AS t FROM licenses WHERE client = $1 AND create_time >= $2 \
                   UNION ALL \
                   SELECT time AS t FROM audit_log WHERE client = $1 AND time >= $2 \
                     AND outcome = 'ACCEPTED' AND action IN ('RENEW', 'CHANGE_PANEL') \
                 ) AS paid",
            ),
            args![client.as_str(), to_micros(since)],
        )
        .await
        .context("cannot count recent orders")?;
    let n = u64::try_from(row.int("n").context("cannot read the order count")?).unwrap_or(0);
    Ok((n, oldest(&row)?))
}

/// What `client`'s paid calls accepted at or after `since` cost in all (hundredths),
/// how many of them have no known price, and when the oldest was accepted.
pub(super) async fn spend_since<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    since: OffsetDateTime,
) -> Result<Spent, StoreError> {
    let row = conn
        .fetch_one(
            fixed(
                "SELECT CAST(COALESCE(SUM(cost_cents), 0) AS BIGINT) AS spent, \
                 CAST(COUNT(*) - COUNT(cost_cents) AS BIGINT) AS unpriced, MIN(time) AS oldest \
                 FROM audit_log WHERE client = $1 AND time >= $2 AND outcome = 'ACCEPTED' \
                 AND action IN ('ORDER', 'RENEW', 'CHANGE_PANEL')",
            ),
            args![client.as_str(), to_micros(since)],
        )
        .await
        .context("cannot add up recent spending")?;
    Ok(Spent {
        cents: row.int("spent").context("cannot read the spending total")?,
        unpriced: u64::try_from(
            row.int("unpriced")
                .context("cannot read the unpriced count")?,
        )
        .unwrap_or(0),
        oldest: oldest(&row)?,
    })
}

/// The `oldest` column of a count: when the oldest counted call was made.
fn oldest(row: &impl Row) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(row
        .opt_int("oldest")
        .context("cannot read the oldest counted call")?
        .map(from_micros)
        .transpose()?)
}
