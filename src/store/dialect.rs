//! What differs between the two databases behind the one store implementation
//! (`store::sql`): how a write's transaction is run, which connections serve reads and
//! lease-only writes, the locks PostgreSQL takes where SQLite's single writer already
//! serialises, and the few clauses only one of them has.

use futures::future::BoxFuture;

use super::StoreError;
use super::group_commit::Written;
use super::sql::exec::Conn;
use crate::domain::ClientName;

/// A write run in a transaction: given the transaction's connection, it says what it
/// returns and whether its changes are kept (committed) or discarded.
pub type WriteFn<C, T> =
    Box<dyn for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, Result<Written<T>, StoreError>> + Send>;

/// A database's connection pools.
#[derive(Debug)]
pub struct Pools<DB: sqlx::Database> {
    /// For reads, single-statement writes and transactions.
    pub(crate) main: sqlx::Pool<DB>,
    /// For writes that only change leases: their sessions may commit without
    /// waiting for the disk (the dialect's connect says how), since losing one only
    /// hands a lease back.
    pub(crate) lease: sqlx::Pool<DB>,
}

// By hand: a derive would ask for `DB: Clone`.
impl<DB: sqlx::Database> Clone for Pools<DB> {
    fn clone(&self) -> Self {
        Self {
            main: self.main.clone(),
            lease: self.lease.clone(),
        }
    }
}

impl<DB: sqlx::Database> Pools<DB> {
    /// A connection of the main pool, or of the lease pool.
    pub(crate) fn acquire(
        &self,
        lease: bool,
    ) -> BoxFuture<'static, Result<sqlx::pool::PoolConnection<DB>, sqlx::Error>> {
        Box::pin(if lease { &self.lease } else { &self.main }.acquire())
    }

    /// Runs `write` in a transaction on the main pool and commits it, or rolls it
    /// back when the write keeps nothing (a failed write's transaction is rolled back
    /// when dropped).
    pub(crate) async fn transaction<T>(
        &self,
        write: WriteFn<DB::Connection, T>,
    ) -> Result<T, StoreError>
    where
        DB::Connection: Conn,
    {
        use anyhow::Context;
        let mut tx = self
            .main
            .begin()
            .await
            .context("cannot begin a write transaction")?;
        let written = write(&mut *tx).await?;
        if written.keep {
            tx.commit().await.context("cannot commit")?;
        } else {
            tx.rollback().await.context("cannot roll back")?;
        }
        Ok(written.value)
    }

    /// Closes both pools, waiting for their connections to come back.
    pub(crate) async fn close(&self) {
        self.main.close().await;
        self.lease.close().await;
    }
}

/// One database's side of [`SqlStore`](super::sql::SqlStore).
pub trait Dialect: std::fmt::Debug + Send + Sync + 'static {
    /// The sqlx database.
    type Db: sqlx::Database<Connection = Self::Conn>;
    /// A connection, or a transaction's connection.
    type Conn: Conn + sqlx::Connection<Database = Self::Db>;
    /// A write transaction's connection: the pool's connection on PostgreSQL; on
    /// SQLite its handle, taken from sqlx's thread for the transaction
    /// (`store::direct`).
    type WriteConn: Conn;

    /// Whether one process is the database's only writer, so that a write transaction
    /// holds the whole database (SQLite's write lock): a batch of adoptions then goes
    /// in one transaction.
    const ONE_WRITER: bool;

    /// How a license listing compares the client (see `codec::license_list_sql`).
    const CLIENT_COLUMN: &'static str;

    /// Appended to a read inside a write transaction whose rows the rest of the
    /// transaction depends on: a row lock where writers run concurrently, nothing
    /// where the transaction holds the database's write lock.
    const FOR_UPDATE: &'static str;

    /// The lock a claim takes on the row it picks, passing over rows another worker
    /// is claiming (nothing under a write lock).
    const CLAIM_LOCK: &'static str;

    /// The connections of reads and single-statement writes, and of lease-only writes.
    fn pools(&self) -> &Pools<Self::Db>;

    /// Runs a durable write on the hot path (an order, queued changes, a step's
    /// progress, a resolution) in a transaction of its own or of a group, and returns
    /// its value once committed (or rolled back, when it keeps nothing). `hold` is
    /// dropped when the transaction has ended.
    fn write<T: Send + 'static>(
        &self,
        hold: Option<Box<dyn Send>>,
        write: WriteFn<Self::WriteConn, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>>;

    /// Runs a write that only changes a lease (a claim).
    fn lease_write<T: Send + 'static>(
        &self,
        write: WriteFn<Self::WriteConn, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>>;

    /// Runs a write off the hot path (adoptions) in a transaction of its own.
    fn transaction<T: Send + 'static>(
        &self,
        write: WriteFn<Self::WriteConn, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>>;

    /// Inside a write transaction, before the client's paid calls are counted: makes a
    /// concurrent paid call of the same client wait until this transaction ends.
    fn lock_spend<'c>(
        conn: &'c mut Self::WriteConn,
        client: &'c ClientName,
    ) -> BoxFuture<'c, Result<(), StoreError>>;

    /// Gives every committed event its feed position (see `store::sequencer`);
    /// returns how many it numbered. Nothing to do where positions are taken in commit
    /// order already (SQLite's one writer).
    fn sequence_events(&self) -> BoxFuture<'_, anyhow::Result<u64>>;

    /// Inside a write transaction that queues operations on a license: makes a
    /// concurrent one for the same license wait until this transaction ends.
    fn lock_license<'c>(
        conn: &'c mut Self::WriteConn,
        license_id: &'c str,
    ) -> BoxFuture<'c, anyhow::Result<()>>;

    /// Ends the dialect's background work and closes its connections.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// A dialect hook with nothing to do.
pub(crate) fn nothing<'a, E: Send + 'a>() -> BoxFuture<'a, Result<(), E>> {
    Box::pin(async { Ok(()) })
}
