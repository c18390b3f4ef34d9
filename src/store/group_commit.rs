//! Group commit for the SQLite store. SQLite has one writer and, with
//! `synchronous=FULL`, one fsync per commit, so every durable write of every request
//! and worker queued behind the last one's fsync. Here the hot writes (an order, queued
//! changes, a step of the workflow) go to one writer, which runs whatever has
//! queued up meanwhile in one transaction, each write in a savepoint of its own, and
//! commits them with one fsync. Every caller hears its result only after that commit,
//! so an acknowledged write is as durable as before; a write that fails or asks for
//! it is rolled back alone. A burst of writes costs one fsync instead of one each.
//!
//! Claims and every other write that changes only a lease (renewals, releases, the
//! webhook dispatcher's leases) queue here too, so that a stream of orders cannot
//! starve them of the write lock, nor they hold it while a group waits (SQLite's busy
//! handler sleeps a millisecond and more, and the writer would rarely leave the lock
//! free at the right moment). A group of nothing but lease writes commits without an
//! fsync (`synchronous=NORMAL`; see `SqliteDb::pools`).
//!
//! A file database's writer is a thread with one connection of its own, whose handle
//! it holds from start to end and runs every statement on (`store::direct`): sqlx
//! hands each statement to the connection's own thread and back, which cost more
//! than the statement itself, and blocking on the commit's fsync here holds up no
//! other task. SQLite empties a connection's page cache when another connection has
//! written since its last transaction; a writer that took any of the pool's
//! connections began most groups by reading some thirty pages of the tables' indexes
//! again (docs/benchmarks.md, round 7).
//!
//! A write handed over runs to its end even when its caller stops waiting: like a
//! commit that landed just before the caller was cancelled, which every write here
//! already tolerates (a retry finds the work done, or the operation's lease fences).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::StoreError;
use super::direct::{Direct, Statements};
use super::sql::exec::{Conn as _, fixed};

/// Writes committed together at most.
const MAX_BATCH: usize = 64;

/// What a write gives back: its value, and whether its changes are kept (a write may
/// succeed and still store nothing, e.g. an order for a server that has a license).
pub struct Written<T> {
    pub value: T,
    pub keep: bool,
}

impl<T> Written<T> {
    pub fn kept(value: T) -> Self {
        Self { value, keep: true }
    }

    pub fn discarded(value: T) -> Self {
        Self { value, keep: false }
    }
}

/// One queued write, with the means to answer its caller.
trait Job: Send {
    /// Runs the write on `conn` (inside the group's transaction and the write's own
    /// savepoint); returns whether its changes are kept.
    fn run<'c>(&'c mut self, conn: &'c mut Direct) -> BoxFuture<'c, bool>;
    /// Answers the caller once the group's fate is known (`Err`: the commit failed).
    fn answer(self: Box<Self>, commit: Result<(), String>);
    /// Whether the write must be on disk before its caller hears of it.
    fn durable(&self) -> bool;
}

type WriteFn<T> =
    Box<dyn for<'c> FnOnce(&'c mut Direct) -> BoxFuture<'c, Result<Written<T>, StoreError>> + Send>;

struct Typed<T> {
    write: Option<WriteFn<T>>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    /// Dropped after the commit, before the caller hears of it (the license cache's
    /// write guard).
    hold: Option<Box<dyn Send>>,
    durable: bool,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn run<'c>(&'c mut self, conn: &'c mut Direct) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let Some(write) = self.write.take() else {
                return false;
            };
            match write(conn).await {
                Ok(written) => {
                    self.outcome = Some(Ok(written.value));
                    written.keep
                }
                Err(e) => {
                    self.outcome = Some(Err(e));
                    false
                }
            }
        })
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn answer(self: Box<Self>, commit: Result<(), String>) {
        let Typed {
            outcome,
            reply,
            hold,
            ..
        } = *self;
        drop(hold);
        let answer = match (outcome, commit) {
            // A failed write was rolled back alone; its error stands either way.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(why)) | (None, Err(why)) => {
                Err(StoreError::Unexpected(anyhow::anyhow!(why)))
            }
            (None, Ok(())) => Err(StoreError::Unexpected(anyhow::anyhow!(
                "the write was not run"
            ))),
        };
        let _ = reply.send(answer);
    }
}

/// What a write changes, which decides how its group is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteKind {
    /// Data that must be on disk before the caller hears of it.
    Durable,
    /// Only a lease: a group of nothing else commits without an fsync.
    LeaseOnly,
}

/// The handle of the writer; cheap to clone. The writer ends when the last handle is
/// dropped, or at [`stop`](GroupCommit::stop).
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    stop: CancellationToken,
    /// Taken by the first `stop`, which waits for the writer to end.
    ended: Arc<Mutex<Option<Ended>>>,
}

/// How `stop` learns that the writer has ended.
#[derive(Debug)]
enum Ended {
    Task(JoinHandle<()>),
    Thread(oneshot::Receiver<()>),
}

/// The connections the writer runs its groups on.
pub(super) enum Connections {
    /// A file database: one connection of the writer's own, on a thread of its own.
    Own(SqliteConnection),
    /// One per group from `durable`, or from `light` (opened with
    /// `synchronous=NORMAL`) for a group of lease-only writes: an in-memory database,
    /// whose one pooled connection must be the only one.
    Pooled {
        durable: SqlitePool,
        light: SqlitePool,
    },
}

impl GroupCommit {
    /// Starts the writer on `connections`: a thread for a connection of its own, else
    /// a task.
    pub(super) fn start(connections: Connections) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let ended = match connections {
            Connections::Own(conn) => {
                let (done, ended) = oneshot::channel();
                let stop = stop.clone();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()?;
                std::thread::Builder::new()
                    .name("store-writer".to_owned())
                    .spawn(move || {
                        runtime.block_on(own_writer(conn, jobs, stop));
                        let _ = done.send(());
                    })?;
                Ended::Thread(ended)
            }
            Connections::Pooled { durable, light } => Ended::Task(tokio::spawn(pooled_writer(
                durable,
                light,
                jobs,
                stop.clone(),
            ))),
        };
        Ok(Self {
            queue,
            stop,
            ended: Arc::new(Mutex::new(Some(ended))),
        })
    }

    /// Ends the writer and waits until it has: the group being committed is finished,
    /// writes still queued are answered with an error (as after a crash, they were
    /// never committed), and later writes fail at once. After this the store writes
    /// nothing more, so its pools can be closed.
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        let ended = self.ended.lock().expect("not poisoned").take();
        match ended {
            Some(Ended::Task(task)) => {
                let _ = task.await;
            }
            Some(Ended::Thread(thread)) => {
                let _ = thread.await;
            }
            None => {}
        }
    }

    /// Runs `write` in the next group and returns its value once the group committed;
    /// `hold` is dropped after the commit (or the failure), even if this call's future
    /// was dropped first.
    pub(super) async fn run<T, F>(
        &self,
        kind: WriteKind,
        hold: Option<Box<dyn Send>>,
        write: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Direct) -> BoxFuture<'c, Result<Written<T>, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            write: Some(Box::new(write)),
            outcome: None,
            reply,
            hold,
            durable: kind == WriteKind::Durable,
        });
        self.queue.send(job).map_err(|_| {
            StoreError::Unexpected(anyhow::anyhow!("the store's writer has stopped"))
        })?;
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unexpected(anyhow::anyhow!(
                "the store's writer stopped before answering"
            )))
        })
    }
}

/// The next batch of queued writes into `batch`; 0 when the writer is to end.
async fn next_batch(
    jobs: &mut mpsc::UnboundedReceiver<Box<dyn Job>>,
    batch: &mut Vec<Box<dyn Job>>,
    stop: &CancellationToken,
) -> usize {
    tokio::select! {
        biased;
        _ = stop.cancelled() => 0,
        n = jobs.recv_many(batch, MAX_BATCH) => n,
    }
}

/// Answers every write of `batch` with the group's fate.
fn answer(batch: &mut Vec<Box<dyn Job>>, commit: Result<(), String>) {
    if let Err(why) = &commit {
        tracing::warn!(writes = batch.len(), error.message = %why, "a group of writes failed");
    }
    for job in batch.drain(..) {
        job.answer(commit.clone());
    }
}

/// The writer of a file database, on a thread of its own with `conn`, whose handle it
/// holds from start to end: every statement of every group, BEGIN and COMMIT
/// included, runs on this thread without a hand-off to sqlx's (`store::direct`). The
/// commit's fsync, a checkpoint and SQLite's busy handler (another connection holding
/// the write lock) block this thread only. The statements stay prepared between
/// groups.
async fn own_writer(
    mut conn: SqliteConnection,
    mut jobs: mpsc::UnboundedReceiver<Box<dyn Job>>,
    stop: CancellationToken,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut held = match conn.lock_handle().await {
        Ok(locked) => Held {
            locked,
            statements: Statements::default(),
        },
        Err(e) => {
            let why = format!("cannot take the connection's handle: {e}");
            while next_batch(&mut jobs, &mut batch, &stop).await > 0 {
                answer(&mut batch, Err(why.clone()));
            }
            return;
        }
    };
    // The connection's `synchronous`: FULL as opened.
    let mut full = true;
    while next_batch(&mut jobs, &mut batch, &stop).await > 0 {
        let durable = batch.iter().any(|job| job.durable());
        let Held { locked, statements } = &mut held;
        let commit = Direct::with(locked, Some(statements), async |direct| {
            own_group(direct, &mut batch, durable, &mut full).await
        })
        .await;
        answer(&mut batch, commit);
    }
}

/// The writer's hold on its connection's handle, with the statements it keeps
/// prepared; finalized when the writer ends, however it ends, before the handle goes
/// back to the connection's thread (a statement left prepared would make the
/// connection's close fail, and sqlx panic).
struct Held<'c> {
    locked: sqlx::sqlite::LockedSqliteHandle<'c>,
    statements: Statements,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.statements.finalize(&mut self.locked);
    }
}

/// Runs `batch` in one transaction on the writer's own connection.
async fn own_group(
    direct: &mut Direct,
    batch: &mut [Box<dyn Job>],
    durable: bool,
    full: &mut bool,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    if durable != *full {
        // Outside any transaction: SQLite refuses the change inside one.
        let sql = if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        run_statement(direct, sql).await?;
        *full = durable;
    }
    run_statement(direct, "BEGIN IMMEDIATE").await?;
    let begun = started.elapsed();
    let keep = run_jobs(direct, batch).await;
    let run = started.elapsed();
    let ended = match keep {
        Ok(true) => run_statement(direct, "COMMIT").await,
        Ok(false) => run_statement(direct, "ROLLBACK").await,
        Err(e) => Err(e),
    };
    if ended.is_err() && !direct.in_autocommit() {
        // No transaction may stay open for the next group (a failed COMMIT may leave
        // it so).
        let _ = run_statement(direct, "ROLLBACK").await;
    }
    // Where a group's time goes, for whoever looks into a slow write.
    tracing::debug!(
        writes = batch.len(),
        durable,
        begin_us = begun.as_micros(),
        run_us = (run - begun).as_micros(),
        commit_us = (started.elapsed() - run).as_micros(),
        "group of writes ended"
    );
    ended
}

/// The writer of an in-memory database, as a task: a connection from the pool per
/// group.
async fn pooled_writer(
    durable: SqlitePool,
    light: SqlitePool,
    mut jobs: mpsc::UnboundedReceiver<Box<dyn Job>>,
    stop: CancellationToken,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut jobs, &mut batch, &stop).await > 0 {
        let pool = if batch.iter().any(|job| job.durable()) {
            &durable
        } else {
            &light
        };
        let commit = match pool.acquire().await {
            Ok(mut conn) => run_group(&mut conn, &mut batch).await,
            Err(e) => Err(format!("cannot get a database connection: {e}")),
        };
        answer(&mut batch, commit);
    }
}

/// Runs `batch` in one transaction on a pooled connection (an in-memory database),
/// and commits it. BEGIN and COMMIT go through sqlx; the statements run on the
/// connection's handle (`store::direct`).
async fn run_group(conn: &mut SqliteConnection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(|e| format!("cannot begin a write transaction: {e}"))?;
    let mut locked = tx
        .lock_handle()
        .await
        .map_err(|e| format!("cannot take the connection's handle: {e}"))?;
    let keep = Direct::with(&mut locked, None, async |direct| {
        run_jobs(direct, batch).await
    })
    .await;
    drop(locked);
    if keep? {
        tx.commit().await.map_err(|e| format!("cannot commit: {e}"))
    } else {
        tx.rollback()
            .await
            .map_err(|e| format!("cannot roll back: {e}"))
    }
}

/// Runs the writes of a group, a write alone without a savepoint (its transaction is
/// simply committed or rolled back), each of several in a savepoint of its own;
/// returns whether the transaction is to be committed.
async fn run_jobs(direct: &mut Direct, batch: &mut [Box<dyn Job>]) -> Result<bool, String> {
    if let [job] = batch {
        let keep = job.run(direct).await;
        return if keep && direct.in_autocommit() {
            Err(rolled_back())
        } else {
            Ok(keep)
        };
    }
    for job in batch.iter_mut() {
        run_statement(direct, "SAVEPOINT write").await?;
        if job.run(direct).await {
            run_statement(direct, "RELEASE write").await?;
        } else {
            run_statement(direct, "ROLLBACK TO write").await?;
            run_statement(direct, "RELEASE write").await?;
        }
        if direct.in_autocommit() {
            return Err(rolled_back());
        }
    }
    Ok(true)
}

/// Runs `sql`, a statement without parameters or rows (a savepoint's, a setting's).
async fn run_statement(direct: &mut Direct, sql: &'static str) -> Result<(), String> {
    direct
        .execute(fixed(sql), Vec::new())
        .await
        .map(drop)
        .map_err(|e| format!("cannot run {sql}: {e}"))
}

/// The group's error when SQLite ended its transaction on its own.
fn rolled_back() -> String {
    "the database rolled the write transaction back (a full disk or an I/O error?)".to_owned()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use crate::store::sql::exec::Row as _;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };

    use super::*;

    /// The `synchronous` setting of the connection a group of `kind` ran on.
    async fn synchronous_in_group(writer: &GroupCommit, kind: WriteKind) -> i64 {
        writer
            .run(kind, None, |conn| {
                Box::pin(async move {
                    let row = conn
                        .fetch_one(fixed("PRAGMA synchronous"), Vec::new())
                        .await
                        .map_err(|e| StoreError::Unexpected(e.into()))?;
                    Ok(Written::kept(row.int("synchronous").unwrap()))
                })
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn lease_only_groups_skip_the_fsync_and_every_durable_group_has_it() {
        // Arrange: a WAL database and the writer on a connection of its own, as the
        // store opens them.
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite:{}",
            dir.path().join("g.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
        let conn = <SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        let writer = GroupCommit::start(Connections::Own(conn)).unwrap();
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;

        // Act and assert: alternating kinds, each group with its own kind's setting.
        for kind in [
            WriteKind::Durable,
            WriteKind::LeaseOnly,
            WriteKind::LeaseOnly,
            WriteKind::Durable,
            WriteKind::LeaseOnly,
            WriteKind::Durable,
        ] {
            let expected = if kind == WriteKind::Durable {
                FULL
            } else {
                NORMAL
            };
            assert_eq!(
                synchronous_in_group(&writer, kind).await,
                expected,
                "{kind:?}"
            );
        }
        writer.stop().await;
    }

    #[tokio::test]
    async fn a_group_whose_transaction_the_database_ended_keeps_none_of_its_writes() {
        // Arrange: a database with one table, and its writer.
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite:{}",
            dir.path().join("r.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let conn = <SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        let writer = GroupCommit::start(Connections::Own(conn)).unwrap();
        let insert = |id: &'static str| {
            writer.run(WriteKind::Durable, None, move |conn| {
                Box::pin(async move {
                    conn.execute(fixed("INSERT INTO t (id) VALUES ($1)"), vec![id.into()])
                        .await
                        .map_err(|e| StoreError::Unexpected(e.into()))?;
                    Ok(Written::kept(()))
                })
            })
        };
        // A write that ends the transaction under the others (as SQLite does itself
        // after a full disk or an I/O error).
        let ending = writer.run(WriteKind::Durable, None, |conn| {
            Box::pin(async move {
                conn.execute(fixed("ROLLBACK"), Vec::new())
                    .await
                    .map_err(|e| StoreError::Unexpected(e.into()))?;
                Ok(Written::kept(()))
            })
        });

        // Act: the three queued before the writer runs (this test's runtime has one
        // thread), so they form one group.
        let (first, ended, last) = tokio::join!(insert("a"), ending, insert("b"));

        // Assert: every write of the group failed, and none is in the database.
        assert!(first.is_err() && ended.is_err() && last.is_err());
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 0);
        writer.stop().await;
    }
}
