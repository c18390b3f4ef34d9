//! The PostgreSQL side of the store, for several replicas sharing one database.
//! Transactions run at READ COMMITTED: uniqueness is decided by the partial unique
//! indexes (`ON CONFLICT`), work is shared by claiming rows with `FOR UPDATE SKIP
//! LOCKED`, progress is fenced by the lease owner under a row lock, and advisory locks
//! serialise what must be serialised across replicas (a client's spending, the
//! numbering of committed change-feed events, migrations), so no stronger isolation is
//! needed.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use sqlx::Postgres;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use super::StoreError;
use super::dialect::{Dialect, Pools, WriteFn};
use super::sequencer::Sequencer;
use super::sql::SqlStore;
use super::sql::exec::{Args, Conn, args, fixed};
use crate::domain::ClientName;

/// PostgreSQL-backed [`Store`](super::Store).
pub type PgStore = SqlStore<PgDb>;

/// The PostgreSQL database of a [`PgStore`]: its pools.
#[derive(Debug, Clone)]
pub struct PgDb {
    /// The lease pool's sessions (for claims, releases, the named leases) commit with
    /// `synchronous_commit = off`. Losing such a commit to a database crash only hands
    /// the lease back, and the next synchronous commit (INTENT before any upstream
    /// call) flushes it anyway; the claim saves an fsync per step.
    pools: Pools<Postgres>,
    /// Numbers committed events for the feed (see `store::sequencer`).
    sequencer: Arc<Sequencer>,
}

/// Connections per process by default; every replica has its own pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The advisory lock key that serialises migrations across replicas ("lfmigrat").
/// Advisory locks are scoped to the current database, so one constant suffices.
const MIGRATION_LOCK: i64 = 0x6c66_6d69_6772_6174;

impl PgStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`) and
    /// applies the migrations. Replicas starting together are safe: migrations run
    /// under an advisory lock.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_sized(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`connect`](Self::connect) with at most `max_connections` connections, and a
    /// quarter more (at least 2) for lease-only writes.
    pub async fn connect_sized(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("invalid PostgreSQL database URL")?
            .application_name("license-facade");
        migrate(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .context("cannot connect to PostgreSQL")?;
        let lease_pool = PgPoolOptions::new()
            .max_connections((max_connections / 4).max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.options([("synchronous_commit", "off")]))
            .await
            .context("cannot connect to PostgreSQL")?;
        Ok(Self::new(PgDb {
            pools: Pools {
                main: pool,
                lease: lease_pool,
            },
            sequencer: Arc::default(),
        }))
    }
}

impl Dialect for PgDb {
    type Db = Postgres;
    type Conn = PgConnection;
    type WriteConn = PgConnection;

    const ONE_WRITER: bool = false;
    const CLIENT_COLUMN: &'static str = "client";

    /// The client's transaction-level advisory lock: a concurrent paid call of the
    /// same client on any replica waits until this transaction ends.
    fn lock_spend<'c>(
        conn: &'c mut PgConnection,
        client: &'c ClientName,
    ) -> BoxFuture<'c, Result<(), StoreError>> {
        let sql = "SELECT pg_advisory_xact_lock(hashtextextended('spend:' || $1, 0))";
        let locked = lock(conn, sql, args![client.as_str()], "the client's spending");
        Box::pin(async move { Ok(locked.await?) })
    }

    /// Numbers committed events after their commit (see `store::sequencer`).
    fn sequence_events(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(self.sequencer.catch_up(&self.pools.main))
    }

    // Rows read for a decision are locked: writers run concurrently.
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    /// The license's row lock.
    fn lock_license<'c>(
        conn: &'c mut PgConnection,
        license_id: &'c str,
    ) -> BoxFuture<'c, anyhow::Result<()>> {
        let sql = "SELECT 1 FROM licenses WHERE id = $1 FOR NO KEY UPDATE";
        lock(conn, sql, args![license_id], "the license")
    }

    /// A transaction of its own on the main pool, committed with the session's
    /// default (synchronous) durability.
    fn write<T: Send + 'static>(
        &self,
        hold: Option<Box<dyn Send>>,
        write: WriteFn<PgConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let result = self.pools.transaction(write).await;
            drop(hold);
            result
        })
    }

    fn transaction<T: Send + 'static>(
        &self,
        write: WriteFn<PgConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.write(None, write)
    }

    // `SKIP LOCKED` passes over a row another replica is claiming right now.
    const CLAIM_LOCK: &'static str = " FOR UPDATE OF o SKIP LOCKED";

    /// A claim is one statement: it commits on its own, on a lease session.
    fn lease_write<T: Send + 'static>(
        &self,
        write: WriteFn<PgConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let mut conn = self
                .pools
                .acquire(true)
                .await
                .context("cannot get a database connection")?;
            Ok(write(&mut conn).await?.value)
        })
    }

    fn pools(&self) -> &Pools<Postgres> {
        &self.pools
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pools.close())
    }
}

/// Runs `sql`, which takes a lock held until the transaction ends; `what` names
/// what it locks.
fn lock<'c>(
    conn: &'c mut PgConnection,
    sql: &'static str,
    args: Args,
    what: &'static str,
) -> BoxFuture<'c, anyhow::Result<()>> {
    Box::pin(async move {
        conn.execute(fixed(sql), args)
            .await
            .with_context(|| format!("cannot lock {what}"))?;
        Ok(())
    })
}

/// Applies the migrations while holding [`MIGRATION_LOCK`], so replicas starting
/// together apply them one at a time (the later ones find nothing to do).
///
/// The lock is a session lock, so lock and migrations must share one session: a pool
/// of exactly one connection provides it (`Migrator::run` on a bare `&mut
/// PgConnection` makes the `connect` future non-`Send`, a known rustc limitation).
/// Should that connection drop in between, the pool's replacement runs without our
/// lock, but sqlx's migrator takes its own advisory lock (per database) as well, so
/// migrations stay serialised either way. Closing the pool ends the session, which
/// releases both locks even when a migration fails (sqlx returns before its unlock).
async fn migrate(options: &PgConnectOptions) -> anyhow::Result<()> {
    let session = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options.clone())
        .await
        .context("cannot connect to PostgreSQL")?;
    let result = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&session)
            .await
            .context("cannot take the migration lock")?;
        MIGRATOR
            .run(&session)
            .await
            .context("cannot apply the PostgreSQL migrations")
    }
    .await;
    session.close().await;
    result
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
