//! Orders taken at their acceptance: when a runner of this process is free, the
//! process that accepts an order runs it at once instead of queueing it for a claim.
//!
//! A queued order is committed three times before its caller hears the result: its
//! acceptance, its INTENT (after a worker claimed it) and its end. Each commit of a
//! SQLite file waits for an fsync, about half a millisecond on a small VM, and the
//! claim between them is a write and two wake-ups more (docs/benchmarks.md, round
//! 10). An order taken here is stored at INTENT under this process's lease in the
//! transaction that accepts it ([`crate::store::TakeOrder`]), and its step starts
//! from there with nothing more to commit before the call. The money rules are the
//! same: the INTENT is on disk before a byte goes upstream, the lease keeps every
//! other worker (of any replica) from claiming it while the step runs, and a crash
//! after the acceptance leaves an order at INTENT, which recovery looks up before it
//! sends anything (as after a crash that followed a claimed order's INTENT).
//!
//! Taking shares the runners' limit: a taken order holds one of the `concurrency`
//! slots that the loops take for each step they run, so no more steps run at once
//! than before (a loop that claims an operation while every slot is taken gives it
//! back and waits for one). And it never jumps the queue: while due work may be
//! waiting (an order was queued for want of a slot, or a loop's last claim found
//! work), new orders are queued behind it, and taking resumes once a loop's claim
//! finds nothing. Taking the freed slots first left queued orders waiting for a lull
//! (p99 23× the p50 at 64 orders at a time; docs/benchmarks.md, round 10).
//! With no slot free, or before the runners start and after they stop, orders are
//! queued as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::domain::{License, Operation};
use crate::store::TakeOrder;

/// Where accepted orders are handed to a running [`Worker`]; shared by the service
/// and its worker.
#[derive(Default)]
pub struct AtOnce {
    armed: Mutex<Option<Armed>>,
    /// Due work may be waiting for the loops: nothing is taken ahead of it.
    backlog: AtomicBool,
}

struct Armed {
    /// The runner of taken orders: the worker under a lease owner of its own.
    worker: Worker,
    /// The runners' stop: nothing is taken once it is cancelled.
    stop: CancellationToken,
}

impl AtOnce {
    /// A free slot of the running worker, and the lease an order taken into it is
    /// stored under; `None` when no worker runs or every slot is busy.
    pub fn take(&self) -> Option<Taking> {
        let armed = self.lock();
        let armed = armed.as_ref().filter(|a| !a.stop.is_cancelled())?;
        if self.backlog.load(Ordering::Acquire) {
            return None;
        }
        let worker = armed.worker.clone();
        let Ok(permit) = worker.slots.clone().try_acquire_owned() else {
            // This order is queued: the next ones queue behind it.
            self.backlog.store(true, Ordering::Release);
            return None;
        };
        // The lease and the send allowance count from before the acceptance's
        // commit, as a claim's count from before the claim.
        let order = TakeOrder {
            owner: worker.owner.to_string(),
            until: OffsetDateTime::now_utc() + worker.config.lease,
            sent_at: worker.send_by(),
        };
        Some(Taking {
            worker,
            _permit: permit,
            order,
        })
    }

    pub(super) fn arm(&self, worker: Worker, stop: CancellationToken) {
        *self.lock() = Some(Armed { worker, stop });
    }

    /// What a loop's claim found: work (more may be waiting), or nothing (the queue
    /// is empty, and orders may be taken again).
    pub(super) fn claimed(&self, found: bool) {
        self.backlog.store(found, Ordering::Release);
    }

    pub(super) fn disarm(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        // Replaced whole, never left half-changed by a panic.
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A slot taken for one order; giving it up (dropping it) frees the slot.
pub struct Taking {
    worker: Worker,
    _permit: OwnedSemaphorePermit,
    order: TakeOrder,
}

impl Taking {
    /// The lease and send time to store the order with.
    pub fn order(&self) -> &TakeOrder {
        &self.order
    }

    /// Runs the step of `op`, stored taken (at INTENT under [`order`](Self::order)'s
    /// lease), in the background; the slot is freed when the step ends.
    pub fn run(self, op: Operation, license: License) {
        let tasks = self.worker.tasks.clone();
        tasks.spawn(async move {
            let Taking { worker, order, .. } = &self;
            if let Err(e) = worker.step(op, license, order.until, true).await {
                tracing::warn!(error.message = %e, error.cause_chain = ?e, "worker step failed");
            }
            // The loops learn the operation's next due time (an activation poll, a
            // look-up), which may come before they would look again.
            worker.work.notify_one();
            drop(self);
        });
    }
}

/// The slots of `concurrency` runners, taken by the loops' steps and by taken orders
/// alike.
pub(super) fn slots(concurrency: usize) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)))
}
