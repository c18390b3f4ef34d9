//! Persistence: the [`Store`] trait the service works through, and its SQLite
//! implementation. Every method is one transaction.

mod codec;
mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{
    ClientName, Event, EventKind, License, LicenseId, LicenseState, Operation, ServerId,
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

/// What the service needs from a database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a PENDING license with its first operation and a `CREATED` event, unless
    /// the client's server already has a live license: then returns that one and stores
    /// nothing.
    async fn insert_order(&self, license: &License, op: &Operation)
    -> Result<Inserted, StoreError>;

    /// Queues operations on an existing license, in order, unless it already has an
    /// open one ([`StoreError::OperationInProgress`]). Returns their ids.
    async fn insert_operations(
        &self,
        license_id: LicenseId,
        ops: &[Operation],
    ) -> Result<Vec<i64>, StoreError>;

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
    /// `release` is set.
    async fn save_progress(
        &self,
        owner: &str,
        op: &Operation,
        license: &License,
        events: &[EventKind],
        release: bool,
    ) -> Result<(), StoreError>;

    /// Events after `after_id`, oldest first, at most `limit`; only `client`'s when set.
    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
        client: Option<&ClientName>,
    ) -> Result<Vec<Event>, StoreError>;

    /// The earliest moment an open operation becomes due, if any.
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
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

#[cfg(test)]
mod tests;
