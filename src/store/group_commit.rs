//! Group commit for the SQLite store. SQLite has one writer and, with
//! `synchronous=FULL`, one fsync per commit, so every durable write of every request
//! and worker queued behind the last one's fsync. Here the hot writes (an order, queued
//! changes, a step of the workflow) go to one writer task, which runs whatever has
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
//! fsync (see `SqliteDb::lease_pool`).
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
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller once the group's fate is known (`Err`: the commit failed).
    fn answer(self: Box<Self>, commit: Result<(), String>);
    /// Whether the write must be on disk before its caller hears of it.
    fn durable(&self) -> bool;
}

type WriteFn<T> = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Written<T>, StoreError>>
        + Send,
>;

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
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
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

/// The handle of the writer task; cheap to clone. The task ends when the last handle
/// is dropped, or at [`stop`](GroupCommit::stop).
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    stop: CancellationToken,
    /// Taken by the first `stop`, which waits for the task to end.
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl GroupCommit {
    /// Starts the writer task; it takes one connection per group, from `pool`, or
    /// from `light` (no fsync) for a group of lease-only writes.
    pub(super) fn start(pool: SqlitePool, light: SqlitePool) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(writer(pool, light, jobs, stop.clone()));
        Self {
            queue,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Ends the writer task and waits until it has: the group being committed is
    /// finished, writes still queued are answered with an error (as after a crash,
    /// they were never committed), and later writes fail at once. After this the
    /// store writes nothing more, so its pools can be closed.
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().expect("not poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
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
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
            ) -> BoxFuture<'c, Result<Written<T>, StoreError>>
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

async fn writer(
    pool: SqlitePool,
    light: SqlitePool,
    mut jobs: mpsc::UnboundedReceiver<Box<dyn Job>>,
    stop: CancellationToken,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.cancelled() => 0,
            n = jobs.recv_many(&mut batch, MAX_BATCH) => n,
        };
        if received == 0 {
            break;
        }
        let durable = batch.iter().any(|job| job.durable());
        let commit = run_group(if durable { &pool } else { &light }, &mut batch).await;
        if let Err(why) = &commit {
            tracing::warn!(writes = batch.len(), error.message = %why, "a group of writes failed");
        }
        for job in batch.drain(..) {
            job.answer(commit.clone());
        }
    }
}

/// Runs `batch` in one transaction, each write in its own savepoint, and commits. A
/// write alone needs no savepoint (each statement is a round trip to the connection's
/// thread): its transaction is simply committed or rolled back.
async fn run_group(pool: &SqlitePool, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| format!("cannot begin a write transaction: {e}"))?;
    if let [job] = batch {
        return if job.run(&mut tx).await {
            tx.commit().await.map_err(|e| format!("cannot commit: {e}"))
        } else {
            tx.rollback()
                .await
                .map_err(|e| format!("cannot roll back: {e}"))
        };
    }
    for job in batch.iter_mut() {
        let mut savepoint = sqlx::Connection::begin(&mut *tx)
            .await
            .map_err(|e| format!("cannot open a savepoint: {e}"))?;
        let keep = job.run(&mut savepoint).await;
        let ended = if keep {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        ended.map_err(|e| format!("cannot close a savepoint: {e}"))?;
    }
    tx.commit().await.map_err(|e| format!("cannot commit: {e}"))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use sqlx::Row as _;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };

    use super::*;

    /// The `synchronous` setting of the connection a group of `kind` ran on.
    async fn synchronous_in_group(writer: &GroupCommit, kind: WriteKind) -> i64 {
        writer
            .run(kind, None, |conn| {
                Box::pin(async move {
                    let row = sqlx::query("PRAGMA synchronous")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(|e| StoreError::Unexpected(e.into()))?;
                    Ok(Written::kept(row.get::<i64, _>(0)))
                })
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn lease_only_groups_skip_the_fsync_and_every_durable_group_has_it() {
        // Arrange: a WAL database, its pools as the store opens them, and the writer.
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite:{}",
            dir.path().join("g.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
        let light = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options.clone().synchronous(SqliteSynchronous::Normal));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        let writer = GroupCommit::start(pool, light);
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;

        // Act and assert: alternating kinds, each group on a connection of its kind.
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
}
