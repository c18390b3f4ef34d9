//! Change-feed events: every visible change of a license, numbered by the store in
//! commit order so a reader resuming from the last id it saw misses nothing.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CallPrice, License, LicenseState};

/// What happened to a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// An order was accepted.
    Created,
    /// The state changed.
    StateChanged,
    /// A (new) license key was issued.
    KeyIssued,
    /// The paid period was extended.
    Renewed,
    /// The license moved to another IP.
    IpChanged,
    /// The license moved to another tariff.
    PanelChanged,
    /// An upstream call failed; `lastError` says why.
    OperationFailed,
}

impl EventKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::StateChanged => "STATE_CHANGED",
            Self::KeyIssued => "KEY_ISSUED",
            Self::Renewed => "RENEWED",
            Self::IpChanged => "IP_CHANGED",
            Self::PanelChanged => "PANEL_CHANGED",
            Self::OperationFailed => "OPERATION_FAILED",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Created,
            Self::StateChanged,
            Self::KeyIssued,
            Self::Renewed,
            Self::IpChanged,
            Self::PanelChanged,
            Self::OperationFailed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The events that lead from `before` to `after`.
    pub fn between(before: &License, after: &License) -> Vec<Self> {
        let mut kinds = Vec::new();
        if before.state != after.state {
            kinds.push(Self::StateChanged);
        }
        if after.license_key.is_some() && before.license_key != after.license_key {
            kinds.push(Self::KeyIssued);
        }
        if before.ip != after.ip {
            kinds.push(Self::IpChanged);
        }
        if before.tariff_id != after.tariff_id {
            kinds.push(Self::PanelChanged);
        }
        // An expiry that moves later on a license that was already active is a renewal;
        // the first expiry of a new license is part of its activation.
        if before.state != LicenseState::Pending
            && before.state != LicenseState::Provisioning
            && after.expire_time > before.expire_time
            && before.expire_time.is_some()
        {
            kinds.push(Self::Renewed);
        }
        if after.last_error.is_some() && before.last_error != after.last_error {
            kinds.push(Self::OperationFailed);
        }
        kinds
    }
}

/// One event with the license as it was right after the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the feed; strictly increasing.
    pub id: i64,
    /// What happened.
    pub kind: EventKind,
    /// The license after the change.
    pub license: License,
    /// When it was recorded.
    pub time: OffsetDateTime,
    /// The price of the paid call the event is the result of (an order's CREATED, a
    /// renewal's RENEWED, a panel change's PANEL_CHANGED), as recorded when the call
    /// was accepted; `None` on other events.
    pub price: Option<CallPrice>,
}
