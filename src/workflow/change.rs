//! The change steps: renew, change IP, change panel, suspend, resume, cancel, reissue
//! key, each one call on a license that already exists upstream. The attempt engine
//! carries them RECEIVED → INTENT (committed) → upstream call → CONFIRMED → DONE; what
//! is theirs is the call, and after an unknown outcome the license's upstream details,
//! which tell whether the change was already made, so a paid change (renewal, tariff
//! change) is never sent twice. As for orders, absence is proven for the state the
//! change could be in: details of a license in processing (status 5) may not show a
//! change under way, so they prove nothing.

use time::OffsetDateTime;

use crate::billmanager::{UpstreamError, UpstreamLicense, UpstreamStatus};
use crate::domain::{
    License, LicenseIp, LicenseState, Operation, OperationKind, Period, Phase, UpstreamFailure,
};
use crate::store::StoreError;

use super::Worker;
use super::attempt::failure;
use super::lease::HeldLease;
use super::matching::{applied, parse_date};
use super::step::{Found, Step};

/// What a successful call told us beyond "done".
pub(super) enum Answer {
    Done,
    NewExpiry(Option<String>),
}

/// `lastError.code` that marks a change whose answer could not be read: the
/// upstream took it, so it is never sent again. Kept on the license from the answer
/// until the change is confirmed (or a person resolves it).
const UNREADABLE_CODE: &str = "UPSTREAM_ANSWER_UNREADABLE";

/// Every change step; what differs between them is data of their
/// [`OperationKind`]: the call ([`Worker::call_change`]), how the upstream shows it
/// made ([`applied`]) and its effect here ([`apply`]).
pub(super) struct ChangeStep;

impl Step for ChangeStep {
    type Answer = Answer;
    type Proof = UpstreamLicense;
    const UNREADABLE: &'static str = "unreadable_change";

    fn name(&self, op: &Operation) -> String {
        op.kind.name().to_owned()
    }

    fn unseen_as(&self) -> &'static str {
        "visible"
    }

    fn ready(&self, op: &mut Operation, license: &License) -> Result<(), UpstreamFailure> {
        if license.upstream_id.is_none() {
            return Err(UpstreamFailure {
                code: "NO_UPSTREAM_LICENSE".into(),
                message: "the license was never ordered upstream".into(),
            });
        }
        // The license as claimed, with no other change open on it: what recovery
        // compares against is taken from here, stored with the intent.
        op.kind.observe(license);
        Ok(())
    }

    async fn call(
        &self,
        w: &Worker,
        op: &Operation,
        license: &License,
    ) -> Result<Answer, UpstreamError> {
        match license.upstream_id {
            Some(upstream_id) => w.call_change(op, upstream_id).await,
            None => unreachable!("`ready` refuses a license without an upstream id"),
        }
    }

    async fn accepted(
        &self,
        w: &Worker,
        op: Operation,
        mut license: License,
        answer: Answer,
        _: &HeldLease,
    ) -> Result<(), StoreError> {
        if let Answer::NewExpiry(Some(date)) = &answer
            && let Some(t) = parse_date(date)
        {
            license.expire_time = Some(t);
        }
        w.confirm_change(op, license).await
    }

    async fn refused(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        refusal: UpstreamError,
        _: &HeldLease,
    ) -> Result<(), StoreError> {
        w.fail(op, license, failure(&refusal)).await
    }

    fn mark_placed(&self, _: &mut Operation, _: &mut License) {
        // Nothing to add: the change stays at INTENT, and the engine has put the
        // unreadable answer on the license, which is what marks it placed.
    }

    fn placed(&self, op: &Operation, license: &License) -> bool {
        op.phase == Phase::Intent && self.placed_license(license)
    }

    async fn look_up(
        &self,
        w: &Worker,
        op: &Operation,
        license: &License,
    ) -> Result<Found<UpstreamLicense>, UpstreamError> {
        let Some(upstream_id) = license.upstream_id else {
            return Ok(Found::Unproven(
                UpstreamError::Unreadable("the license has no upstream id".into()),
                format!("{} has no upstream license to look at", op.kind.name()),
            ));
        };
        let details = w.upstream.license_details(upstream_id).await?;
        if applied(&op.kind, &details, license) {
            return Ok(Found::Done(details));
        }
        if details.status == UpstreamStatus::Processing {
            // Being processed upstream (status 5, "being set up or changed"): the
            // change may be under way without showing yet, so this read proves
            // nothing. It counts as a failed look-up: read again until the
            // processing ends, and past the failure budget a person looks.
            metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "unprovable_absence")
                .increment(1);
            return Ok(Found::Unproven(
                UpstreamError::Unreadable(
                    "the upstream license is being processed (status 5)".into(),
                ),
                format!(
                    "{} may have been carried out upstream: the license stayed in processing (status 5), where a change need not show yet; it is not sent again",
                    op.kind.name()
                ),
            ));
        }
        Ok(Found::Absent)
    }

    async fn found(
        &self,
        w: &Worker,
        mut op: Operation,
        mut license: License,
        details: UpstreamLicense,
        _: &HeldLease,
    ) -> Result<(), StoreError> {
        tracing::info!("the change is visible upstream; confirming it");
        op.failures = 0;
        // A renewal found done carries its new expiry, as its answer would have: the
        // license shows it from the confirmation on.
        if let OperationKind::Renew { .. } = op.kind
            && let Some(t) = details.expire_date.as_deref().and_then(parse_date)
        {
            license.expire_time = Some(t);
        }
        w.confirm_change(op, license).await
    }

    async fn finish(&self, w: &Worker, op: Operation, license: License) -> Result<(), StoreError> {
        w.finish_change(op, license).await
    }
}

impl ChangeStep {
    fn placed_license(&self, license: &License) -> bool {
        license
            .last_error
            .as_ref()
            .is_some_and(|e| e.code == UNREADABLE_CODE)
    }
}

impl Worker {
    /// The upstream call of a change operation.
    async fn call_change(&self, op: &Operation, upstream_id: u64) -> Result<Answer, UpstreamError> {
        let up = &self.upstream;
        match &op.kind {
            OperationKind::Renew { period, .. } => up
                .renew_license(upstream_id, *period)
                .await
                .map(Answer::NewExpiry),
            OperationKind::ChangeIp { ip } => match ip.parse() {
                Ok(ip) => up.change_ip(upstream_id, ip).await.map(|()| Answer::Done),
                Err(_) => Err(UpstreamError::Refused {
                    kind: "value".into(),
                    object: Some("ip".into()),
                    message: "invalid IP address".into(),
                }),
            },
            OperationKind::ChangePanel {
                tariff_id, period, ..
            } => up
                .change_tariff(upstream_id, *tariff_id, *period)
                .await
                .map(|()| Answer::Done),
            OperationKind::Suspend => up.suspend_license(upstream_id).await.map(|()| Answer::Done),
            OperationKind::Resume => up.resume_license(upstream_id).await.map(|()| Answer::Done),
            OperationKind::Cancel => up.delete_license(upstream_id).await.map(|()| Answer::Done),
            OperationKind::ReissueKey { .. } => {
                up.reissue_key(upstream_id).await.map(|()| Answer::Done)
            }
            OperationKind::Order => unreachable!("orders have their own path"),
        }
    }

    /// The change is made upstream: apply it here, then finish.
    async fn confirm_change(
        &self,
        mut op: Operation,
        mut license: License,
    ) -> Result<(), StoreError> {
        apply(&op.kind, &mut license);
        license.last_error = None;
        op.phase = Phase::Confirmed;
        op.checks = 0;
        op.failures = 0;
        op.last_error = None;
        op.run_after = OffsetDateTime::now_utc();
        self.save(&op, &mut license, false).await?;
        crate::crash::point(crate::crash::AFTER_CONFIRMED);
        self.finish_change(op, license).await
    }

    /// Reads the upstream license once more to pick up what the change produced (the
    /// new key, the new expiry).
    async fn finish_change(
        &self,
        mut op: Operation,
        mut license: License,
    ) -> Result<(), StoreError> {
        let Some(upstream_id) = license.upstream_id else {
            return Err(StoreError::Unexpected(anyhow::anyhow!("no upstream id")));
        };
        if matches!(op.kind, OperationKind::Cancel) {
            op.phase = Phase::Done;
            return self.save(&op, &mut license, true).await;
        }
        match self.upstream.license_details(upstream_id).await {
            Ok(details) => {
                if let OperationKind::ReissueKey { previous_key } = &op.kind
                    && (details.license_key.is_none() || details.license_key == *previous_key)
                {
                    op.checks += 1;
                    op.run_after = self.backoff(op.checks, self.config.poll_max);
                    return self.save(&op, &mut license, true).await;
                }
                if details.license_key.is_some() {
                    license.license_key = details.license_key.clone();
                }
                if let Some(t) = details.expire_date.as_deref().and_then(parse_date) {
                    license.expire_time = Some(t);
                }
                op.phase = Phase::Done;
                tracing::info!("change done");
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
}

/// The local effect of a change made upstream.
fn apply(kind: &OperationKind, license: &mut License) {
    match kind {
        OperationKind::Renew { .. } | OperationKind::ReissueKey { .. } | OperationKind::Order => {}
        OperationKind::ChangeIp { ip } => {
            if let Ok(ip) = LicenseIp::parse(ip, "ip") {
                license.ip = ip;
            }
        }
        OperationKind::ChangePanel {
            tariff_id,
            panel,
            period,
        } => {
            license.tariff_id = *tariff_id;
            license.panel = panel.clone();
            if license.period == Period::Trial {
                license.period = Period::from_upstream(*period).unwrap_or(Period::Month);
            }
        }
        OperationKind::Suspend => license.state = LicenseState::Suspended,
        OperationKind::Resume => license.state = LicenseState::Active,
        OperationKind::Cancel => license.state = LicenseState::Cancelled,
    }
}
