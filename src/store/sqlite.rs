//! The SQLite side of the store: one file (or memory) database, WAL with
//! `synchronous=FULL` so an acknowledged commit survives power loss. Writers take the
//! lock up front (`BEGIN IMMEDIATE`) so that two transactions never deadlock upgrading
//! it, and the hot writes are committed in groups (`store::group_commit`). Holding the
//! write lock, a transaction needs no row locks.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection};

use super::StoreError;
use super::dialect::{Dialect, Pools, WriteFn, nothing};
use super::direct::Direct;
use super::group_commit::{Connections, GroupCommit, WriteKind};
use super::sql::SqlStore;
use crate::domain::ClientName;

/// SQLite-backed [`Store`](super::Store).
pub type SqliteStore = SqlStore<SqliteDb>;

/// The SQLite database of a [`SqliteStore`]: its pools and its group-commit writer.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// Reads, and the few writes off the hot path. A group of nothing but lease
    /// writes (claims, releases, the named leases) commits with `synchronous=NORMAL`,
    /// whose WAL commits skip the fsync (`store::group_commit`). A process crash keeps
    /// them (the WAL is written before the commit returns); a power loss may undo one,
    /// which only hands a lease back, and the next FULL commit (INTENT, before any
    /// upstream call) syncs the WAL with it in anyway. An in-memory database has
    /// nothing to sync.
    pools: Pools<Sqlite>,
    /// For an in-memory database: a connection outside the pool that is never used,
    /// only held, because a shared in-memory database lives exactly as long as one
    /// connection to it is open — and the pool may close and replace its connection
    /// (it does when a query is cancelled mid-flight).
    _keeper: Option<Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>>,
    /// Commits the hot writes in groups (see `store::group_commit`).
    writer: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:path` or
    /// `sqlite::memory:`) and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let in_memory = is_in_memory(url);
        // A named shared-cache database, so that every connection of this store (and
        // only of this store) sees the same data.
        let url = if url.contains(":memory:") {
            format!(
                "sqlite:file:license-facade-{}?mode=memory&cache=shared",
                uuid::Uuid::now_v7().simple()
            )
        } else {
            url.to_owned()
        };
        let options = SqliteConnectOptions::from_str(&url)
            .context("invalid SQLite database URL")?
            .create_if_missing(true)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let keeper = if in_memory {
            use sqlx::Connection;
            let conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .context("cannot open the in-memory SQLite database")?;
            Some(Arc::new(tokio::sync::Mutex::new(conn)))
        } else {
            None
        };
        let pool = if in_memory {
            // Shared-cache connections lock whole tables against each other; one pooled
            // connection avoids those conflicts (an in-memory database is for demos
            // and tests, not for load).
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        // A pooled connection is checked with a round trip to its thread before each
        // use, a check for a server that may have dropped it; a SQLite connection is
        // a file handle in this process and cannot go stale. Every read and every group
        // of writes paid that round trip (docs/benchmarks.md, round 6).
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await
        .context("cannot open the SQLite database")?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("cannot apply the SQLite migrations")?;
        let connections = if in_memory {
            Connections::Pooled {
                durable: pool.clone(),
                light: pool.clone(),
            }
        } else {
            use sqlx::Connection;
            Connections::Own(
                SqliteConnection::connect_with(&options)
                    .await
                    .context("cannot open the SQLite database for the writer")?,
            )
        };
        Ok(Self::new(SqliteDb {
            writer: GroupCommit::start(connections).context("cannot start the store's writer")?,
            pools: Pools {
                // Lease-only writes go to the writer (`lease_write`), not to a pool.
                lease: pool.clone(),
                main: pool,
            },
            _keeper: keeper,
        }))
    }

    /// Answers reads of one license from memory (see `store::cache`). Only for the
    /// database's one writing process: `serve` holds the SQLite file for itself
    /// (`startup`); writes made by another process would not be seen.
    pub fn with_license_cache(mut self) -> Self {
        self.cache = Some(Arc::default());
        self
    }
}

impl Dialect for SqliteDb {
    type Db = Sqlite;
    type Conn = SqliteConnection;
    type WriteConn = Direct;

    const ONE_WRITER: bool = true;
    // `+client` keeps SQLite's planner off the `(client, create_time)` index (see
    // `codec::license_list_sql`).
    const CLIENT_COLUMN: &'static str = "+client";
    // The write lock, taken at BEGIN IMMEDIATE, serialises every writer.
    const FOR_UPDATE: &'static str = "";
    const CLAIM_LOCK: &'static str = "";

    fn pools(&self) -> &Pools<Sqlite> {
        &self.pools
    }

    fn write<T: Send + 'static>(
        &self,
        hold: Option<Box<dyn Send>>,
        write: WriteFn<Direct, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(self.writer.run(WriteKind::Durable, hold, write))
    }

    fn lease_write<T: Send + 'static>(
        &self,
        write: WriteFn<Direct, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(self.writer.run(WriteKind::LeaseOnly, None, write))
    }

    fn transaction<T: Send + 'static>(
        &self,
        write: WriteFn<Direct, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let mut tx = self
                .pools
                .main
                .begin_with("BEGIN IMMEDIATE")
                .await
                .context("cannot begin a write transaction")?;
            let mut locked = tx
                .lock_handle()
                .await
                .context("cannot take the connection's handle")?;
            let written = Direct::with(&mut locked, None, async |direct| write(direct).await).await;
            drop(locked);
            let written = written?;
            if written.keep {
                tx.commit().await.context("cannot commit")?;
            } else {
                tx.rollback().await.context("cannot roll back")?;
            }
            Ok(written.value)
        })
    }

    fn lock_spend<'c>(
        _: &'c mut Direct,
        _: &'c ClientName,
    ) -> BoxFuture<'c, Result<(), StoreError>> {
        nothing()
    }

    fn sequence_events(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(async { Ok(0) })
    }

    fn lock_license<'c>(_: &'c mut Direct, _: &'c str) -> BoxFuture<'c, anyhow::Result<()>> {
        nothing()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The writer first: it may hold a connection of either pool, and `close`
            // on a pool waits for its connections to come back.
            self.writer.stop().await;
            self.pools.close().await;
        })
    }
}

/// Whether a SQLite URL names an in-memory database (`sqlite::memory:`, `mode=memory`).
pub(super) fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Takes the lock that keeps a SQLite database to one `serve` process: an exclusive
/// `flock` on `<database>.lock`, created beside it. A separate file, because closing
/// any descriptor of the database itself would drop SQLite's own POSIX locks on it.
pub(super) fn lock_file(url: &str) -> anyhow::Result<super::file_lock::FileLock> {
    let options = SqliteConnectOptions::from_str(url).context("invalid SQLite database URL")?;
    let mut path = options.get_filename().as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    match super::file_lock::try_lock(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => anyhow::bail!(
            "another license-facade process is serving {} (it holds {}); SQLite serves \
             one process, use PostgreSQL for replicas",
            options.get_filename().display(),
            path.display()
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display()))),
    }
}
