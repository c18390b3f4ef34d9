//! The attempt engine: carries any paid step through its recovery points, RECEIVED →
//! INTENT (committed before a byte goes upstream) → send → classify the answer →
//! settle and look up → done, or NEEDS_ATTENTION. What differs between kinds of step
//! is asked of their [`Step`]; every money rule is here, once:
//!
//! - a definite failure (unreachable, credentials refused) was not carried out: sent
//!   again later, not counted against the re-send limit;
//! - an unknown outcome is looked up, and nothing found counts until the attempt's
//!   request can no longer land (its settle deadline); after `settle_checks` look-ups
//!   that find nothing it is sent again, at most `max_resends` times in the
//!   operation's life, and only on proof of absence; a view that could hide it hands it
//!   to a person;
//! - an answer without an error that cannot be read means the upstream took the call:
//!   counted as an anomaly, shown on the license, looked for, never sent again;
//! - look-ups that keep failing hand the license to a person.

use std::time::Duration;

use time::OffsetDateTime;

use crate::billmanager::UpstreamError;
use crate::domain::{License, LicenseState, Operation, Phase, UpstreamFailure};
use crate::store::StoreError;

use super::Worker;
use super::lease::HeldLease;
use super::step::{Found, Step};

impl Worker {
    /// Moves `op` of `step`'s kind to its next recovery point.
    pub(super) async fn advance<S: Step>(
        &self,
        step: &S,
        op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        match op.phase {
            Phase::Received => self.send(step, op, license, held).await,
            // INTENT: the outcome is unknown. Placed: the upstream took the call but
            // its answer did not say what we needed.
            Phase::Intent => self.recover(step, op, license, held).await,
            Phase::Confirmed if step.placed(&op, &license) => {
                self.recover(step, op, license, held).await
            }
            Phase::Confirmed => step.finish(self, op, license).await,
            // A claimed closed operation means a concurrent close; just release it.
            Phase::Done | Phase::Failed => self.save(&op, &mut license, true).await,
        }
    }

    /// Commits INTENT, sends the call and acts on its answer.
    async fn send<S: Step>(
        &self,
        step: &S,
        mut op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        if let Err(never) = step.ready(&mut op, &license) {
            return self.fail(op, license, never).await;
        }
        // INTENT is committed before any byte goes upstream (see `crate::crash`).
        crate::crash::point(crate::crash::BEFORE_INTENT);
        op.phase = Phase::Intent;
        op.attempt += 1;
        op.checks = 0;
        op.sent_at = Some(self.send_by());
        self.save(&op, &mut license, false).await?;
        self.send_committed(step, op, license, held).await
    }

    /// Sends the call of `op`, whose INTENT is committed (by [`send`](Self::send), or
    /// with the order's acceptance when it was taken: an order, which
    /// [`Step::ready`] always lets through), and acts on its answer.
    pub(super) async fn send_committed<S: Step>(
        &self,
        step: &S,
        mut op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        crate::crash::point(crate::crash::AFTER_INTENT);
        if !self.may_send(&op, held) {
            return self.unsent(op, license).await;
        }
        let name = step.name(&op);
        tracing::info!(attempt = op.attempt, "sending {name} upstream");
        let sent = self.bounded(&op, step.call(self, &op, &license)).await;
        // Crash point "after-send": the request was on the wire. Aborting here, after the
        // call returned but before its result is looked at, is the same for the store as
        // aborting while the request is in flight: nothing is committed in between.
        crate::crash::point(crate::crash::AFTER_SEND);
        match sent {
            Ok(answer) => {
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                step.accepted(self, op, license, answer, held).await
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
                tracing::warn!(error.message = %e, "{name} not sent; will retry");
                self.save(&op, &mut license, true).await
            }
            Err(e @ UpstreamError::Refused { .. }) => {
                tracing::warn!(error.message = %e, "upstream refused {name}");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                step.refused(self, op, license, e, held).await
            }
            Err(e @ UpstreamError::Unreadable(_)) => {
                // The upstream said nothing against the call: it was most likely
                // carried out. Find it; never send it again.
                tracing::error!(error.message = %e, "answer to {name} not understood; looking it up");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => S::UNREADABLE)
                    .increment(1);
                op.checks = 0;
                op.failures = 0;
                op.last_error = Some(e.to_string());
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                license.last_error = Some(failure(&e));
                step.mark_placed(&mut op, &mut license);
                self.save(&op, &mut license, true).await
            }
            Err(e) => {
                // Unknown outcome: stay at INTENT; recovery looks it up (and counts
                // nothing it does not find before the request could land).
                tracing::warn!(error.message = %e, "outcome of {name} unknown; recovering");
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                op.last_error = Some(e.to_string());
                license.last_error = Some(failure(&e));
                self.save(&op, &mut license, true).await
            }
        }
    }

    /// Looks for the step upstream and acts on what is found. Placed (the upstream
    /// took it), it is never sent again; else the outcome is unknown, and after the
    /// settle checks find nothing it is sent again, at most `max_resends` times in the
    /// operation's life, and only when the last check proved it absent; a view that
    /// could hide it hands it to a person instead. Only look-ups made once the last
    /// attempt's request can no longer land (its settle deadline) count as checks;
    /// one made before can only find it.
    async fn recover<S: Step>(
        &self,
        step: &S,
        mut op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        let placed = step.placed(&op, &license);
        let name = step.name(&op);
        tracing::info!(attempt = op.attempt, "looking {name} up upstream");
        match step.look_up(self, &op, &license).await {
            Ok(Found::Done(proof)) => {
                return step.found(self, op, license, proof, held).await;
            }
            Ok(found @ (Found::Absent | Found::Unseen(_))) => {
                op.failures = 0;
                let settled = self.settle_deadline(&mut op);
                if OffsetDateTime::now_utc() < settled {
                    // The last attempt's request may still land: this absence proves
                    // nothing. Look again once it cannot.
                    op.run_after = settled;
                    return self.save(&op, &mut license, true).await;
                }
                op.checks += 1;
                if op.checks < self.config.settle_checks {
                    op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                } else if placed {
                    let why = format!(
                        "the upstream took {name} ({}) but it is not {} upstream; not sending it again",
                        op.last_error
                            .as_deref()
                            .unwrap_or("an answer that could not be read"),
                        step.unseen_as()
                    );
                    self.needs_attention(&mut op, &mut license, "UPSTREAM_ANSWER_UNREADABLE", why);
                } else if let Found::Unseen(why) = found {
                    metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "unprovable_absence")
                        .increment(1);
                    self.needs_attention(&mut op, &mut license, "UPSTREAM_OUTCOME_UNKNOWN", why);
                } else if op.attempt > self.config.max_resends {
                    // A step re-sent that landed after all buys twice (a second license,
                    // a second period): an outcome that stays unknown is not re-sent
                    // without end; a person looks.
                    let why = format!(
                        "{name} was sent {} times with an unknown outcome and is not {} upstream; the re-send limit ({}) is reached",
                        op.attempt,
                        step.unseen_as(),
                        self.config.max_resends
                    );
                    self.needs_attention(&mut op, &mut license, "UPSTREAM_OUTCOME_UNKNOWN", why);
                } else {
                    tracing::info!(
                        checks = op.checks,
                        "{name} is not {} upstream after the settle period; sending again",
                        step.unseen_as()
                    );
                    op.phase = Phase::Received;
                    op.run_after = OffsetDateTime::now_utc();
                }
            }
            Ok(Found::Ambiguous(why)) => {
                self.needs_attention(&mut op, &mut license, "UPSTREAM_AMBIGUOUS", why);
            }
            Ok(Found::Unproven(e, why)) => self.lookup_failed(&mut op, &mut license, &e, why),
            Err(e) => {
                let failures = op.failures + 1;
                let why = format!(
                    "{name} may have been carried out upstream but could not be confirmed after {failures} look-ups: {e}"
                );
                self.lookup_failed(&mut op, &mut license, &e, why);
            }
        }
        self.save(&op, &mut license, true).await
    }

    /// Ends the operation without the change: FAILED, with `why` on the license.
    pub(super) async fn fail(
        &self,
        mut op: Operation,
        mut license: License,
        why: UpstreamFailure,
    ) -> Result<(), StoreError> {
        op.phase = Phase::Failed;
        op.last_error = Some(why.message.clone());
        license.last_error = Some(why);
        self.save(&op, &mut license, true).await
    }

    /// Ends the operation and hands the license to a person.
    pub(super) fn needs_attention(
        &self,
        op: &mut Operation,
        license: &mut License,
        code: &str,
        why: String,
    ) {
        tracing::error!(code, reason = %why, "license needs attention");
        op.phase = Phase::Failed;
        op.last_error = Some(why.clone());
        license.state = LicenseState::NeedsAttention;
        license.last_error = Some(UpstreamFailure {
            code: code.into(),
            message: why,
        });
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
