//! Resolving a `NEEDS_ATTENTION` license ([`Store::resolve_license`]): the statements
//! and the decision both backends share. Each backend runs them in one transaction of
//! its own (SQLite under its write lock, PostgreSQL under the license's row lock).
//!
//! [`Store::resolve_license`]: super::Store::resolve_license

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

use super::codec::to_micros;
use super::{Resolution, Resolved};
use crate::domain::{License, LicenseState};

/// The license's new state and upstream binding; only while it still needs a person,
/// so that of two resolutions racing each other exactly one is stored. Written with
/// PostgreSQL placeholders; [`sqlite`] turns them into SQLite's.
pub(super) const UPDATE_LICENSE: &str = "UPDATE licenses SET state = $1, license_key = $2, \
     upstream_id = $3, expire_time = $4, last_error_code = $5, last_error_message = $6, \
     update_time = $7 WHERE id = $8 AND state = 'NEEDS_ATTENTION'";

/// The statement that reads `columns` of another license bound to an upstream id
/// (`$1` the upstream id, `$2` the resolved license).
pub(super) fn holder_sql(columns: &str) -> String {
    format!("SELECT {columns} FROM licenses WHERE upstream_id = $1 AND id <> $2")
}

/// The latest operation of a license (`$1`), with the columns both backends read.
pub(super) const LATEST_OPERATION: &str = "SELECT id, license_id, params, phase, attempt, \
     checks, failures, run_after, last_error, sent_at FROM operations WHERE license_id = $1 \
     ORDER BY id DESC LIMIT 1";

/// A statement written with `$n` placeholders in SQLite's numbered form (`?n`).
pub(super) fn sqlite(statement: &str) -> String {
    statement.replace('$', "?")
}

/// Binds [`UPDATE_LICENSE`]'s values for `license`, as it is to be after the
/// resolution.
pub(super) fn bind_update<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments>,
    license: &License,
) -> Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    query
        .bind(license.state.as_str().to_owned())
        .bind(license.license_key.clone())
        .bind(license.upstream_id.map(|id| id as i64))
        .bind(license.expire_time.map(to_micros))
        .bind(license.last_error.as_ref().map(|e| e.code.clone()))
        .bind(license.last_error.as_ref().map(|e| e.message.clone()))
        .bind(to_micros(license.update_time))
        .bind(license.id.to_string())
}

/// Why nothing may be stored, given the license as it is now (read under the
/// transaction's lock) and another license bound to the upstream id the resolution
/// takes, if any; `None` when the resolution may go ahead.
pub(super) fn refusal(current: Option<License>, holder: Option<License>) -> Option<Resolved> {
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
pub(super) fn new_binding(resolution: &Resolution, current: &License) -> Option<i64> {
    resolution
        .license
        .upstream_id
        .filter(|id| current.upstream_id != Some(*id))
        .map(|id| id as i64)
}
