//! The license and operation rows: which columns are read, how a row becomes a domain
//! value, and the look-ups of a license that several writes share.

use anyhow::Context;

use super::exec::{Args, Conn, Row, args, dynamic, fixed};
use crate::domain::{
    ClientName, Hostname, License, LicenseState, Operation, ServerId, UpstreamFailure,
};
use crate::store::codec::{self, from_micros, to_micros};

pub(crate) const LICENSE_COLUMNS: &str = "id, client, server_id, ip, hostname, panel, tariff_id, \
     nodes, period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
     last_error_message, create_time, update_time, reused_from, reused_by";

/// How a write sets a license's state columns from [`license_values`] (`$1`..`$7`).
pub(crate) const SET_STATE: &str = "state = $1, license_key = $2, upstream_id = $3, \
     expire_time = $4, last_error_code = $5, last_error_message = $6, update_time = $7";

/// How a write sets a license's terms from [`license_values`] with terms (`$8`..`$13`).
pub(crate) const SET_TERMS: &str =
    "ip = $8, panel = $9, tariff_id = $10, nodes = $11, period = $12, auto_renew = $13";

/// The values a write stores of `license`: its state columns ([`SET_STATE`]), then,
/// with `terms`, its terms ([`SET_TERMS`]).
pub(crate) fn license_values(license: &License, terms: bool) -> Args {
    let mut values = args![
        license.state.as_str(),
        license.license_key.clone(),
        license.upstream_id.map(|id| id as i64),
        license.expire_time.map(to_micros),
        license.last_error.as_ref().map(|e| e.code.clone()),
        license.last_error.as_ref().map(|e| e.message.clone()),
        to_micros(license.update_time),
    ];
    if terms {
        values.extend(args![
            license.ip.to_string(),
            license.panel.as_str(),
            i64::from(license.tariff_id),
            license.nodes.map(i64::from),
            i64::from(license.period.upstream_value()),
            license.auto_renew,
        ]);
    }
    values
}

/// `SELECT` of the license columns from `licenses` where `condition` holds.
pub(crate) fn licenses_where(condition: &str) -> sqlx::SqlStr {
    dynamic(format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE {condition}"
    ))
}

pub(crate) fn license_from_row(row: &impl Row) -> anyhow::Result<License> {
    let error_code = row.opt_text("last_error_code")?;
    let error_message = row.opt_text("last_error_message")?;
    let hostname = row.opt_text("hostname")?;
    Ok(License {
        id: codec::license_id(row.str("id")?)?,
        client: ClientName::new(row.text("client")?),
        server_id: ServerId::parse(row.str("server_id")?, "serverId")
            .map_err(|e| anyhow::anyhow!("stored server id is invalid: {e}"))?,
        ip: codec::ip(row.str("ip")?)?,
        hostname: match hostname {
            Some(h) => Hostname::parse(&h, "hostname")
                .map_err(|e| anyhow::anyhow!("stored hostname is invalid: {e}"))?,
            None => None,
        },
        panel: row.text("panel")?,
        tariff_id: u32::try_from(row.int("tariff_id")?)?,
        nodes: row.opt_int("nodes")?.map(u32::try_from).transpose()?,
        period: codec::period(row.int("period")?)?,
        auto_renew: row.boolean("auto_renew")?,
        state: codec::state(row.str("state")?)?,
        license_key: row.opt_text("license_key")?,
        upstream_id: row.opt_int("upstream_id")?.map(u64::try_from).transpose()?,
        expire_time: row.opt_int("expire_time")?.map(from_micros).transpose()?,
        create_time: from_micros(row.int("create_time")?)?,
        update_time: from_micros(row.int("update_time")?)?,
        last_error: error_code.map(|code| UpstreamFailure {
            code,
            message: error_message.unwrap_or_default(),
        }),
        reused_from: row
            .opt_text("reused_from")?
            .map(|id| codec::license_id(&id))
            .transpose()?,
        reused_by: row
            .opt_text("reused_by")?
            .map(|id| codec::license_id(&id))
            .transpose()?,
    })
}

/// The operation columns [`operation_from_row`] reads.
pub(crate) const OPERATION_COLUMNS: &str = "id, license_id, params, phase, attempt, checks, failures, run_after, last_error, sent_at, \
     traceparent";

pub(crate) fn operation_from_row(row: &impl Row) -> anyhow::Result<Operation> {
    Ok(Operation {
        id: row.int("id")?,
        license_id: codec::license_id(row.str("license_id")?)?,
        kind: codec::kind_from_json(row.str("params")?)?,
        phase: codec::phase(row.str("phase")?)?,
        attempt: u32::try_from(row.int("attempt")?)?,
        checks: u32::try_from(row.int("checks")?)?,
        failures: u32::try_from(row.int("failures")?)?,
        run_after: from_micros(row.int("run_after")?)?,
        last_error: row.opt_text("last_error")?,
        sent_at: row.opt_int("sent_at")?.map(from_micros).transpose()?,
        traceparent: row.opt_text("traceparent")?,
    })
}

/// At most one license read by `sql` with `args`.
pub(crate) async fn one_license<C: Conn>(
    conn: &mut C,
    sql: sqlx::SqlStr,
    args: Args,
) -> anyhow::Result<Option<License>> {
    let row = conn.fetch_optional(sql, args).await?;
    row.as_ref().map(license_from_row).transpose()
}

/// The client's server's live license.
pub(crate) async fn live_license<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    server_id: &ServerId,
) -> anyhow::Result<Option<License>> {
    let sql = licenses_where(&format!(
        "client = $1 AND server_id = $2 AND {}",
        LicenseState::LIVE_SQL
    ));
    one_license(conn, sql, args![client.as_str(), server_id.as_str()])
        .await
        .context("cannot read the server's live license")
}

/// The live license that has the IP.
pub(crate) async fn live_license_on_ip<C: Conn>(
    conn: &mut C,
    ip: &str,
) -> anyhow::Result<Option<License>> {
    let sql = licenses_where(&format!("ip = $1 AND {}", LicenseState::LIVE_SQL));
    one_license(conn, sql, args![ip])
        .await
        .context("cannot read the IP's live license")
}

/// One operation by id.
pub(crate) async fn operation<C: Conn>(
    conn: &mut C,
    id: i64,
) -> anyhow::Result<Option<crate::domain::Operation>> {
    let row = conn
        .fetch_optional(
            dynamic(format!(
                "SELECT {OPERATION_COLUMNS} FROM operations WHERE id = $1"
            )),
            args![id],
        )
        .await
        .context("cannot read the operation")?;
    row.as_ref().map(operation_from_row).transpose()
}

/// The statement that tells whether a license has an operation that has not ended
/// (served by the partial index `operations_open_license`).
pub(crate) fn open_operation_sql() -> sqlx::SqlStr {
    fixed(
        "SELECT id FROM operations WHERE license_id = $1 \
         AND phase NOT IN ('DONE', 'FAILED') LIMIT 1",
    )
}
