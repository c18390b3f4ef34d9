//! Persistence: the [`Store`] trait the service works through, and its one
//! implementation ([`SqlStore`]) on SQLite or PostgreSQL (see `dialect`). Every method
//! is one transaction.

mod audit;
mod cache;
mod codec;
mod costs;
mod dialect;
mod direct;
mod file_lock;
mod group_commit;
mod postgres;
mod resolve;
mod retry;
mod sequencer;
pub(crate) mod sql;
mod sqlite;
mod webhooks;

pub use file_lock::FileLock;
pub use postgres::{DEFAULT_MAX_CONNECTIONS, PgDb, PgStore};
pub use sql::SqlStore;
pub use sqlite::{SqliteDb, SqliteStore};

use dialect::Dialect;
pub use webhooks::WebhookProgress;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{
    AuditEntry, ClientName, Event, EventKind, ItemLabels, License, LicenseId, LicenseState,
    Operation, ServerId,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operation's lease was taken over by another worker; its progress was not
    /// saved and the other worker continues it.
    #[error("the lease on operation {0} was lost")]
    LeaseLost(i64),
    /// A page token that this store did not issue.
    #[error("invalid page token")]
    BadPageToken,
    /// The license already has an operation that has not finished.
    #[error("license {0} has an operation in progress")]
    OperationInProgress(LicenseId),
    /// The request id was stored by a concurrent call first; nothing was stored.
    #[error("the request id is already taken")]
    RequestKeyTaken,
    /// The paid call would pass the client's spend limit; nothing was stored.
    #[error("the spend limit is reached")]
    SpendLimit(SpendExceeded),
    /// The step would bind its license to an IP that another license holds (bound to
    /// it, or reserved by a step in flight); nothing was stored.
    #[error("{} is held by license {}", .0.ip, .0.holder.id)]
    IpTaken(Box<IpTaken>),
    /// The license's parked upstream license was taken by another license of ours
    /// meanwhile (it is REUSED): nothing was stored.
    #[error("license {0} was reused by another license")]
    Reused(LicenseId),
    /// The license changed after the caller checked the change against it (a step
    /// that ended meanwhile, e.g. a cancellation): the change no longer applies to it
    /// and nothing was stored.
    #[error("{}", .0.message)]
    Refused(crate::domain::Precondition),
    /// A parked license would be taken out of the pool onto its server, which has
    /// another live license now (held here); nothing was stored.
    #[error("server {} has license {}", .0.server_id, .0.id)]
    ServerTaken(Box<License>),
    /// Anything else (connection, constraint, corrupt row); maps to an internal error.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The limits a paid call (an order, a renewal, a panel change) must stay within,
/// checked inside the transaction that stores it, after taking a lock of the client's:
/// replicas sharing one database cannot overshoot them together.
#[derive(Debug, Clone)]
pub struct SpendLimit {
    /// Whose paid calls are counted.
    pub client: ClientName,
    /// Paid calls in any sliding hour.
    pub per_hour: Option<u32>,
    /// Paid calls in any sliding day.
    pub per_day: Option<u32>,
    /// What the paid calls of any sliding day may cost in all (hundredths).
    pub per_day_cents: Option<i64>,
    /// This call's price (hundredths); `None` when it is unknown, which a money cap
    /// refuses.
    pub cost_cents: Option<i64>,
    /// The moment the windows end.
    pub now: OffsetDateTime,
}

/// Which limit a paid call would pass.
#[derive(Debug, Clone, PartialEq)]
pub enum SpendExceeded {
    /// Too many paid calls in the window.
    Count {
        /// The cap.
        cap: u32,
        /// `hour` or `day`.
        window: &'static str,
        /// When the oldest counted call leaves the window.
        oldest: Option<OffsetDateTime>,
    },
    /// Too much spent in the day.
    Money {
        /// The cap (hundredths).
        cap_cents: i64,
        /// Spent in the window (hundredths).
        spent_cents: i64,
        /// When the oldest priced call leaves the window.
        oldest: Option<OffsetDateTime>,
    },
    /// A money cap applies and a price is unknown: this call's (`calls` 0) or that of
    /// `calls` paid calls in the window, so what the day costs cannot be told.
    Unpriced {
        /// Paid calls of the window without a known price.
        calls: u64,
    },
}

/// What a client's paid calls accepted in a window cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spent {
    /// The known prices in all (hundredths of the account's currency).
    pub cents: i64,
    /// Paid calls whose price is not known (recorded as unknown, or accepted before
    /// every paid call was priced).
    pub unpriced: u64,
    /// When the oldest paid call of the window was accepted.
    pub oldest: Option<OffsetDateTime>,
}

const HOUR: time::Duration = time::Duration::hours(1);
const DAY: time::Duration = time::Duration::days(1);

impl SpendLimit {
    /// The windows to count over: (cap, name, start).
    fn windows(&self) -> impl Iterator<Item = (u32, &'static str, OffsetDateTime)> + '_ {
        [
            (self.per_hour, "hour", self.now - HOUR),
            (self.per_day, "day", self.now - DAY),
        ]
        .into_iter()
        .filter_map(|(cap, name, since)| cap.map(|c| (c, name, since)))
    }

    /// The verdict on counts and a sum already read (`counted_self`: whether the
    /// counts include this call already, as an order's own license row does): `Ok`
    /// when this call fits.
    fn judge(
        &self,
        counted: &[(u32, &'static str, u64, Option<OffsetDateTime>)],
        spent: Option<Spent>,
        counted_self: bool,
    ) -> Result<(), SpendExceeded> {
        for &(cap, window, count, oldest) in counted {
            if count.saturating_sub(u64::from(counted_self)) >= u64::from(cap) {
                return Err(SpendExceeded::Count {
                    cap,
                    window,
                    oldest,
                });
            }
        }
        let (Some(cap_cents), Some(spent)) = (self.per_day_cents, spent) else {
            return Ok(());
        };
        // An unknown price is never taken for zero.
        let Some(cost_cents) = self.cost_cents else {
            return Err(SpendExceeded::Unpriced { calls: 0 });
        };
        // This call's own entry is not written yet when the limit is checked.
        if spent.unpriced > 0 {
            return Err(SpendExceeded::Unpriced {
                calls: spent.unpriced,
            });
        }
        if spent.cents.saturating_add(cost_cents) > cap_cents {
            return Err(SpendExceeded::Money {
                cap_cents,
                spent_cents: spent.cents,
                oldest: spent.oldest,
            });
        }
        Ok(())
    }
}

/// Checks `limit` inside a write transaction, after the dialect's lock of the client's
/// spending ([`Dialect::lock_spend`]): on SQLite the write lock already serialises it;
/// on PostgreSQL a concurrent paid call of the same client on any replica waits there
/// until this transaction ends, and its count (a new statement under READ COMMITTED)
/// then includes this one.
pub(crate) async fn check_spend<D: Dialect>(
    tx: &mut D::WriteConn,
    limit: &SpendLimit,
    counted_self: bool,
) -> Result<(), StoreError> {
    D::lock_spend(tx, &limit.client).await?;
    let mut counted = Vec::new();
    for (cap, window, since) in limit.windows() {
        let (n, oldest) = audit::orders_since(tx, &limit.client, since).await?;
        counted.push((cap, window, n, oldest));
    }
    let spent = match limit.per_day_cents {
        Some(_) => Some(audit::spend_since(tx, &limit.client, limit.now - DAY).await?),
        None => None,
    };
    limit
        .judge(&counted, spent, counted_self)
        .map_err(StoreError::SpendLimit)
}

/// Another license holds an IP that a step wanted (see `store::sql::reserve`).
#[derive(Debug, Clone, PartialEq)]
pub struct IpTaken {
    /// The IP (canonical text form).
    pub ip: String,
    /// The license that holds it: the live license bound to it, or the license whose
    /// step in flight reserved it (for an IP change, still bound to its old IP).
    pub holder: License,
    /// The kind of the step in flight that reserved it (`ORDER`, `CHANGE_IP`); `None`
    /// when the holder is a live license bound to it with no step reserving it.
    pub step: Option<String>,
}

/// The result of inserting an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The license and its operation were stored.
    Created(License),
    /// The license and its order were stored, the order at INTENT under the lease
    /// the call asked for ([`TakeOrder`]): the caller runs it now. `op` is the order
    /// as stored.
    Taken { license: License, op: Operation },
    /// The server already had a live license; nothing was stored.
    Existing(License),
    /// Another license (any client's, any server id's) has the IP or a step in flight
    /// reserved it; nothing was stored.
    IpTaken(IpTaken),
}

/// An order taken by the process that accepts it: stored at INTENT (its first
/// attempt, sent by `sent_at` at the latest) under `owner`'s lease until `until`, so
/// that no worker claims it and its acceptance and INTENT are one commit. An order
/// that takes a parked license instead of buying is not taken (see
/// [`Store::insert_order_from_pool`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TakeOrder {
    pub owner: String,
    pub until: OffsetDateTime,
    pub sent_at: OffsetDateTime,
}

/// A parked license with the upstream's last changes, as read when it was parked.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedLicense {
    /// The license (PARKED).
    pub license: License,
    /// Its last IP change upstream; `None` while its park is finishing.
    pub ip_changed: Option<OffsetDateTime>,
    /// Its last key change upstream.
    pub key_changed: Option<OffsetDateTime>,
}

/// A resolution of a `NEEDS_ATTENTION` license as the store writes it, in one
/// transaction and only while the license still needs a person.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The license as it is to be: its new state, upstream id, key, expiry, last
    /// error and update time (the other fields are not written).
    pub license: License,
    /// The work that follows (a retry), if any.
    pub op: Option<Operation>,
    /// The change-feed events of the change.
    pub events: Vec<EventKind>,
    /// The audit entry: who resolved it, how, why and what followed.
    pub audit: AuditEntry,
    /// The caller's request id, if any.
    pub request: Option<RequestRecord>,
}

/// What [`Store::resolve_license`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Stored; the id of the operation that follows, if any.
    Stored(Option<i64>),
    /// The license is no longer `NEEDS_ATTENTION` (another resolution came first);
    /// nothing was stored.
    NotNeedsAttention(Box<License>),
    /// Another license of ours is bound to the upstream id; nothing was stored.
    UpstreamBound(Box<License>),
    /// The retried step would occupy an IP another license holds; nothing was stored.
    IpTaken(Box<IpTaken>),
    /// There is no such license; nothing was stored.
    Missing,
}

/// Filters of a license listing; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct LicenseFilter {
    /// Only this client's licenses.
    pub client: Option<ClientName>,
    /// Only this server's.
    pub server_id: Option<ServerId>,
    /// Only this address (canonical text form).
    pub ip: Option<String>,
    /// Only this tariff.
    pub tariff_id: Option<u32>,
    /// Only this state.
    pub state: Option<LicenseState>,
    /// Only the license with this downstream item id.
    pub item_id: Option<u64>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page, if there is one.
    pub next_token: Option<String>,
}

/// A request id as stored with the work it caused.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// The calling client.
    pub client: ClientName,
    /// The caller's key.
    pub key: String,
    /// The request's parameters; a reuse of the key with others is refused.
    pub fingerprint: String,
    /// The result returned to the first call (JSON, owned by the service layer).
    pub response: String,
    /// While set and in the future, the first call is still running (waiting).
    pub busy_until: Option<OffsetDateTime>,
    /// When the first call came.
    pub create_time: OffsetDateTime,
}

/// What the service needs from a database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Ends the store's own background work (SQLite's group-commit writer) and closes
    /// its connections, waiting until both are done; calls made afterwards fail. An
    /// application calls it last when it stops, so that nothing it started still
    /// writes once the stop returns.
    async fn close(&self);

    /// Stores a PENDING license with its first operation, a `CREATED` event, the
    /// request id if any and the `audit` entries, and reserves the license's IP for
    /// the order until it ends, unless the client's server already has a live license
    /// (then returns that one) or another license holds the IP
    /// ([`Inserted::IpTaken`]); then stores nothing. A request id that exists already
    /// is [`StoreError::RequestKeyTaken`] and nothing is stored.
    async fn insert_order(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Inserted, StoreError> {
        self.insert_order_from_pool(license, op, request, audit, limit, None, None)
            .await
    }

    /// [`insert_order`](Self::insert_order); with `pick`, the order takes a parked
    /// license that fits it instead of buying, in the same transaction: the parked
    /// license becomes REUSED by the new one, which holds its upstream id and is
    /// carried out by a REUSE step instead of the ORDER (its audit entries become
    /// REUSE entries without a price, its CREATED event has none, and no spend limit
    /// applies). The created license says so in `reused_from`. With `take`, an order
    /// that buys is stored at INTENT under that lease and answered as
    /// [`Inserted::Taken`]; one that takes a parked license is stored as without it.
    #[allow(clippy::too_many_arguments)]
    async fn insert_order_from_pool(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
        pick: Option<&crate::domain::PoolPick>,
        take: Option<&TakeOrder>,
    ) -> Result<Inserted, StoreError>;

    /// Records the upstream's last IP and key change of a parked license.
    async fn set_pool_changes(
        &self,
        id: LicenseId,
        ip_changed: OffsetDateTime,
        key_changed: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Gives the parked licenses whose reuse was refused (the taking license ended
    /// FAILED without an upstream id) back to the pool, with `retry_from` as their
    /// last IP change. Returns them.
    async fn give_back_to_pool(
        &self,
        retry_from: OffsetDateTime,
    ) -> Result<Vec<LicenseId>, StoreError>;

    /// Every parked license, soonest to expire first.
    async fn parked_licenses(&self) -> Result<Vec<ParkedLicense>, StoreError>;

    /// Per tariff id, the licenses that took a parked license instead of buying.
    async fn reuse_counts(&self) -> Result<Vec<(u32, u64)>, StoreError>;

    /// Queues operations on an existing license, in order, with the request id if any
    /// and the `audit` entries, reserving the IP each one moves the license to
    /// ([`OperationKind::target_ip`](crate::domain::OperationKind::target_ip)) until
    /// it ends, unless the license already has an open one
    /// ([`StoreError::OperationInProgress`]), the request id exists
    /// ([`StoreError::RequestKeyTaken`]) or another license holds such an IP
    /// ([`StoreError::IpTaken`]); then stores nothing. Returns their ids.
    async fn insert_operations(
        &self,
        license_id: LicenseId,
        ops: &[Operation],
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Vec<i64>, StoreError>;

    /// A stored request id.
    async fn find_request(
        &self,
        client: &ClientName,
        key: &str,
    ) -> Result<Option<RequestRecord>, StoreError>;

    /// Replaces the stored result of a request id and clears its busy mark.
    async fn complete_request(
        &self,
        client: &ClientName,
        key: &str,
        response: &str,
    ) -> Result<(), StoreError>;

    /// Deletes request ids created before `before`; returns how many.
    async fn reap_requests(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// One operation by id.
    async fn get_operation(&self, id: i64) -> Result<Option<Operation>, StoreError>;

    /// The id (feed position) of the latest committed event, or the horizon when
    /// retention deleted every event; 0 when there never was one. Event ids are feed
    /// positions: they increase in the order readers may see events, and a position is
    /// never visible before every lower one is.
    async fn latest_event_id(&self) -> Result<i64, StoreError>;

    /// The highest event id that retention has deleted; 0 when none was.
    async fn events_horizon(&self) -> Result<i64, StoreError>;

    /// Deletes the events recorded before `before` (and any with a lower id), raising
    /// the horizon first; returns how many were deleted.
    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Gives every committed event its feed position, for a store that assigns
    /// positions after commit (PostgreSQL, see `store::sequencer`); returns how many
    /// it numbered. Reads of the feed do this themselves; called periodically, it
    /// also numbers events nobody has read, so they can expire.
    async fn sequence_events(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Whether the license has an operation that has not ended (queued or running).
    async fn has_open_operation(&self, license_id: LicenseId) -> Result<bool, StoreError>;

    /// One license by id.
    async fn get_license(&self, id: LicenseId) -> Result<Option<License>, StoreError>;

    /// The downstream item ids (stable integers, assigned on insert) of `ids`; ids of
    /// no license are left out.
    async fn item_ids(&self, ids: &[LicenseId]) -> Result<Vec<(LicenseId, u64)>, StoreError>;

    /// The license whose downstream item id is `item`.
    async fn license_by_item(&self, item: u64) -> Result<Option<LicenseId>, StoreError>;

    /// The labels the downstream account of `client` gave any of `ids` (licenses
    /// without labels are left out).
    async fn item_labels(
        &self,
        client: &ClientName,
        ids: &[LicenseId],
    ) -> Result<Vec<(LicenseId, ItemLabels)>, StoreError>;

    /// Sets the labels of `labels` that are `Some` on license `id` for the downstream
    /// account of `client`, keeping the others.
    async fn set_item_labels(
        &self,
        client: &ClientName,
        id: LicenseId,
        labels: &ItemLabels,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// A server's live license, or else its most recent one.
    async fn server_license(
        &self,
        client: Option<&ClientName>,
        server_id: &ServerId,
    ) -> Result<Option<License>, StoreError>;

    /// Licenses matching `filter`, newest first, `page_size` at most.
    async fn list_licenses(
        &self,
        filter: &LicenseFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<License>, StoreError>;

    /// Claims the next due operation whose lease is free or expired and that is the
    /// oldest open operation of its license, leasing it to `owner` until `now + lease`.
    async fn claim_operation(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<Operation>, StoreError>;

    /// Saves an operation's progress, its license and the events of the change in one
    /// transaction, only while `owner` still holds the lease; releases the lease when
    /// `release` is set. When this save closes the operation (it was open and `op` is
    /// DONE or FAILED), appends `ending` to the audit log in the same transaction, on
    /// behalf of the client and request id of the latest ACCEPTED entry of the same
    /// license and action when there is one, and gives back the IP the operation
    /// reserved, unless the license is left `NEEDS_ATTENTION` (its outcome unknown,
    /// the upstream may hold the IP: the resolution gives it back). Returns whether it
    /// closed the operation.
    async fn save_progress(
        &self,
        owner: &str,
        op: &Operation,
        license: &License,
        events: &[EventKind],
        release: bool,
        ending: Option<&AuditEntry>,
    ) -> Result<bool, StoreError>;

    /// Events after `after_id`, oldest first, at most `limit`; only `client`'s when set.
    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
        client: Option<&ClientName>,
    ) -> Result<Vec<Event>, StoreError>;

    /// One license's latest events, newest first, at most `limit` (its page in the
    /// console).
    async fn license_events(&self, id: LicenseId, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// The earliest moment an open operation becomes due, if any.
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many licenses are in each state (states without any are left out), for
    /// the metrics.
    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Every license that has an upstream id, in any state, ordered by id: one query,
    /// streamed row by row (the reconciler reads 100,000 of them at once).
    async fn licenses_with_upstream_id(&self) -> Result<Vec<License>, StoreError>;

    /// Stores a license adopted from the upstream (already ordered, with its upstream
    /// id) with a `CREATED` event and no operation, unless the upstream id is already
    /// known here or the client's server already has a live license (then returns
    /// that license, [`Inserted::Existing`]) or another license holds its IP or a step
    /// in flight reserved it ([`Inserted::IpTaken`]); then stores nothing.
    async fn insert_adopted(&self, license: &License) -> Result<Inserted, StoreError>;

    /// [`insert_adopted`](Self::insert_adopted) for many licenses at once (bulk
    /// seeding, e.g. by the load harness); returns how many were created. By default
    /// one call per license, 32 at a time; SQLite stores the batch in one transaction.
    async fn insert_adopted_batch(&self, licenses: &[License]) -> Result<u64, StoreError> {
        adopt_concurrently(self, licenses).await
    }

    /// Resolves a `NEEDS_ATTENTION` license in one transaction: writes the license's
    /// new state and upstream binding, the operation that follows (if any), the
    /// events, the audit entry and the request id, gives back the IPs the license's
    /// stuck steps reserved and reserves what the operation that follows will occupy,
    /// only while the license is still `NEEDS_ATTENTION`, no other license holds the
    /// upstream id it takes, and none holds the IP the operation that follows will
    /// occupy. Otherwise stores nothing and says why. A request id that exists
    /// already is [`StoreError::RequestKeyTaken`].
    async fn resolve_license(&self, resolution: &Resolution) -> Result<Resolved, StoreError>;

    /// Who holds `ip` (canonical text form), if any license but `except` does: a step
    /// in flight that reserved it, else a live license bound to it. A read for
    /// answering early (the acceptance of a step decides in its own transaction).
    async fn ip_holder(
        &self,
        ip: &str,
        except: Option<LicenseId>,
    ) -> Result<Option<IpTaken>, StoreError>;

    /// The latest operation of a license (the one a resolution retries), if any.
    async fn latest_operation(
        &self,
        license_id: LicenseId,
    ) -> Result<Option<Operation>, StoreError>;

    /// Appends an entry to the audit log (its `id` is ignored); returns the stored id.
    async fn insert_audit(&self, entry: &crate::domain::AuditEntry) -> Result<i64, StoreError>;

    /// Audit entries matching `filter`, newest first, `page_size` at most.
    async fn list_audit(
        &self,
        filter: &crate::domain::AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<crate::domain::AuditEntry>, StoreError>;

    /// How many paid calls `client` made at or after `since`: licenses created, renewals and panel changes accepted (the spend guard's
    /// count), and when the oldest of them was created.
    async fn orders_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(u64, Option<OffsetDateTime>), StoreError>;

    /// What `client`'s paid calls accepted at or after `since` were priced at in all
    /// (hundredths of the account's currency), how many of them have no known price,
    /// and when the oldest was accepted.
    async fn spend_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<Spent, StoreError>;

    /// The paid calls (orders, renewals, panel changes) accepted in `[since, until)`,
    /// only `client`'s when set, oldest first: each with its recorded price, what it
    /// bought, and whether its upstream work failed (the cost report's month).
    async fn paid_calls(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        client: Option<&ClientName>,
    ) -> Result<Vec<crate::domain::PaidCall>, StoreError>;

    /// The licenses live at `at` (accepted before it, neither FAILED nor cancelled
    /// before it), only `client`'s when set.
    async fn licenses_live_at(
        &self,
        at: OffsetDateTime,
        client: Option<&ClientName>,
    ) -> Result<Vec<License>, StoreError>;

    /// Stores a new webhook subscription.
    async fn insert_webhook(&self, webhook: &crate::domain::Webhook) -> Result<(), StoreError>;

    /// The webhook subscriptions, only `client`'s when set and only `id` when set,
    /// oldest first, each with its backlog (the events of its scope it has not
    /// reached).
    async fn list_webhooks(
        &self,
        client: Option<&ClientName>,
        id: Option<&str>,
    ) -> Result<Vec<(crate::domain::Webhook, u64)>, StoreError>;

    /// Deletes a subscription, only if `client`'s when set; whether there was one.
    async fn delete_webhook(
        &self,
        id: &str,
        client: Option<&ClientName>,
    ) -> Result<bool, StoreError>;

    /// Makes a subscription ACTIVE and due at `now`, its failures forgotten, only if
    /// `client`'s when set; whether there was one.
    async fn resume_webhook(
        &self,
        id: &str,
        client: Option<&ClientName>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Leases to `owner` until `now + ttl` the ACTIVE subscription due longest that
    /// has an event to deliver and whose lease is free or has run out, if any.
    async fn claim_webhook(
        &self,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Option<crate::domain::Webhook>, StoreError>;

    /// Records the progress of a delivery on subscription `id`, only while `owner`
    /// holds its lease; whether it did.
    async fn record_webhook(
        &self,
        id: &str,
        owner: &str,
        now: OffsetDateTime,
        progress: &WebhookProgress,
    ) -> Result<bool, StoreError>;

    /// Keeps `report` (JSON) as the latest drift report unless the stored one is newer.
    async fn save_drift_report(
        &self,
        generate_time: OffsetDateTime,
        report: &str,
    ) -> Result<(), StoreError>;

    /// The latest drift report (its time and JSON), only if newer than `newer_than`.
    async fn latest_drift_report(
        &self,
        newer_than: Option<OffsetDateTime>,
    ) -> Result<Option<(OffsetDateTime, String)>, StoreError>;

    /// Gives up every lease `owner` still holds on an open operation, so another
    /// worker may claim it at once instead of after the lease runs out. The caller
    /// must have no step of those operations running. Returns how many were released.
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError>;

    /// Extends `owner`'s lease on the open operation `id` to `until` (the heartbeat of
    /// a running step). Returns false when `owner` no longer holds it: another worker
    /// took the operation over, or it was released or closed; the caller then sends
    /// nothing more for it.
    async fn renew_lease(
        &self,
        id: i64,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives up every lease on an open operation, whoever holds it, and makes those
    /// operations due no sooner than `not_before`. Only for a process that holds the
    /// database for itself (`serve` on a SQLite file, whose lock it holds): every such
    /// lease then belongs to a process that is gone, and waiting for it to run out
    /// would only delay the recovery its operations need. Returns how many were
    /// released.
    async fn release_all_leases(&self, not_before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Records that the console session `session` (a digest of its id, never the id)
    /// ended before it expires at `expires`, so that every process sharing the store
    /// refuses it from now on; drops the records of sessions expired by `now`.
    async fn revoke_session(
        &self,
        session: &str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Whether the console session `session` (its digest) was revoked.
    async fn session_revoked(&self, session: &str) -> Result<bool, StoreError>;

    /// Takes the named process-wide lease (one row of `leases`, e.g. `reconcile`) for
    /// `owner` until `now + ttl` when it is free or has run out; returns whether
    /// `owner` got it. Replicas use it to run a periodic job once per period in all.
    async fn try_take_lease(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
}

/// [`Store::insert_adopted`] for each of `licenses`, 32 at a time; returns how many
/// were created.
pub(crate) async fn adopt_concurrently<S: Store + ?Sized>(
    store: &S,
    licenses: &[License],
) -> Result<u64, StoreError> {
    let mut created = 0;
    for chunk in licenses.chunks(32) {
        let mut calls = Vec::with_capacity(chunk.len());
        for license in chunk {
            calls.push(store.insert_adopted(license));
        }
        for result in futures::future::join_all(calls).await {
            if matches!(result?, Inserted::Created(_)) {
                created += 1;
            }
        }
    }
    Ok(created)
}

/// Opens the store a database URL names: `sqlite:…` for [`SqliteStore`],
/// `postgres://…` or `postgresql://…` for [`PgStore`]; applies the migrations.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        anyhow::bail!("unsupported database URL: expected sqlite:…, postgres://… or postgresql://…")
    }
}

/// The store of a `serve` process, and what it holds while it runs.
pub struct Serving {
    /// The store.
    pub store: Arc<dyn Store>,
    /// For a SQLite file: the lock on `<database>.lock` (released when dropped, and
    /// by the kernel when the process dies).
    pub lock: Option<file_lock::FileLock>,
}

/// Opens the store for `serve`, as [`connect`] does. A SQLite database belongs to this
/// process alone: a file is locked (a second `serve` on it fails with a clear error;
/// SQLite is the one-node store, replicas use PostgreSQL), and reads of one license
/// are answered from a cache that this process's writes keep exact.
pub async fn connect_serving(url: &str) -> anyhow::Result<Serving> {
    connect_serving_sized(url, DEFAULT_MAX_CONNECTIONS).await
}

/// [`connect_serving`] with at most `max_connections` PostgreSQL connections.
pub async fn connect_serving_sized(url: &str, max_connections: u32) -> anyhow::Result<Serving> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Serving {
            store: Arc::new(PgStore::connect_sized(url, max_connections).await?),
            lock: None,
        });
    }
    if !url.starts_with("sqlite:") {
        return Ok(Serving {
            store: connect(url).await?,
            lock: None,
        });
    }
    let lock = if sqlite::is_in_memory(url) {
        None
    } else {
        Some(sqlite::lock_file(url)?)
    };
    Ok(Serving {
        store: Arc::new(SqliteStore::connect(url).await?.with_license_cache()),
        lock,
    })
}

#[cfg(test)]
pub(crate) mod tests;
