//! The workflow: every paid step (an order, each change, an operator's RETRY) is a
//! durable operation that this part carries out upstream, exactly once. Its pieces:
//!
//! - the runner ([`Worker`], here): claims due operations from the store under a lease
//!   ([`lease`]) and moves each one to its next recovery point;
//! - the attempt engine (`attempt`): one state machine for every kind of step —
//!   RECEIVED → INTENT → send → classify the answer → settle and look up → done, or a
//!   person looks — with the re-send limit, the anomaly handling and the audit entries
//!   written once;
//! - the steps (`order`, `change`): what differs between kinds (the request, how to
//!   recognise it upstream, what "done" means), behind the `step::Step` trait;
//! - [`matching`]: recognising an order or a change in what the upstream shows, which
//!   the reconciler uses too.
//!
//! Every step commits before and after the upstream call, so a crash at any moment
//! leaves the operation at a point it can resume from.
//!
//! Money rules: a step whose outcome is unknown (timeout, reset, 5xx, crash after
//! INTENT) is never sent again until repeated look-ups over a settle period prove that
//! it was not carried out (for an order, on a complete upstream list), and then at
//! most `max_resends` times in the operation's life. An answer that says "done"
//! without what we need to read from it is never sent again. A refusal of an order is
//! final only after a look-up. Every case these rules cannot settle ends in
//! NEEDS_ATTENTION: a person looks.
//!
//! The workflow never calls into the use cases (`crate::service`): the service stores
//! the work and wakes the runner; the runner announces every license it saves.

mod at_once;
mod attempt;
mod change;
mod lease;
pub(crate) mod matching;
mod order;
mod step;
#[cfg(test)]
mod tests;

pub use at_once::{AtOnce, Taking};
pub(crate) use matching::unseen_statuses;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::billmanager::Billmanager;
use crate::domain::{
    AuditEntry, AuditOutcome, EventKind, License, LicenseId, Operation, OperationKind,
    PanelCatalog, Phase,
};
use crate::store::{Store, StoreError};

use lease::HeldLease;

/// Tuning of the workflow.
#[derive(Debug, Clone)]
pub struct WorkflowConfig {
    /// How many operations run at once in this process.
    pub concurrency: usize,
    /// How long a claimed operation stays ours without a renewal. A heartbeat renews
    /// it every third of this while a step runs (an upstream call included), so it
    /// need not outlast a call; it bounds how long a dead process's work waits.
    pub lease: Duration,
    /// Spacing of the recovery look-ups after an unknown outcome, once the attempt's
    /// request can no longer land (one request timeout after it was sent).
    pub settle_interval: Duration,
    /// Look-ups after that moment that must find nothing before an order is sent
    /// again.
    pub settle_checks: u32,
    /// Consecutive failed look-ups after which a license needs a person.
    pub max_lookup_failures: u32,
    /// First delay between activation polls; doubles up to `poll_max`.
    pub poll_initial: Duration,
    /// Longest delay between activation polls.
    pub poll_max: Duration,
    /// Longest delay before retrying an upstream that could not be reached.
    pub retry_max: Duration,
    /// The longest one upstream call may take (the client's request timeout). A
    /// call is bounded to end this long after the send time stamped with its
    /// INTENT; until then its request may still land upstream.
    pub call_timeout: Duration,
    /// Automatic re-sends of one order after its outcome stayed unknown and complete
    /// look-ups found nothing (of one change: after reads did not show it made); 0
    /// allowed. Past it the license needs a person.
    pub max_resends: u32,
    /// How long an ordered license may stay unpaid (status 1) or processing
    /// (status 5) upstream, counted from the order's acceptance, before it needs a
    /// person.
    pub activation_timeout: Duration,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            lease: Duration::from_secs(10),
            settle_interval: Duration::from_secs(2),
            settle_checks: 3,
            max_lookup_failures: 10,
            poll_initial: Duration::from_millis(200),
            poll_max: Duration::from_secs(30),
            retry_max: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
            max_resends: 1,
            activation_timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// Who runs a claimed operation's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunBy {
    /// One of the worker's loops: the step takes a free slot of the runners, else the
    /// operation is given back; its claim feeds the queue rule of [`AtOnce`].
    Loop,
    /// A caller of [`Worker::run_once`] (tests, tools): in the caller's own turn.
    Caller,
}

/// Runs operations; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    upstream: Arc<dyn Billmanager>,
    work: Arc<Notify>,
    changes: broadcast::Sender<LicenseId>,
    catalog: Arc<PanelCatalog>,
    config: WorkflowConfig,
    owner: Arc<str>,
    /// Where the loops run (the application's set: stopping it ends them).
    tasks: crate::tasks::Tasks,
    /// One per runner: a loop holds one while it runs a step (not while it looks for
    /// work), a taken order while its step runs.
    slots: Arc<tokio::sync::Semaphore>,
    /// Where the service hands this worker the orders it takes, while it runs.
    at_once: Arc<AtOnce>,
}

impl Worker {
    /// A runner over `store` and `upstream`: `work` wakes it when work is stored, and
    /// it announces on `changes` every license it saves. While it runs, it takes the
    /// orders handed to it through `at_once`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        upstream: Arc<dyn Billmanager>,
        work: Arc<Notify>,
        changes: broadcast::Sender<LicenseId>,
        catalog: Arc<PanelCatalog>,
        config: WorkflowConfig,
        tasks: crate::tasks::Tasks,
        at_once: Arc<AtOnce>,
    ) -> Self {
        Self {
            store,
            upstream,
            work,
            changes,
            catalog,
            slots: at_once::slots(config.concurrency),
            config,
            tasks,
            at_once,
            owner: format!("worker-{}", uuid::Uuid::now_v7().simple()).into(),
        }
    }

    /// Runs `concurrency` loops until `stop` is cancelled; an operation in progress
    /// finishes its current step first. Then gives up any lease still held (an
    /// operation whose step failed before releasing it), so other replicas take it
    /// over now rather than when the lease runs out. When the caller's drain bound
    /// cuts a step short, this future is dropped before that and the lease simply
    /// expires: a half-done step is never handed over early.
    ///
    /// Orders are taken at their acceptance ([`AtOnce`]) from this call on, not from
    /// the future's first poll.
    pub fn run(self, stop: CancellationToken) -> impl Future<Output = ()> + Send {
        // Orders taken at their acceptance run under an owner of their own: each was
        // stored with its lease, and none is ever claimed by it.
        let mut taker = self.clone();
        taker.owner = format!("{}-at-once", self.owner).into();
        let taker_owner = taker.owner.clone();
        self.at_once.arm(taker, stop.clone());
        async move { self.run_loops(stop, taker_owner).await }
    }

    async fn run_loops(self, stop: CancellationToken, taker: Arc<str>) {
        let mut loops = Vec::new();
        let mut owners = vec![taker];
        for i in 0..self.config.concurrency.max(1) {
            let mut me = self.clone();
            // One lease owner per loop, not per process: saves are fenced by the owner,
            // and two loops sharing one could both run a step of the same operation
            // (the second claiming it after the first one's lease ran out).
            me.owner = format!("{}-{i}", self.owner).into();
            owners.push(me.owner.clone());
            let stop = stop.clone();
            loops.push(self.tasks.spawn(async move { me.run_loop(stop).await }));
        }
        let finished = futures::future::join_all(loops).await;
        self.at_once.disarm();
        for finished in finished {
            // Killed (the application stopped abruptly): leases are left to run out,
            // as a crashed process's are.
            if !matches!(finished, Ok(Some(()))) {
                return;
            }
        }
        // The taken orders' steps end as the loops' do: every slot free again.
        let all = u32::try_from(self.config.concurrency.max(1)).unwrap_or(u32::MAX);
        drop(self.slots.acquire_many(all).await);
        for owner in owners {
            match self.store.release_leases(&owner).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(released = n, %owner, "worker stopped; leases released"),
                Err(e) => {
                    tracing::warn!(error.message = %e, error.cause_chain = ?e, "cannot release leases")
                }
            }
        }
    }

    async fn run_loop(&self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            match self.run_next(RunBy::Loop).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error.message = %e, error.cause_chain = ?e, "worker step failed")
                }
            }
            let idle = self.idle_time().await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.work.notified() => {}
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// How long to sleep when nothing is due: until the next due operation, at most a
    /// second (another replica may add work this process is not told about).
    async fn idle_time(&self) -> Duration {
        let cap = Duration::from_secs(1);
        match self.store.next_due().await {
            Ok(Some(due)) => {
                let wait = due - OffsetDateTime::now_utc();
                wait.try_into().unwrap_or(Duration::ZERO).min(cap)
            }
            _ => cap,
        }
    }

    /// Claims and advances one operation; returns whether there was one.
    pub async fn run_once(&self) -> Result<bool, StoreError> {
        self.run_next(RunBy::Caller).await
    }

    /// [`run_once`](Self::run_once), for a loop or for the caller.
    async fn run_next(&self, by: RunBy) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let claimed = self
            .store
            .claim_operation(&self.owner, now, self.config.lease)
            .await?;
        if by == RunBy::Loop {
            self.at_once.claimed(claimed.is_some());
        }
        let Some(op) = claimed else {
            return Ok(false);
        };
        // Wake-ups of several queued operations coalesce into one stored wake-up, so
        // one woken loop could be left to carry a whole burst alone while the others
        // sleep out their idle time: a loop that found work wakes one more, and loops
        // join in for as long as claims find work.
        self.work.notify_one();
        // A slot is taken only for a step, not for looking: a loop that looks for work
        // never keeps an order from being taken at its acceptance.
        let _slot = match by {
            RunBy::Caller => None,
            RunBy::Loop => match self.slots.try_acquire() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    // Every runner is busy (with orders taken at their acceptance): the
                    // operation goes back at once (its lease only), and this loop
                    // waits for a runner to be free.
                    self.store.release_leases(&self.owner).await?;
                    drop(self.slots.acquire().await);
                    return Ok(true);
                }
            },
        };
        // The lease runs from `now`, taken before the claim: a claim that waited long
        // for the database holds a lease already partly run out, which another worker
        // may take over in the middle of the upstream call. Leave such an operation
        // until its lease expires rather than start a step on it.
        let waited = OffsetDateTime::now_utc() - now;
        if waited > self.config.lease / 4 {
            tracing::warn!(
                op_id = op.id,
                waited_ms = waited.whole_milliseconds() as u64,
                "the claim took too long; leaving the operation for later"
            );
            return Ok(true);
        }
        let Some(license) = self.store.get_license(op.license_id).await? else {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "operation {} refers to a missing license",
                op.id
            )));
        };
        self.step(op, license, now + self.config.lease, false)
            .await?;
        Ok(true)
    }

    /// Moves `op` of `license` to its next recovery point under the lease this
    /// worker holds until `leased_until`, with the lease's heartbeat beside the step.
    /// `taken`: an order stored taken at its acceptance, whose INTENT is committed and
    /// whose call is sent now.
    async fn step(
        &self,
        op: Operation,
        license: License,
        leased_until: OffsetDateTime,
        taken: bool,
    ) -> Result<(), StoreError> {
        let span = tracing::info_span!("operation", op_id = op.id, license_id = %license.id, kind = op.kind.name(), phase = op.phase.as_str());
        // The step continues the trace of the request that enqueued the operation.
        crate::telemetry::otlp::continue_stored(&span, op.traceparent.as_deref());
        let held = HeldLease::new(leased_until);
        let op_id = op.id;
        let step = async {
            match op.kind {
                OperationKind::Order if taken => {
                    self.send_committed(&order::OrderStep, op, license, &held)
                        .await
                }
                OperationKind::Order => self.advance(&order::OrderStep, op, license, &held).await,
                _ => self.advance(&change::ChangeStep, op, license, &held).await,
            }
        };
        // The heartbeat runs beside the step and ends with it.
        let heartbeat = lease::keep(&*self.store, op_id, &self.owner, self.config.lease, &held);
        tokio::select! {
            done = step.instrument(span.clone()) => done,
            never = heartbeat.instrument(span) => match never {},
        }
    }

    /// Commits `op` and `license`, with an event for every visible change since the
    /// license was last saved.
    async fn save(
        &self,
        op: &Operation,
        license: &mut License,
        release: bool,
    ) -> Result<(), StoreError> {
        let before = self.store.get_license(license.id).await?;
        let events = before
            .as_ref()
            .map(|b| EventKind::between(b, license))
            .unwrap_or_default();
        if !events.is_empty() || before.as_ref() != Some(license) {
            license.update_time = OffsetDateTime::now_utc();
        }
        let ending = ending_entry(op, license);
        self.store
            .save_progress(&self.owner, op, license, &events, release, ending.as_ref())
            .await?;
        let _ = self.changes.send(license.id);
        Ok(())
    }
}

/// The entry that records how `op` ended, when it is DONE or FAILED. The store
/// writes it in the transaction that closes the operation, on behalf of the client
/// whose call it was (the operation's ACCEPTED entry); the owner stands in for it.
fn ending_entry(op: &Operation, license: &License) -> Option<AuditEntry> {
    let outcome = match (op.phase, license.state) {
        (phase, _) if phase.is_open() => return None,
        (Phase::Done, _) => AuditOutcome::Succeeded,
        (_, crate::domain::LicenseState::NeedsAttention) => AuditOutcome::NeedsAttention,
        _ => AuditOutcome::Failed,
    };
    let mut entry = AuditEntry::of(
        license,
        license.client.clone(),
        op.kind.name(),
        None,
        outcome,
    );
    if outcome != AuditOutcome::Succeeded {
        entry.detail = license
            .last_error
            .as_ref()
            .map(|e| e.message.clone())
            .or_else(|| op.last_error.clone());
    }
    Some(entry)
}
