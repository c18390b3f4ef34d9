//! The workflow's writes: claiming the next due operation, saving a step's progress
//! (fenced by the lease owner), and the leases themselves.

use anyhow::Context;
use time::OffsetDateTime;

use super::events::insert_priced_events;
use super::exec::{Conn, Row as _, args, dynamic, fixed};
use super::reserve;
use super::rows::{OPERATION_COLUMNS, SET_STATE, SET_TERMS, license_values, operation_from_row};
use crate::domain::{AuditEntry, EventKind, License, LicenseState, Operation, Phase};
use crate::store::codec::{self, to_micros};
use crate::store::dialect::Dialect;
use crate::store::group_commit::Written;
use crate::store::{StoreError, audit};

/// Claims the next due operation whose lease is free or expired and that is the
/// oldest open operation of its license, for `owner` until `until`. One statement: on
/// SQLite it runs under the write lock; on PostgreSQL `SKIP LOCKED` passes over a row
/// another replica is claiming right now, and a row it claimed and committed meanwhile
/// is re-checked against the lease condition and skipped too. Either way no two
/// workers ever get the same operation.
pub(crate) async fn claim_in<D: Dialect>(
    tx: &mut D::WriteConn,
    owner: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Written<Option<Operation>>, StoreError> {
    let sql = format!(
        "UPDATE operations SET lease_owner = $1, lease_until = $2, update_time = $3 \
         WHERE id = (SELECT o.id FROM operations o \
                     WHERE o.phase NOT IN ('DONE', 'FAILED') AND o.run_after <= $3 \
                       AND (o.lease_until IS NULL OR o.lease_until < $3) \
                       AND NOT EXISTS (SELECT 1 FROM operations p \
                           WHERE p.license_id = o.license_id AND p.id < o.id \
                             AND p.phase NOT IN ('DONE', 'FAILED')) \
                     ORDER BY o.run_after, o.id LIMIT 1{}) \
         RETURNING {OPERATION_COLUMNS}",
        D::CLAIM_LOCK
    );
    let row = tx
        .fetch_optional(dynamic(sql), args![owner, to_micros(until), to_micros(now)])
        .await
        .context("cannot claim an operation")?;
    Ok(Written::kept(
        row.as_ref().map(operation_from_row).transpose()?,
    ))
}

/// A step's progress as [`Store::save_progress`](crate::store::Store::save_progress)
/// saves it (see there).
pub(crate) struct Step {
    pub owner: String,
    pub op: Operation,
    pub license: License,
    pub events: Vec<EventKind>,
    pub release: bool,
    pub ending: Option<AuditEntry>,
}

/// Saves `step` inside a write transaction; returns whether it closed the operation.
pub(crate) async fn progress_in<D: Dialect>(
    tx: &mut D::WriteConn,
    step: &Step,
) -> Result<Written<bool>, StoreError> {
    let Step {
        owner,
        op,
        license,
        events,
        release,
        ending,
    } = step;
    let (owner, release) = (owner.as_str(), *release);
    // The fence: where writers run concurrently, the row lock this read takes also
    // waits out a concurrent claim, so a worker whose lease was taken over saves
    // nothing (the update below finds no row). Under a write lock only a save to DONE
    // or FAILED, which may close the operation, needs the phase read (each statement
    // is a round trip to SQLite's connection thread).
    let closes = if D::FOR_UPDATE.is_empty() && op.phase.is_open() {
        false
    } else {
        let sql = format!(
            "SELECT phase FROM operations WHERE id = $1 AND lease_owner = $2{}",
            D::FOR_UPDATE
        );
        let stored = tx
            .fetch_optional(dynamic(sql), args![op.id, owner])
            .await
            .context("cannot lock the operation")?;
        let was_open = match stored {
            Some(row) => Phase::parse(row.str("phase").context("bad operation row")?)
                .is_some_and(|p| p.is_open()),
            None => false,
        };
        !op.phase.is_open() && was_open
    };
    let updated = tx
        .execute(
            fixed(
                "UPDATE operations SET phase = $1, attempt = $2, checks = $3, run_after = $4, \
                 last_error = $5, update_time = $6, \
                 lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END, \
                 lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END, failures = $10, \
                 sent_at = $11, params = $12 \
                 WHERE id = $8 AND lease_owner = $9",
            ),
            args![
                op.phase.as_str(),
                i64::from(op.attempt),
                i64::from(op.checks),
                to_micros(op.run_after),
                op.last_error.clone(),
                to_micros(license.update_time),
                release,
                op.id,
                owner,
                i64::from(op.failures),
                op.sent_at.map(to_micros),
                codec::kind_to_json(&op.kind),
            ],
        )
        .await
        .context("cannot save the operation")?;
    if updated == 0 {
        return Err(StoreError::LeaseLost(op.id));
    }
    let mut values = license_values(license, true);
    values.push(license.id.to_string().into());
    let sql = format!("UPDATE licenses SET {SET_STATE}, {SET_TERMS} WHERE id = $14");
    tx.execute(dynamic(sql), values)
        .await
        .context("cannot save the license")?;
    // The event that shows a paid change carried out carries the change's price, as
    // its ACCEPTED entry records it.
    let priced = match op.kind.paid_event().filter(|kind| events.contains(kind)) {
        Some(kind) => audit::accepted_price(tx, license.id, op.kind.name())
            .await?
            .map(|price| (kind, price)),
        None => None,
    };
    insert_priced_events::<D>(
        tx,
        events,
        license,
        priced.as_ref().map(|(kind, price)| (*kind, price)),
    )
    .await?;
    if let Some(entry) = ending.as_ref().filter(|_| closes) {
        audit::append_ending(tx, entry).await?;
    }
    // The step has ended: what it reserved is free, or (moved) held by the license
    // row itself. Not when a person must look: the outcome is unknown and the
    // upstream may hold the IP, so it stays reserved until the resolution.
    if closes && license.state != LicenseState::NeedsAttention {
        reserve::release_operation(tx, op.id).await?;
    }
    Ok(Written::kept(closes))
}

/// Gives up every lease on an open operation and makes those operations due no
/// sooner than `not_before`; returns how many.
pub(crate) async fn release_all_leases<C: Conn>(
    conn: &mut C,
    not_before: OffsetDateTime,
) -> anyhow::Result<u64> {
    conn.execute(
        fixed(
            "UPDATE operations SET lease_owner = NULL, lease_until = NULL, \
             run_after = CASE WHEN run_after < $1 THEN $1 ELSE run_after END \
             WHERE lease_owner IS NOT NULL AND phase NOT IN ('DONE', 'FAILED')",
        ),
        args![to_micros(not_before)],
    )
    .await
    .context("cannot release the leases")
}

/// Extends `owner`'s lease on the open operation `id` to `until`; returns whether
/// `owner` still held it.
pub(crate) async fn renew_lease<C: Conn>(
    conn: &mut C,
    id: i64,
    owner: &str,
    until: OffsetDateTime,
) -> anyhow::Result<bool> {
    let renewed = conn
        .execute(
            fixed(codec::RENEW_LEASE_SQL),
            args![to_micros(until), id, owner],
        )
        .await
        .context("cannot renew the lease")?;
    Ok(renewed == 1)
}

/// Gives up every lease `owner` holds on an open operation; returns how many.
pub(crate) async fn release_leases<C: Conn>(conn: &mut C, owner: &str) -> anyhow::Result<u64> {
    conn.execute(
        fixed(
            "UPDATE operations SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1 AND phase NOT IN ('DONE', 'FAILED')",
        ),
        args![owner],
    )
    .await
    .context("cannot release the leases")
}

/// Takes the named process-wide lease for `owner` until `until` when it is free or
/// ran out before `now`; returns whether `owner` got it. One statement: SQLite's write
/// lock makes the check and the take atomic; on PostgreSQL `ON CONFLICT … DO UPDATE …
/// WHERE` locks the row, so of two replicas taking an expired lease at once the second
/// re-checks against the first's new expiry and updates nothing.
pub(crate) async fn try_take_lease<C: Conn>(
    conn: &mut C,
    name: &str,
    owner: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> anyhow::Result<bool> {
    let taken = conn
        .execute(
            fixed(
                "INSERT INTO leases (name, owner, lease_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
                 lease_until = excluded.lease_until WHERE leases.lease_until < $4",
            ),
            args![name, owner, to_micros(until), to_micros(now)],
        )
        .await
        .context("cannot take a lease")?;
    Ok(taken == 1)
}

/// The earliest moment an open operation becomes due: its run time, or its lease's
/// end when that is later.
pub(crate) async fn next_due<C: Conn>(conn: &mut C) -> anyhow::Result<Option<OffsetDateTime>> {
    let row = conn
        .fetch_one(
            fixed(
                "SELECT MIN(CASE WHEN lease_until > run_after THEN lease_until \
                 ELSE run_after END) AS due FROM operations \
                 WHERE phase NOT IN ('DONE', 'FAILED')",
            ),
            args![],
        )
        .await
        .context("cannot read the next due operation")?;
    row.opt_int("due")?.map(codec::from_micros).transpose()
}
