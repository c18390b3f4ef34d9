//! The license and its life cycle.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ClientName, FieldViolation, Hostname, LicenseId, LicenseIp, ServerId};

/// Where a license is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LicenseState {
    /// Accepted and stored; not yet sent upstream.
    Pending,
    /// Ordered upstream; waiting for the active status and the key.
    Provisioning,
    /// Active upstream with a key.
    Active,
    /// Suspended upstream.
    Suspended,
    /// Deleted upstream; kept here as history.
    Cancelled,
    /// The upstream refused the order; nothing was bought.
    Failed,
    /// The outcome is unknown after every safe check; a person must look. Never
    /// retried blindly.
    NeedsAttention,
    /// Suspended and parked upstream (bound to `0.0.0.0`) with its paid period left:
    /// a pool entry of its tariff, which the next order of that tariff takes instead
    /// of buying. It no longer holds its server or IP.
    Parked,
    /// Its parked upstream license was taken by another license of ours
    /// ([`License::reused_by`]); kept here as history.
    Reused,
}

impl LicenseState {
    /// Every state, in life-cycle order.
    pub const ALL: [Self; 9] = [
        Self::Pending,
        Self::Provisioning,
        Self::Active,
        Self::Suspended,
        Self::Cancelled,
        Self::Failed,
        Self::NeedsAttention,
        Self::Parked,
        Self::Reused,
    ];

    /// The stable UPPER_SNAKE name used on both APIs and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Provisioning => "PROVISIONING",
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::Cancelled => "CANCELLED",
            Self::Failed => "FAILED",
            Self::NeedsAttention => "NEEDS_ATTENTION",
            Self::Parked => "PARKED",
            Self::Reused => "REUSED",
        }
    }

    /// Parses [`as_str`](Self::as_str) names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the license holds (or may hold) a paid upstream license bound to its
    /// server: a server, and an IP, has at most one live license. A parked license
    /// holds a paid license but no server.
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            Self::Cancelled | Self::Failed | Self::Parked | Self::Reused
        )
    }

    /// The SQL condition on a `state` column that [`is_live`](Self::is_live) is; the
    /// partial unique indexes on the server and the IP use the same text.
    pub const LIVE_SQL: &'static str = "state NOT IN ('CANCELLED', 'FAILED', 'PARKED', 'REUSED')";
}

impl fmt::Display for LicenseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The billing period of an order or renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// One month.
    Month,
    /// Twelve months.
    Year,
    /// A trial (upstream period -100).
    Trial,
}

impl Period {
    /// Validates a paid period in months (1 or 12); 0 means the default (1).
    pub fn paid_months(months: i32, field: &str) -> Result<Self, FieldViolation> {
        match months {
            0 | 1 => Ok(Self::Month),
            12 => Ok(Self::Year),
            _ => Err(FieldViolation::new(field, "must be 1 or 12 (months)")),
        }
    }

    /// The upstream `period` value.
    pub fn upstream_value(self) -> i32 {
        match self {
            Self::Month => 1,
            Self::Year => 12,
            Self::Trial => -100,
        }
    }

    /// Months as shown on the APIs (0 for a trial).
    pub fn months(self) -> i32 {
        match self {
            Self::Month => 1,
            Self::Year => 12,
            Self::Trial => 0,
        }
    }

    /// Inverse of [`upstream_value`](Self::upstream_value).
    pub fn from_upstream(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::Month),
            12 => Some(Self::Year),
            -100 => Some(Self::Trial),
            _ => None,
        }
    }
}

/// The last upstream refusal or failure seen for a license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamFailure {
    /// A stable UPPER_SNAKE reason, e.g. `UPSTREAM_REFUSED`.
    pub code: String,
    /// What happened, without upstream internals.
    pub message: String,
}

/// A license as the service keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    /// Our id; also the upstream `remoteid`.
    pub id: LicenseId,
    /// The API client that created it.
    pub client: ClientName,
    /// The caller's server id.
    pub server_id: ServerId,
    /// The address the license is bound to.
    pub ip: LicenseIp,
    /// The server's host name, if given.
    pub hostname: Option<Hostname>,
    /// Canonical panel name at the time of the last change.
    pub panel: String,
    /// Upstream tariff id.
    pub tariff_id: u32,
    /// Node count (Business only).
    pub nodes: Option<u32>,
    /// Billing period.
    pub period: Period,
    /// Whether the upstream renews it by itself.
    pub auto_renew: bool,
    /// Current state.
    pub state: LicenseState,
    /// The license key, once issued.
    pub license_key: Option<String>,
    /// The upstream item id, once ordered.
    pub upstream_id: Option<u64>,
    /// When the paid period ends.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expire_time: Option<OffsetDateTime>,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub create_time: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub update_time: OffsetDateTime,
    /// The last upstream error, if the last attempt failed.
    pub last_error: Option<UpstreamFailure>,
    /// The parked license whose upstream license this one took instead of buying.
    pub reused_from: Option<LicenseId>,
    /// The license that took this parked one's upstream license (state REUSED).
    pub reused_by: Option<LicenseId>,
}

/// The most nodes a license of a panel sold per node (Business) may have.
pub const MAX_NODES: u32 = 100;

/// What an order asks for, validated and resolved against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLicense {
    /// The ordering client.
    pub client: ClientName,
    /// The server.
    pub server_id: ServerId,
    /// Its address.
    pub ip: LicenseIp,
    /// Its host name.
    pub hostname: Option<Hostname>,
    /// Canonical panel name.
    pub panel: String,
    /// Upstream tariff id.
    pub tariff_id: u32,
    /// Node count (Business only).
    pub nodes: Option<u32>,
    /// Billing period.
    pub period: Period,
    /// Auto-renewal.
    pub auto_renew: bool,
}

impl NewLicense {
    /// The license row this order starts as: PENDING, nothing upstream yet.
    pub fn into_pending(self, id: LicenseId, now: OffsetDateTime) -> License {
        License {
            id,
            client: self.client,
            server_id: self.server_id,
            ip: self.ip,
            hostname: self.hostname,
            panel: self.panel,
            tariff_id: self.tariff_id,
            nodes: self.nodes,
            period: self.period,
            auto_renew: self.auto_renew,
            state: LicenseState::Pending,
            license_key: None,
            upstream_id: None,
            expire_time: None,
            create_time: now,
            update_time: now,
            last_error: None,
            reused_from: None,
            reused_by: None,
        }
    }

    /// Whether an existing license already satisfies this order (same panel).
    pub fn matches(&self, existing: &License) -> bool {
        existing.tariff_id == self.tariff_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in LicenseState::ALL {
            assert_eq!(LicenseState::parse(s.as_str()), Some(s));
        }
        assert_eq!(LicenseState::parse("active"), None);
    }

    #[test]
    fn ended_and_pooled_licenses_hold_no_server() {
        let dead: Vec<_> = LicenseState::ALL
            .into_iter()
            .filter(|s| !s.is_live())
            .collect();
        assert_eq!(
            dead,
            [
                LicenseState::Cancelled,
                LicenseState::Failed,
                LicenseState::Parked,
                LicenseState::Reused
            ]
        );
        for s in LicenseState::ALL {
            let named = LicenseState::LIVE_SQL.contains(&format!("'{}'", s.as_str()));
            assert_eq!(named, !s.is_live(), "{s}");
        }
    }

    #[test]
    fn paid_periods_are_one_or_twelve_months() {
        assert_eq!(Period::paid_months(0, "p").unwrap(), Period::Month);
        assert_eq!(Period::paid_months(12, "p").unwrap(), Period::Year);
        assert!(Period::paid_months(7, "p").is_err());
        assert_eq!(Period::Trial.upstream_value(), -100);
    }
}
