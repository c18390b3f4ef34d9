//! The order: `soft.order.param`, recognised upstream by our id in `remoteid` or
//! `licname` (else by IP, tariff and creation date; see [`super::matching`]), done
//! once the license is active upstream with a key.
//!
//! Its differences from a change: the answer carries the new license's id, and an
//! answer without one we can read means the order was placed (CONFIRMED without an
//! upstream id: looked for, never sent again); a refusal is final only after one
//! look-up (with a short balance the shop may still have created an unpaid item); the
//! look-up is a search of the whole upstream list, which proves absence only when it
//! could have shown the order in every status it may be in.

use time::OffsetDateTime;

use crate::billmanager::{OrderParams, UpstreamError, UpstreamId, UpstreamStatus};
use crate::domain::{License, LicenseState, Operation, Phase, UpstreamFailure};
use crate::store::StoreError;

use super::Worker;
use super::attempt::failure;
use super::lease::HeldLease;
use super::matching::{Lookup, find_order, parse_date};
use super::step::{Found, Step};

/// `lastError.code` of a license whose upstream item waits for payment (status 1).
const UNPAID: &str = "UPSTREAM_UNPAID";

/// The order step.
pub(super) struct OrderStep;

impl Step for OrderStep {
    type Answer = UpstreamId;
    type Proof = UpstreamId;
    const UNREADABLE: &'static str = "unreadable_order";

    fn name(&self, _: &Operation) -> String {
        "the order".into()
    }

    fn unseen_as(&self) -> &'static str {
        "listed"
    }

    fn ready(&self, _: &mut Operation, _: &License) -> Result<(), UpstreamFailure> {
        Ok(())
    }

    async fn call(
        &self,
        w: &Worker,
        _: &Operation,
        license: &License,
    ) -> Result<UpstreamId, UpstreamError> {
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
                    w.catalog
                        .by_tariff(license.tariff_id)
                        .and_then(|p| p.nodes_addon),
                )
                .map(|(n, addon)| vec![(addon, n)])
                .unwrap_or_default(),
        };
        w.upstream.order_license(&params).await
    }

    async fn accepted(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        upstream_id: UpstreamId,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        tracing::info!(upstream_id, "upstream accepted the order");
        w.confirm_order(op, license, upstream_id, held, false).await
    }

    async fn refused(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        refusal: UpstreamError,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        w.check_refusal(op, license, refusal, held).await
    }

    fn mark_placed(&self, op: &mut Operation, license: &mut License) {
        op.phase = Phase::Confirmed;
        license.state = LicenseState::Provisioning;
    }

    fn placed(&self, op: &Operation, license: &License) -> bool {
        op.phase == Phase::Confirmed && license.upstream_id.is_none()
    }

    async fn look_up(
        &self,
        w: &Worker,
        _: &Operation,
        license: &License,
    ) -> Result<Found<UpstreamId>, UpstreamError> {
        Ok(match w.look_up_order(license).await? {
            Lookup::Found(id) => Found::Done(id),
            Lookup::Absent => Found::Absent,
            Lookup::Unseen(unseen) => Found::Unseen(format!(
                "the order's outcome is unknown and it is not listed upstream, which does not prove it was not placed: {unseen}. It is not sent again: look in the panel with its filters cleared, BIND the license if it is there, else ABANDON"
            )),
            Lookup::Ambiguous(why) => Found::Ambiguous(why),
            Lookup::Untrusted(why) => Found::Unproven(
                UpstreamError::Unreadable(format!(
                    "the upstream list cannot prove the order absent: {why}"
                )),
                format!(
                    "the order may have been placed upstream, and the upstream list cannot show whether it was: {why}"
                ),
            ),
        })
    }

    async fn found(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        upstream_id: UpstreamId,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        w.confirm_order(op, license, upstream_id, held, true).await
    }

    async fn finish(&self, w: &Worker, op: Operation, license: License) -> Result<(), StoreError> {
        w.poll_activation(op, license).await
    }
}

impl Worker {
    /// Lists the upstream licenses and looks for `license` among them.
    async fn look_up_order(&self, license: &License) -> Result<Lookup, UpstreamError> {
        let list = self.upstream.list_licenses().await?;
        // Licenses of ours known to be live upstream: excluded from the matches (they
        // are someone else's order) and expected in the list (the positive control).
        let known = match self.store.licenses_with_upstream_id().await {
            Ok(known) => known,
            Err(e) => {
                return Ok(Lookup::Untrusted(format!(
                    "cannot read the licenses known upstream: {e}"
                )));
            }
        };
        Ok(find_order(&list, license, &known, &self.catalog))
    }

    /// After a refusal of the order, one look-up before the license is FAILED: with a
    /// short balance the shop may still have created an unpaid item (status 1). A
    /// look-up that cannot settle it leaves the order to be searched for as a placed
    /// one: found, or a person looks; never sent again.
    async fn check_refusal(
        &self,
        mut op: Operation,
        mut license: License,
        refusal: UpstreamError,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        op.last_error = Some(refusal.to_string());
        license.last_error = Some(failure(&refusal));
        match self.look_up_order(&license).await {
            Ok(Lookup::Found(id)) => {
                tracing::warn!(
                    upstream_id = id,
                    "the refused order left an upstream item; adopting it"
                );
                return self.confirm_order(op, license, id, held, false).await;
            }
            // A refusal is never sent again, so it needs no proof that a hidden item
            // is absent: FAILED buys nothing. The look-up only adopts an unpaid item
            // it does see.
            Ok(Lookup::Absent | Lookup::Unseen(_)) => {
                op.phase = Phase::Failed;
                license.state = LicenseState::Failed;
            }
            Ok(Lookup::Ambiguous(why)) => {
                self.needs_attention(&mut op, &mut license, "UPSTREAM_AMBIGUOUS", why);
            }
            Ok(Lookup::Untrusted(_)) | Err(_) => {
                op.phase = Phase::Confirmed;
                op.checks = 0;
                op.failures = 0;
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                license.state = LicenseState::Provisioning;
            }
        }
        self.save(&op, &mut license, true).await
    }

    /// Records the upstream id and reads the license once. The first commit after the
    /// order is that read's result (DONE when it is active already, else CONFIRMED
    /// with the next poll due): one durable write instead of two. Until it lands the
    /// operation stays at INTENT, whose recovery finds the license by our `remoteid`
    /// and never sends it again. Only when the lease is running short (its renewals
    /// fail) is CONFIRMED committed first.
    ///
    /// `adopted`: a recovery look-up found the order. Recovery is rare and commits
    /// CONFIRMED at once, before the adoption is logged: of two workers that found it
    /// (one whose lease ran out under load, and the one that took the operation
    /// over), only the owner's save is taken, so the log says it once.
    async fn confirm_order(
        &self,
        mut op: Operation,
        mut license: License,
        upstream_id: u64,
        held: &HeldLease,
        adopted: bool,
    ) -> Result<(), StoreError> {
        op.phase = Phase::Confirmed;
        op.checks = 0;
        op.failures = 0;
        op.last_error = None;
        op.run_after = OffsetDateTime::now_utc();
        license.upstream_id = Some(upstream_id);
        license.state = LicenseState::Provisioning;
        license.last_error = None;
        if adopted || !held.covers(self.config.lease / 2) {
            self.save(&op, &mut license, false).await?;
        }
        if adopted {
            tracing::info!(upstream_id, "found the order upstream; adopted it");
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
}
