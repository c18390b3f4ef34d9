//! The domain: validated value types, the license and its states, and the panel
//! catalog. Nothing in here knows about a transport, the store or the upstream.

mod audit;
mod caps;
mod catalog;
mod cost;
mod event;
mod ids;
mod labels;
mod license;
mod lifecycle;
mod network;
mod operation;
mod pool;
mod price;
mod webhook;

pub use audit::{
    ADOPT_ACTION, AuditEntry, AuditFilter, AuditOutcome, Bought, PAID_ACTIONS, RESOLVE_ACTION,
};
pub use caps::{DEFAULT_MAX_PREPAID_MONTHS, OrderCaps};
pub use catalog::{
    CatalogCheck, Panel, PanelCatalog, PanelCatalogConfig, PanelConfig, SellingPriceConfig,
    UnknownPanel,
};
pub use cost::{
    CSV_HEADER as COST_CSV_HEADER, CostReport, CostRow, LiveLicense, Month, PaidCall, PaidKind,
    SellingPrices, renews_in,
};
pub use event::{Event, EventKind};
pub use ids::{ClientName, Hostname, LicenseId, ServerId};
pub use labels::{ItemLabels, MAX_LABEL_CHARS};
pub use license::{License, LicenseState, MAX_NODES, NewLicense, Period, UpstreamFailure};
pub use lifecycle::Precondition;
pub use network::{LicenseIp, canonical as canonical_ip};
pub use operation::{Operation, OperationKind, Phase};
pub use pool::{AtExpiry, PARKED_IP, PoolConfig, PoolPick, PoolRules, Release};
pub use price::{
    AddonUnits, CallPrice, ListedPrice, MAX_REASON_BYTES, Money, Purchase, cents_text, parse_price,
    price_of, to_cents,
};
pub use webhook::{
    EVENT_ID_HEADER, EVENT_TYPE_HEADER, MAX_BACKOFF, RETRY_FOR, SIGNATURE_HEADER, Webhook,
    WebhookState, backoff as webhook_backoff, check_target as check_webhook_target,
    check_url as check_webhook_url, event_types as webhook_event_types,
    signature as webhook_signature,
};

/// A value that failed validation; `field` names the request field in lowerCamelCase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldViolation {
    /// The request field, e.g. `server.ip`.
    pub field: String,
    /// What is wrong with it, in words a caller can act on.
    pub message: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
