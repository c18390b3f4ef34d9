//! The license pool: paid licenses parked upstream instead of cancelled, and taken by
//! the next order of their tariff instead of buying. A cancelled license's paid month
//! is not refunded, so a license with paid time left is worth keeping, as long as the
//! upstream lets it move to another IP: BILLmanager moves a parked license only when
//! its last IP change and its last key change are over a cooldown old (`real_ipchange`
//! and `real_keychange` in its list), about a month.
//!
//! What is here is the rules; the pool itself is licenses in the PARKED state.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::License;

/// The address a parked license is bound to upstream (as ISPsystem's own integrations
/// park them).
pub const PARKED_IP: &str = "0.0.0.0";

/// What to do with a parked license when its paid period is about to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AtExpiry {
    /// Cancel it before its next paid period (the default): nobody pays for a
    /// license nobody uses.
    Cancel,
    /// Leave it to the upstream: it ends with its paid period unless the upstream
    /// renews it by itself.
    Expire,
}

/// The rules of one tariff's pool (every field has the default of
/// [`PoolRules::default`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolRules {
    /// Whether released licenses of the tariff are parked at all.
    pub park: bool,
    /// A license with fewer days of its paid period left is cancelled, not parked:
    /// with the upstream's cooldowns a parked license usually waits about a month.
    pub park_min_days_left: u32,
    /// At most this many parked licenses of the tariff; a release beyond it cancels.
    pub max_parked: u32,
    /// A parked license with fewer days left is not taken by an order.
    pub reuse_min_days_left: u32,
    /// Ask the upstream for a new key when a parked license is taken (the key of the
    /// server that had it stops working even if it was copied).
    pub new_key_on_reuse: bool,
    /// What happens at the end of a parked license's paid period.
    pub at_expiry: AtExpiry,
    /// How many days before the end of its paid period a parked license is
    /// cancelled ([`AtExpiry::Cancel`]).
    pub cancel_days_before_expiry: u32,
}

impl Default for PoolRules {
    fn default() -> Self {
        Self {
            park: true,
            park_min_days_left: 20,
            max_parked: 100,
            reuse_min_days_left: 3,
            new_key_on_reuse: false,
            at_expiry: AtExpiry::Cancel,
            cancel_days_before_expiry: 2,
        }
    }
}

/// The pool's configuration: the upstream's cooldowns, and rules per tariff.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// The upstream's cooldown after an IP change (BILLmanager: about a month).
    pub ip_change_cooldown_days: u32,
    /// The upstream's cooldown after a new key.
    pub key_change_cooldown_days: u32,
    /// The rules of tariffs not named in `tariffs`.
    pub default: PoolRules,
    /// Rules per tariff id (`[pool.tariffs.55228]`; each starts from the built-in
    /// defaults, not from `default`).
    pub tariffs: BTreeMap<String, PoolRules>,
    /// Seconds between sweeps of the pool (parked licenses due to be cancelled,
    /// refused reuses' licenses given back).
    pub sweep_interval_secs: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            ip_change_cooldown_days: 30,
            key_change_cooldown_days: 30,
            default: PoolRules::default(),
            tariffs: BTreeMap::new(),
            sweep_interval_secs: 300,
        }
    }
}

/// Where a release sends a license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// To the pool.
    Park,
    /// Cancelled, and why it is not worth parking.
    Cancel(String),
}

/// What an order may take from the pool: a parked license of `tariff_id` with
/// `nodes`, whose cooldowns have passed by `now`, and with its paid period running at
/// least until `paid_until_at_least`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPick {
    /// The tariff.
    pub tariff_id: u32,
    /// The node count (Business), as the order's.
    pub nodes: Option<u32>,
    /// Its last IP change upstream must be at or before this.
    pub ip_changed_by: OffsetDateTime,
    /// Its last key change upstream must be at or before this.
    pub key_changed_by: OffsetDateTime,
    /// Its paid period must run at least until this.
    pub paid_until_at_least: OffsetDateTime,
    /// Whether the move asks for a new key.
    pub new_key: bool,
}

impl PoolConfig {
    /// The rules of `tariff_id`.
    pub fn rules(&self, tariff_id: u32) -> &PoolRules {
        self.tariffs
            .get(&tariff_id.to_string())
            .unwrap_or(&self.default)
    }

    /// Refuses a `tariffs` key that is not a tariff id, or no sweep interval.
    pub fn check(&self) -> Result<(), String> {
        if self.sweep_interval_secs == 0 {
            return Err("pool.sweep_interval_secs: must be at least 1".into());
        }
        match self.tariffs.keys().find(|k| k.parse::<u32>().is_err()) {
            Some(bad) => Err(format!(
                "pool.tariffs.{bad}: the key must be a tariff id (a number)"
            )),
            None => Ok(()),
        }
    }

    /// Where a release of `license` sends it, with `parked` licenses of its tariff in
    /// the pool already.
    pub fn release(&self, license: &License, parked: u64, now: OffsetDateTime) -> Release {
        let rules = self.rules(license.tariff_id);
        if !rules.park {
            return Release::Cancel(format!(
                "the pool's rules of tariff {} do not park",
                license.tariff_id
            ));
        }
        let left = license
            .expire_time
            .map_or(Duration::ZERO, |t| (t - now).max(Duration::ZERO));
        if left < Duration::days(rules.park_min_days_left.into()) {
            return Release::Cancel(format!(
                "{} days of its paid period are left; the pool keeps licenses with at least {}",
                left.whole_days(),
                rules.park_min_days_left
            ));
        }
        if parked >= u64::from(rules.max_parked) {
            return Release::Cancel(format!(
                "the pool of tariff {} holds {parked} licenses, its most",
                license.tariff_id
            ));
        }
        Release::Park
    }

    /// What an order of `tariff_id` with `nodes` may take from the pool at `now`;
    /// `None` when the tariff's rules do not park.
    pub fn pick(
        &self,
        tariff_id: u32,
        nodes: Option<u32>,
        now: OffsetDateTime,
    ) -> Option<PoolPick> {
        let rules = self.rules(tariff_id);
        rules.park.then(|| PoolPick {
            tariff_id,
            nodes,
            ip_changed_by: now - Duration::days(self.ip_change_cooldown_days.into()),
            key_changed_by: now - Duration::days(self.key_change_cooldown_days.into()),
            paid_until_at_least: now + Duration::days(rules.reuse_min_days_left.into()),
            new_key: rules.new_key_on_reuse,
        })
    }

    /// When a parked license whose last IP and key changes upstream were at
    /// `ip_changed` and `key_changed` may be moved.
    pub fn reusable_from(
        &self,
        ip_changed: OffsetDateTime,
        key_changed: OffsetDateTime,
    ) -> OffsetDateTime {
        (ip_changed + Duration::days(self.ip_change_cooldown_days.into()))
            .max(key_changed + Duration::days(self.key_change_cooldown_days.into()))
    }

    /// Whether a parked license of `tariff_id` expiring at `expire_time` is due to be
    /// cancelled at `now` ([`AtExpiry::Cancel`]).
    pub fn cancel_due(
        &self,
        tariff_id: u32,
        expire_time: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> bool {
        let rules = self.rules(tariff_id);
        rules.at_expiry == AtExpiry::Cancel
            && expire_time
                .is_some_and(|t| t - Duration::days(rules.cancel_days_before_expiry.into()) <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientName, LicenseId, LicenseIp, LicenseState, Period, ServerId};

    fn license(days_left: i64, now: OffsetDateTime) -> License {
        License {
            id: LicenseId::generate(),
            client: ClientName::anonymous(),
            server_id: ServerId::parse("srv-1", "serverId").unwrap(),
            ip: LicenseIp::parse("203.0.113.7", "ip").unwrap(),
            hostname: None,
            panel: "ispmanager-pro".into(),
            tariff_id: 55228,
            nodes: None,
            period: Period::Year,
            auto_renew: false,
            state: LicenseState::Active,
            license_key: Some("KEY".into()),
            upstream_id: Some(7),
            expire_time: Some(now + Duration::days(days_left)),
            create_time: now,
            update_time: now,
            last_error: None,
            reused_from: None,
            reused_by: None,
        }
    }

    #[test]
    fn a_release_parks_only_what_is_worth_keeping() {
        let now = OffsetDateTime::now_utc();
        let mut pool = PoolConfig::default();
        assert_eq!(pool.release(&license(300, now), 0, now), Release::Park);
        // Ends in days: the cooldowns would keep it waiting past its end.
        assert!(matches!(
            pool.release(&license(5, now), 0, now),
            Release::Cancel(why) if why.contains("5 days")
        ));
        // A full pool cancels.
        pool.default.max_parked = 2;
        assert!(matches!(
            pool.release(&license(300, now), 2, now),
            Release::Cancel(why) if why.contains("its most")
        ));
        // A tariff whose rules do not park.
        pool.tariffs.insert(
            "55228".into(),
            PoolRules {
                park: false,
                ..PoolRules::default()
            },
        );
        assert!(matches!(
            pool.release(&license(300, now), 0, now),
            Release::Cancel(_)
        ));
        assert_eq!(pool.pick(55228, None, now), None);
    }

    #[test]
    fn a_pick_asks_for_both_cooldowns_and_the_margin() {
        let now = OffsetDateTime::now_utc();
        let pool = PoolConfig {
            ip_change_cooldown_days: 30,
            key_change_cooldown_days: 10,
            ..PoolConfig::default()
        };
        let pick = pool.pick(55228, None, now).unwrap();
        assert_eq!(pick.ip_changed_by, now - Duration::days(30));
        assert_eq!(pick.key_changed_by, now - Duration::days(10));
        assert_eq!(pick.paid_until_at_least, now + Duration::days(3));
        assert_eq!(
            pool.reusable_from(now, now - Duration::days(40)),
            now + Duration::days(30)
        );
        assert_eq!(
            pool.reusable_from(now - Duration::days(40), now),
            now + Duration::days(10)
        );
    }

    #[test]
    fn rules_per_tariff_come_from_toml() {
        let pool: PoolConfig = toml::from_str(
            "ip_change_cooldown_days = 0\n[default]\nmax_parked = 5\n[tariffs.55228]\npark = false\n",
        )
        .unwrap();
        pool.check().unwrap();
        assert_eq!(pool.ip_change_cooldown_days, 0);
        assert_eq!(pool.rules(55227).max_parked, 5);
        assert!(!pool.rules(55228).park);
        let bad: PoolConfig = toml::from_str("[tariffs.pro]\npark = false\n").unwrap();
        assert!(bad.check().unwrap_err().contains("pool.tariffs.pro"));
    }

    #[test]
    fn a_parked_license_is_cancelled_before_its_next_period() {
        let now = OffsetDateTime::now_utc();
        let mut pool = PoolConfig::default();
        assert!(pool.cancel_due(1, Some(now + Duration::days(1)), now));
        assert!(!pool.cancel_due(1, Some(now + Duration::days(10)), now));
        pool.default.at_expiry = AtExpiry::Expire;
        assert!(!pool.cancel_due(1, Some(now + Duration::days(1)), now));
    }
}
