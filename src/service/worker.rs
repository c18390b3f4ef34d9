//! The workflow worker: claims due operations from the store and moves each one to
//! its next recovery point. Every step commits before and after the upstream call, so
//! a crash at any moment leaves the operation at a point it can resume from.
//!
//! Money rules: an order whose outcome is unknown (timeout, reset, 5xx, crash after
//! INTENT) is never sent again until repeated look-ups of a complete upstream list
//! over a settle period prove that it was not carried out, and then at most
//! `max_resends` times in the order's life. An answer that says "ordered" without an
//! id we can read is never sent again. A refusal is final only after a look-up.
//! Every case these rules cannot settle ends in NEEDS_ATTENTION: a person looks.

use std::sync::Arc;
use std::time::Duration;

use time::{Date, OffsetDateTime, macros::format_description};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::billmanager::{Billmanager, OrderParams, UpstreamError, UpstreamStatus};
use crate::domain::{
    EventKind, License, LicenseId, LicenseState, Operation, OperationKind, PanelCatalog, Phase,
    UpstreamFailure,
};
use crate::store::{Store, StoreError};

use super::lease::{self, HeldLease};

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

/// Runs operations; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    pub(super) store: Arc<dyn Store>,
    pub(super) upstream: Arc<dyn Billmanager>,
    work: Arc<Notify>,
    changes: broadcast::Sender<LicenseId>,
    pub(super) catalog: Arc<PanelCatalog>,
    pub(super) config: WorkflowConfig,
    owner: Arc<str>,
    /// Where the loops run (the application's set: stopping it ends them).
    tasks: crate::tasks::Tasks,
}

impl Worker {
    pub(super) fn new(
        store: Arc<dyn Store>,
        upstream: Arc<dyn Billmanager>,
        work: Arc<Notify>,
        changes: broadcast::Sender<LicenseId>,
        catalog: Arc<PanelCatalog>,
        config: WorkflowConfig,
        tasks: crate::tasks::Tasks,
    ) -> Self {
        Self {
            store,
            upstream,
            work,
            changes,
            catalog,
            config,
            tasks,
            owner: format!("worker-{}", uuid::Uuid::now_v7().simple()).into(),
        }
    }

    /// Runs `concurrency` loops until `stop` is cancelled; an operation in progress
    /// finishes its current step first. Then gives up any lease still held (an
    /// operation whose step failed before releasing it), so other replicas take it
    /// over now rather than when the lease runs out. When the caller's drain bound
    /// cuts a step short, this future is dropped before that and the lease simply
    /// expires: a half-done step is never handed over early.
    pub async fn run(self, stop: CancellationToken) {
        let mut loops = Vec::new();
        let mut owners = Vec::new();
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
        for finished in futures::future::join_all(loops).await {
            // Killed (the application stopped abruptly): leases are left to run out,
            // as a crashed process's are.
            if !matches!(finished, Ok(Some(()))) {
                return;
            }
        }
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
            match self.run_once().await {
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
        let now = OffsetDateTime::now_utc();
        let Some(op) = self
            .store
            .claim_operation(&self.owner, now, self.config.lease)
            .await?
        else {
            return Ok(false);
        };
        // Wake-ups of several queued operations coalesce into one stored wake-up, so
        // one woken loop could be left to carry a whole burst alone while the others
        // sleep out their idle time: a loop that found work wakes one more, and loops
        // join in for as long as claims find work.
        self.work.notify_one();
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
        let span = tracing::info_span!("operation", op_id = op.id, license_id = %license.id, kind = op.kind.name(), phase = op.phase.as_str());
        // The step continues the trace of the request that enqueued the operation.
        crate::telemetry::otlp::continue_stored(&span, op.traceparent.as_deref());
        let held = HeldLease::new(now + self.config.lease);
        let op_id = op.id;
        let step = async {
            match op.kind {
                OperationKind::Order => self.advance_order(op, license, &held).await,
                _ => self.advance_change(op, license, &held).await,
            }
        };
        // The heartbeat runs beside the step and ends with it.
        let heartbeat = lease::keep(&*self.store, op_id, &self.owner, self.config.lease, &held);
        tokio::select! {
            done = step.instrument(span.clone()) => done?,
            never = heartbeat.instrument(span) => match never {},
        }
        Ok(true)
    }

    /// Commits `op` and `license`, with an event for every visible change since the
    /// license was last saved.
    pub(super) async fn save(
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
        let ending = super::audit::ending_entry(op, license);
        self.store
            .save_progress(&self.owner, op, license, &events, release, ending.as_ref())
            .await?;
        let _ = self.changes.send(license.id);
        Ok(())
    }

    async fn advance_order(
        &self,
        mut op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        match op.phase {
            Phase::Received => self.send_order(op, license, held).await,
            // INTENT: the outcome is unknown. CONFIRMED without an upstream id: the
            // upstream took the order but did not say which license it created.
            Phase::Intent => self.recover_order(op, license, held, false).await,
            Phase::Confirmed if license.upstream_id.is_none() => {
                self.recover_order(op, license, held, true).await
            }
            Phase::Confirmed => self.poll_activation(op, license).await,
            Phase::Done | Phase::Failed => {
                // A claimed closed operation means a concurrent close; just release it.
                self.save(&op, &mut license, true).await?;
                op.last_error = None;
                Ok(())
            }
        }
    }

    async fn send_order(
        &self,
        mut op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        // INTENT is committed before any byte goes upstream.
        crate::crash::point(crate::crash::BEFORE_INTENT);
        op.phase = Phase::Intent;
        op.attempt += 1;
        op.checks = 0;
        op.sent_at = Some(self.send_by());
        self.save(&op, &mut license, false).await?;
        crate::crash::point(crate::crash::AFTER_INTENT);
        if !self.may_send(&op, held) {
            return self.unsent(op, license).await;
        }

        let params = OrderParams {
            tariff_id: license.tariff_id,
            ip: license.ip.addr(),
            period: license.period.upstream_value(),
            autoprolong: license.auto_renew.then(|| license.period.upstream_value()),
            remote_id: license.id.to_string(),
            licname: license.id.to_string(),
            addons: license
                .nodes
                .zip(
                    self.catalog
                        .by_tariff(license.tariff_id)
                        .and_then(|p| p.nodes_addon),
                )
                .map(|(n, addon)| vec![(addon, n)])
                .unwrap_or_default(),
        };
        tracing::info!(attempt = op.attempt, "sending the order upstream");
        let sent = self
            .bounded(&op, self.upstream.order_license(&params))
            .await;
        // Crash point "after-send": the request was on the wire. Aborting here, after the
        // call returned but before its result is looked at, is the same for the store as
        // aborting while the request is in flight: nothing is committed in between.
        crate::crash::point(crate::crash::AFTER_SEND);
        match sent {
            Ok(upstream_id) => {
                tracing::info!(upstream_id, "upstream accepted the order");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                self.confirm_order(op, license, upstream_id, held).await
            }
            Err(e) if e.is_definite() && !matches!(e, UpstreamError::Refused { .. }) => {
                // Not carried out (unreachable, or our credentials were refused): safe
                // to send again later, and not a send that counts against the limit.
                op.phase = Phase::Received;
                op.attempt = op.attempt.saturating_sub(1);
                op.failures += 1;
                op.run_after = self.backoff(op.failures, self.config.retry_max);
                op.last_error = Some(e.to_string());
                license.last_error = Some(failure(&e));
                tracing::warn!(error.message = %e, "order not sent; will retry");
                self.save(&op, &mut license, true).await
            }
            Err(e @ UpstreamError::Refused { .. }) => {
                tracing::warn!(error.message = %e, "upstream refused the order");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                self.check_refusal(op, license, e, held).await
            }
            Err(e @ UpstreamError::Unreadable(_)) => {
                // The upstream said nothing against the order: it was most likely
                // placed. Find it; never send it again.
                tracing::error!(error.message = %e, "order answer not understood; looking the license up");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "unreadable_order")
                    .increment(1);
                op.phase = Phase::Confirmed;
                op.checks = 0;
                op.failures = 0;
                op.last_error = Some(e.to_string());
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                license.state = LicenseState::Provisioning;
                license.last_error = Some(failure(&e));
                self.save(&op, &mut license, true).await
            }
            Err(e) => {
                // Unknown outcome: stay at INTENT; recovery looks the order up (and
                // counts nothing it does not find before the request could land).
                tracing::warn!(error.message = %e, "order outcome unknown; recovering");
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                op.last_error = Some(e.to_string());
                license.last_error = Some(failure(&e));
                self.save(&op, &mut license, true).await
            }
        }
    }

    /// Records the upstream id and reads the license once. The first commit after the
    /// order is that read's result (DONE when it is active already, else CONFIRMED
    /// with the next poll due): one durable write instead of two. Until it lands the
    /// operation stays at INTENT, whose recovery finds the license by our `remoteid`
    /// and never sends it again. Only when the lease is running short (its renewals
    /// fail) is CONFIRMED committed first.
    pub(super) async fn confirm_order(
        &self,
        mut op: Operation,
        mut license: License,
        upstream_id: u64,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        op.phase = Phase::Confirmed;
        op.checks = 0;
        op.failures = 0;
        op.last_error = None;
        op.run_after = OffsetDateTime::now_utc();
        license.upstream_id = Some(upstream_id);
        license.state = LicenseState::Provisioning;
        license.last_error = None;
        if !held.covers(self.config.lease / 2) {
            self.save(&op, &mut license, false).await?;
        }
        self.poll_activation(op, license).await?;
        crate::crash::point(crate::crash::AFTER_CONFIRMED);
        Ok(())
    }

    /// Reads the ordered license until it is active with a key.
    async fn poll_activation(
        &self,
        mut op: Operation,
        mut license: License,
    ) -> Result<(), StoreError> {
        let Some(upstream_id) = license.upstream_id else {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "confirmed order {} has no upstream id",
                op.id
            )));
        };
        match self.upstream.license_details(upstream_id).await {
            Ok(details)
                if details.status == UpstreamStatus::Active && details.license_key.is_some() =>
            {
                license.state = LicenseState::Active;
                license.license_key = details.license_key.clone();
                license.expire_time = details.expire_date.as_deref().and_then(parse_date);
                license.last_error = None;
                op.phase = Phase::Done;
                op.last_error = None;
                tracing::info!("license active");
                self.save(&op, &mut license, true).await
            }
            Ok(details) if details.status == UpstreamStatus::Deleted => {
                op.phase = Phase::Failed;
                license.state = LicenseState::NeedsAttention;
                license.last_error = Some(UpstreamFailure {
                    code: "UPSTREAM_DELETED".into(),
                    message: "the upstream license was deleted before it became active".into(),
                });
                self.save(&op, &mut license, true).await
            }
            Ok(details) => {
                op.checks += 1;
                op.failures = 0;
                if let Some(date) = details.expire_date.as_deref().and_then(parse_date) {
                    license.expire_time = Some(date);
                }
                self.still_waiting(&mut op, &mut license, upstream_id, details.status);
                self.save(&op, &mut license, true).await
            }
            Err(e) => {
                op.failures += 1;
                op.last_error = Some(e.to_string());
                op.run_after = self.backoff(op.failures, self.config.retry_max);
                self.save(&op, &mut license, true).await
            }
        }
    }

    /// A license not active yet: ends the wait after the activation timeout (counted
    /// from the order's acceptance), shows an unpaid upstream item (status 1) as
    /// `UPSTREAM_UNPAID`, and otherwise schedules the next poll.
    fn still_waiting(
        &self,
        op: &mut Operation,
        license: &mut License,
        upstream_id: u64,
        status: UpstreamStatus,
    ) {
        let waited = OffsetDateTime::now_utc() - license.create_time;
        if waited > self.config.activation_timeout {
            metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "activation_timeout")
                .increment(1);
            let why = format!(
                "the upstream license {upstream_id} is still in status {} {} s after the order",
                status.code(),
                waited.whole_seconds()
            );
            self.needs_attention(op, license, "ACTIVATION_TIMEOUT", why);
            return;
        }
        let shown_unpaid = license
            .last_error
            .as_ref()
            .is_some_and(|e| e.code == UNPAID);
        if status == UpstreamStatus::Ordered {
            // Ordered but not paid: nothing will happen until someone pays upstream.
            if !shown_unpaid {
                metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "unpaid")
                    .increment(1);
                tracing::warn!(upstream_id, "the upstream license is ordered but not paid");
            }
            license.last_error = Some(UpstreamFailure {
                code: UNPAID.into(),
                message: format!(
                    "the upstream license {upstream_id} is ordered but not paid (status 1); it activates once paid upstream"
                ),
            });
        } else if shown_unpaid {
            license.last_error = None;
        }
        op.run_after = self.backoff(op.checks, self.config.poll_max);
    }

    /// Records a failed recovery look-up: after `max_lookup_failures` in a row the
    /// license needs a person (`why` says so). A call that this process's circuit
    /// breaker held back is not a look-up and is not counted: an outage shorter than
    /// the breaker's pause must not hand licenses to people. It is tried again after
    /// a settle interval. Counted failures back off up to one request timeout, so the
    /// failure budget spans minutes, not seconds.
    pub(super) fn lookup_failed(
        &self,
        op: &mut Operation,
        license: &mut License,
        e: &UpstreamError,
        why: String,
    ) {
        op.last_error = Some(e.to_string());
        if e.is_shed() {
            op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
            return;
        }
        op.failures += 1;
        if op.failures >= self.config.max_lookup_failures {
            tracing::error!(error.message = %e, "cannot find out whether the upstream call was carried out; needs attention");
            op.phase = Phase::Failed;
            license.state = LicenseState::NeedsAttention;
            license.last_error = Some(UpstreamFailure {
                code: "UPSTREAM_OUTCOME_UNKNOWN".into(),
                message: why,
            });
        } else {
            let cap = self.config.call_timeout.max(self.config.settle_interval);
            op.run_after = self.backoff(op.failures, cap);
        }
    }

    /// The send time to stamp on an INTENT about to be committed: the latest moment
    /// its request may leave, a short allowance ahead for the commit (a quarter of
    /// the request timeout, at most 2 s). The call, bounded by the request timeout
    /// from its start, then always ends by `sent_at + request timeout`.
    pub(super) fn send_by(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + (self.config.call_timeout / 4).min(Duration::from_secs(2))
    }

    /// Whether the call of `op`, whose INTENT is committed, may be sent now: the lease
    /// is still ours (another worker cannot be running a step of it), and the send
    /// time stamped with the INTENT has not passed (a commit slower than its
    /// allowance: the attempt is claimed afresh instead).
    pub(super) fn may_send(&self, op: &Operation, held: &HeldLease) -> bool {
        held.covers(self.config.lease / 10)
            && op.sent_at.is_some_and(|by| OffsetDateTime::now_utc() <= by)
    }

    /// The moment the last attempt of `op` can no longer land upstream: one request
    /// timeout after the send time stamped with its INTENT (the latest its request
    /// could leave; its call is bounded to end by then). An operation without one (stored before send times were) counts as
    /// sent now, and records that.
    pub(super) fn settle_deadline(&self, op: &mut Operation) -> OffsetDateTime {
        *op.sent_at.get_or_insert_with(OffsetDateTime::now_utc) + self.config.call_timeout
    }

    fn call_time_left(&self, op: &Operation) -> Duration {
        let now = OffsetDateTime::now_utc();
        let deadline = op.sent_at.unwrap_or(now) + self.config.call_timeout;
        (deadline - now).try_into().unwrap_or(Duration::ZERO)
    }

    /// Runs the upstream call of `op`'s current attempt, cut (outcome unknown) at its
    /// settle deadline at the latest: whoever recovers the operation waits only until
    /// then, so the request must not be able to land any later. (Sent by its stamped
    /// send time, the call's own request timeout ends it no later than that.)
    pub(super) async fn bounded<T>(
        &self,
        op: &Operation,
        call: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        match tokio::time::timeout(self.call_time_left(op), call).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Indeterminate(
                "no answer within the request timeout of the attempt".into(),
            )),
        }
    }

    /// Undoes an INTENT whose call was not sent (the lease or the time left was too
    /// short for it): the operation goes back to RECEIVED and is claimed afresh.
    pub(super) async fn unsent(
        &self,
        mut op: Operation,
        mut license: License,
    ) -> Result<(), StoreError> {
        tracing::warn!("too little of the lease or the call's time left; not sending now");
        op.phase = Phase::Received;
        op.attempt = op.attempt.saturating_sub(1);
        op.run_after = OffsetDateTime::now_utc();
        self.save(&op, &mut license, true).await
    }

    /// `poll_initial × 2^(n-1)`, capped, from now.
    pub(super) fn backoff(&self, n: u32, cap: Duration) -> OffsetDateTime {
        let exp = n.saturating_sub(1).min(16);
        let delay = self.config.poll_initial.saturating_mul(1 << exp).min(cap);
        OffsetDateTime::now_utc() + delay
    }
}

/// `lastError.code` of a license whose upstream item waits for payment (status 1).
const UNPAID: &str = "UPSTREAM_UNPAID";

pub(super) fn failure(e: &UpstreamError) -> UpstreamFailure {
    let code = match e {
        UpstreamError::Refused { .. } => "UPSTREAM_REFUSED",
        UpstreamError::Auth(_) => "UPSTREAM_AUTH_FAILED",
        UpstreamError::Unavailable(_) => "UPSTREAM_UNAVAILABLE",
        UpstreamError::Indeterminate(_) => "UPSTREAM_OUTCOME_UNKNOWN",
        UpstreamError::Unreadable(_) => "UPSTREAM_ANSWER_UNREADABLE",
    };
    UpstreamFailure {
        code: code.into(),
        message: e.to_string(),
    }
}

pub(super) fn parse_date(s: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year]-[month]-[day]");
    Date::parse(s, &format)
        .ok()
        .map(|d| d.midnight().assume_utc())
}
