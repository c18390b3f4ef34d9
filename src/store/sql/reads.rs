//! Reads (and the single-statement writes beside them) that need no transaction of
//! their own: request ids, licenses and their listings, the drift report.

use anyhow::Context;
use futures::TryStreamExt;
use time::OffsetDateTime;

use super::exec::{Conn, Row as _, args, dynamic, fixed};
use super::rows::{license_from_row, licenses_where, one_license};
use crate::domain::{ClientName, License, LicenseId, ServerId};
use crate::store::codec::{self, from_micros, to_micros};
use crate::store::{LicenseFilter, Page, RequestRecord, StoreError};

/// A stored request id.
pub(crate) async fn find_request<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    key: &str,
) -> anyhow::Result<Option<RequestRecord>> {
    let row = conn
        .fetch_optional(
            fixed(
                "SELECT fingerprint, response, busy_until, create_time FROM request_keys \
                 WHERE client = $1 AND key = $2",
            ),
            args![client.as_str(), key],
        )
        .await
        .context("cannot read the request id")?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(RequestRecord {
        client: client.clone(),
        key: key.to_owned(),
        fingerprint: row.text("fingerprint").context("bad request row")?,
        response: row.text("response").context("bad request row")?,
        busy_until: row
            .opt_int("busy_until")
            .context("bad request row")?
            .map(from_micros)
            .transpose()?,
        create_time: from_micros(row.int("create_time").context("bad request row")?)?,
    }))
}

/// Replaces the stored result of a request id and clears its busy mark.
pub(crate) async fn complete_request<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    key: &str,
    response: &str,
) -> anyhow::Result<()> {
    conn.execute(
        fixed(
            "UPDATE request_keys SET response = $1, busy_until = NULL \
             WHERE client = $2 AND key = $3",
        ),
        args![response, client.as_str(), key],
    )
    .await
    .context("cannot complete the request id")?;
    Ok(())
}

/// Deletes request ids created before `before`; returns how many.
pub(crate) async fn reap_requests<C: Conn>(
    conn: &mut C,
    before: OffsetDateTime,
) -> anyhow::Result<u64> {
    conn.execute(
        fixed("DELETE FROM request_keys WHERE create_time < $1"),
        args![to_micros(before)],
    )
    .await
    .context("cannot reap request ids")
}

/// The downstream item ids of `ids`.
pub(crate) async fn item_ids<C: Conn>(
    conn: &mut C,
    ids: &[LicenseId],
) -> anyhow::Result<Vec<(LicenseId, u64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = codec::item_ids_sql(ids.len(), |i| format!("${i}"));
    let rows = conn
        .fetch_all(
            dynamic(sql),
            ids.iter().map(|id| id.to_string().into()).collect(),
        )
        .await
        .context("cannot read the item ids")?;
    rows.iter()
        .map(|row| codec::item_pair((row.text("id")?, row.int("item_id")?)))
        .collect()
}

/// The license whose downstream item id is `item`.
pub(crate) async fn license_by_item<C: Conn>(
    conn: &mut C,
    item: u64,
) -> anyhow::Result<Option<LicenseId>> {
    let row = conn
        .fetch_optional(
            dynamic(codec::license_by_item_sql("$1")),
            args![codec::item_bind(item)],
        )
        .await
        .context("cannot find the license of an item id")?;
    row.map(|row| codec::license_id(row.str("id")?)).transpose()
}

/// One license by id.
pub(crate) async fn license<C: Conn>(
    conn: &mut C,
    id: LicenseId,
) -> anyhow::Result<Option<License>> {
    one_license(conn, licenses_where("id = $1"), args![id.to_string()])
        .await
        .context("cannot read the license")
}

/// A server's live license, or else its most recent one.
pub(crate) async fn server_license<C: Conn>(
    conn: &mut C,
    client: Option<&ClientName>,
    server_id: &ServerId,
) -> anyhow::Result<Option<License>> {
    let sql = licenses_where(&format!(
        "server_id = $1 AND (CAST($2 AS TEXT) IS NULL OR client = $2) \
         ORDER BY {} DESC, id DESC LIMIT 1",
        crate::domain::LicenseState::LIVE_SQL
    ));
    one_license(
        conn,
        sql,
        args![server_id.as_str(), client.map(ClientName::as_str)],
    )
    .await
    .context("cannot read the server's license")
}

/// Licenses matching `filter`, newest first, `page_size` at most; `client_column` is
/// how the client is compared (see `codec::license_list_sql`).
pub(crate) async fn list_licenses<C: Conn>(
    conn: &mut C,
    filter: &LicenseFilter,
    page_size: u32,
    page_token: Option<&str>,
    client_column: &str,
) -> Result<Page<License>, StoreError> {
    let after = match page_token {
        Some(t) => Some(codec::decode_page_token(t).ok_or(StoreError::BadPageToken)?),
        None => None,
    };
    let (sql, binds) = codec::license_list_sql(
        super::rows::LICENSE_COLUMNS,
        filter,
        after,
        page_size,
        client_column,
        |n| format!("${n}"),
    );
    let values = binds
        .into_iter()
        .map(|bind| match bind {
            codec::ListBind::Text(v) => v.into(),
            codec::ListBind::Int(v) => v.into(),
        })
        .collect();
    let rows = conn
        .fetch_all(dynamic(sql), values)
        .await
        .context("cannot list licenses")?;
    let mut items = rows
        .iter()
        .map(license_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let next_token = if items.len() > page_size as usize {
        items.truncate(page_size as usize);
        items.last().map(|l| codec::encode_page_token(&l.id))
    } else {
        None
    };
    Ok(Page { items, next_token })
}

/// How many licenses are in each state.
pub(crate) async fn count_by_state<C: Conn>(conn: &mut C) -> anyhow::Result<Vec<(String, u64)>> {
    let rows = conn
        .fetch_all(
            fixed("SELECT state, COUNT(*) AS n FROM licenses GROUP BY state"),
            args![],
        )
        .await
        .context("cannot count the licenses by state")?;
    rows.iter()
        .map(|row| {
            Ok((
                row.text("state")?,
                u64::try_from(row.int("n")?).unwrap_or(0),
            ))
        })
        .collect()
}

/// Every license that has an upstream id, ordered by id; rows are decoded as they
/// arrive (the partial index `licenses_upstream` serves the read).
pub(crate) async fn licenses_with_upstream_id<C: Conn>(
    conn: &mut C,
) -> anyhow::Result<Vec<License>> {
    let mut rows = conn.fetch(
        licenses_where("upstream_id IS NOT NULL AND state <> 'REUSED' ORDER BY id"),
        args![],
    );
    let mut licenses = Vec::new();
    while let Some(row) = rows
        .try_next()
        .await
        .context("cannot read the licenses with an upstream id")?
    {
        licenses.push(license_from_row(&row)?);
    }
    Ok(licenses)
}

/// Keeps `report` as the latest drift report unless the stored one is newer.
pub(crate) async fn save_drift_report<C: Conn>(
    conn: &mut C,
    generate_time: OffsetDateTime,
    report: &str,
) -> anyhow::Result<()> {
    conn.execute(
        fixed(
            "INSERT INTO drift_reports (id, generate_time, report) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET generate_time = excluded.generate_time, \
             report = excluded.report WHERE drift_reports.generate_time <= excluded.generate_time",
        ),
        args![to_micros(generate_time), report],
    )
    .await
    .context("cannot save the drift report")?;
    Ok(())
}

/// The latest drift report, only if newer than `newer_than`.
pub(crate) async fn latest_drift_report<C: Conn>(
    conn: &mut C,
    newer_than: Option<OffsetDateTime>,
) -> anyhow::Result<Option<(OffsetDateTime, String)>> {
    let row = conn
        .fetch_optional(
            fixed(
                "SELECT generate_time, report FROM drift_reports \
                 WHERE id = 1 AND (CAST($1 AS BIGINT) IS NULL OR generate_time > $1)",
            ),
            args![newer_than.map(to_micros)],
        )
        .await
        .context("cannot read the drift report")?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some((
        from_micros(row.int("generate_time")?)?,
        row.text("report")?,
    )))
}
