//! Writes that store new work: an order (a license with its first operation), the
//! operations queued on a license, the request id they were asked for with, and
//! licenses adopted from the upstream.

use anyhow::Context;
use time::OffsetDateTime;

use super::events::{insert_events, insert_priced_events};
use super::exec::{Args, Conn, Row as _, args, fixed};
use super::pool;
use super::reserve::{self, Claim, Reserved};
use super::rows::{
    license_values, licenses_where, live_license, live_license_on_ip, one_license,
    open_operation_sql,
};
use crate::domain::{
    AuditEntry, EventKind, License, LicenseId, LicenseState, Operation, OperationKind, PoolPick,
};
use crate::store::codec::{self, to_micros};
use crate::store::dialect::Dialect;
use crate::store::group_commit::Written;
use crate::store::{
    Inserted, IpTaken, RequestRecord, SpendLimit, StoreError, TakeOrder, audit, check_spend,
};

/// How one attempt at an order ended.
pub(crate) enum OrderAttempt {
    /// Settled: stored, or the server's live license found.
    Done(Box<Inserted>),
    /// Another live license has the IP; nothing was stored. The holder is read once
    /// the transaction has ended (on PostgreSQL the failed insert aborted it).
    IpTaken,
    /// The server's live license we collided with left the live states before it
    /// could be read, or the step that reserved the IP gave it back before it could
    /// be read; nothing was stored, and inserting again may now succeed.
    Vanished,
}

/// The insert of a license's row: its [`license_values`] with terms, then the rest.
const INSERT_LICENSE: &str = "INSERT INTO licenses (state, license_key, upstream_id, \
     expire_time, last_error_code, last_error_message, update_time, ip, panel, tariff_id, nodes, \
     period, auto_renew, id, client, server_id, hostname, create_time, reused_from) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// [`INSERT_LICENSE`]'s values for `license`.
fn insert_values(license: &License) -> Args {
    let mut values = license_values(license, true);
    values.extend(args![
        license.id.to_string(),
        license.client.as_str(),
        license.server_id.as_str(),
        license.hostname.as_ref().map(|h| h.as_str().to_owned()),
        to_micros(license.create_time),
        license.reused_from.map(|id| id.to_string()),
    ]);
    values
}

/// Stores an operation; returns its id.
pub(crate) async fn insert_operation<C: Conn>(conn: &mut C, op: &Operation) -> anyhow::Result<i64> {
    insert_leased_operation(conn, op, None).await
}

/// Stores an operation, leased to `lease`'s owner until its time when given; returns
/// its id.
async fn insert_leased_operation<C: Conn>(
    conn: &mut C,
    op: &Operation,
    lease: Option<(&str, OffsetDateTime)>,
) -> anyhow::Result<i64> {
    let now = to_micros(OffsetDateTime::now_utc());
    let row = conn
        .fetch_one(
            fixed(
                "INSERT INTO operations (license_id, kind, params, phase, attempt, checks, \
                 run_after, create_time, update_time, sent_at, traceparent, lease_owner, \
                 lease_until) \
                 VALUES ($1, $2, $3, $4, $9, 0, $5, $6, $6, $7, $8, $10, $11) RETURNING id",
            ),
            args![
                op.license_id.to_string(),
                op.kind.name(),
                codec::kind_to_json(&op.kind),
                op.phase.as_str(),
                to_micros(op.run_after),
                now,
                op.sent_at.map(to_micros),
                op.traceparent.clone(),
                i64::from(op.attempt),
                lease.map(|(owner, _)| owner.to_owned()),
                lease.map(|(_, until)| to_micros(until)),
            ],
        )
        .await
        .context("cannot insert the operation")?;
    row.int("id").context("cannot read the operation's id")
}

/// Records a request id in the transaction of its work. `ON CONFLICT DO NOTHING` waits
/// (on PostgreSQL) for a concurrent holder of the same key to commit or roll back, so
/// exactly one of two racing requests proceeds; the other gets
/// [`StoreError::RequestKeyTaken`], and its transaction stores nothing.
pub(crate) async fn insert_request<C: Conn>(
    conn: &mut C,
    request: &RequestRecord,
) -> Result<(), StoreError> {
    let inserted = conn
        .execute(
            fixed(
                "INSERT INTO request_keys (client, key, fingerprint, response, busy_until, \
                 create_time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client, key) DO NOTHING",
            ),
            args![
                request.client.as_str(),
                request.key.as_str(),
                request.fingerprint.as_str(),
                request.response.as_str(),
                request.busy_until.map(to_micros),
                to_micros(request.create_time),
            ],
        )
        .await
        .context("cannot record the request id")?;
    if inserted == 0 {
        return Err(StoreError::RequestKeyTaken);
    }
    Ok(())
}

/// An order as [`Store::insert_order`](crate::store::Store::insert_order) stores it
/// (see there).
pub(crate) struct Order {
    pub license: License,
    pub op: Operation,
    pub request: Option<RequestRecord>,
    pub audit: Vec<AuditEntry>,
    pub limit: Option<SpendLimit>,
    pub pick: Option<PoolPick>,
    /// Taken by the accepting process: stored at INTENT under its lease.
    pub take: Option<TakeOrder>,
}

/// Stores `order` inside a write transaction.
pub(crate) async fn order_in<D: Dialect>(
    tx: &mut D::WriteConn,
    order: &Order,
) -> Result<Written<OrderAttempt>, StoreError> {
    let Order {
        license,
        op,
        request,
        audit,
        limit,
        pick,
        take,
    } = order;
    if let Some(request) = request {
        insert_request(tx, request).await?;
    }
    // The partial unique index decides; a pre-check would race. `ON CONFLICT` on it
    // waits for a concurrent insert of the same server to commit or roll back, and
    // then skips the row instead of failing. An order stores no key, upstream id or
    // expiry yet.
    let ordered = License {
        license_key: None,
        upstream_id: None,
        expire_time: None,
        last_error: None,
        update_time: license.create_time,
        ..license.clone()
    };
    // The insert also answers whether the pool has a license this order could take.
    let mut values = insert_values(&ordered);
    let candidate = match pick {
        Some(pick) => pool::candidate_sql(pick, values.len() + 1, &mut values),
        None => "CAST(NULL AS TEXT)".to_owned(),
    };
    let sql = format!(
        "{INSERT_LICENSE} ON CONFLICT (client, server_id) WHERE {} DO NOTHING \
         RETURNING {candidate} AS candidate",
        LicenseState::LIVE_SQL
    );
    let inserted = match tx.fetch_optional(super::exec::dynamic(sql), values).await {
        Ok(inserted) => inserted,
        // Another live license has the IP (the server's own conflict is skipped above).
        Err(sqlx::Error::Database(e))
            if e.is_unique_violation()
                && e.constraint()
                    .is_none_or(|c| c == "licenses_one_live_per_ip") =>
        {
            return Ok(Written::discarded(OrderAttempt::IpTaken));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("cannot insert the license")
                .into());
        }
    };
    let Some(inserted) = inserted else {
        // On PostgreSQL (READ COMMITTED) this new statement's snapshot includes the
        // conflicting row, whose transaction has committed by now.
        let existing = live_license(tx, &license.client, &license.server_id).await?;
        return Ok(Written::discarded(match existing {
            Some(existing) => OrderAttempt::Done(Box::new(Inserted::Existing(existing))),
            None => OrderAttempt::Vanished,
        }));
    };
    let candidate = inserted
        .opt_text("candidate")
        .context("cannot read the pool's candidate")?;
    // A parked license that fits takes the place of a purchase (design.md §11: the
    // pool is a state; reuse is a step like any other). Taken here, in the order's
    // transaction, so that two orders never take one license and a crash leaves
    // either both rows changed or neither.
    let mut license = license.clone();
    let mut op = op.clone();
    let mut audit = audit.clone();
    let mut limit = limit.as_ref();
    if let Some(pick) = pick
        && candidate.is_some()
        && let Some(parked) = pool::take(tx, pick, license.id, license.create_time).await?
    {
        license.upstream_id = parked.upstream_id;
        license.reused_from = Some(parked.id);
        tx.execute(
            fixed("UPDATE licenses SET upstream_id = $1, reused_from = $2 WHERE id = $3"),
            args![
                license.upstream_id.map(|id| id as i64),
                parked.id.to_string(),
                license.id.to_string()
            ],
        )
        .await
        .context("cannot record the reuse")?;
        op.kind = OperationKind::Reuse {
            from: parked.id.to_string(),
            new_key: pick.new_key,
            previous_key: parked.license_key.clone(),
        };
        // Nothing is bought: no price, no spend limit.
        for entry in &mut audit {
            if entry.action == op_name_order() {
                entry.action = op.kind.name().to_owned();
            }
            entry.price = None;
            entry.bought = None;
        }
        limit = None;
        let taken = License {
            state: LicenseState::Reused,
            reused_by: Some(license.id),
            update_time: license.create_time,
            ..parked
        };
        insert_events::<D>(tx, &[EventKind::StateChanged], &taken).await?;
    }
    // An order that buys, taken by the accepting process: its INTENT is committed
    // with its acceptance, under that process's lease (a reuse runs as queued).
    let take = take
        .as_ref()
        .filter(|_| matches!(op.kind, OperationKind::Order));
    if let Some(take) = take {
        op.phase = crate::domain::Phase::Intent;
        op.attempt = 1;
        op.sent_at = Some(take.sent_at);
    }
    let (license, audit) = (&license, &audit);
    // The license row met no live license on the IP; a step in flight that will bind
    // another license to it (an IP change) holds a reservation, which this one meets.
    // Reserved before the spend lock is taken, so that no transaction waits for a
    // reservation while holding that lock (a paid change reserves before it, too).
    let op_id = insert_leased_operation(tx, &op, take.map(|t| (t.owner.as_str(), t.until))).await?;
    op.id = op_id;
    let op = &op;
    let claim = Claim {
        ip: &ordered.ip.to_string(),
        license_id: ordered.id,
        operation_id: Some(op_id),
        kind: op.kind.name(),
    };
    match reserve::reserve(tx, &claim).await? {
        Reserved::Taken => {}
        Reserved::Held(held) => {
            return Ok(Written::discarded(OrderAttempt::Done(Box::new(
                Inserted::IpTaken(*held),
            ))));
        }
        Reserved::Vanished => return Ok(Written::discarded(OrderAttempt::Vanished)),
    }
    // Only an order that creates a license buys: the limit is checked here, with the
    // new license counted (the write is rolled back when it does not fit).
    if let Some(limit) = limit {
        check_spend::<D>(tx, limit, true).await?;
    }
    for entry in audit {
        audit::insert(tx, entry).await?;
    }
    // The CREATED event carries the order's price, as its ACCEPTED entry records it.
    let price = audit.iter().find_map(|e| e.price.as_ref());
    insert_priced_events::<D>(
        tx,
        &[EventKind::Created],
        license,
        price.map(|p| (EventKind::Created, p)),
    )
    .await?;
    let inserted = match take {
        Some(_) => Inserted::Taken {
            license: license.clone(),
            op: op.clone(),
        },
        None => Inserted::Created(license.clone()),
    };
    Ok(Written::kept(OrderAttempt::Done(Box::new(inserted))))
}

/// The action name of an order's audit entries.
fn op_name_order() -> &'static str {
    OperationKind::Order.name()
}

/// What an order that met another live license on its IP answers, given that
/// license as read after the transaction (`None`: it has gone meanwhile, and the
/// order may be tried again).
pub(crate) fn ip_holder(license: &License, holder: Option<License>) -> Option<Inserted> {
    // A concurrent order of the same server can meet the IP index before the
    // server's: then it is that server's license, not another's.
    holder.map(|holder| {
        if holder.client == license.client && holder.server_id == license.server_id {
            Inserted::Existing(holder)
        } else {
            Inserted::IpTaken(IpTaken {
                ip: license.ip.to_string(),
                holder,
                step: None,
            })
        }
    })
}

/// [`Store::insert_operations`](crate::store::Store::insert_operations) inside a write
/// transaction; `None` when the step that reserved an IP one of them moves to gave it
/// back before it could be read (nothing was stored; the next attempt may reserve it).
pub(crate) async fn operations_in<D: Dialect>(
    tx: &mut D::WriteConn,
    license_id: LicenseId,
    ops: &[Operation],
    request: Option<&RequestRecord>,
    audit: &[AuditEntry],
    limit: Option<&SpendLimit>,
) -> Result<Written<Option<Vec<i64>>>, StoreError> {
    if let Some(request) = request {
        insert_request(tx, request).await?;
    }
    // A second request for the license waits here until the first commits (SQLite:
    // the write lock; PostgreSQL: the license's row lock), and its check below (a new
    // statement, so a new snapshot under READ COMMITTED) then sees the first one's
    // operations.
    let id = license_id.to_string();
    D::lock_license(tx, &id).await?;
    // An order may have taken the (parked) license since the caller read it: a change
    // now would act on the upstream license the other one holds.
    let state = tx
        .fetch_optional(
            fixed("SELECT state FROM licenses WHERE id = $1"),
            args![id.clone()],
        )
        .await
        .context("cannot read the license's state")?
        .map(|row| row.text("state"))
        .transpose()
        .context("bad license row")?
        .unwrap_or_default();
    if state == LicenseState::Reused.as_str() {
        return Err(StoreError::Reused(license_id));
    }
    let open = tx
        .fetch_optional(open_operation_sql(), args![id.clone()])
        .await
        .context("cannot read open operations")?;
    if open.is_some() {
        return Err(StoreError::OperationInProgress(license_id));
    }
    // The caller checked the changes against the license as it read it, before this
    // transaction; a step may have ended the license since (a cancellation done
    // upstream, its operation closed: nothing open for the check above to meet). No
    // change applies to an ended license: sent, it would meet a deleted one upstream.
    if state == LicenseState::Cancelled.as_str() || state == LicenseState::Failed.as_str() {
        return Err(StoreError::Refused(crate::domain::Precondition {
            code: "INVALID_LICENSE_STATE",
            message: format!("license {id} is {state}: it ended after the change was asked for"),
        }));
    }
    let mut ids = Vec::with_capacity(ops.len());
    for op in ops {
        let id = insert_operation(tx, op).await?;
        ids.push(id);
        // What the step will bind the license to, reserved until it ends: another
        // step or order for that IP is refused from now on, not when this one lands.
        if let Some(ip) = op.kind.target_ip() {
            let claim = Claim {
                ip,
                license_id,
                operation_id: Some(id),
                kind: op.kind.name(),
            };
            match reserve::reserve_free(tx, &claim).await? {
                Reserved::Taken => {}
                Reserved::Held(held) => return Err(StoreError::IpTaken(held)),
                Reserved::Vanished => return Ok(Written::discarded(None)),
            }
        }
        if let OperationKind::Unpark { ip, .. } = &op.kind
            && !pool::unpark::<D>(tx, license_id, ip, op.run_after).await?
        {
            return Ok(Written::discarded(None));
        }
    }
    // After the reservations (see `order_in`).
    if let Some(limit) = limit {
        check_spend::<D>(tx, limit, false).await?;
    }
    for entry in audit {
        audit::insert(tx, entry).await?;
    }
    Ok(Written::kept(Some(ids)))
}

/// [`Store::insert_adopted`](crate::store::Store::insert_adopted) inside a write
/// transaction; `None` when the row it collided with left before it could be read.
pub(crate) async fn adopt_in<D: Dialect>(
    tx: &mut D::WriteConn,
    license: &License,
) -> Result<Written<Option<Inserted>>, StoreError> {
    // `ON CONFLICT DO NOTHING` covers every unique index (one live license per server
    // and per IP, one license per upstream id) and waits for a concurrent insert.
    let inserted = tx
        .execute(
            super::exec::dynamic(format!("{INSERT_LICENSE} ON CONFLICT DO NOTHING")),
            insert_values(&License {
                last_error: None,
                ..license.clone()
            }),
        )
        .await
        .context("cannot insert the adopted license")?;
    if inserted == 1 && license.state.is_live() {
        // No live license has the IP; a step being accepted for it may be on its way
        // to bind another one (and does not see this uncommitted row): wait it out
        // and meet it, with a reservation given back at once.
        let claim = Claim {
            ip: &license.ip.to_string(),
            license_id: license.id,
            operation_id: None,
            kind: "ADOPT",
        };
        let refused = match reserve::pass(tx, &claim).await? {
            Reserved::Taken => None,
            Reserved::Held(held) => Some(Some(Inserted::IpTaken(*held))),
            Reserved::Vanished => Some(None),
        };
        if let Some(refused) = refused {
            // Taken back here, not only by the rollback: a batch of adoptions keeps
            // every write of its one transaction.
            tx.execute(
                fixed("DELETE FROM licenses WHERE id = $1"),
                args![license.id.to_string()],
            )
            .await
            .context("cannot take the adopted license back")?;
            return Ok(Written::discarded(refused));
        }
    } else if inserted == 0 {
        // READ COMMITTED: these new statements see the committed conflicting row.
        let upstream_id = license.upstream_id.map(|id| id as i64);
        let known = one_license(
            tx,
            licenses_where("upstream_id = $1 AND state <> 'REUSED'"),
            args![upstream_id],
        )
        .await
        .context("cannot look the upstream id up")?;
        let existing = match known {
            Some(known) => Some(Inserted::Existing(known)),
            None => match live_license(tx, &license.client, &license.server_id).await? {
                Some(existing) => Some(Inserted::Existing(existing)),
                None => live_license_on_ip(tx, &license.ip.to_string())
                    .await?
                    .map(|holder| {
                        Inserted::IpTaken(IpTaken {
                            ip: license.ip.to_string(),
                            holder,
                            step: None,
                        })
                    }),
            },
        };
        return Ok(Written::discarded(existing));
    }
    insert_events::<D>(tx, &[EventKind::Created], license).await?;
    Ok(Written::kept(Some(Inserted::Created(license.clone()))))
}
