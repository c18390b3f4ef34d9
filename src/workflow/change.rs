//! The change steps: renew, change IP, change panel, suspend, resume, cancel, reissue
//! key, park, reuse and unpark, each a call (or a few) on a license that already
//! exists upstream. The attempt engine carries them RECEIVED → INTENT (committed) →
//! upstream call → CONFIRMED → DONE; what is theirs is the call, and after an unknown
//! outcome the license's upstream details, which tell whether the change was already
//! made, so a paid change (renewal, tariff change) is never sent twice. As for orders, absence is proven for the state the
//! change could be in: details of a license in processing (status 5) may not show a
//! change under way, so they prove nothing.

use time::OffsetDateTime;

use crate::billmanager::{UpstreamError, UpstreamLicense, UpstreamStatus};
use crate::domain::{
    License, LicenseIp, LicenseState, Operation, OperationKind, PARKED_IP, Period, Phase,
    UpstreamFailure,
};
use crate::store::StoreError;

use super::Worker;
use super::attempt::failure;
use super::lease::HeldLease;
use super::matching::{applied, normalize_ip, parse_date};
use super::step::{Found, Step};

/// What a successful call told us beyond "done".
pub(super) enum Answer {
    Done,
    NewExpiry(Option<String>),
}

/// How a change came to be confirmed: by the answer to its call, or by a recovery
/// look-up that found it made upstream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Confirmed {
    Answered,
    Found,
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
        if license.state == LicenseState::Reused {
            // Its upstream license is another license's now: nothing may act on it.
            return Err(UpstreamFailure {
                code: "INVALID_LICENSE_STATE".into(),
                message: format!(
                    "the license is REUSED: its upstream license went on as {}",
                    license
                        .reused_by
                        .map(|id| id.to_string())
                        .unwrap_or_default()
                ),
            });
        }
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
            Some(upstream_id) => w.call_change(op, license, upstream_id).await,
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
        w.confirm_change(op, license, Confirmed::Answered).await
    }

    async fn refused(
        &self,
        w: &Worker,
        op: Operation,
        license: License,
        refusal: UpstreamError,
        _: &HeldLease,
    ) -> Result<(), StoreError> {
        match &op.kind {
            OperationKind::Reuse { from, .. } => {
                let from = from.clone();
                w.reuse_refused(op, license, &from, &refusal).await
            }
            OperationKind::Unpark { previous_ip, .. } => {
                let previous_ip = previous_ip.clone();
                w.unpark_refused(op, license, &previous_ip, &refusal).await
            }
            _ => w.fail(op, license, failure(&refusal)).await,
        }
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
        op.failures = 0;
        // A renewal found done carries its new expiry, as its answer would have: the
        // license shows it from the confirmation on.
        if let OperationKind::Renew { .. } = op.kind
            && let Some(t) = details.expire_date.as_deref().and_then(parse_date)
        {
            license.expire_time = Some(t);
        }
        w.confirm_change(op, license, Confirmed::Found).await
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
    async fn call_change(
        &self,
        op: &Operation,
        license: &License,
        upstream_id: u64,
    ) -> Result<Answer, UpstreamError> {
        let up = &self.upstream;
        match &op.kind {
            OperationKind::Renew { period, .. } => up
                .renew_license(upstream_id, *period)
                .await
                .map(Answer::NewExpiry),
            OperationKind::ChangeIp { ip } | OperationKind::Unpark { ip, .. } => match ip.parse() {
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
            OperationKind::Park => self.park(upstream_id).await.map(|()| Answer::Done),
            OperationKind::Reuse {
                new_key,
                previous_key,
                ..
            } => self
                .reuse(license, upstream_id, *new_key, previous_key.as_deref())
                .await
                .map(|()| Answer::Done),
            OperationKind::Order => unreachable!("orders have their own path"),
        }
    }

    /// Parks upstream as ISPsystem's own integrations do: suspends the license (unless
    /// it is suspended already, as after an earlier attempt that went no further),
    /// then binds it to 0.0.0.0. Neither call is paid; the name stays ours, which is
    /// what recovery finds it by.
    async fn park(&self, upstream_id: u64) -> Result<(), UpstreamError> {
        let now = self.upstream.license_details(upstream_id).await?;
        if now.status == UpstreamStatus::Active {
            self.upstream.suspend_license(upstream_id).await?;
        }
        let parked: std::net::IpAddr = PARKED_IP.parse().expect("a literal address");
        self.upstream.change_ip(upstream_id, parked).await
    }

    /// Moves a parked upstream license to `license`: to its IP under its id as
    /// `licname`/`remoteid`, resumed, with a new key when asked. Each call is made
    /// only if the upstream does not show it made already, so a repeat after an
    /// unknown outcome picks up where the last attempt stopped. None is paid.
    async fn reuse(
        &self,
        license: &License,
        upstream_id: u64,
        new_key: bool,
        previous_key: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let up = &self.upstream;
        let now = up.license_details(upstream_id).await?;
        let ip = license.ip.to_string();
        if now.ip.as_deref().map(normalize_ip).as_deref() != Some(ip.as_str()) {
            up.move_license(upstream_id, license.ip.addr(), &license.id.to_string())
                .await?;
        }
        if now.status != UpstreamStatus::Active {
            up.resume_license(upstream_id).await?;
        }
        if new_key && now.license_key.as_deref() == previous_key {
            up.reissue_key(upstream_id).await?;
        }
        Ok(())
    }

    /// The upstream refused to move a parked license to `license`: nothing was
    /// bought and nothing moved. The license ends FAILED (the caller orders again,
    /// which buys), without the upstream id it borrowed; the parked license goes back
    /// to the pool, not to be taken again for a cooldown (the upstream's own clock
    /// said no). A crash between the two writes leaves the give-back to the pool's
    /// sweep, which looks for exactly this.
    async fn reuse_refused(
        &self,
        op: Operation,
        mut license: License,
        from: &str,
        refusal: &UpstreamError,
    ) -> Result<(), StoreError> {
        tracing::warn!(parked = from, error.message = %refusal, "the upstream refused to move the parked license; it goes back to the pool");
        license.state = LicenseState::Failed;
        license.upstream_id = None;
        let why = UpstreamFailure {
            code: "REUSE_REFUSED".into(),
            message: format!(
                "the upstream refused to move parked license {from} here ({}); nothing was bought or moved: order again to buy",
                failure(refusal).message
            ),
        };
        self.fail(op, license, why).await?;
        self.give_back_to_pool().await
    }

    /// The upstream refused to move a parked license out of the pool: nothing moved.
    /// The license is parked again, on the address it kept while parked, and gives
    /// back its server and the IP it was taken onto (the step's end gives back the
    /// reservation).
    async fn unpark_refused(
        &self,
        op: Operation,
        mut license: License,
        previous_ip: &str,
        refusal: &UpstreamError,
    ) -> Result<(), StoreError> {
        tracing::warn!(error.message = %refusal, "the upstream refused to move the parked license; it stays parked");
        license.state = LicenseState::Parked;
        if let Ok(ip) = LicenseIp::parse(previous_ip, "ip") {
            license.ip = ip;
        }
        self.fail(op, license, failure(refusal)).await
    }

    /// Gives refused reuses' parked licenses back to the pool.
    pub(super) async fn give_back_to_pool(&self) -> Result<(), StoreError> {
        for id in self
            .store
            .give_back_to_pool(OffsetDateTime::now_utc())
            .await?
        {
            tracing::info!(license_id = %id, "parked license back in the pool");
            let _ = self.changes.send(id);
        }
        Ok(())
    }

    /// The change is made upstream: apply it here, then finish.
    async fn confirm_change(
        &self,
        mut op: Operation,
        mut license: License,
        how: Confirmed,
    ) -> Result<(), StoreError> {
        apply(&op.kind, &mut license);
        license.last_error = None;
        op.phase = Phase::Confirmed;
        op.checks = 0;
        op.failures = 0;
        op.last_error = None;
        op.run_after = OffsetDateTime::now_utc();
        self.save(&op, &mut license, false).await?;
        // Said once the confirmation is stored: a worker that found the change but
        // lost the operation before its save (a lease that ran out under load, which
        // another worker took over and found the same) confirmed nothing.
        if how == Confirmed::Found {
            tracing::info!("the change is visible upstream; confirmed it");
        }
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
        if matches!(op.kind, OperationKind::Park) {
            return self.finish_park(op, license, upstream_id).await;
        }
        match self.upstream.license_details(upstream_id).await {
            Ok(details) => {
                let waits_for_key = match &op.kind {
                    OperationKind::ReissueKey { previous_key } => {
                        details.license_key.is_none() || details.license_key == *previous_key
                    }
                    // Resumed after the move: the key may appear some time later.
                    OperationKind::Reuse {
                        new_key,
                        previous_key,
                        ..
                    } => {
                        details.license_key.is_none()
                            || (*new_key && details.license_key == *previous_key)
                    }
                    _ => false,
                };
                if waits_for_key {
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
                if matches!(op.kind, OperationKind::Reuse { .. }) {
                    license.state = LicenseState::Active;
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

    /// A park is confirmed: reads the upstream's last IP and key change from its list
    /// (`real_ipchange`, `real_keychange`), which tell when the cooldowns let the
    /// license move, and records them before the park is done. An upstream that does
    /// not show them is taken to have changed both now (parking itself changed the
    /// IP): the license waits a full cooldown rather than be taken too early.
    async fn finish_park(
        &self,
        mut op: Operation,
        mut license: License,
        upstream_id: u64,
    ) -> Result<(), StoreError> {
        let list = match self.upstream.list_licenses().await {
            Ok(list) => list,
            Err(e) => {
                op.failures += 1;
                op.last_error = Some(e.to_string());
                op.run_after = self.backoff(op.failures, self.config.retry_max);
                return self.save(&op, &mut license, true).await;
            }
        };
        let now = OffsetDateTime::now_utc();
        let row = list.licenses.iter().find(|l| l.id == upstream_id);
        let day = |d: Option<&String>| d.and_then(|d| parse_date(d)).unwrap_or(now);
        let ip_changed = day(row.and_then(|r| r.ip_changed.as_ref()));
        let key_changed = day(row.and_then(|r| r.key_changed.as_ref()));
        if let Some(t) = row
            .and_then(|r| r.expire_date.as_deref())
            .and_then(parse_date)
        {
            license.expire_time = Some(t);
        }
        self.store
            .set_pool_changes(license.id, ip_changed, key_changed)
            .await?;
        op.phase = Phase::Done;
        tracing::info!("license parked");
        self.save(&op, &mut license, true).await
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
        // Taken out of the pool at its acceptance (see `OperationKind::Unpark`); moved
        // upstream now, and suspended there until resumed.
        OperationKind::Unpark { ip, .. } => {
            if let Ok(ip) = LicenseIp::parse(ip, "ip") {
                license.ip = ip;
            }
            license.state = LicenseState::Suspended;
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
        // Moved and resumed; active once its key is read (`finish_change`), as an
        // order is.
        OperationKind::Reuse { .. } => license.state = LicenseState::Provisioning,
        OperationKind::Cancel => license.state = LicenseState::Cancelled,
        OperationKind::Park => license.state = LicenseState::Parked,
    }
}
