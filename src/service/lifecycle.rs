//! Changes to existing licenses and the desired-state call. Each change is checked
//! against the license's state, then queued as a durable operation for the worker.

use std::time::Duration;

use time::OffsetDateTime;

use super::idempotency::{fingerprint, order_params};
use super::{Call, LicenseService, OrderInput, Outcome, ServiceError};
use crate::domain::{
    ClientName, FieldViolation, License, LicenseId, LicenseIp, LicenseState, Operation,
    OperationKind, Period, Phase, ServerId,
};
use crate::store::StoreError;

/// How long a desired-state call waits for another call's change of the same server
/// to finish before it answers `OPERATION_IN_PROGRESS` after all.
pub const ENSURE_TURN_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting desired-state call looks again without a notice.
const ENSURE_TURN_POLL: Duration = Duration::from_millis(250);

/// An error of one desired-state attempt that waiting may clear: another call is
/// converging the server. Holds the license to watch, when known.
struct Busy(Option<LicenseId>);

impl Busy {
    fn of(e: &ServiceError) -> Option<Self> {
        match e {
            ServiceError::OperationInProgress(id) => Some(Self(LicenseId::parse(id).ok())),
            // A concurrent call ordered the server's license first, on another panel
            // or address: converge that one.
            ServiceError::ServerHasLicense { existing, .. } => Some(Self(Some(existing.id))),
            _ => None,
        }
    }
}

/// What `EnsureServerLicense` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnsureAction {
    /// The license already matched.
    None,
    /// A license was ordered.
    Ordered,
    /// Changes (panel and/or IP) were queued.
    Changed,
}

impl LicenseService {
    /// Checks `changes` against the license, queues them with the call's request id,
    /// and answers (after waiting, if the call asked to).
    pub(super) async fn queue(
        &self,
        call: &Call,
        fingerprint: &str,
        license: License,
        changes: Vec<OperationKind>,
        action: Option<EnsureAction>,
    ) -> Result<Outcome, ServiceError> {
        for change in &changes {
            license.check_change(change)?;
        }
        for change in &changes {
            if let Some((paid_from, period)) = pays_ahead(&license, change) {
                self.check_prepaid(call, paid_from, period)?;
            }
        }
        // A renewal or a panel change is paid: it is priced, and counts against the
        // caps, checked and stored one at a time per client.
        let spend = match changes
            .iter()
            .find_map(|c| self.change_purchase(&license, c))
        {
            Some(buys) => Some(self.paid_change_permit(&call.client, &buys).await?),
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let ops: Vec<Operation> = changes
            .into_iter()
            .map(|kind| {
                Operation::received(license.id, kind, now)
                    .in_trace(crate::telemetry::otlp::traceparent())
            })
            .collect();
        let actions: Vec<&str> = ops.iter().map(|op| op.kind.name()).collect();
        let mut outcome = Outcome {
            license,
            created: false,
            action,
            operations: Vec::new(),
            settled: false,
            replayed: false,
        };
        let record = self.request_record(call, fingerprint, &outcome);
        let audit = Self::accepted_entries(call, &outcome.license, &actions, spend.as_ref());
        let operations = match self
            .store
            .insert_operations(
                outcome.license.id,
                &ops,
                record.as_ref(),
                &audit,
                spend.as_ref().and_then(|p| p.limit.as_ref()),
            )
            .await
        {
            Err(StoreError::RequestKeyTaken) => {
                return self.replay_after_race(call, fingerprint).await;
            }
            Err(StoreError::SpendLimit(exceeded)) => {
                let permit = spend.as_ref().expect("only a paid call has a limit");
                return Err(permit.refusal(exceeded));
            }
            // The IP a change moves the license to is held (the store decides, in the
            // transaction that would have accepted it).
            Err(StoreError::IpTaken(taken)) => {
                return Err(ServiceError::ip_has_license(
                    &taken,
                    &call.client,
                    call.admin,
                ));
            }
            other => other?,
        };
        let priced = spend.as_ref().map(|p| p.price.to_string());
        // Stored: the client's next paid call may be counted.
        drop(spend);
        tracing::info!(license_id = %outcome.license.id, ?operations, price = priced, "change accepted");
        self.wake_workers();
        outcome.operations = operations;
        self.finish(call, outcome).await
    }

    /// Replays a repeated request id, or reads the license a new change applies to.
    pub(super) async fn change_target(
        &self,
        call: &Call,
        fingerprint: &str,
        id: &str,
    ) -> Result<Result<License, Outcome>, ServiceError> {
        if let Some(replayed) = self.replay(call, fingerprint).await? {
            return Ok(Err(replayed));
        }
        Ok(Ok(self.get_license(call.owner_filter(), id).await?))
    }

    /// Renews for `period_months` (1 or 12).
    pub async fn renew(
        &self,
        call: &Call,
        id: &str,
        period_months: i32,
    ) -> Result<Outcome, ServiceError> {
        let period = Period::paid_months(period_months, "periodMonths")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let fp = fingerprint("RenewLicense", &(id, period.upstream_value()));
        let license = match self.change_target(call, &fp, id).await? {
            Ok(license) => license,
            Err(replayed) => return Ok(replayed),
        };
        let mut change = OperationKind::Renew {
            period: period.upstream_value(),
            previous_expiry: None,
        };
        change.observe(&license);
        self.queue(call, &fp, license, vec![change], None).await
    }

    /// Moves the license to another IP.
    pub async fn change_ip(
        &self,
        call: &Call,
        id: &str,
        ip: &str,
    ) -> Result<Outcome, ServiceError> {
        let ip = LicenseIp::parse(ip, "ip").map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let fp = fingerprint("ChangeLicenseIp", &(id, ip.to_string()));
        let license = match self.change_target(call, &fp, id).await? {
            Ok(license) => license,
            Err(replayed) => return Ok(replayed),
        };
        self.ip_is_free(call, &ip.to_string(), Some(&license))
            .await?;
        let change = OperationKind::ChangeIp { ip: ip.to_string() };
        self.queue(call, &fp, license, vec![change], None).await
    }

    /// Refuses a paid call that would leave a license paid beyond the client's
    /// `max_prepaid_months` from now: `period` paid on top of `paid_from` (a
    /// renewal's current expiry; `None` for a period that starts now, as an order's
    /// or a trial conversion's does).
    pub(super) fn check_prepaid(
        &self,
        call: &Call,
        paid_from: Option<OffsetDateTime>,
        period: Period,
    ) -> Result<(), ServiceError> {
        let months = period.months();
        if months <= 0 {
            // A trial pays no period.
            return Ok(());
        }
        let max = self.max_prepaid_months(&call.client);
        let now = OffsetDateTime::now_utc();
        let from = paid_from.filter(|t| *t > now).unwrap_or(now);
        // Months as 31 days: a bound that never lets a call through early.
        let month = time::Duration::days(31);
        let limit = now + month * i32::try_from(max).unwrap_or(i32::MAX);
        let after = from + month * months;
        if after > limit {
            tracing::warn!(client = %call.client, max, months, "paid call refused: prepaid limit");
            // A period longer than the limit never fits; a renewal fits once the
            // license has run down far enough.
            let fits_later = u32::try_from(months).is_ok_and(|m| m <= max);
            return Err(ServiceError::PrepaidLimitReached {
                max_months: max,
                months: months.unsigned_abs(),
                retry_after: fits_later.then(|| {
                    std::time::Duration::try_from(after - limit)
                        .unwrap_or_default()
                        .max(std::time::Duration::from_secs(1))
                }),
            });
        }
        Ok(())
    }

    /// Refuses to move `license` (or, with `None`, a new one) onto `ip` while another
    /// live license (any client's) is bound to it or a step in flight has reserved it:
    /// that would leave two paid licenses on one IP. An early answer only: the store
    /// decides again in the transaction that accepts the step.
    pub(super) async fn ip_is_free(
        &self,
        call: &Call,
        ip: &str,
        license: Option<&License>,
    ) -> Result<(), ServiceError> {
        match self.store.ip_holder(ip, license.map(|l| l.id)).await? {
            Some(taken) => Err(ServiceError::ip_has_license(
                &taken,
                &call.client,
                call.admin,
            )),
            None => Ok(()),
        }
    }

    /// Switches the license to another panel (tariff).
    pub async fn change_panel(
        &self,
        call: &Call,
        id: &str,
        panel: &str,
        period_months: i32,
    ) -> Result<Outcome, ServiceError> {
        // The panel by tariff, so another spelling of it is the same request.
        let panel_key = match self.catalog.resolve(panel) {
            Ok(p) => p.tariff_id.to_string(),
            Err(_) => panel.to_owned(),
        };
        let fp = fingerprint("ChangeLicensePanel", &(id, panel_key, period_months));
        let license = match self.change_target(call, &fp, id).await? {
            Ok(license) => license,
            Err(replayed) => return Ok(replayed),
        };
        let change = self.panel_change(&license, panel, period_months)?;
        self.queue(call, &fp, license, vec![change], None).await
    }

    pub(super) fn panel_change(
        &self,
        license: &License,
        panel: &str,
        period_months: i32,
    ) -> Result<OperationKind, ServiceError> {
        let target = self.catalog.resolve(panel)?;
        if target.trial {
            return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                "panel",
                "a license cannot be changed to a trial tariff",
            )]));
        }
        // A trial converts to a paid period; a paid license keeps its own.
        let period = match (license.period, period_months) {
            (Period::Trial, months) => Period::paid_months(months, "periodMonths")
                .map_err(|v| ServiceError::InvalidArgument(vec![v]))?,
            (own, 0) => own,
            (_, months) => Period::paid_months(months, "periodMonths")
                .map_err(|v| ServiceError::InvalidArgument(vec![v]))?,
        };
        Ok(OperationKind::ChangePanel {
            tariff_id: target.tariff_id,
            panel: target.name.clone(),
            period: period.upstream_value(),
        })
    }

    /// A change that needs nothing but the license id.
    async fn simple_change(
        &self,
        call: &Call,
        id: &str,
        method: &str,
        make: impl FnOnce(&License) -> OperationKind,
    ) -> Result<Outcome, ServiceError> {
        let fp = fingerprint(method, &id);
        let license = match self.change_target(call, &fp, id).await? {
            Ok(license) => license,
            Err(replayed) => return Ok(replayed),
        };
        let change = make(&license);
        self.queue(call, &fp, license, vec![change], None).await
    }

    /// Suspends an active license.
    pub async fn suspend(&self, call: &Call, id: &str) -> Result<Outcome, ServiceError> {
        self.simple_change(call, id, "SuspendLicense", |_| OperationKind::Suspend)
            .await
    }

    /// Resumes a suspended license.
    pub async fn resume(&self, call: &Call, id: &str) -> Result<Outcome, ServiceError> {
        self.simple_change(call, id, "ResumeLicense", |_| OperationKind::Resume)
            .await
    }

    /// Deletes the license upstream; it stays here as CANCELLED history.
    pub async fn cancel(&self, call: &Call, id: &str) -> Result<Outcome, ServiceError> {
        self.simple_change(call, id, "CancelLicense", |_| OperationKind::Cancel)
            .await
    }

    /// Asks the upstream for a new license key.
    pub async fn reissue_key(&self, call: &Call, id: &str) -> Result<Outcome, ServiceError> {
        self.simple_change(call, id, "ReissueLicenseKey", |l| {
            let mut change = OperationKind::ReissueKey { previous_key: None };
            change.observe(l);
            change
        })
        .await
    }

    /// Converges the server's license to `input`: orders one if there is none, changes
    /// the panel and/or the IP if they differ (never a second license), nothing if it
    /// matches.
    ///
    /// A desired-state call does not fail because another call is converging the same
    /// server: while the license is being ordered or has a change running, it waits
    /// for its turn (at most [`ENSURE_TURN_WAIT`]) and then compares again. So
    /// concurrent calls are applied one after another, and the last one accepted is
    /// the state the license ends in.
    pub async fn ensure_server_license(
        &self,
        call: &Call,
        input: OrderInput,
    ) -> Result<Outcome, ServiceError> {
        let wanted = input.clone().validate(&call.client, &self.catalog)?;
        let fp = fingerprint("EnsureServerLicense", &order_params(&wanted));
        if let Some(replayed) = self.replay(call, &fp).await? {
            return Ok(replayed);
        }
        let deadline = tokio::time::Instant::now() + ENSURE_TURN_WAIT;
        let mut awaited: Option<LicenseId> = None;
        loop {
            // Subscribed before reading, so a change between the read and the wait
            // is not missed.
            let mut notices = self.subscribe();
            let busy = match self.ensure_once(call, &fp, &input, &wanted, awaited).await {
                Err(e) => match Busy::of(&e) {
                    Some(busy) if tokio::time::Instant::now() < deadline => busy,
                    _ => return Err(e),
                },
                done => return done,
            };
            awaited = busy.0.or(awaited);
            // Notices come from this process only; the timeout covers a change made
            // by another replica.
            let poll = tokio::time::Instant::now() + ENSURE_TURN_POLL;
            loop {
                match tokio::time::timeout_at(poll.min(deadline), notices.recv()).await {
                    Ok(Ok(changed)) if busy.0.is_some_and(|id| id != changed) => continue,
                    _ => break,
                }
            }
        }
    }

    /// One attempt of [`Self::ensure_server_license`].
    async fn ensure_once(
        &self,
        call: &Call,
        fp: &str,
        input: &OrderInput,
        wanted: &crate::domain::NewLicense,
        awaited: Option<LicenseId>,
    ) -> Result<Outcome, ServiceError> {
        // The server's live license, else its latest one. When that is the license
        // this call waited for and the upstream refused it (FAILED: nothing bought),
        // the call answers with the refusal rather than order again: concurrent calls
        // must not turn one refusal into a paid order per caller. Read in the same
        // statement as the decision to order, so a refusal stored in between is seen.
        let current = self
            .store
            .server_license(Some(&call.client), &wanted.server_id)
            .await?;
        if let Some(refused) = current
            .as_ref()
            .filter(|l| Some(l.id) == awaited && l.state == LicenseState::Failed)
        {
            let message = refused
                .last_error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "the order failed".into());
            return Err(ServiceError::UpstreamRefused(message));
        }
        let existing = current.filter(|l| l.state.is_live());
        let Some(license) = existing else {
            let mut outcome = self
                .order_as(
                    call,
                    input.clone(),
                    "EnsureServerLicense",
                    Some(EnsureAction::Ordered),
                )
                .await?;
            outcome.action = Some(if outcome.created {
                EnsureAction::Ordered
            } else {
                EnsureAction::None
            });
            return Ok(outcome);
        };
        let mut changes = Vec::new();
        if license.tariff_id != wanted.tariff_id {
            changes.push(self.panel_change(&license, &wanted.panel, input.period_months)?);
        }
        if license.ip != wanted.ip {
            self.ip_is_free(call, &wanted.ip.to_string(), Some(&license))
                .await?;
            changes.push(OperationKind::ChangeIp {
                ip: wanted.ip.to_string(),
            });
        }
        if changes.is_empty() {
            // It matches now, but a change queued by another call would move it away:
            // this call's turn comes after that change. (While it is being ordered,
            // the open operation is the order, which keeps the panel and address.)
            let ordering = matches!(
                license.state,
                LicenseState::Pending | LicenseState::Provisioning
            );
            if !ordering && self.store.has_open_operation(license.id).await? {
                return Err(ServiceError::OperationInProgress(license.id.to_string()));
            }
            return Ok(Outcome {
                license,
                created: false,
                action: Some(EnsureAction::None),
                operations: Vec::new(),
                settled: call.wait.is_some(),
                replayed: false,
            });
        }
        if matches!(
            license.state,
            LicenseState::Pending | LicenseState::Provisioning
        ) {
            // Still being ordered: the change can be judged once it is live.
            return Err(ServiceError::OperationInProgress(license.id.to_string()));
        }
        self.queue(call, fp, license, changes, Some(EnsureAction::Changed))
            .await
    }

    /// Cancels the server's live license.
    pub async fn cancel_server_license(
        &self,
        call: &Call,
        server_id: &str,
    ) -> Result<Outcome, ServiceError> {
        let server_id = ServerId::parse(server_id, "serverId")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let fp = fingerprint("CancelServerLicense", &server_id.as_str());
        if let Some(replayed) = self.replay(call, &fp).await? {
            return Ok(replayed);
        }
        let license = self.live_server_license(call, &server_id).await?;
        self.queue(call, &fp, license, vec![OperationKind::Cancel], None)
            .await
    }

    /// The caller's server's live license, else `NotFound`.
    pub(super) async fn live_server_license(
        &self,
        call: &Call,
        server_id: &ServerId,
    ) -> Result<License, ServiceError> {
        self.store
            .server_license(Some(&call.client), server_id)
            .await?
            .filter(|l| l.state.is_live())
            .ok_or(ServiceError::NotFound)
    }

    /// Waits until every operation in `ops` has finished or `timeout` passes, then
    /// returns the license. A refused operation is [`ServiceError::UpstreamRefused`].
    pub async fn wait_operations(
        &self,
        client: Option<&ClientName>,
        id: LicenseId,
        ops: &[i64],
        timeout: Duration,
    ) -> Result<License, ServiceError> {
        let mut changes = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut open = false;
            for op_id in ops {
                let Some(op) = self.store.get_operation(*op_id).await? else {
                    continue;
                };
                match op.phase {
                    Phase::Failed => {
                        let license = self.get_license(client, &id.to_string()).await?;
                        if license.state == LicenseState::NeedsAttention {
                            return Ok(license);
                        }
                        let message = license
                            .last_error
                            .map(|e| e.message)
                            .or(op.last_error)
                            .unwrap_or_else(|| "the change failed".into());
                        return Err(ServiceError::UpstreamRefused(message));
                    }
                    Phase::Done => {}
                    _ => open = true,
                }
            }
            if !open {
                return self.get_license(client, &id.to_string()).await;
            }
            loop {
                match tokio::time::timeout_at(deadline, changes.recv()).await {
                    Err(_) => return self.get_license(client, &id.to_string()).await,
                    Ok(Ok(changed)) if changed != id => continue,
                    Ok(_) => break,
                }
            }
        }
    }
}

/// What `change` of `license` pays ahead, if it moves its paid period: a renewal adds
/// its period to the license's expiry; converting a trial to a paid panel starts a
/// paid period now. A paid license's panel change keeps its expiry.
fn pays_ahead(
    license: &License,
    change: &OperationKind,
) -> Option<(Option<OffsetDateTime>, Period)> {
    match change {
        OperationKind::Renew { period, .. } => {
            Some((license.expire_time, Period::from_upstream(*period)?))
        }
        OperationKind::ChangePanel { period, .. } if license.period == Period::Trial => {
            Some((None, Period::from_upstream(*period)?))
        }
        _ => None,
    }
}
