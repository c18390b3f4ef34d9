//! Conversion of audit log entries to the API message.

use super::Timestamp;

use super::pb::v1 as pb;
use crate::domain::{AuditEntry, AuditOutcome, CallPrice};

/// An audit entry as the API shows it.
pub fn audit_entry_to_pb(e: &AuditEntry) -> pb::AuditEntry {
    use pb::audit_entry::Outcome as O;
    let outcome = match e.outcome {
        AuditOutcome::Accepted => O::Accepted,
        AuditOutcome::Succeeded => O::Succeeded,
        AuditOutcome::Failed => O::Failed,
        AuditOutcome::NeedsAttention => O::NeedsAttention,
    };
    pb::AuditEntry {
        id: e.id,
        time: Some(Timestamp::from(e.time)),
        client: e.client.to_string(),
        action: e.action.clone(),
        license_id: e.license_id.to_string(),
        server_id: e.server_id.clone(),
        request_id: e.request_id.clone().unwrap_or_default(),
        upstream_id: e.upstream_id.map(|id| id.to_string()).unwrap_or_default(),
        outcome: outcome as i32,
        detail: e.detail.clone().unwrap_or_default(),
        price: e.price.as_ref().map(call_price_to_pb),
    }
}

/// A recorded price as the API shows it.
pub fn call_price_to_pb(price: &CallPrice) -> pb::CallPrice {
    match price {
        CallPrice::Known(money) => pb::CallPrice {
            amount: money.amount(),
            currency: money.currency.clone(),
            unknown_reason: String::new(),
        },
        CallPrice::Unknown(why) => pb::CallPrice {
            amount: String::new(),
            currency: String::new(),
            unknown_reason: why.clone(),
        },
    }
}
