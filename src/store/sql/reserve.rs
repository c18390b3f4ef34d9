//! Reservations of what a step in flight will occupy (design.md §11): the IP an order
//! or an IP change will bind its license to is reserved in the transaction that
//! accepts the step and given back in the one that ends it (or, when a person must
//! look, in the resolution).
//!
//! The primary key of `ip_reservations` decides, not a check-then-insert: every
//! acceptance that would occupy an IP inserts its reservation, and of two that race
//! for one IP the second one's insert meets the first one's row (on PostgreSQL it
//! waits for the first transaction to end, on any replica; SQLite has one writer).
//! A live license bound to the IP is the other holder: an order's license row meets
//! it in `licenses_one_live_per_ip`; a step that moves a license checks for it after
//! inserting its reservation, in a new statement, so that under READ COMMITTED it sees
//! every license bound by a transaction that ended before its reservation went in,
//! and any transaction still binding one must insert a reservation of the same IP
//! itself, and waits for (then meets) this one.

use anyhow::Context;
use time::OffsetDateTime;

use super::exec::{Conn, Row as _, args, dynamic, fixed};
use super::rows::{licenses_where, one_license};
use crate::domain::LicenseId;
use crate::store::codec::to_micros;
use crate::store::{IpTaken, StoreError};

/// A step's claim on an IP.
pub(crate) struct Claim<'a> {
    /// The IP (canonical text form).
    pub ip: &'a str,
    /// The license the step binds to it.
    pub license_id: LicenseId,
    /// The step: its operation (none for an adoption's passing reservation).
    pub operation_id: Option<i64>,
    /// The step's kind (`ORDER`, `CHANGE_IP`), for the refusal of another step.
    pub kind: &'a str,
}

/// How a reservation attempt ended.
pub(crate) enum Reserved {
    /// The IP is reserved for the claim.
    Taken,
    /// Another step holds it.
    Held(Box<IpTaken>),
    /// The holder gave it back before it could be read: the transaction may be run
    /// again.
    Vanished,
}

/// Whether the reservation row `ip_reservations` (in a statement on that table) is
/// stale: its step has ended and no person is to look at its license, or it is an
/// adoption's passing reservation. Every step gives its reservation back in the
/// transaction that ends it, so only a process that does not know reservations (a
/// replica of an earlier version, during an upgrade) can leave one; it is then taken
/// over as if free, never held for good.
const STALE: &str = "(ip_reservations.operation_id IS NULL OR EXISTS (\
     SELECT 1 FROM operations o JOIN licenses l ON l.id = o.license_id \
     WHERE o.id = ip_reservations.operation_id AND o.phase IN ('DONE', 'FAILED') \
       AND l.state <> 'NEEDS_ATTENTION'))";

/// Reserves `claim.ip` inside a write transaction. `ON CONFLICT DO NOTHING` waits
/// (on PostgreSQL) for a transaction that inserted the same IP to end, then skips the
/// row if that one committed; the holder is then read by a new statement, which sees
/// it. A stale reservation (see [`STALE`]) is deleted and the IP reserved.
pub(crate) async fn reserve<C: Conn>(
    conn: &mut C,
    claim: &Claim<'_>,
) -> Result<Reserved, StoreError> {
    if insert(conn, claim).await? {
        return Ok(Reserved::Taken);
    }
    let cleared = conn
        .execute(
            dynamic(format!(
                "DELETE FROM ip_reservations WHERE ip = $1 AND {STALE}"
            )),
            args![claim.ip],
        )
        .await
        .context("cannot clear a stale reservation")?;
    if cleared == 1 && insert(conn, claim).await? {
        return Ok(Reserved::Taken);
    }
    Ok(match reservation_holder(conn, claim.ip).await? {
        Some(held) => Reserved::Held(Box::new(held)),
        None => Reserved::Vanished,
    })
}

/// Inserts `claim`'s reservation unless the IP has one; returns whether it did.
async fn insert<C: Conn>(conn: &mut C, claim: &Claim<'_>) -> Result<bool, StoreError> {
    let inserted = conn
        .execute(
            fixed(
                "INSERT INTO ip_reservations (ip, license_id, operation_id, kind, create_time) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ip) DO NOTHING",
            ),
            args![
                claim.ip,
                claim.license_id.to_string(),
                claim.operation_id,
                claim.kind,
                to_micros(OffsetDateTime::now_utc()),
            ],
        )
        .await
        .context("cannot reserve the IP")?;
    Ok(inserted == 1)
}

/// The step in flight that reserved `ip` (a stale reservation is none), with its
/// license.
pub(crate) async fn reservation_holder<C: Conn>(
    conn: &mut C,
    ip: &str,
) -> Result<Option<IpTaken>, StoreError> {
    let row = conn
        .fetch_optional(
            dynamic(format!(
                "SELECT license_id, kind FROM ip_reservations WHERE ip = $1 AND NOT {STALE}"
            )),
            args![ip],
        )
        .await
        .context("cannot read the IP's reservation")?;
    let Some(row) = row else {
        return Ok(None);
    };
    let license_id = row.text("license_id").context("bad reservation row")?;
    let kind = row.text("kind").context("bad reservation row")?;
    held_by(conn, ip, license_id, Some(kind)).await
}

/// `ip` as held by license `license_id` (read now), for `step` when a step in flight
/// reserved it; `None` when that license is not there.
async fn held_by<C: Conn>(
    conn: &mut C,
    ip: &str,
    license_id: String,
    step: Option<String>,
) -> Result<Option<IpTaken>, StoreError> {
    let holder = one_license(conn, licenses_where("id = $1"), args![license_id])
        .await
        .context("cannot read the license holding the IP")?;
    Ok(holder.map(|holder| IpTaken {
        ip: ip.to_owned(),
        holder,
        step,
    }))
}

/// Who holds `ip` other than license `except`: a step in flight that reserved it (a
/// stale reservation is none), else a live license bound to it. One statement looks
/// at both, so the usual answer (nobody) costs one read: every order asks before it
/// is accepted (an early answer; the accepting transaction decides again).
pub(crate) async fn holder<C: Conn>(
    conn: &mut C,
    ip: &str,
    except: Option<LicenseId>,
) -> Result<Option<IpTaken>, StoreError> {
    let except_id = except.map(|id| id.to_string()).unwrap_or_default();
    let row = conn
        .fetch_optional(
            dynamic(format!(
                "SELECT license_id, kind, 0 AS holder_rank FROM ip_reservations \
                  WHERE ip = $1 AND license_id <> $2 AND NOT {STALE} \
                 UNION ALL \
                 SELECT id AS license_id, NULL AS kind, 1 AS holder_rank FROM licenses \
                  WHERE ip = $1 AND {} AND id <> $2 \
                 ORDER BY holder_rank LIMIT 1",
                crate::domain::LicenseState::LIVE_SQL
            )),
            args![ip, except_id],
        )
        .await
        .context("cannot read who holds the IP")?;
    let Some(row) = row else {
        return Ok(None);
    };
    let license_id = row.text("license_id").context("bad holder row")?;
    let step = row.opt_text("kind").context("bad holder row")?;
    let reserved = step.is_some();
    match held_by(conn, ip, license_id, step).await? {
        Some(taken) => Ok(Some(taken)),
        // The reservation's license is gone (it cannot be, with the foreign key):
        // what is left is a live license, as the step-less read finds it.
        None if reserved => live_holder(conn, ip, except).await,
        None => Ok(None),
    }
}

/// The live license bound to `ip`, other than `except`.
pub(crate) async fn live_holder<C: Conn>(
    conn: &mut C,
    ip: &str,
    except: Option<LicenseId>,
) -> Result<Option<IpTaken>, StoreError> {
    let except = except.map(|id| id.to_string()).unwrap_or_default();
    let holder = one_license(
        conn,
        licenses_where(&format!(
            "ip = $1 AND {} AND id <> $2",
            crate::domain::LicenseState::LIVE_SQL
        )),
        args![ip, except],
    )
    .await
    .context("cannot read the IP's live license")?;
    Ok(holder.map(|holder| IpTaken {
        ip: ip.to_owned(),
        holder,
        step: None,
    }))
}

/// Reserves the IP a step moves `claim.license_id` to and checks that no other live
/// license is bound to it (see the module comment): `Taken` only when both hold.
pub(crate) async fn reserve_free<C: Conn>(
    conn: &mut C,
    claim: &Claim<'_>,
) -> Result<Reserved, StoreError> {
    match reserve(conn, claim).await? {
        Reserved::Taken => {}
        other => return Ok(other),
    }
    Ok(
        match live_holder(conn, claim.ip, Some(claim.license_id)).await? {
            Some(held) => Reserved::Held(Box::new(held)),
            None => Reserved::Taken,
        },
    )
}

/// Reserves `claim.ip` and gives it back at once, in one transaction: waits out a
/// step being accepted for the same IP on another connection, and finds one that
/// holds it. For a write that binds a license to an IP without a step (an
/// adoption): `Taken` when no step holds it.
pub(crate) async fn pass<C: Conn>(conn: &mut C, claim: &Claim<'_>) -> Result<Reserved, StoreError> {
    let reserved = reserve(conn, claim).await?;
    if let Reserved::Taken = reserved {
        conn.execute(
            fixed("DELETE FROM ip_reservations WHERE ip = $1 AND license_id = $2"),
            args![claim.ip, claim.license_id.to_string()],
        )
        .await
        .context("cannot give the IP back")?;
    }
    Ok(reserved)
}

/// Gives back what operation `id` reserved.
pub(crate) async fn release_operation<C: Conn>(conn: &mut C, id: i64) -> Result<(), StoreError> {
    conn.execute(
        fixed("DELETE FROM ip_reservations WHERE operation_id = $1"),
        args![id],
    )
    .await
    .context("cannot give back the operation's IP")?;
    Ok(())
}

/// Gives back everything the steps of license `id` reserved.
pub(crate) async fn release_license<C: Conn>(
    conn: &mut C,
    id: LicenseId,
) -> Result<(), StoreError> {
    conn.execute(
        fixed("DELETE FROM ip_reservations WHERE license_id = $1"),
        args![id.to_string()],
    )
    .await
    .context("cannot give back the license's IPs")?;
    Ok(())
}
