//! The audit log's entries: who bought or changed which license, when, with which
//! request id, and how it ended.

use std::fmt;

use time::OffsetDateTime;

use super::{CallPrice, ClientName, LicenseId, Period};

/// The action an adoption is recorded as (the others are operation kind names).
pub const ADOPT_ACTION: &str = "ADOPT";

/// The action an operator's resolution of a `NEEDS_ATTENTION` license is recorded as.
pub const RESOLVE_ACTION: &str = "RESOLVE";

/// Where an audited action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// Accepted and durably queued; the upstream work follows.
    Accepted,
    /// Carried out upstream (or, for an adoption, taken under management).
    Succeeded,
    /// Ended without the change (the upstream refused); nothing was bought.
    Failed,
    /// The outcome is unknown after every safe check; a person must look.
    NeedsAttention,
}

impl AuditOutcome {
    /// The stable stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::NeedsAttention => "NEEDS_ATTENTION",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Succeeded,
            Self::Failed,
            Self::NeedsAttention,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The actions that cost money: what the spend guard counts and prices.
pub const PAID_ACTIONS: [&str; 3] = ["ORDER", "RENEW", "CHANGE_PANEL"];

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Store-assigned id, increasing; 0 before it is stored.
    pub id: i64,
    /// When it was recorded.
    pub time: OffsetDateTime,
    /// Who: the client that made the call.
    pub client: ClientName,
    /// What: `ORDER`, `RENEW`, `CHANGE_IP`, `CHANGE_PANEL`, `SUSPEND`, `RESUME`,
    /// `CANCEL`, `REISSUE_KEY`, `ADOPT` or `RESOLVE`.
    pub action: String,
    /// The license.
    pub license_id: LicenseId,
    /// The license's server.
    pub server_id: String,
    /// The caller's request id, if it sent one.
    pub request_id: Option<String>,
    /// The upstream license id, once known.
    pub upstream_id: Option<u64>,
    /// Where the action stands.
    pub outcome: AuditOutcome,
    /// Why it failed, for people.
    pub detail: Option<String>,
    /// The price of a paid call (order, renewal, panel change), on its ACCEPTED
    /// entry: recorded for every paid call, known or unknown with its reason; the
    /// spend guard adds the known ones up. `None` on every other entry.
    pub price: Option<CallPrice>,
    /// What a paid call bought (its panel and period), beside its price on the
    /// ACCEPTED entry, for the cost report; `None` on every other entry.
    pub bought: Option<Bought>,
}

/// What a paid call bought: the panel (an order's, the license's at a renewal, the
/// new one of a panel change) for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bought {
    /// The panel's canonical name.
    pub panel: String,
    /// The period paid for.
    pub period: Period,
}

impl AuditEntry {
    /// An entry of `client`'s `action` on `license`, recorded now, without detail or
    /// price.
    pub fn of(
        license: &super::License,
        client: ClientName,
        action: &str,
        request_id: Option<String>,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            id: 0,
            time: OffsetDateTime::now_utc(),
            client,
            action: action.to_owned(),
            license_id: license.id,
            server_id: license.server_id.to_string(),
            request_id,
            upstream_id: license.upstream_id,
            outcome,
            detail: None,
            price: None,
            bought: None,
        }
    }
}

/// Which audit entries to list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this license's.
    pub license_id: Option<LicenseId>,
    /// Only this action's.
    pub action: Option<String>,
    /// Only entries with this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only this client's.
    pub client: Option<ClientName>,
    /// Only entries recorded at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries recorded before this time.
    pub until: Option<OffsetDateTime>,
}
