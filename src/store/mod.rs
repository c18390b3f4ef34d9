//! Persistence: the [`Store`] trait the service works through, and its SQLite
//! implementation. Every method is one transaction.

mod audit;
mod cache;
mod codec;
mod file_lock;
mod group_commit;
mod postgres;
mod sqlite;

pub use file_lock::FileLock;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{
    AuditEntry, ClientName, Event, EventKind, License, LicenseId, LicenseState, Operation, ServerId,
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
    /// Anything else (connection, constraint, corrupt row); maps to an internal error.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The result of inserting an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The license and its operation were stored.
    Created(License),
    /// The server already had a live license; nothing was stored.
    Existing(License),
    /// Another live license (any client's, any server id's) has the IP; nothing was
    /// stored.
    IpTaken(License),
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
    /// request id if any and the `audit` entries, unless the client's server already
    /// has a live license: then returns that one and stores nothing. A request id that
    /// exists already is [`StoreError::RequestKeyTaken`] and nothing is stored.
    async fn insert_order(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
    ) -> Result<Inserted, StoreError>;

    /// Queues operations on an existing license, in order, with the request id if any
    /// and the `audit` entries, unless it already has an open one
    /// ([`StoreError::OperationInProgress`]) or the request id exists
    /// ([`StoreError::RequestKeyTaken`]). Returns their ids.
    async fn insert_operations(
        &self,
        license_id: LicenseId,
        ops: &[Operation],
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
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

    /// One license by id.
    async fn get_license(&self, id: LicenseId) -> Result<Option<License>, StoreError>;

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
    /// license and action when there is one. Returns whether it closed the operation.
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
    /// known here or the client's server already has a live license: then returns
    /// that license ([`Inserted::Existing`]) and stores nothing.
    async fn insert_adopted(&self, license: &License) -> Result<Inserted, StoreError>;

    /// [`insert_adopted`](Self::insert_adopted) for many licenses at once (bulk
    /// seeding, e.g. by the load harness); returns how many were created. By default
    /// one call per license, 32 at a time; SQLite stores the batch in one transaction.
    async fn insert_adopted_batch(&self, licenses: &[License]) -> Result<u64, StoreError> {
        let mut created = 0;
        for chunk in licenses.chunks(32) {
            let mut calls = Vec::with_capacity(chunk.len());
            for license in chunk {
                calls.push(self.insert_adopted(license));
            }
            for result in futures::future::join_all(calls).await {
                if matches!(result?, Inserted::Created(_)) {
                    created += 1;
                }
            }
        }
        Ok(created)
    }

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
    /// (hundredths of the account's currency; calls recorded without a price count
    /// nothing), and when the oldest priced one was accepted.
    async fn spend_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>), StoreError>;

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
mod tests;
