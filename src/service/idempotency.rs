//! Request ids (`Idempotency-Key` on REST, `requestId` on gRPC) with Stripe semantics:
//! a replay returns the first result; the same key with other parameters is refused;
//! a replay while the first call is still waiting is told to retry. The id is stored in
//! the same transaction as the work it queued, so after a crash either both exist or
//! neither does, and a retry can never queue a paid change twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Call, EnsureAction, LicenseService, Outcome, ServiceError};
use crate::domain::{FieldViolation, License};
use crate::store::RequestRecord;

/// How long request ids are kept (at least the promised 72 hours).
pub const REQUEST_KEY_TTL: Duration = Duration::from_secs(72 * 3600);

/// A validated request id: 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey(String);

impl RequestKey {
    /// Validates a key; `field` names it in the error.
    pub fn parse(s: &str, field: &str) -> Result<Self, FieldViolation> {
        let ok = (1..=255).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldViolation::new(
                field,
                "must be 1 to 255 printable ASCII characters without spaces",
            ))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first call's result as stored with its request id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    license: License,
    created: bool,
    action: Option<String>,
    operations: Vec<i64>,
    settled: bool,
    refused: Option<String>,
}

fn action_name(a: EnsureAction) -> &'static str {
    match a {
        EnsureAction::None => "NONE",
        EnsureAction::Ordered => "ORDERED",
        EnsureAction::Changed => "CHANGED",
    }
}

fn action_from(s: &str) -> Option<EnsureAction> {
    match s {
        "NONE" => Some(EnsureAction::None),
        "ORDERED" => Some(EnsureAction::Ordered),
        "CHANGED" => Some(EnsureAction::Changed),
        _ => None,
    }
}

impl Stored {
    fn of(outcome: &Outcome, refused: Option<String>) -> Self {
        Self {
            license: outcome.license.clone(),
            created: outcome.created,
            action: outcome.action.map(|a| action_name(a).to_owned()),
            operations: outcome.operations.clone(),
            settled: outcome.settled,
            refused,
        }
    }

    fn into_result(self) -> Result<Outcome, ServiceError> {
        if let Some(message) = self.refused {
            return Err(ServiceError::UpstreamRefused(message));
        }
        Ok(Outcome {
            license: self.license,
            created: self.created,
            action: self.action.as_deref().and_then(action_from),
            operations: self.operations,
            settled: self.settled,
            replayed: true,
        })
    }
}

/// The parameters of a call, as compared between a first call and a replay. Callers
/// pass them normalised (see [`order_params`]): a retry that spells a value another
/// way is the same request.
pub(super) fn fingerprint(method: &str, params: &impl Serialize) -> String {
    serde_json::to_string(&(method, params)).expect("request parameters serialize")
}

/// What an order means, as compared between retries: the panel by tariff (whatever
/// name or alias named it), defaults filled in, the IP in its canonical form and the
/// host name in lower case, so `ISPmanager 6 Pro` and `ispmanager-6-pro`, an unset
/// and an explicit `periodMonths: 1`, or two spellings of one IPv6 address agree.
pub(super) fn order_params(new: &crate::domain::NewLicense) -> impl Serialize + use<> {
    (
        new.server_id.as_str().to_owned(),
        new.ip.to_string(),
        new.hostname
            .as_ref()
            .map(|h| h.as_str().to_ascii_lowercase()),
        new.tariff_id,
        new.nodes,
        new.period.upstream_value(),
        new.auto_renew,
    )
}

impl LicenseService {
    /// The first result when `call` repeats a request id; `None` for a new request.
    pub(super) async fn replay(
        &self,
        call: &Call,
        fingerprint: &str,
    ) -> Result<Option<Outcome>, ServiceError> {
        let Some(key) = &call.request else {
            return Ok(None);
        };
        let Some(record) = self.store.find_request(&call.client, key.as_str()).await? else {
            return Ok(None);
        };
        if record.fingerprint != fingerprint {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        if record
            .busy_until
            .is_some_and(|until| until > OffsetDateTime::now_utc())
        {
            return Err(ServiceError::RequestInProgress);
        }
        let stored: Stored = serde_json::from_str(&record.response).map_err(|e| {
            ServiceError::Store(anyhow::Error::new(e).context("stored response").into())
        })?;
        tracing::info!(
            request_id = key.as_str(),
            "replaying the first result of a request id"
        );
        stored.into_result().map(Some)
    }

    /// After [`StoreError::RequestKeyTaken`](crate::store::StoreError::RequestKeyTaken):
    /// a concurrent call with the same id won; answer as its replay.
    pub(super) async fn replay_after_race(
        &self,
        call: &Call,
        fingerprint: &str,
    ) -> Result<Outcome, ServiceError> {
        self.replay(call, fingerprint)
            .await?
            .ok_or(ServiceError::RequestInProgress)
    }

    /// The record to store with the work of a new request, if it has an id.
    pub(super) fn request_record(
        &self,
        call: &Call,
        fingerprint: &str,
        accepted: &Outcome,
    ) -> Option<RequestRecord> {
        let key = call.request.as_ref()?;
        let now = OffsetDateTime::now_utc();
        Some(RequestRecord {
            client: call.client.clone(),
            key: key.as_str().to_owned(),
            fingerprint: fingerprint.to_owned(),
            response: serde_json::to_string(&Stored::of(accepted, None))
                .expect("outcomes serialize"),
            // A waiting first call holds the id until it answers (plus a margin);
            // after a crash the mark simply expires.
            busy_until: call.wait.map(|w| now + w + Duration::from_secs(5)),
            create_time: now,
        })
    }

    /// Waits for the outcome's work when the call asked to, and stores what the call
    /// answers with its request id.
    pub(super) async fn finish(
        &self,
        call: &Call,
        mut outcome: Outcome,
    ) -> Result<Outcome, ServiceError> {
        let Some(wait) = call.wait else {
            return Ok(outcome);
        };
        let id = outcome.license.id;
        let deadline = call.arrived + wait;
        let mut result = Ok(());
        if outcome.created {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.wait_settled(call.owner_filter(), id, left).await {
                Ok(license) => outcome.license = license,
                Err(e) => result = Err(e),
            }
        }
        if result.is_ok() && !outcome.operations.is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .wait_operations(call.owner_filter(), id, &outcome.operations, left)
                .await
            {
                Ok(license) => outcome.license = license,
                Err(e) => result = Err(e),
            }
        }
        outcome.settled = result.is_ok() && self.operations_done(&outcome).await?;
        if let Some(key) = &call.request {
            let refused = match &result {
                Err(ServiceError::UpstreamRefused(m)) => Some(m.clone()),
                _ => None,
            };
            if result.is_ok() || refused.is_some() {
                let stored = serde_json::to_string(&Stored::of(&outcome, refused))
                    .expect("outcomes serialize");
                self.store
                    .complete_request(&call.client, key.as_str(), &stored)
                    .await?;
            }
        }
        result.map(|()| outcome)
    }

    /// Whether the license has left PENDING/PROVISIONING and every operation ended.
    async fn operations_done(&self, outcome: &Outcome) -> Result<bool, ServiceError> {
        use crate::domain::LicenseState;
        if matches!(
            outcome.license.state,
            LicenseState::Pending | LicenseState::Provisioning
        ) {
            return Ok(false);
        }
        for op in &outcome.operations {
            if let Some(op) = self.store.get_operation(*op).await?
                && op.phase.is_open()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Deletes request ids older than [`REQUEST_KEY_TTL`].
    pub async fn reap_request_keys(&self) -> Result<u64, ServiceError> {
        let before = OffsetDateTime::now_utc() - REQUEST_KEY_TTL;
        Ok(self.store.reap_requests(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert!(RequestKey::parse("order-7f3a", "k").is_ok());
        assert!(RequestKey::parse(&"k".repeat(255), "k").is_ok());
        assert!(RequestKey::parse("", "k").is_err());
        assert!(RequestKey::parse(&"k".repeat(256), "k").is_err());
        assert!(RequestKey::parse("with space", "k").is_err());
        assert!(RequestKey::parse("ключ", "k").is_err());
    }

    #[test]
    fn fingerprints_differ_with_the_parameters() {
        assert_eq!(fingerprint("A", &(1, "x")), fingerprint("A", &(1, "x")));
        assert_ne!(fingerprint("A", &(1, "x")), fingerprint("A", &(2, "x")));
        assert_ne!(fingerprint("A", &(1, "x")), fingerprint("B", &(1, "x")));
    }
}
