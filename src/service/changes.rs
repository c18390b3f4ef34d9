//! Operations that change a license that already exists upstream: renew, change IP,
//! change panel, suspend, resume, cancel, reissue key. Each one goes RECEIVED →
//! INTENT (committed) → upstream call → CONFIRMED → DONE; after an unknown outcome the
//! license's upstream details tell whether the change was already made, so a paid
//! change (renewal, tariff change) is never sent twice. As for orders, absence is
//! proven for the state the change could be in: details of a license in processing
//! (status 5) may not show a change under way, so they prove nothing.

use time::OffsetDateTime;

use super::drift::normalize_ip;
use super::lease::HeldLease;
use super::worker::{Worker, failure, parse_date};
use crate::billmanager::{UpstreamError, UpstreamLicense, UpstreamStatus};
use crate::domain::{
    License, LicenseIp, LicenseState, Operation, OperationKind, Period, Phase, UpstreamFailure,
};
use crate::store::StoreError;

/// What a successful call told us beyond "done".
enum Outcome {
    Done,
    NewExpiry(Option<String>),
}

impl Worker {
    pub(super) async fn advance_change(
        &self,
        op: Operation,
        license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        match op.phase {
            Phase::Received => self.send_change(op, license, held).await,
            Phase::Intent => self.recover_change(op, license).await,
            Phase::Confirmed => self.finish_change(op, license).await,
            Phase::Done | Phase::Failed => {
                let mut license = license;
                self.save(&op, &mut license, true).await
            }
        }
    }

    async fn send_change(
        &self,
        mut op: Operation,
        mut license: License,
        held: &HeldLease,
    ) -> Result<(), StoreError> {
        let Some(upstream_id) = license.upstream_id else {
            return self
                .fail_change(
                    op,
                    license,
                    "NO_UPSTREAM_LICENSE",
                    "the license was never ordered upstream".into(),
                )
                .await;
        };
        // The same recovery points as an order's (see `crate::crash`).
        crate::crash::point(crate::crash::BEFORE_INTENT);
        // The license as claimed, with no other change open on it: what recovery
        // compares against is taken from here, stored with the intent.
        op.kind.observe(&license);
        op.phase = Phase::Intent;
        op.attempt += 1;
        op.checks = 0;
        op.sent_at = Some(self.send_by());
        self.save(&op, &mut license, false).await?;
        crate::crash::point(crate::crash::AFTER_INTENT);
        if !self.may_send(&op, held) {
            return self.unsent(op, license).await;
        }
        tracing::info!(attempt = op.attempt, "sending the change upstream");
        let result = self.bounded(&op, self.call_change(&op, upstream_id)).await;
        crate::crash::point(crate::crash::AFTER_SEND);
        match result {
            Ok(outcome) => {
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                if let Outcome::NewExpiry(Some(date)) = &outcome
                    && let Some(t) = parse_date(date)
                {
                    license.expire_time = Some(t);
                }
                self.confirm_change(op, license).await
            }
            Err(e @ UpstreamError::Refused { .. }) => {
                tracing::warn!(error.message = %e, "upstream refused the change");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                let f = failure(&e);
                self.fail_change(op, license, &f.code, f.message).await
            }
            Err(e) if e.is_definite() => {
                // Not carried out: not a send that counts against the re-send limit.
                op.phase = Phase::Received;
                op.attempt = op.attempt.saturating_sub(1);
                op.failures += 1;
                op.run_after = self.backoff(op.failures, self.config.retry_max);
                op.last_error = Some(e.to_string());
                license.last_error = Some(failure(&e));
                self.save(&op, &mut license, true).await
            }
            Err(e @ UpstreamError::Unreadable(_)) => {
                // As for an order: the upstream said nothing against the change, so it
                // was most likely made. Look for it; never send it again (the license's
                // last error, kept until the change is confirmed, says so to recovery).
                tracing::error!(error.message = %e, "change answer not understood; looking the license up");
                crate::crash::point(crate::crash::AFTER_RESPONSE);
                metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "unreadable_change")
                    .increment(1);
                op.checks = 0;
                op.failures = 0;
                op.last_error = Some(e.to_string());
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                license.last_error = Some(failure(&e));
                self.save(&op, &mut license, true).await
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "change outcome unknown; recovering");
                op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                op.last_error = Some(e.to_string());
                license.last_error = Some(failure(&e));
                self.save(&op, &mut license, true).await
            }
        }
    }

    /// The upstream call of a change operation.
    async fn call_change(
        &self,
        op: &Operation,
        upstream_id: u64,
    ) -> Result<Outcome, UpstreamError> {
        let up = &self.upstream;
        match &op.kind {
            OperationKind::Renew { period, .. } => up
                .renew_license(upstream_id, *period)
                .await
                .map(Outcome::NewExpiry),
            OperationKind::ChangeIp { ip } => match ip.parse() {
                Ok(ip) => up.change_ip(upstream_id, ip).await.map(|()| Outcome::Done),
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
                .map(|()| Outcome::Done),
            OperationKind::Suspend => up
                .suspend_license(upstream_id)
                .await
                .map(|()| Outcome::Done),
            OperationKind::Resume => up.resume_license(upstream_id).await.map(|()| Outcome::Done),
            OperationKind::Cancel => up.delete_license(upstream_id).await.map(|()| Outcome::Done),
            OperationKind::ReissueKey { .. } => {
                up.reissue_key(upstream_id).await.map(|()| Outcome::Done)
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

    /// After an unknown outcome: was the change made?
    async fn recover_change(
        &self,
        mut op: Operation,
        mut license: License,
    ) -> Result<(), StoreError> {
        let Some(upstream_id) = license.upstream_id else {
            return Err(StoreError::Unexpected(anyhow::anyhow!("no upstream id")));
        };
        match self.upstream.license_details(upstream_id).await {
            Ok(details) if applied(&op.kind, &details, &license) => {
                tracing::info!("the change is visible upstream; confirming it");
                op.failures = 0;
                // A renewal found done carries its new expiry, as its answer would
                // have: the license shows it from the confirmation on.
                if let OperationKind::Renew { .. } = op.kind
                    && let Some(t) = details.expire_date.as_deref().and_then(parse_date)
                {
                    license.expire_time = Some(t);
                }
                self.confirm_change(op, license).await
            }
            Ok(details) if details.status == UpstreamStatus::Processing => {
                // Being processed upstream (status 5, "being set up or changed"): the
                // change may be under way without showing yet, so this read proves
                // nothing. It counts as a failed look-up: read again until the
                // processing ends, and past the failure budget a person looks.
                metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "unprovable_absence")
                    .increment(1);
                let e = UpstreamError::Unreadable(
                    "the upstream license is being processed (status 5)".into(),
                );
                let why = format!(
                    "{} may have been carried out upstream: the license stayed in processing (status 5), where a change need not show yet; it is not sent again",
                    op.kind.name()
                );
                self.lookup_failed(&mut op, &mut license, &e, why);
                self.save(&op, &mut license, true).await
            }
            Ok(_) => {
                op.failures = 0;
                let settled = self.settle_deadline(&mut op);
                if OffsetDateTime::now_utc() < settled {
                    // The last attempt's request may still land: not seeing the
                    // change proves nothing yet.
                    op.run_after = settled;
                    return self.save(&op, &mut license, true).await;
                }
                op.checks += 1;
                if op.checks < self.config.settle_checks {
                    op.run_after = OffsetDateTime::now_utc() + self.config.settle_interval;
                } else if answered_unreadably(&license) {
                    let why = format!(
                        "the upstream took {} ({}) but it is not visible upstream; not sending it again",
                        op.kind.name(),
                        op.last_error
                            .as_deref()
                            .unwrap_or("an answer not understood")
                    );
                    self.needs_attention(&mut op, &mut license, "UPSTREAM_ANSWER_UNREADABLE", why);
                } else if op.attempt > self.config.max_resends {
                    // As for orders: an outcome that stays unknown is not re-sent
                    // without end (a renewal re-sent that landed after all buys a
                    // second period); a person looks.
                    let why = format!(
                        "{} was sent {} times with an unknown outcome and is not visible upstream; the re-send limit ({}) is reached",
                        op.kind.name(),
                        op.attempt,
                        self.config.max_resends
                    );
                    self.needs_attention(&mut op, &mut license, "UPSTREAM_OUTCOME_UNKNOWN", why);
                } else {
                    tracing::info!(
                        "the change is not visible upstream after the settle period; sending again"
                    );
                    op.phase = Phase::Received;
                    op.run_after = OffsetDateTime::now_utc();
                }
                self.save(&op, &mut license, true).await
            }
            Err(e) => {
                let why = format!(
                    "{} may have been carried out upstream but could not be confirmed: {e}",
                    op.kind.name()
                );
                self.lookup_failed(&mut op, &mut license, &e, why);
                self.save(&op, &mut license, true).await
            }
        }
    }

    async fn fail_change(
        &self,
        mut op: Operation,
        mut license: License,
        code: &str,
        message: String,
    ) -> Result<(), StoreError> {
        op.phase = Phase::Failed;
        op.last_error = Some(message.clone());
        license.last_error = Some(UpstreamFailure {
            code: code.to_owned(),
            message,
        });
        self.save(&op, &mut license, true).await
    }
}

/// Whether the last answer to the change said nothing against it but could not be
/// read: the change was most likely made, so it is never sent again.
fn answered_unreadably(license: &License) -> bool {
    license
        .last_error
        .as_ref()
        .is_some_and(|e| e.code == "UPSTREAM_ANSWER_UNREADABLE")
}

/// Whether the upstream's view of the license shows the change made.
fn applied(kind: &OperationKind, d: &UpstreamLicense, license: &License) -> bool {
    match kind {
        OperationKind::Renew {
            previous_expiry, ..
        } => match (&d.expire_date, previous_expiry) {
            // ISO dates compare correctly as text.
            (Some(now), Some(before)) => now > before,
            _ => false,
        },
        OperationKind::ChangeIp { ip } => d.ip.as_deref().map(normalize_ip).as_deref() == Some(ip),
        OperationKind::ChangePanel { tariff_id, .. } => d.tariff_id == Some(*tariff_id),
        OperationKind::Suspend => d.status == UpstreamStatus::Suspended,
        OperationKind::Resume => {
            d.status == UpstreamStatus::Active && license.state == LicenseState::Suspended
        }
        OperationKind::Cancel => d.status == UpstreamStatus::Deleted,
        OperationKind::ReissueKey { previous_key } => d.license_key != *previous_key,
        OperationKind::Order => false,
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
