//! The service layer's error: what both transports map, each in one place.

use std::time::Duration;

use crate::domain::{FieldViolation, License, OperationKind, Precondition, UnknownPanel};
use crate::store::{IpTaken, StoreError};

/// Why a use case did not succeed. Each variant names its stable reason code
/// ([`ServiceError::code`]), the same on REST and gRPC.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Invalid request fields → 400 / INVALID_ARGUMENT, `INVALID_ARGUMENT`.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidArgument(Vec<FieldViolation>),
    /// The panel is not in the catalog → 400 / INVALID_ARGUMENT, `UNKNOWN_PANEL`.
    #[error(transparent)]
    UnknownPanel(#[from] UnknownPanel),
    /// No such license (or not visible to the caller) → 404 / NOT_FOUND,
    /// `LICENSE_NOT_FOUND`.
    #[error("license not found")]
    NotFound,
    /// No such webhook subscription (or not the caller's) → 404 / NOT_FOUND,
    /// `WEBHOOK_NOT_FOUND`.
    #[error("webhook not found")]
    WebhookNotFound,
    /// A webhook URL whose host resolves to an address deliveries may not go to
    /// (loopback, link-local, metadata, …) or does not resolve → 400 /
    /// INVALID_ARGUMENT, `WEBHOOK_TARGET_REFUSED`, with the field violation on `url`.
    #[error("url: {0}")]
    WebhookTargetRefused(String),
    /// The server already has a live license that differs from the order → 409 /
    /// FAILED_PRECONDITION, `SERVER_HAS_LICENSE`; the message names the call to use.
    #[error("server {} already has license {} ({}, {}); use {use_instead} to change it", existing.server_id, existing.id, existing.panel, existing.ip)]
    ServerHasLicense {
        /// The server's live license.
        existing: Box<License>,
        /// The RPC that makes the change (ChangeLicensePanel or ChangeLicenseIp).
        use_instead: &'static str,
    },
    /// Another live license (any client's) is bound to the IP, or a step in flight (an
    /// order for it, a change of another license to it) has reserved it → 409 /
    /// FAILED_PRECONDITION, `IP_HAS_LICENSE`; a panel license is bound to one IP, so a
    /// second would be paid for nothing. Names the license when the caller may see it,
    /// and the step in flight when there is one.
    #[error("{}; a license is bound to its IP, so a second one would be paid for nothing", held_by(.ip, .visible.as_deref(), *.in_flight))]
    IpHasLicense {
        /// The IP.
        ip: String,
        /// The license holding it, when the caller may see it.
        visible: Option<String>,
        /// The step in flight that reserved it, if one did.
        in_flight: Option<InFlight>,
    },
    /// An admin asked for a server's license by a server id that several clients use
    /// → 409 / FAILED_PRECONDITION, `SERVER_ID_AMBIGUOUS`; the message names them and
    /// how to choose one.
    #[error("server id {server_id} is used by several clients ({}); choose one with ?client=NAME (gRPC: the client field)", clients.join(", "))]
    ServerIdAmbiguous {
        /// The server id asked for.
        server_id: String,
        /// The clients that use it, sorted.
        clients: Vec<String>,
    },
    /// The license's state does not allow the change → 409 / FAILED_PRECONDITION,
    /// with the precondition's own code (`INVALID_LICENSE_STATE`, `SAME_IP`, …).
    #[error(transparent)]
    Precondition(#[from] Precondition),
    /// Another change of the license is still running → 409 / ABORTED with a retry
    /// hint, `OPERATION_IN_PROGRESS`.
    #[error("license {0} has another change in progress; retry when it has finished")]
    OperationInProgress(String),
    /// The upstream refused the change the caller waited for → 422 /
    /// FAILED_PRECONDITION, `UPSTREAM_REFUSED`; the license's `lastError` has it too.
    #[error("the upstream refused: {0}")]
    UpstreamRefused(String),
    /// The request id was used before with other parameters → 422 /
    /// INVALID_ARGUMENT, `IDEMPOTENCY_KEY_REUSED`.
    #[error("this request id was used with other parameters; use a new id for a new request")]
    IdempotencyKeyReused,
    /// The first call with this request id is still running → 409 / ABORTED with a
    /// retry hint, `REQUEST_IN_PROGRESS`.
    #[error("a call with this request id is still in progress; retry shortly")]
    RequestInProgress,
    /// The upstream could not be asked (quotes, checks) → 503 / UNAVAILABLE,
    /// `UPSTREAM_UNAVAILABLE`.
    #[error("the upstream is unavailable: {0}")]
    UpstreamUnavailable(String),
    /// No reconciliation has run yet (on any replica) → 404 / NOT_FOUND,
    /// `DRIFT_REPORT_NOT_FOUND`.
    #[error("no drift report yet: no reconciliation has run; run one with Reconcile")]
    NoDriftReport,
    /// The upstream does not know this license id → 404 / NOT_FOUND,
    /// `UPSTREAM_LICENSE_NOT_FOUND`.
    #[error("the upstream has no license {0}")]
    UpstreamLicenseNotFound(u64),
    /// The upstream license a resolution would bind differs from the license in
    /// `field` (`ip` or `tariffId`) → 409 / FAILED_PRECONDITION,
    /// `UPSTREAM_LICENSE_MISMATCH`; the field is also given as a field violation.
    #[error(
        "upstream license {upstream_id} has {field} {upstream}, but this license has {here}; bind the upstream license of this IP and tariff"
    )]
    UpstreamLicenseMismatch {
        /// The upstream license.
        upstream_id: u64,
        /// The differing field of the License resource.
        field: &'static str,
        /// Its value upstream.
        upstream: String,
        /// Its value here.
        here: String,
    },
    /// A page token this service did not issue (or no longer reads) → 400 /
    /// INVALID_ARGUMENT, `INVALID_PAGE_TOKEN`.
    #[error(
        "invalid pageToken: pass the nextPageToken of the previous page unchanged, or none for the first page"
    )]
    InvalidPageToken,
    /// The store failed → 503 / UNAVAILABLE, `STORE_UNAVAILABLE` (the cause is logged).
    #[error("the license store is unavailable")]
    Store(#[source] StoreError),
    /// No bearer token, or one that no client has → 401 / UNAUTHENTICATED,
    /// `UNAUTHENTICATED`.
    #[error("missing or invalid bearer token; send Authorization: Bearer TOKEN")]
    Unauthenticated,
    /// The client lacks the scope (named) that the call needs → 403 /
    /// PERMISSION_DENIED, `PERMISSION_DENIED`.
    #[error("this call needs the {0} scope")]
    PermissionDenied(&'static str),
    /// The client made too many calls → 429 / RESOURCE_EXHAUSTED with a retry hint,
    /// `RATE_LIMITED`.
    #[error("too many requests from this client; retry later")]
    RateLimited {
        /// When a call is allowed again.
        retry_after: Duration,
    },
    /// A paid call (an order, a renewal, a trial conversion) would pay the license
    /// beyond the client's `max_prepaid_months` → 429 / RESOURCE_EXHAUSTED,
    /// `SPEND_CAP_REACHED`, with a retry hint when waiting can help (a renewal, once
    /// the license has run down); nothing was bought.
    #[error(
        "a license may be paid at most {max_months} months ahead; this call would pay {months} months more, so nothing was bought"
    )]
    PrepaidLimitReached {
        /// The limit.
        max_months: u32,
        /// The months the call pays.
        months: u32,
        /// When the call would fit; `None` when it never does (a longer period than
        /// the limit).
        retry_after: Option<Duration>,
    },
    /// The client's money cap per day would be passed → 429 / RESOURCE_EXHAUSTED with
    /// a retry hint, `SPEND_CAP_REACHED`; nothing was bought.
    #[error(
        "this call costs {cost} {currency}; with {spent} spent in the last 24 hours it would pass the cap of {cap} a day; nothing was bought"
    )]
    MoneyCapReached {
        /// The cap.
        cap: String,
        /// Spent in the window.
        spent: String,
        /// This call's price.
        cost: String,
        /// The account's currency.
        currency: String,
        /// When the oldest priced call leaves the window.
        retry_after: Duration,
    },
    /// The client has a money cap and the call's price is unknown, or that of a paid
    /// call of its last 24 hours (what was spent is then unknown) → 503 / UNAVAILABLE,
    /// `PRICE_UNKNOWN`; nothing was bought. Holds what is unknown and why.
    #[error("{0}; with a money cap set nothing is bought without a known price")]
    PriceUnknown(String),
    /// The client has as many change-feed streams open as it may → 429 /
    /// RESOURCE_EXHAUSTED, `STREAM_LIMIT_REACHED`.
    #[error("this client already has {limit} change-feed streams open; close one first")]
    StreamLimitReached {
        /// The cap.
        limit: usize,
    },
    /// The client's order cap (spend guard) is reached → 429 / RESOURCE_EXHAUSTED with
    /// a retry hint, `SPEND_CAP_REACHED`; nothing was ordered.
    #[error(
        "the cap of {cap} paid calls (orders, renewals, panel changes) per {window} is reached; nothing was bought"
    )]
    SpendCapReached {
        /// The cap.
        cap: u32,
        /// `hour` or `day`.
        window: &'static str,
        /// When the oldest counted order leaves the window.
        retry_after: Duration,
    },
}

/// A step in flight that holds an IP it will bind a license to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    /// An order for the IP, not finished yet.
    Order,
    /// A change of a license to the IP, not finished yet.
    IpChange,
}

/// The first half of [`ServiceError::IpHasLicense`]'s message.
fn held_by(ip: &str, visible: Option<&str>, in_flight: Option<InFlight>) -> String {
    let named = visible.map(|id| format!(" ({id})")).unwrap_or_default();
    match in_flight {
        None => format!("{ip} already has a live license{named}"),
        Some(InFlight::Order) => {
            format!("{ip} is reserved: an order for it is in flight{named}")
        }
        Some(InFlight::IpChange) => {
            format!("{ip} is reserved: a change of a license{named} to it is in flight")
        }
    }
}

impl ServiceError {
    /// [`IpHasLicense`](Self::IpHasLicense) for `taken`, naming the holding license to
    /// `call`'s client only when it may see that license.
    pub(super) fn ip_has_license(
        taken: &IpTaken,
        client: &crate::domain::ClientName,
        admin: bool,
    ) -> Self {
        Self::ip_held(taken, admin || &taken.holder.client == client)
    }

    /// [`IpHasLicense`](Self::IpHasLicense) for `taken`, naming the holding license
    /// when `visible`.
    fn ip_held(taken: &IpTaken, visible: bool) -> Self {
        Self::IpHasLicense {
            ip: taken.ip.clone(),
            visible: visible.then(|| taken.holder.id.to_string()),
            in_flight: taken.step.as_deref().map(|step| {
                if step == OperationKind::Order.name() {
                    InFlight::Order
                } else {
                    InFlight::IpChange
                }
            }),
        }
    }

    /// The stable UPPER_SNAKE reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::UnknownPanel(_) => "UNKNOWN_PANEL",
            Self::NotFound => "LICENSE_NOT_FOUND",
            Self::WebhookNotFound => "WEBHOOK_NOT_FOUND",
            Self::WebhookTargetRefused(_) => "WEBHOOK_TARGET_REFUSED",
            Self::ServerHasLicense { .. } => "SERVER_HAS_LICENSE",
            Self::IpHasLicense { .. } => "IP_HAS_LICENSE",
            Self::ServerIdAmbiguous { .. } => "SERVER_ID_AMBIGUOUS",
            Self::Precondition(p) => p.code,
            Self::OperationInProgress(_) => "OPERATION_IN_PROGRESS",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::RequestInProgress => "REQUEST_IN_PROGRESS",
            Self::UpstreamRefused(_) => "UPSTREAM_REFUSED",
            Self::UpstreamUnavailable(_) => "UPSTREAM_UNAVAILABLE",
            Self::NoDriftReport => "DRIFT_REPORT_NOT_FOUND",
            Self::UpstreamLicenseNotFound(_) => "UPSTREAM_LICENSE_NOT_FOUND",
            Self::UpstreamLicenseMismatch { .. } => "UPSTREAM_LICENSE_MISMATCH",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::Store(_) => "STORE_UNAVAILABLE",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::SpendCapReached { .. }
            | Self::PrepaidLimitReached { .. }
            | Self::MoneyCapReached { .. } => "SPEND_CAP_REACHED",
            Self::PriceUnknown(_) => "PRICE_UNKNOWN",
            Self::StreamLimitReached { .. } => "STREAM_LIMIT_REACHED",
        }
    }

    /// Field violations, for the structured part of a 400.
    pub fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::InvalidArgument(v) => v.clone(),
            Self::UnknownPanel(e) => vec![FieldViolation::new("panel", e.to_string())],
            Self::WebhookTargetRefused(why) => vec![FieldViolation::new("url", why.clone())],
            Self::UpstreamLicenseMismatch { field, .. } => {
                vec![FieldViolation::new(*field, self.to_string())]
            }
            Self::InvalidPageToken => {
                vec![FieldViolation::new(
                    "pageToken",
                    "is not a token this service issued",
                )]
            }
            _ => Vec::new(),
        }
    }

    /// A one-word classification the transports map to a status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument(_)
            | Self::UnknownPanel(_)
            | Self::InvalidPageToken
            | Self::WebhookTargetRefused(_) => ErrorKind::InvalidArgument,
            Self::NotFound
            | Self::NoDriftReport
            | Self::UpstreamLicenseNotFound(_)
            | Self::WebhookNotFound => ErrorKind::NotFound,
            Self::ServerHasLicense { .. }
            | Self::IpHasLicense { .. }
            | Self::ServerIdAmbiguous { .. }
            | Self::UpstreamLicenseMismatch { .. }
            | Self::Precondition(_) => ErrorKind::FailedPrecondition,
            Self::OperationInProgress(_) | Self::RequestInProgress => ErrorKind::Aborted,
            Self::IdempotencyKeyReused => ErrorKind::Unprocessable,
            Self::UpstreamRefused(_) => ErrorKind::Refused,
            Self::UpstreamUnavailable(_) | Self::Store(_) => ErrorKind::Unavailable,
            Self::Unauthenticated => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Self::RateLimited { .. }
            | Self::SpendCapReached { .. }
            | Self::PrepaidLimitReached { .. }
            | Self::MoneyCapReached { .. }
            | Self::StreamLimitReached { .. } => ErrorKind::ResourceExhausted,
            Self::PriceUnknown(_) => ErrorKind::Unavailable,
        }
    }

    /// How long the caller should wait before retrying, when the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after }
            | Self::SpendCapReached { retry_after, .. }
            | Self::MoneyCapReached { retry_after, .. } => Some(*retry_after),
            Self::PrepaidLimitReached { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The transport-neutral class of a [`ServiceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 / INVALID_ARGUMENT.
    InvalidArgument,
    /// 404 / NOT_FOUND.
    NotFound,
    /// 409 / FAILED_PRECONDITION.
    FailedPrecondition,
    /// 409 / ABORTED, worth retrying.
    Aborted,
    /// 422 / FAILED_PRECONDITION: the upstream said no.
    Refused,
    /// 422 / INVALID_ARGUMENT: well-formed but unusable (a reused request id).
    Unprocessable,
    /// 503 / UNAVAILABLE.
    Unavailable,
    /// 401 / UNAUTHENTICATED.
    Unauthenticated,
    /// 403 / PERMISSION_DENIED.
    PermissionDenied,
    /// 429 / RESOURCE_EXHAUSTED, with a retry hint.
    ResourceExhausted,
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::OperationInProgress(id) => Self::OperationInProgress(id.to_string()),
            StoreError::BadPageToken => Self::InvalidPageToken,
            // Without the caller at hand, the holder is not named (see
            // `ip_has_license` for the answer that names it to whom may see it).
            StoreError::IpTaken(taken) => Self::ip_held(&taken, false),
            StoreError::Reused(id) => Self::Precondition(Precondition {
                code: "INVALID_LICENSE_STATE",
                message: format!(
                    "license {id} is REUSED: another license took its parked upstream license"
                ),
            }),
            StoreError::Refused(precondition) => Self::Precondition(precondition),
            StoreError::ServerTaken(existing) => Self::ServerHasLicense {
                existing,
                use_instead: "ReleaseLicense",
            },
            other => Self::Store(other),
        }
    }
}
