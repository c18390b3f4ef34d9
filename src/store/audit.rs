//! The audit log and the spend guard's order count, for both backends. The two
//! differ only in placeholder syntax and the pool type.

use anyhow::Context;
use sqlx::{PgConnection, PgPool, Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::codec::{self, from_micros, to_micros};
use super::{Page, StoreError};
use crate::domain::{AuditEntry, AuditFilter, AuditOutcome, ClientName};

const COLUMNS: &str = "id, time, client, action, license_id, server_id, request_id, upstream_id, outcome, detail, \
     cost_cents";

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

fn entry_from_row<R>(row: &R) -> anyhow::Result<AuditEntry>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        time: from_micros(row.try_get("time")?)?,
        client: ClientName::new(row.try_get::<String, _>("client")?),
        action: row.try_get("action")?,
        license_id: codec::license_id(&row.try_get::<String, _>("license_id")?)?,
        server_id: row.try_get("server_id")?,
        request_id: row.try_get("request_id")?,
        upstream_id: row
            .try_get::<Option<i64>, _>("upstream_id")?
            .map(u64::try_from)
            .transpose()?,
        outcome: AuditOutcome::parse(&outcome)
            .with_context(|| format!("unknown stored audit outcome {outcome:?}"))?,
        detail: row.try_get("detail")?,
        cost_cents: row.try_get("cost_cents")?,
    })
}

fn upstream_id(entry: &AuditEntry) -> anyhow::Result<Option<i64>> {
    entry
        .upstream_id
        .map(i64::try_from)
        .transpose()
        .context("upstream id out of range")
}

/// Appends `entry` (SQLite), on a pool or inside a transaction.
pub(super) async fn insert_sqlite<'c>(
    db: impl sqlx::SqliteExecutor<'c>,
    entry: &AuditEntry,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO audit_log (time, client, action, license_id, server_id, request_id, \
         upstream_id, outcome, detail, cost_cents) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         RETURNING id",
    )
    .bind(to_micros(entry.time))
    .bind(entry.client.as_str())
    .bind(&entry.action)
    .bind(entry.license_id.to_string())
    .bind(&entry.server_id)
    .bind(&entry.request_id)
    .bind(upstream_id(entry)?)
    .bind(entry.outcome.as_str())
    .bind(&entry.detail)
    .bind(entry.cost_cents)
    .fetch_one(db)
    .await
    .context("cannot append to the audit log")?;
    Ok(id)
}

/// Appends `entry` (PostgreSQL), on a pool or inside a transaction.
pub(super) async fn insert_pg<'c>(
    db: impl sqlx::PgExecutor<'c>,
    entry: &AuditEntry,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO audit_log (time, client, action, license_id, server_id, request_id, \
         upstream_id, outcome, detail, cost_cents) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING id",
    )
    .bind(to_micros(entry.time))
    .bind(entry.client.as_str())
    .bind(&entry.action)
    .bind(entry.license_id.to_string())
    .bind(&entry.server_id)
    .bind(&entry.request_id)
    .bind(upstream_id(entry)?)
    .bind(entry.outcome.as_str())
    .bind(&entry.detail)
    .bind(entry.cost_cents)
    .fetch_one(db)
    .await
    .context("cannot append to the audit log")?;
    Ok(id)
}

/// Appends the entry that ends an operation (SQLite), inside the transaction that
/// closes it: on behalf of the client and request id of the latest ACCEPTED entry of
/// the same license and action, else as `entry` has it (the license's owner).
pub(super) async fn append_ending_sqlite(
    tx: &mut SqliteConnection,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let accepted: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT client, request_id FROM audit_log WHERE license_id = ?1 AND action = ?2 \
         AND outcome = 'ACCEPTED' ORDER BY id DESC LIMIT 1",
    )
    .bind(entry.license_id.to_string())
    .bind(&entry.action)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot read the accepted audit entry")?;
    insert_sqlite(&mut *tx, &attributed(entry, accepted)).await?;
    Ok(())
}

/// [`append_ending_sqlite`] for PostgreSQL.
pub(super) async fn append_ending_pg(
    tx: &mut PgConnection,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let accepted: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT client, request_id FROM audit_log WHERE license_id = $1 AND action = $2 \
         AND outcome = 'ACCEPTED' ORDER BY id DESC LIMIT 1",
    )
    .bind(entry.license_id.to_string())
    .bind(&entry.action)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot read the accepted audit entry")?;
    insert_pg(&mut *tx, &attributed(entry, accepted)).await?;
    Ok(())
}

fn attributed(entry: &AuditEntry, accepted: Option<(String, Option<String>)>) -> AuditEntry {
    let mut entry = entry.clone();
    if let Some((client, request_id)) = accepted {
        entry.client = ClientName::new(client);
        entry.request_id = request_id;
    }
    entry
}

/// Entries matching `filter`, newest first (SQLite).
pub(super) async fn list_sqlite(
    pool: &SqlitePool,
    filter: &AuditFilter,
    page_size: u32,
    page_token: Option<&str>,
) -> Result<Page<AuditEntry>, StoreError> {
    let before = decode_token(page_token)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log WHERE (?1 IS NULL OR license_id = ?1) \
         AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR outcome = ?3) \
         AND (?4 IS NULL OR id < ?4) AND (?6 IS NULL OR client = ?6) \
         AND (?7 IS NULL OR time >= ?7) AND (?8 IS NULL OR time < ?8) \
         ORDER BY id DESC LIMIT ?5"
    )))
    .bind(filter.license_id.map(|id| id.to_string()))
    .bind(filter.action.as_deref())
    .bind(filter.outcome.map(AuditOutcome::as_str))
    .bind(before)
    .bind(i64::from(page_size) + 1)
    .bind(filter.client.as_ref().map(ClientName::as_str))
    .bind(filter.since.map(to_micros))
    .bind(filter.until.map(to_micros))
    .fetch_all(pool)
    .await
    .context("cannot read the audit log")?;
    let items = rows
        .iter()
        .map(entry_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(page(items, page_size))
}

/// Entries matching `filter`, newest first (PostgreSQL).
pub(super) async fn list_pg(
    pool: &PgPool,
    filter: &AuditFilter,
    page_size: u32,
    page_token: Option<&str>,
) -> Result<Page<AuditEntry>, StoreError> {
    let before = decode_token(page_token)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log WHERE ($1::TEXT IS NULL OR license_id = $1) \
         AND ($2::TEXT IS NULL OR action = $2) AND ($3::TEXT IS NULL OR outcome = $3) \
         AND ($4::BIGINT IS NULL OR id < $4) AND ($6::TEXT IS NULL OR client = $6) \
         AND ($7::BIGINT IS NULL OR time >= $7) AND ($8::BIGINT IS NULL OR time < $8) \
         ORDER BY id DESC LIMIT $5"
    )))
    .bind(filter.license_id.map(|id| id.to_string()))
    .bind(filter.action.as_deref())
    .bind(filter.outcome.map(AuditOutcome::as_str))
    .bind(before)
    .bind(i64::from(page_size) + 1)
    .bind(filter.client.as_ref().map(ClientName::as_str))
    .bind(filter.since.map(to_micros))
    .bind(filter.until.map(to_micros))
    .fetch_all(pool)
    .await
    .context("cannot read the audit log")?;
    let items = rows
        .iter()
        .map(entry_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(page(items, page_size))
}

/// How many paid calls `client` made at or after `since` (licenses created, renewals
/// and panel changes accepted), and when the oldest of
/// them was created (SQLite).
pub(super) async fn orders_since_sqlite<'c>(
    pool: impl sqlx::SqliteExecutor<'c>,
    client: &ClientName,
    since: OffsetDateTime,
) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(t) AS oldest FROM ( \
           SELECT create_time AS t FROM licenses WHERE client = ?1 AND create_time >= ?2 \
           UNION ALL \
           SELECT time AS t FROM audit_log WHERE client = ?1 AND time >= ?2 \
             AND outcome = 'ACCEPTED' AND action IN ('RENEW', 'CHANGE_PANEL') \
         ) AS paid",
    )
    .bind(client.as_str())
    .bind(to_micros(since))
    .fetch_one(pool)
    .await
    .context("cannot count recent orders")?;
    counted(row.try_get("n"), row.try_get("oldest"))
}

/// How many paid calls `client` made at or after `since` (licenses created, renewals
/// and panel changes accepted), and when the oldest of
/// them was created (PostgreSQL).
pub(super) async fn orders_since_pg<'c>(
    pool: impl sqlx::PgExecutor<'c>,
    client: &ClientName,
    since: OffsetDateTime,
) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(t) AS oldest FROM ( \
           SELECT create_time AS t FROM licenses WHERE client = $1 AND create_time >= $2 \
           UNION ALL \
           SELECT time AS t FROM audit_log WHERE client = $1 AND time >= $2 \
             AND outcome = 'ACCEPTED' AND action IN ('RENEW', 'CHANGE_PANEL') \
         ) AS paid",
    )
    .bind(client.as_str())
    .bind(to_micros(since))
    .fetch_one(pool)
    .await
    .context("cannot count recent orders")?;
    counted(row.try_get("n"), row.try_get("oldest"))
}

fn counted(
    n: Result<i64, sqlx::Error>,
    oldest: Result<Option<i64>, sqlx::Error>,
) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
    let n = u64::try_from(n.context("cannot read the order count")?).unwrap_or(0);
    let oldest = oldest
        .context("cannot read the oldest order time")?
        .map(from_micros)
        .transpose()?;
    Ok((n, oldest))
}

/// What `client`'s paid calls accepted at or after `since` cost in all (hundredths),
/// and when the oldest priced one was accepted (SQLite).
pub(super) async fn spend_since_sqlite<'c>(
    pool: impl sqlx::SqliteExecutor<'c>,
    client: &ClientName,
    since: OffsetDateTime,
) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(cost_cents), 0) AS spent, MIN(time) AS oldest FROM audit_log \
         WHERE client = ?1 AND time >= ?2 AND outcome = 'ACCEPTED' AND cost_cents IS NOT NULL",
    )
    .bind(client.as_str())
    .bind(to_micros(since))
    .fetch_one(pool)
    .await
    .context("cannot add up recent spending")?;
    spent(row.try_get("spent"), row.try_get("oldest"))
}

/// What `client`'s paid calls accepted at or after `since` cost in all (hundredths),
/// and when the oldest priced one was accepted (PostgreSQL).
pub(super) async fn spend_since_pg<'c>(
    pool: impl sqlx::PgExecutor<'c>,
    client: &ClientName,
    since: OffsetDateTime,
) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(cost_cents), 0)::BIGINT AS spent, MIN(time) AS oldest FROM audit_log \
         WHERE client = $1 AND time >= $2 AND outcome = 'ACCEPTED' AND cost_cents IS NOT NULL",
    )
    .bind(client.as_str())
    .bind(to_micros(since))
    .fetch_one(pool)
    .await
    .context("cannot add up recent spending")?;
    spent(row.try_get("spent"), row.try_get("oldest"))
}

fn spent(
    total: Result<i64, sqlx::Error>,
    oldest: Result<Option<i64>, sqlx::Error>,
) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
    let total = total.context("cannot read the spending total")?;
    let oldest = oldest
        .context("cannot read the oldest priced call")?
        .map(from_micros)
        .transpose()?;
    Ok((total, oldest))
}
