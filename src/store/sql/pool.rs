//! The pool's writes and reads: an order taking a parked license, its own client
//! taking it back out, the upstream's last changes recorded when a license is parked,
//! a refused reuse giving the license back, and what the pool holds.

use anyhow::Context;
use futures::TryStreamExt;
use time::OffsetDateTime;

use super::events::insert_events;
use super::exec::{Args, Conn, Row as _, args, dynamic, fixed};
use super::rows::{LICENSE_COLUMNS, license_from_row, licenses_where, live_license, one_license};
use crate::domain::{EventKind, License, LicenseId, LicenseState, PoolPick};
use crate::store::codec::{from_micros, to_micros};
use crate::store::dialect::Dialect;
use crate::store::{ParkedLicense, StoreError};

/// The parked licenses an order may take, soonest to expire first (its paid time is
/// used before it runs out): of the tariff and node count, with both cooldowns passed
/// and enough paid time left, and with no step open on them (a park still finishing,
/// a cancellation on its way). Its five parameters are numbered from `first`.
fn pickable(first: usize) -> String {
    let [tariff, nodes, ip_changed, key_changed, paid_until] =
        std::array::from_fn(|i| format!("${}", first + i));
    format!(
        "state = 'PARKED' AND tariff_id = {tariff} AND COALESCE(nodes, 0) = {nodes} \
         AND pool_ip_changed IS NOT NULL AND pool_ip_changed <= {ip_changed} \
         AND pool_key_changed IS NOT NULL AND pool_key_changed <= {key_changed} \
         AND expire_time IS NOT NULL AND expire_time >= {paid_until} \
         AND upstream_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.license_id = licenses.id \
                         AND o.phase NOT IN ('DONE', 'FAILED')) \
         ORDER BY expire_time, id LIMIT 1"
    )
}

/// The values of [`pickable`]'s parameters for `pick`.
fn pick_args(pick: &PoolPick) -> Args {
    args![
        i64::from(pick.tariff_id),
        i64::from(pick.nodes.unwrap_or(0)),
        to_micros(pick.ip_changed_by),
        to_micros(pick.key_changed_by),
        to_micros(pick.paid_until_at_least),
    ]
}

/// A scalar subquery for the order's own `INSERT … RETURNING`, its parameters numbered
/// from `first` (added to `values`): the id of a license `pick` could take, or NULL.
/// The order's usual answer, nothing parked, costs no statement of its own (each one
/// is a round trip to SQLite's connection thread, on the one writer).
pub(crate) fn candidate_sql(pick: &PoolPick, first: usize, values: &mut Args) -> String {
    values.extend(pick_args(pick));
    format!("(SELECT id FROM licenses WHERE {})", pickable(first))
}

/// Candidates tried before an order gives up on the pool and buys: each one lost is
/// one a concurrent order took first.
const TRIES: usize = 4;

/// Takes a parked license for the license `taker` inside the order's transaction: it
/// becomes REUSED by `taker` (keeping its upstream id as history). The guard on the
/// state makes two orders never take one license: the second's update finds it
/// REUSED and tries the next. Returns the license as it was parked.
pub(crate) async fn take<C: Conn>(
    tx: &mut C,
    pick: &PoolPick,
    taker: LicenseId,
    now: OffsetDateTime,
) -> Result<Option<License>, StoreError> {
    for _ in 0..TRIES {
        let candidate = one_license(tx, licenses_where(&pickable(1)), pick_args(pick))
            .await
            .context("cannot read the pool")?;
        let Some(parked) = candidate else {
            return Ok(None);
        };
        let taken = tx
            .execute(
                fixed(
                    "UPDATE licenses SET state = 'REUSED', reused_by = $1, update_time = $2 \
                     WHERE id = $3 AND state = 'PARKED'",
                ),
                args![taker.to_string(), to_micros(now), parked.id.to_string()],
            )
            .await
            .context("cannot take the parked license")?;
        if taken == 1 {
            return Ok(Some(parked));
        }
    }
    Ok(None)
}

/// Takes the parked license `id` back out of the pool onto `ip` inside the
/// transaction that accepts its unpark (after the IP's reservation): it is SUSPENDED
/// on `ip` from now on, so that it holds its server and the IP as a live license, and
/// an order for either, accepted meanwhile, meets it in the one-live-license indexes
/// rather than the unpark meeting the order when it lands. Refused when its server
/// has another live license now. Returns `false` when an order for the server
/// committed its license while this update waited for it: the transaction is to be
/// run again (on PostgreSQL the failed update aborted it), and its check then finds
/// that license.
pub(crate) async fn unpark<D: Dialect>(
    tx: &mut D::WriteConn,
    id: LicenseId,
    ip: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let parked = one_license(
        tx,
        licenses_where("id = $1 AND state = 'PARKED'"),
        args![id.to_string()],
    )
    .await
    .context("cannot read the parked license")?
    .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("license {id} is not parked")))?;
    if let Some(holder) = live_license(tx, &parked.client, &parked.server_id).await? {
        return Err(StoreError::ServerTaken(Box::new(holder)));
    }
    let updated = tx
        .execute(
            fixed(
                "UPDATE licenses SET state = 'SUSPENDED', ip = $1, update_time = $2 \
                 WHERE id = $3 AND state = 'PARKED'",
            ),
            args![ip, to_micros(now), id.to_string()],
        )
        .await;
    match updated {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("cannot take the license out of the pool")
                .into());
        }
    }
    let mut after = parked;
    after.state = LicenseState::Suspended;
    after.ip = crate::domain::LicenseIp::parse(ip, "ip")
        .map_err(|v| StoreError::Unexpected(anyhow::anyhow!("{v}")))?;
    after.update_time = now;
    insert_events::<D>(tx, &[EventKind::StateChanged, EventKind::IpChanged], &after).await?;
    Ok(true)
}

/// Records the upstream's last IP and key change of a parked license.
pub(crate) async fn set_changes<C: Conn>(
    conn: &mut C,
    id: LicenseId,
    ip_changed: OffsetDateTime,
    key_changed: OffsetDateTime,
) -> anyhow::Result<()> {
    conn.execute(
        fixed("UPDATE licenses SET pool_ip_changed = $1, pool_key_changed = $2 WHERE id = $3"),
        args![
            to_micros(ip_changed),
            to_micros(key_changed),
            id.to_string()
        ],
    )
    .await
    .context("cannot record the parked license's last changes")?;
    Ok(())
}

/// Gives the parked licenses that a refused (FAILED) reuse had taken back to the pool,
/// not to be taken again before `retry_from` counts as their last IP change. Returns
/// the licenses given back.
pub(crate) async fn give_back<C: Conn>(
    conn: &mut C,
    retry_from: OffsetDateTime,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<LicenseId>> {
    let rows: Vec<_> = conn
        .fetch(
            fixed(
                "UPDATE licenses SET state = 'PARKED', reused_by = NULL, \
                 pool_ip_changed = $1, update_time = $2 \
                 WHERE state = 'REUSED' AND reused_by IN \
                 (SELECT t.id FROM licenses t WHERE t.state = 'FAILED' AND t.upstream_id IS NULL) \
                 RETURNING id",
            ),
            args![to_micros(retry_from), to_micros(now)],
        )
        .try_collect()
        .await
        .context("cannot give refused reuses back to the pool")?;
    rows.iter()
        .map(|r| crate::store::codec::license_id(r.str("id")?))
        .collect()
}

/// Every parked license with the upstream's last changes, soonest to expire first.
pub(crate) async fn parked<C: Conn>(conn: &mut C) -> anyhow::Result<Vec<ParkedLicense>> {
    let mut rows = conn.fetch(
        dynamic(format!(
            "SELECT {LICENSE_COLUMNS}, pool_ip_changed, pool_key_changed FROM licenses \
             WHERE state = 'PARKED' ORDER BY expire_time, id"
        )),
        args![],
    );
    let mut parked = Vec::new();
    while let Some(row) = rows.try_next().await.context("cannot read the pool")? {
        parked.push(ParkedLicense {
            license: license_from_row(&row)?,
            ip_changed: row
                .opt_int("pool_ip_changed")?
                .map(from_micros)
                .transpose()?,
            key_changed: row
                .opt_int("pool_key_changed")?
                .map(from_micros)
                .transpose()?,
        });
    }
    Ok(parked)
}

/// Per tariff, how many licenses took a parked license instead of buying (a refused
/// reuse, which ended FAILED, took none).
pub(crate) async fn reuses<C: Conn>(conn: &mut C) -> anyhow::Result<Vec<(u32, u64)>> {
    let rows: Vec<_> = conn
        .fetch(
            fixed(
                "SELECT tariff_id, COUNT(*) AS n FROM licenses \
                 WHERE reused_from IS NOT NULL AND state <> 'FAILED' GROUP BY tariff_id",
            ),
            args![],
        )
        .try_collect()
        .await
        .context("cannot count the reuses")?;
    rows.iter()
        .map(|r| {
            Ok((
                u32::try_from(r.int("tariff_id")?)?,
                u64::try_from(r.int("n")?)?,
            ))
        })
        .collect()
}
