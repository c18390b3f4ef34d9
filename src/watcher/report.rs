//! What a pass did, as logged, printed (`--once`, `--dry-run`) and shown on `/status`.

use serde::Serialize;

use super::plan::{Held, PendingCancel};

/// The listing part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ListingSummary {
    /// Whether it counted as evidence of absence.
    pub complete: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Servers listed.
    pub servers: usize,
    /// HTTP requests to the platform.
    pub requests: u64,
}

/// One call planned or made.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// `order`, `move`, `panel`, `move_and_panel`, `cancel` or `release`.
    pub action: &'static str,
    /// Server id.
    pub server_id: String,
    /// The license acted on (for an order: the one ordered, once known).
    pub license_id: Option<String>,
    /// The address asked for (ensure calls).
    pub ip: Option<String>,
    /// The panel asked for (ensure calls).
    pub panel: Option<String>,
    /// The request id sent.
    pub request_id: String,
    /// `planned` (dry run), `done`, `unchanged` (the license already matched) or
    /// `error`.
    pub result: &'static str,
    /// Where a release sent the license: `parked` or `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// Why a release cancelled instead of parking (the pool's rules, as the service
    /// said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error, when the call failed.
    pub error: Option<String>,
}

/// A whole pass.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// Unix time the pass started (the watcher's clock).
    pub started_at: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether nothing was sent and no bookkeeping written.
    pub dry_run: bool,
    /// The platform listing.
    pub listing: ListingSummary,
    /// Calls to license-facade (list pages, ensures, cancels, the panel catalog).
    pub api_calls: u64,
    /// Listed servers that should have a license.
    pub servers_marked: usize,
    /// Live licenses of this instance before the pass.
    pub licenses_live: usize,
    /// Servers whose license matched already.
    pub in_order: usize,
    /// Licenses ordered.
    pub ordered: usize,
    /// Licenses moved to another address.
    pub moved: usize,
    /// Licenses switched to another panel.
    pub panel_changed: usize,
    /// Licenses cancelled: by `CancelLicense`, or released and cancelled by the
    /// pool's rules.
    pub cancelled: usize,
    /// Licenses released (`ReleaseLicense`, the park policy): parked or cancelled.
    pub released: usize,
    /// Of those, parked in the service's pool.
    pub parked: usize,
    /// Calls that failed (retried at the next pass).
    pub errors: usize,
    /// Every call planned or made.
    pub steps: Vec<StepResult>,
    /// Cancellations waiting for their evidence.
    pub pending: Vec<PendingCancel>,
    /// What was left alone, and why.
    pub held: Vec<Held>,
    /// Why nothing was cancelled, when the share limit stopped it.
    pub blocked: Option<String>,
}
