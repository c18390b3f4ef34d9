//! Feed positions for PostgreSQL events, assigned after commit.
//!
//! The change feed is read by position (`events.seq`): a reader asks for the events
//! after the last position it saw, so a position must never become visible while a
//! lower one is still to come. An identity column cannot be that position on
//! PostgreSQL: ids are taken at insert time, and transactions commit in any order.
//! Holding a lock from the first event insert to commit made ids follow commit order,
//! but serialised every event-writing commit (its fsync included) across replicas.
//!
//! Instead, writers insert events with `seq` NULL and take no lock; a *pass* later
//! numbers the committed, unnumbered events in id order:
//!
//! 1. it takes the transaction-level advisory lock [`SEQUENCER_LOCK`], so passes (of
//!    every replica) run one at a time;
//! 2. one statement, whose snapshot is taken after the lock is held, reads the
//!    unnumbered events and numbers them from the highest position handed out so far
//!    (the highest `seq`, or the purge horizon once retention deleted them all);
//! 3. it commits, and the lock is released.
//!
//! Why a reader never sees position N+1 before N: positions are handed out only by
//! passes, and a pass's numbers are all above those of every earlier pass (step 2
//! reads them: PostgreSQL makes a commit visible before it releases the committing
//! transaction's locks, so the previous pass's commit is in step 2's snapshot). A pass
//! commits its numbers at once, and it commits after every earlier pass. So a
//! snapshot that sees any number of a pass sees all of that pass's and all of every
//! earlier pass's: the positions visible to any reader are always everything up to
//! the highest one visible. An event that commits after a pass read is left to a
//! later pass and numbered above everything numbered before: a reader that already
//! moved past the lower positions misses nothing, because the event had none then.
//!
//! A license's events keep their order: every writer changes the license row before
//! inserting its events, so a later change of the same license waits for the earlier
//! transaction to commit and inserts its events (larger ids) after it; a pass that
//! sees both numbers them in id order, and a pass that sees only the earlier one
//! numbers it first.
//!
//! Who runs passes: every read that exposes positions (the latest position, a feed
//! read, a license's history) first makes sure that the events committed before it
//! started are numbered, so a client sees its own changes at once; and
//! [`Store::sequence_events`](super::Store::sequence_events), which the service calls
//! periodically, so events are numbered (and can expire) even when nobody reads the
//! feed, or when a process died between its commit and a read. Writers never wait
//! for a pass. Within a process, concurrent callers share passes: a caller waits only
//! for one pass that started after it arrived.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use sqlx::PgPool;

/// The transaction-level advisory lock ("lfevents") that serialises passes across
/// replicas. Held only while a pass numbers events, never across a writer's commit.
pub(super) const SEQUENCER_LOCK: i64 = 0x6c66_6576_656e_7473;

/// Events numbered per pass transaction at most, so a large backlog (a rolling
/// upgrade's old writers, a long time without readers) is not one huge transaction.
const PASS_LIMIT: i64 = 10_000;

/// Whether committed events are waiting for a position. Served by the partial index
/// `events_unsequenced`.
const ANY_UNSEQUENCED: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE seq IS NULL)";

/// Numbers up to `$1` committed, unnumbered events in id order, after the highest
/// position handed out so far. Run only under [`SEQUENCER_LOCK`], as its own statement
/// (its snapshot must be taken after the lock is held).
const NUMBER_PENDING: &str = "\
    WITH pending AS ( \
        SELECT id, row_number() OVER (ORDER BY id) AS rank \
        FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT $1) p \
    ), base AS ( \
        SELECT GREATEST( \
            (SELECT COALESCE(MAX(seq), 0) FROM events), \
            (SELECT purged_through FROM events_horizon)) AS last \
    ) \
    UPDATE events e SET seq = base.last + pending.rank \
    FROM pending, base WHERE e.id = pending.id";

/// One process's passes: a caller waits for the first pass that started after it
/// arrived (numbered passes, started and finished in turn under `finished`).
#[derive(Debug, Default)]
pub(super) struct Sequencer {
    /// Passes started by this process.
    started: AtomicU64,
    /// The number of the last pass that finished; held while a pass runs.
    finished: tokio::sync::Mutex<u64>,
}

impl Sequencer {
    /// Makes sure every event committed before this call is numbered; returns how many
    /// events this caller's own pass numbered (0 when another pass covered it).
    pub(super) async fn catch_up(&self, pool: &PgPool) -> anyhow::Result<u64> {
        // Cheap and lock-free: nothing unnumbered now means nothing committed before
        // this call is unnumbered.
        if !any_unsequenced(pool).await? {
            return Ok(0);
        }
        // Every pass numbered `wanted` or later starts after this point.
        let wanted = self.started.load(Ordering::SeqCst) + 1;
        let mut finished = self.finished.lock().await;
        if *finished >= wanted {
            return Ok(0);
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let numbered = pass(pool).await?;
        *finished = number;
        Ok(numbered)
    }
}

async fn any_unsequenced(pool: &PgPool) -> anyhow::Result<bool> {
    sqlx::query_scalar(ANY_UNSEQUENCED)
        .fetch_one(pool)
        .await
        .context("cannot look for unnumbered events")
}

/// Numbers every committed, unnumbered event, [`PASS_LIMIT`] per transaction.
async fn pass(pool: &PgPool) -> anyhow::Result<u64> {
    let mut numbered = 0;
    loop {
        let mut tx = pool.begin().await.context("cannot begin a transaction")?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SEQUENCER_LOCK)
            .execute(&mut *tx)
            .await
            .context("cannot take the sequencer lock")?;
        let done = sqlx::query(NUMBER_PENDING)
            .bind(PASS_LIMIT)
            .execute(&mut *tx)
            .await
            .context("cannot number events")?
            .rows_affected();
        tx.commit().await.context("cannot commit event numbers")?;
        numbered += done;
        if done < PASS_LIMIT as u64 {
            return Ok(numbered);
        }
    }
}
