//! Resolving a `NEEDS_ATTENTION` license ([`Store::resolve_license`]) in one write
//! transaction: under SQLite's write lock, or under the license's row lock on
//! PostgreSQL.
//!
//! [`Store::resolve_license`]: super::Store::resolve_license

use anyhow::Context;

use super::dialect::Dialect;
use super::group_commit::Written;
use super::sql::events::insert_events;
use super::sql::exec::{Conn, args, dynamic};
use super::sql::orders::{insert_operation, insert_request};
use super::sql::reserve::{self, Claim, Reserved};
use super::sql::rows::{
    LICENSE_COLUMNS, OPERATION_COLUMNS, SET_STATE, license_values, licenses_where, one_license,
};
use super::{Resolution, Resolved, StoreError, audit};
use crate::domain::{License, LicenseState};

/// The latest operation of a license (`$1`).
pub(super) fn latest_operation_sql() -> sqlx::SqlStr {
    dynamic(format!(
        "SELECT {OPERATION_COLUMNS} FROM operations WHERE license_id = $1 \
         ORDER BY id DESC LIMIT 1"
    ))
}

/// The resolution inside a write transaction; `None` when another license took the
/// upstream id between the check and the write (the unique index refused it), so
/// that the next attempt's check finds that license, or when the step that held an IP
/// the retry needs gave it back before it could be read.
pub(super) async fn resolve_in<D: Dialect>(
    tx: &mut D::WriteConn,
    resolution: &Resolution,
) -> Result<Written<Option<Resolved>>, StoreError> {
    let license = &resolution.license;
    // The row lock (where there are row locks) makes a concurrent resolution or
    // worker save of the license wait; the state read under it is the one the update
    // is conditional on.
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1{}",
        D::FOR_UPDATE
    );
    let current = one_license(tx, dynamic(sql), args![license.id.to_string()])
        .await
        .context("cannot lock the license")?;
    let holder = match current.as_ref().and_then(|c| new_binding(resolution, c)) {
        Some(upstream_id) => one_license(
            tx,
            licenses_where("upstream_id = $1 AND id <> $2 AND state <> 'REUSED'"),
            args![upstream_id, license.id.to_string()],
        )
        .await
        .context("cannot look the upstream id up")?,
        None => None,
    };
    if let Some(refused) = refusal(current, holder) {
        return Ok(Written::discarded(Some(refused)));
    }
    if let Some(request) = &resolution.request {
        insert_request(tx, request).await?;
    }
    // Only while the license still needs a person, so that of two resolutions racing
    // each other exactly one is stored.
    let mut values = license_values(license, false);
    values.push(license.id.to_string().into());
    let sql =
        format!("UPDATE licenses SET {SET_STATE} WHERE id = $8 AND state = 'NEEDS_ATTENTION'");
    let updated = tx.execute(dynamic(sql), values).await;
    match updated {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Ok(Written::discarded(None));
        }
        other => other.context("cannot resolve the license")?,
    };
    // The stuck steps' reservations end with the resolution; the step that follows
    // (a retry) reserves what it will occupy anew, refused if another license holds it.
    reserve::release_license(tx, license.id).await?;
    let op = match &resolution.op {
        Some(op) => {
            let id = insert_operation(tx, op).await?;
            if let Some(ip) = op.occupies(license) {
                let claim = Claim {
                    ip: &ip,
                    license_id: license.id,
                    operation_id: Some(id),
                    kind: op.kind.name(),
                };
                // An order's license is bound to its IP already (the index guards
                // it); a change moves it, so another live license there refuses it.
                let reserved = match op.kind.target_ip() {
                    Some(_) => reserve::reserve_free(tx, &claim).await?,
                    None => reserve::reserve(tx, &claim).await?,
                };
                match reserved {
                    Reserved::Taken => {}
                    Reserved::Held(held) => {
                        return Ok(Written::discarded(Some(Resolved::IpTaken(held))));
                    }
                    Reserved::Vanished => return Ok(Written::discarded(None)),
                }
            }
            Some(id)
        }
        None => None,
    };
    audit::insert(tx, &resolution.audit).await?;
    insert_events::<D>(tx, &resolution.events, license).await?;
    Ok(Written::kept(Some(Resolved::Stored(op))))
}

/// Why nothing may be stored, given the license as it is now (read under the
/// transaction's lock) and another license bound to the upstream id the resolution
/// takes, if any; `None` when the resolution may go ahead.
fn refusal(current: Option<License>, holder: Option<License>) -> Option<Resolved> {
    match (current, holder) {
        (Some(current), _) if current.state != LicenseState::NeedsAttention => {
            Some(Resolved::NotNeedsAttention(Box::new(current)))
        }
        (None, _) => Some(Resolved::Missing),
        (_, Some(holder)) => Some(Resolved::UpstreamBound(Box::new(holder))),
        (Some(_), None) => None,
    }
}

/// The upstream id the resolution binds the license to, when it differs from the one
/// it had: only then can another license hold it.
fn new_binding(resolution: &Resolution, current: &License) -> Option<i64> {
    resolution
        .license
        .upstream_id
        .filter(|id| current.upstream_id != Some(*id))
        .map(|id| id as i64)
}
