//! What the pages show: view models built from the core's types, and the templates
//! (`templates/console/`, compiled with the crate). Every value is escaped by the
//! templates; nothing here builds HTML.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;

use crate::domain::{AuditEntry, License, LicenseState};

/// Renders `page`; a template that fails to render (it cannot, short of a bug) is a
/// logged 500.
pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error.message = %e, "console template failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The frame around every page of a logged-in person.
pub struct Chrome {
    /// The client logged in.
    pub client: String,
    /// Whether it has the admin scope (drift and audit are shown).
    pub admin: bool,
    /// The session's CSRF token, for the log-out form and every other form.
    pub csrf: String,
    /// The tab the page belongs to.
    pub tab: &'static str,
}

impl Chrome {
    /// The frame of `session` on `tab`.
    pub fn of(session: &super::session::Session, tab: &'static str) -> Self {
        Self {
            client: session.principal.client.to_string(),
            admin: session.is_admin(),
            csrf: session.csrf.clone(),
            tab,
        }
    }
}

/// A time as people read it, in UTC.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A day, `YYYY-MM-DD`.
pub fn day(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The CSS class of a state's badge.
pub fn state_class(state: LicenseState) -> &'static str {
    match state {
        LicenseState::Active => "ok",
        LicenseState::Pending | LicenseState::Provisioning => "busy",
        LicenseState::Suspended => "warn",
        LicenseState::NeedsAttention | LicenseState::Failed => "bad",
        LicenseState::Cancelled | LicenseState::Reused => "off",
        LicenseState::Parked => "pool",
    }
}

/// One license in a table.
pub struct LicenseRow {
    pub id: String,
    pub client: String,
    pub server_id: String,
    pub ip: String,
    pub hostname: String,
    pub panel: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub expires: String,
    pub updated: String,
    pub last_error: String,
    /// The downstream (`/billmgr`) item id; empty when not read.
    pub item_id: String,
}

impl LicenseRow {
    /// The row with the license's downstream item id.
    pub fn with_item(mut self, item: Option<u64>) -> Self {
        self.item_id = item.map(|i| i.to_string()).unwrap_or_default();
        self
    }
}

impl From<&License> for LicenseRow {
    fn from(l: &License) -> Self {
        Self {
            id: l.id.to_string(),
            client: l.client.to_string(),
            server_id: l.server_id.to_string(),
            ip: l.ip.to_string(),
            hostname: l
                .hostname
                .as_ref()
                .map(|h| h.to_string())
                .unwrap_or_default(),
            panel: l.panel.clone(),
            state: l.state.as_str(),
            state_class: state_class(l.state),
            expires: l.expire_time.map(day).unwrap_or_default(),
            updated: when(l.update_time),
            last_error: l
                .last_error
                .as_ref()
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_default(),
            item_id: String::new(),
        }
    }
}

/// One audit entry in a table.
pub struct AuditRow {
    pub time: String,
    pub client: String,
    pub action: String,
    pub license_id: String,
    pub server_id: String,
    pub outcome: &'static str,
    pub outcome_class: &'static str,
    pub detail: String,
    pub request_id: String,
    pub cost: String,
}

impl From<&AuditEntry> for AuditRow {
    fn from(e: &AuditEntry) -> Self {
        use crate::domain::AuditOutcome as O;
        Self {
            time: when(e.time),
            client: e.client.to_string(),
            action: e.action.clone(),
            license_id: e.license_id.to_string(),
            server_id: e.server_id.clone(),
            outcome: e.outcome.as_str(),
            outcome_class: match e.outcome {
                O::Accepted => "busy",
                O::Succeeded => "ok",
                O::Failed | O::NeedsAttention => "bad",
            },
            detail: e.detail.clone().unwrap_or_default(),
            request_id: e.request_id.clone().unwrap_or_default(),
            cost: e
                .price
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }
}

/// One event of a license: what changed and the license right after it.
pub struct EventRow {
    pub time: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub state_class: &'static str,
    /// What the license was after the change, as far as the kind concerns it.
    pub detail: String,
}

impl From<&crate::domain::Event> for EventRow {
    fn from(e: &crate::domain::Event) -> Self {
        use crate::domain::EventKind as K;
        let l = &e.license;
        let detail = match e.kind {
            K::Created | K::PanelChanged => l.panel.clone(),
            K::IpChanged => l.ip.to_string(),
            K::Renewed => l
                .expire_time
                .map(|t| format!("expires {}", day(t)))
                .unwrap_or_default(),
            K::OperationFailed => l
                .last_error
                .as_ref()
                .map(|f| format!("{}: {}", f.code, f.message))
                .unwrap_or_default(),
            K::KeyIssued | K::StateChanged => String::new(),
        };
        Self {
            time: when(e.time),
            kind: e.kind.as_str(),
            state: l.state.as_str(),
            state_class: state_class(l.state),
            detail,
        }
    }
}

/// `login.html`.
#[derive(Template)]
#[template(path = "console/login.html")]
pub struct Login {
    pub csrf: String,
    pub error: String,
}

/// `error.html`.
#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
    pub status: u16,
}

/// A state and how many licenses are in it.
pub struct StateCount {
    pub state: &'static str,
    pub class: &'static str,
    pub count: u64,
}

/// A client's paid calls of the day against its caps.
pub struct UsageRow {
    pub client: String,
    pub paid_calls: u64,
    pub per_day: String,
    pub per_hour: String,
    pub spent: String,
    /// Paid calls whose price is unknown, not in `spent`.
    pub unpriced: u64,
    pub spend_cap: String,
    /// At or over the daily cap.
    pub at_cap: bool,
}

/// The latest drift report in brief.
pub struct DriftSummary {
    pub generated: String,
    pub orphans: u64,
    pub missing: u64,
    pub mismatches: u64,
    pub expiring: u64,
}

/// `overview.html`.
#[derive(Template)]
#[template(path = "console/overview.html")]
pub struct Overview {
    pub chrome: Chrome,
    /// Empty for a client that may not see every client's counts.
    pub counts: Vec<StateCount>,
    pub attention: Vec<LicenseRow>,
    pub attention_more: bool,
    pub store_ok: bool,
    pub upstream_ok: bool,
    pub breaker_open: bool,
    pub draining: bool,
    pub drift: Option<DriftSummary>,
    pub usage: Vec<UsageRow>,
}

/// A choice of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// `licenses.html`.
#[derive(Template)]
#[template(path = "console/licenses.html")]
pub struct Licenses {
    pub chrome: Chrome,
    pub states: Vec<Choice>,
    pub panels: Vec<Choice>,
    pub server_id: String,
    pub ip: String,
    pub client: String,
    /// The item id filter as typed.
    pub item: String,
    pub rows: Vec<LicenseRow>,
    /// The query of the next page, if there is one.
    pub next: Option<String>,
    /// Whether this is a later page (a link back to the first is shown).
    pub paged: bool,
    /// The query of the first page with the same filters.
    pub first: String,
}

/// An action the license page offers.
pub struct ActionLink {
    pub slug: &'static str,
    pub label: &'static str,
    pub danger: bool,
}

/// `license.html`.
#[derive(Template)]
#[template(path = "console/license.html")]
pub struct LicensePage {
    pub chrome: Chrome,
    pub l: LicenseRow,
    pub upstream_id: String,
    /// Shown instead of an upstream id the license does not have: how far its order
    /// got upstream.
    pub upstream_unbound: String,
    pub tariff_id: u32,
    pub period: String,
    pub auto_renew: bool,
    pub nodes: String,
    pub license_key: String,
    /// The license this one took from the pool instead of buying; empty if none.
    pub reused_from: String,
    /// The license that took this one's upstream license (REUSED); empty if none.
    pub reused_by: String,
    pub created: String,
    pub done: String,
    pub actions: Vec<ActionLink>,
    pub may_write: bool,
    /// `None`: the client may not read the audit log.
    pub history: Option<Vec<AuditRow>>,
    /// The license's latest events, newest first.
    pub events: Vec<EventRow>,
}

/// A hidden field of a confirmation form.
pub struct Hidden {
    pub name: &'static str,
    pub value: String,
}

/// `confirm.html`: an action's inputs, then its confirmation with the price.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct Confirm {
    pub chrome: Chrome,
    pub l: LicenseRow,
    pub slug: &'static str,
    pub title: &'static str,
    pub explain: &'static str,
    pub danger: bool,
    /// Where the action sends the license, when that depends on more than its state
    /// (a release: parked or cancelled by the pool's rules); empty otherwise.
    pub outlook: String,
    /// Inputs still needed: the first step shows them.
    pub ask_period: bool,
    pub ask_ip: bool,
    pub ask_panel: bool,
    /// Resolving a `NEEDS_ATTENTION` license: the action, the upstream id, the reason.
    pub ask_resolve: bool,
    /// None is selected until the operator chooses.
    pub modes: Vec<Choice>,
    /// Whether one of `modes` is chosen (else "Choose a resolution" is).
    pub mode_chosen: bool,
    /// Why the inputs are asked again (e.g. no resolution was chosen); empty at first.
    pub problem: &'static str,
    pub upstream_id: String,
    pub reason: String,
    /// Orphans of the latest drift report on the license's IP (BIND candidates).
    pub candidates: Vec<String>,
    pub periods: Vec<Choice>,
    pub panels: Vec<Choice>,
    pub ip: String,
    /// The second step: what will be sent, and the price.
    pub ready: bool,
    pub summary: Vec<(String, String)>,
    pub price: String,
    pub price_error: String,
    pub hidden: Vec<Hidden>,
    pub request_key: String,
}

/// An orphan of the drift report.
pub struct OrphanRow {
    pub upstream_id: u64,
    pub ip: String,
    pub tariff: String,
    pub licname: String,
    pub remote_id: String,
    pub status: u32,
    pub expires: String,
    /// A `NEEDS_ATTENTION` license on the orphan's IP, which the orphan may resolve
    /// (BIND): its id and server id.
    pub resolves: Option<(String, String)>,
}

/// A license of the drift report (missing, mismatched or expiring).
pub struct DriftRow {
    pub id: String,
    pub server_id: String,
    pub what: String,
    pub ours: String,
    pub upstream: String,
}

/// `drift.html`.
#[derive(Template)]
#[template(path = "console/drift.html")]
pub struct Drift {
    pub chrome: Chrome,
    pub summary: Option<DriftSummary>,
    pub truncated: bool,
    pub upstream_seen: u64,
    pub local_checked: u64,
    pub orphans: Vec<OrphanRow>,
    pub missing: Vec<DriftRow>,
    pub mismatches: Vec<DriftRow>,
    pub expiring: Vec<DriftRow>,
}

/// `audit.html`.
#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct Audit {
    pub chrome: Chrome,
    pub client: String,
    pub license_id: String,
    pub actions: Vec<Choice>,
    pub since: String,
    pub until: String,
    pub rows: Vec<AuditRow>,
    pub next: Option<String>,
    pub paged: bool,
    pub first: String,
}

/// One row of the cost report, as the page shows it.
pub struct CostLine {
    pub client: String,
    pub panel: String,
    pub paid_calls: u32,
    pub unpriced_calls: u32,
    pub failed_calls: u32,
    pub orders: String,
    pub renewals: String,
    pub panel_changes: String,
    pub cost: String,
    pub revenue: String,
    pub margin: String,
    pub live: u32,
    pub next_renewals: u32,
    pub committed: String,
    pub next_unpriced: u32,
}

/// A bar of the cost chart (SVG units).
pub struct ChartBar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// `cost` or `revenue`.
    pub class: &'static str,
    /// The tooltip: the month and the amount.
    pub title: String,
    /// The month under the bar, on every other month.
    pub label: Option<String>,
    pub label_x: u32,
}

/// A tick of the amount axis.
pub struct ChartTick {
    pub y: u32,
    pub label: String,
}

/// The twelve months' chart, drawn by the template as inline SVG.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub right: u32,
    pub bottom: u32,
    pub label_y: u32,
    pub bars: Vec<ChartBar>,
    pub ticks: Vec<ChartTick>,
    pub with_revenue: bool,
}

/// `costs.html`.
#[derive(Template)]
#[template(path = "console/costs.html")]
pub struct Costs {
    pub chrome: Chrome,
    pub month: String,
    pub previous: String,
    pub next: String,
    pub next_month: String,
    pub currency: String,
    pub revenue_currency: String,
    pub rows: Vec<CostLine>,
    pub totals: CostLine,
    pub chart: Chart,
}

/// One subscription as the webhooks page shows it.
pub struct WebhookRow {
    pub id: String,
    pub client: String,
    pub url: String,
    pub kinds: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub backlog: u64,
    pub delivered: u64,
    pub attempts: u32,
    pub last_error: String,
    pub next_attempt: String,
}

/// `webhooks.html`.
#[derive(Template)]
#[template(path = "console/webhooks.html")]
pub struct Webhooks {
    pub chrome: Chrome,
    pub can_write: bool,
    pub rows: Vec<WebhookRow>,
    /// Just created: its URL and secret, shown this once.
    pub created: Option<(String, String)>,
}
