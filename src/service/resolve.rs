//! An operator's resolution of a `NEEDS_ATTENTION` license: the workflow stopped
//! because it could not tell whether money was spent, and a person who has looked
//! upstream decides.
//!
//! - `RETRY`: nothing was bought. The stuck order (or change) is sent once more under
//!   the same `licname`/`remoteid`, as a fresh operation (so the worker's re-send
//!   budget starts again) that starts at INTENT: the worker first looks it up, as
//!   after any unknown outcome, and sends only when the upstream shows it was not
//!   carried out (for an order: a list that could have shown it in every status an
//!   order may be in; on one that could not, it comes back to a person unsent). A
//!   person who retries something that was bought after all gets it adopted, not
//!   bought twice. An order that reached the upstream (it has an
//!   upstream id) is never retried: use BIND or ABANDON.
//! - `BIND`: the purchase did happen. The license takes the given upstream license,
//!   which must exist, be bound to no other license here and match the IP and tariff,
//!   and continues from its upstream status as an adoption does.
//! - `ABANDON`: nothing is sent; the license is FAILED with the reason, its upstream
//!   id (if any) is released, and the server and IP are free for a new order.
//!
//! Each is one store transaction conditional on the license still needing a person,
//! so two resolutions racing (or one retried) act once; the audit log records who,
//! how, why and what followed, and the change feed the new state.

use time::OffsetDateTime;

use super::idempotency::fingerprint;
use super::{Call, LicenseService, Outcome, ServiceError};
use crate::billmanager::{UpstreamError, UpstreamId};
use crate::domain::{
    AuditOutcome, EventKind, FieldViolation, License, LicenseState, Operation, OperationKind,
    Phase, Precondition, RESOLVE_ACTION, UpstreamFailure,
};
use crate::store::{Resolution, Resolved, StoreError};
use crate::workflow::matching::{normalize_ip, parse_date, upstream_tariff};

/// The longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// `lastError.code` of an abandoned license.
pub const ABANDONED: &str = "ABANDONED_BY_OPERATOR";

/// What an operator decides about a license that needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveAction {
    /// Send the stuck order or change once more.
    Retry,
    /// Take an upstream license that was bought after all.
    Bind,
    /// Give up locally; nothing is sent.
    Abandon,
}

impl ResolveAction {
    /// Every action.
    pub const ALL: [Self; 3] = [Self::Retry, Self::Bind, Self::Abandon];

    /// The stable name used on both APIs and in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "RETRY",
            Self::Bind => "BIND",
            Self::Abandon => "ABANDON",
        }
    }

    /// Parses [`as_str`](Self::as_str) names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A resolution as the caller asks for it.
#[derive(Debug, Clone, Default)]
pub struct ResolveInput {
    /// What to do; `None` when the caller named no (known) action.
    pub action: Option<ResolveAction>,
    /// Why, for the audit log; required.
    pub reason: String,
    /// The upstream license id (BIND only).
    pub upstream_id: String,
}

/// A validated resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Retry,
    Bind(UpstreamId),
    Abandon,
}

impl ResolveInput {
    fn validate(&self) -> Result<(Decision, String), ServiceError> {
        let mut violations = Vec::new();
        let reason = self.reason.trim().to_owned();
        if reason.is_empty() {
            violations.push(FieldViolation::new(
                "reason",
                "is required: say why, for the audit log",
            ));
        } else if reason.chars().count() > MAX_REASON_CHARS {
            violations.push(FieldViolation::new(
                "reason",
                format!("must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        let upstream = self.upstream_id.trim();
        let decision = match self.action {
            None => {
                violations.push(FieldViolation::new(
                    "action",
                    "must be RETRY, BIND or ABANDON",
                ));
                None
            }
            Some(ResolveAction::Bind) => match upstream.parse::<UpstreamId>() {
                Ok(id) if id > 0 => Some(Decision::Bind(id)),
                _ => {
                    violations.push(FieldViolation::new(
                        "upstreamId",
                        "BIND needs the BILLmanager license id (a positive number)",
                    ));
                    None
                }
            },
            Some(other) if !upstream.is_empty() => {
                violations.push(FieldViolation::new(
                    "upstreamId",
                    format!("only BIND takes an upstream id, not {}", other.as_str()),
                ));
                None
            }
            Some(ResolveAction::Retry) => Some(Decision::Retry),
            Some(ResolveAction::Abandon) => Some(Decision::Abandon),
        };
        match decision {
            Some(decision) if violations.is_empty() => Ok((decision, reason)),
            _ => Err(ServiceError::InvalidArgument(violations)),
        }
    }
}

impl Decision {
    fn action(&self) -> ResolveAction {
        match self {
            Self::Retry => ResolveAction::Retry,
            Self::Bind(_) => ResolveAction::Bind,
            Self::Abandon => ResolveAction::Abandon,
        }
    }
}

/// What a resolution changes: the license as it is to be, the work that follows, and
/// words for the audit log.
struct Plan {
    license: License,
    op: Option<Operation>,
    followed: String,
}

impl LicenseService {
    /// Resolves a `NEEDS_ATTENTION` license (admin only); see the module comment.
    #[tracing::instrument(skip_all, fields(license_id = %id))]
    pub async fn resolve(
        &self,
        call: &Call,
        id: &str,
        input: ResolveInput,
    ) -> Result<Outcome, ServiceError> {
        if !call.admin {
            return Err(ServiceError::PermissionDenied("admin"));
        }
        let (decision, reason) = input.validate()?;
        let upstream = match decision {
            Decision::Bind(up) => up,
            _ => 0,
        };
        let fp = fingerprint(
            "ResolveLicense",
            &(id, decision.action().as_str(), upstream, &reason),
        );
        if let Some(replayed) = self.replay(call, &fp).await? {
            return Ok(replayed);
        }
        let before = self.get_license(None, id).await?;
        if before.state != LicenseState::NeedsAttention {
            return Err(not_stuck(&before));
        }
        let mut plan = match decision {
            Decision::Retry => self.retry_plan(&before).await?,
            Decision::Bind(up) => self.bind_plan(&before, up).await?,
            Decision::Abandon => abandon_plan(&before, &reason),
        };
        plan.license.update_time = OffsetDateTime::now_utc();
        let mut audit = super::audit::entry(
            &plan.license,
            call.client.clone(),
            RESOLVE_ACTION,
            call.request.as_ref().map(|r| r.as_str().to_owned()),
            AuditOutcome::Succeeded,
        );
        audit.upstream_id = plan.license.upstream_id.or(before.upstream_id);
        audit.detail = Some(format!(
            "{}: {reason} — {}",
            decision.action().as_str(),
            plan.followed
        ));
        let mut outcome = Outcome {
            license: plan.license.clone(),
            created: false,
            action: None,
            operations: Vec::new(),
            // Nothing follows a bind or an abandonment: it is done.
            settled: plan.op.is_none(),
            replayed: false,
        };
        let resolution = Resolution {
            events: EventKind::between(&before, &plan.license),
            request: self.request_record(call, &fp, &outcome),
            license: plan.license,
            op: plan.op,
            audit,
        };
        let op = match self.store.resolve_license(&resolution).await {
            Err(StoreError::RequestKeyTaken) => return self.replay_after_race(call, &fp).await,
            other => match other? {
                Resolved::Stored(op) => op,
                Resolved::NotNeedsAttention(current) => return Err(not_stuck(&current)),
                Resolved::UpstreamBound(holder) => return Err(bound(upstream, &holder)),
                // The retry would bind the license to an IP another one holds now.
                Resolved::IpTaken(taken) => {
                    return Err(ServiceError::ip_has_license(&taken, &call.client, true));
                }
                Resolved::Missing => return Err(ServiceError::NotFound),
            },
        };
        tracing::info!(
            client = %call.client,
            action = decision.action().as_str(),
            state = %outcome.license.state,
            "license resolved"
        );
        if let Some(op) = op {
            outcome.operations.push(op);
            self.wake_workers();
        }
        let _ = self.changes.send(outcome.license.id);
        self.finish(call, outcome).await
    }

    /// RETRY: a fresh operation of the stuck kind, at INTENT: the worker looks the
    /// order (or change) up first, as after any unknown outcome, and sends it once
    /// more only when the upstream shows it was not carried out. So an operator's
    /// retry of something that was bought after all adopts it instead of buying it
    /// twice. An order is back to PENDING; a change's license to its live state.
    async fn retry_plan(&self, before: &License) -> Result<Plan, ServiceError> {
        let last = self
            .store
            .latest_operation(before.id)
            .await?
            .ok_or_else(|| {
                refuse(
                    "NOTHING_TO_RETRY",
                    format!("license {} has no operation to retry", before.id),
                )
            })?;
        let mut license = before.clone();
        license.last_error = None;
        let followed = if last.kind == OperationKind::Order {
            if let Some(up) = before.upstream_id {
                return Err(refuse(
                    "ORDER_REACHED_UPSTREAM",
                    format!(
                        "the order reached the upstream as license {up}; sending it again would buy a second one: BIND {up} once it is active, or ABANDON"
                    ),
                ));
            }
            license.state = LicenseState::Pending;
            "the order is looked up upstream and sent once more under the same licname and remoteid unless it is found".to_owned()
        } else {
            license.state = self.state_before_attention(before, &last.kind).await?;
            format!(
                "{} is looked up upstream and sent once more unless it shows as done",
                last.kind.name()
            )
        };
        let mut op = Operation::received(before.id, last.kind, OffsetDateTime::now_utc())
            .in_trace(crate::telemetry::otlp::traceparent());
        op.phase = Phase::Intent;
        // The settle (no re-send while a request may still land) counts from the
        // stuck operation's last attempt, the last request that was sent.
        op.sent_at = last.sent_at;
        Ok(Plan {
            license,
            op: Some(op),
            followed,
        })
    }

    /// The live state a license had before its change got stuck: the latest one its
    /// events show, else the one the change starts from.
    async fn state_before_attention(
        &self,
        license: &License,
        kind: &OperationKind,
    ) -> Result<LicenseState, ServiceError> {
        let events = self.store.license_events(license.id, 200).await?;
        let seen = events
            .iter()
            .map(|e| e.license.state)
            .find(|s| matches!(s, LicenseState::Active | LicenseState::Suspended));
        Ok(seen.unwrap_or(match kind {
            OperationKind::Resume => LicenseState::Suspended,
            _ => LicenseState::Active,
        }))
    }

    /// BIND: the upstream license must exist, be usable (as for an adoption) and
    /// match the license's IP and tariff.
    async fn bind_plan(&self, before: &License, up: UpstreamId) -> Result<Plan, ServiceError> {
        let details = self
            .upstream
            .license_details(up)
            .await
            .map_err(|e| match e {
                UpstreamError::Refused { .. } => ServiceError::UpstreamLicenseNotFound(up),
                other => ServiceError::UpstreamUnavailable(other.to_string()),
            })?;
        let state = super::reconcile::managed_state(&details)?;
        let ip = details.ip.as_deref().map(normalize_ip).unwrap_or_default();
        if ip != before.ip.to_string() {
            return Err(ServiceError::UpstreamLicenseMismatch {
                upstream_id: up,
                field: "ip",
                upstream: if ip.is_empty() { "no IP".into() } else { ip },
                here: before.ip.to_string(),
            });
        }
        let tariff = upstream_tariff(&details, &self.catalog);
        if tariff != Some(before.tariff_id) {
            return Err(ServiceError::UpstreamLicenseMismatch {
                upstream_id: up,
                field: "tariffId",
                upstream: tariff.map_or_else(|| "no known tariff".into(), |t| t.to_string()),
                here: before.tariff_id.to_string(),
            });
        }
        let mut license = before.clone();
        license.state = state;
        license.upstream_id = Some(up);
        license.license_key = details.license_key.clone();
        license.expire_time = details.expire_date.as_deref().and_then(parse_date);
        license.last_error = None;
        Ok(Plan {
            followed: format!("bound to upstream license {up}, now {state}"),
            license,
            op: None,
        })
    }
}

/// ABANDON: FAILED with the reason; nothing is sent. The upstream id is released, so
/// an upstream license that exists after all shows in the drift report as an orphan
/// (and can be adopted) instead of being hidden behind a failed license.
fn abandon_plan(before: &License, reason: &str) -> Plan {
    let mut license = before.clone();
    license.state = LicenseState::Failed;
    license.upstream_id = None;
    license.license_key = None;
    license.last_error = Some(UpstreamFailure {
        code: ABANDONED.into(),
        message: format!("abandoned by an operator: {reason}"),
    });
    let followed = match before.upstream_id {
        Some(up) => format!(
            "FAILED here, nothing sent; upstream license {up} is released (see the drift report); the server is free for a new order"
        ),
        None => "FAILED here, nothing sent; the server is free for a new order".into(),
    };
    Plan {
        license,
        op: None,
        followed,
    }
}

fn refuse(code: &'static str, message: String) -> ServiceError {
    ServiceError::Precondition(Precondition { code, message })
}

/// The refusal of a license that does not (or no longer) need a person.
fn not_stuck(license: &License) -> ServiceError {
    refuse(
        "INVALID_LICENSE_STATE",
        format!(
            "license {} is {}; only a NEEDS_ATTENTION license can be resolved",
            license.id, license.state
        ),
    )
}

fn bound(up: UpstreamId, holder: &License) -> ServiceError {
    refuse(
        "UPSTREAM_LICENSE_BOUND",
        format!(
            "upstream license {up} is already bound to license {} here ({}); it cannot be bound twice",
            holder.id, holder.state
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(action: Option<ResolveAction>, reason: &str, upstream: &str) -> ResolveInput {
        ResolveInput {
            action,
            reason: reason.into(),
            upstream_id: upstream.into(),
        }
    }

    fn fields(e: ServiceError) -> Vec<String> {
        e.violations().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_reason_is_required_and_bounded() {
        let blank = input(Some(ResolveAction::Abandon), "  ", "");
        assert_eq!(fields(blank.validate().unwrap_err()), ["reason"]);
        let long = input(Some(ResolveAction::Abandon), &"x".repeat(1001), "");
        assert_eq!(fields(long.validate().unwrap_err()), ["reason"]);
        let ok = input(Some(ResolveAction::Abandon), " checked upstream ", "");
        assert_eq!(
            ok.validate().unwrap(),
            (Decision::Abandon, "checked upstream".into())
        );
    }

    #[test]
    fn bind_needs_an_upstream_id_and_only_bind_takes_one() {
        let missing = input(Some(ResolveAction::Bind), "bought", "");
        assert_eq!(fields(missing.validate().unwrap_err()), ["upstreamId"]);
        let retry = input(Some(ResolveAction::Retry), "not bought", "17");
        assert_eq!(fields(retry.validate().unwrap_err()), ["upstreamId"]);
        let bind = input(Some(ResolveAction::Bind), "bought", " 17 ");
        assert_eq!(bind.validate().unwrap().0, Decision::Bind(17));
    }

    #[test]
    fn an_action_is_required() {
        let none = input(None, "", "");
        assert_eq!(fields(none.validate().unwrap_err()), ["reason", "action"]);
    }

    #[test]
    fn action_names_round_trip() {
        for a in ResolveAction::ALL {
            assert_eq!(ResolveAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(ResolveAction::parse("retry"), None);
    }
}
