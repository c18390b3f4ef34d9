//! Drift between the upstream and the store: the report's types and the pure
//! comparison that builds it from one upstream listing and one store snapshot. Nothing
//! here performs I/O; [`super::reconcile`] gathers the inputs and keeps the result.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

use crate::billmanager::{UpstreamLicense, UpstreamStatus};
use crate::domain::{License, LicenseState, PanelCatalog};
use crate::workflow::matching::{normalize_ip, parse_date, status_name, upstream_tariff};

/// The most entries a report lists per kind; the counts are always exact. Keeps a
/// report of a badly drifted account (say 100,000 orphans) within a response's size.
pub const MAX_LISTED: usize = 1000;

/// The result of one reconciliation: what differs between the upstream and the store
/// at `generate_time`. A snapshot; it is never updated after the fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// When the comparison was made.
    #[serde(with = "time::serde::rfc3339")]
    pub generate_time: OffsetDateTime,
    /// The horizon of [`expiring`](Self::expiring), in days.
    pub expiring_within_days: u32,
    /// Upstream licenses seen in the listing (deleted ones included).
    pub upstream_seen: u64,
    /// Licenses here that carry an upstream id, all compared.
    pub local_checked: u64,
    /// Exact number of orphans (the list may be cut at [`MAX_LISTED`]).
    pub orphan_count: u64,
    /// Exact number of missing licenses.
    pub missing_count: u64,
    /// Exact number of mismatches.
    pub mismatch_count: u64,
    /// Exact number of licenses expiring without auto-renewal.
    pub expiring_count: u64,
    /// Live upstream, unknown here: paid for, and nobody here knows. By upstream id.
    pub orphans: Vec<Orphan>,
    /// Live here, deleted or absent upstream.
    pub missing: Vec<Missing>,
    /// A field that differs; one entry per license and field.
    pub mismatches: Vec<Mismatch>,
    /// ACTIVE here, not auto-renewed, expiring within the horizon (or already past it).
    pub expiring: Vec<Expiring>,
}

impl DriftReport {
    /// Whether anything is out of step (orphans, missing or mismatches); licenses
    /// about to expire are a reminder, not drift.
    pub fn has_drift(&self) -> bool {
        self.orphan_count + self.missing_count + self.mismatch_count > 0
    }

    /// Whether some list was cut at [`MAX_LISTED`].
    pub fn truncated(&self) -> bool {
        self.orphans.len() as u64 != self.orphan_count
            || self.missing.len() as u64 != self.missing_count
            || self.mismatches.len() as u64 != self.mismatch_count
            || self.expiring.len() as u64 != self.expiring_count
    }
}

/// An upstream license nobody here knows about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// Upstream item id (`elid`); what AdoptLicense takes.
    pub upstream_id: u64,
    /// Bound address, as the upstream shows it.
    pub ip: Option<String>,
    /// Tariff id, when the listing gives one or its name is a catalog panel.
    pub tariff_id: Option<u32>,
    /// Tariff name, when the listing gives one.
    pub tariff_name: Option<String>,
    /// The catalog panel of the tariff, if it is one.
    pub panel: Option<String>,
    /// `licname`.
    pub licname: Option<String>,
    /// `remoteid`: who ordered it (our license ids look like UUIDs).
    pub remote_id: Option<String>,
    /// Upstream status code (1 ordered, 2 active, 3 suspended, 5 processing).
    pub status: u32,
    /// Day it was bought (midnight UTC), if listed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub create_time: Option<OffsetDateTime>,
    /// Day its paid period ends (midnight UTC), if listed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expire_time: Option<OffsetDateTime>,
}

/// Why a license counts as missing upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MissingReason {
    /// The listing does not contain the upstream id at all.
    Absent,
    /// The upstream lists it as deleted (status 4).
    Deleted,
}

/// A license that is live here but not upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missing {
    /// The license here.
    pub license: License,
    /// What the upstream shows.
    pub reason: MissingReason,
}

/// The field of a [`Mismatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MismatchField {
    /// The bound address.
    Ip,
    /// The tariff (panel).
    Tariff,
    /// The state here against the upstream status (ACTIVE ↔ 2, SUSPENDED ↔ 3,
    /// PROVISIONING ↔ 2 or 5, CANCELLED/FAILED ↔ 4 or absent).
    Status,
    /// The last day of the paid period.
    Expiry,
}

/// One field of one license that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The license here.
    pub license: License,
    /// Which field.
    pub field: MismatchField,
    /// Our value, as text.
    pub ours: String,
    /// The upstream's value, as text.
    pub upstream: String,
}

/// An ACTIVE license without auto-renewal whose paid period ends soon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expiring {
    /// The license here.
    pub license: License,
    /// Whole days from the report's day to the expiry day; 0 or less: today or past.
    pub days_left: i64,
}

/// The inputs of [`compare`] besides the two lists.
#[derive(Debug, Clone, Copy)]
pub struct CompareAt<'a> {
    /// Resolves tariff names of the listing and names the panel of an orphan.
    pub catalog: &'a PanelCatalog,
    /// The report's time.
    pub now: OffsetDateTime,
    /// When the upstream listing began. A license that changed at or after it is not
    /// judged (the listing may predate the change); the next run judges it.
    pub listed_at: OffsetDateTime,
    /// Horizon of the expiring list, in days.
    pub expiring_within_days: u32,
}

/// Compares one full upstream listing with every license here that has an upstream
/// id, matching by upstream id. Linear in both lists.
pub fn compare(upstream: &[UpstreamLicense], ours: &[License], at: CompareAt<'_>) -> DriftReport {
    let by_id: HashMap<u64, &UpstreamLicense> = upstream.iter().map(|u| (u.id, u)).collect();
    let known: HashSet<u64> = ours.iter().filter_map(|l| l.upstream_id).collect();

    let mut orphans: Vec<Orphan> = upstream
        .iter()
        .filter(|u| u.status != UpstreamStatus::Deleted && !known.contains(&u.id))
        .map(|u| orphan(u, at.catalog))
        .collect();
    orphans.sort_by_key(|o| o.upstream_id);

    let mut missing = Vec::new();
    let mut mismatches = Vec::new();
    let mut expiring = Vec::new();
    for license in ours {
        if let Some(days_left) = expiring_days(license, at) {
            expiring.push(Expiring {
                license: license.clone(),
                days_left,
            });
        }
        let Some(upstream_id) = license.upstream_id else {
            continue;
        };
        if license.update_time >= at.listed_at {
            continue;
        }
        let found = by_id.get(&upstream_id).copied();
        judge(license, found, at.catalog, &mut missing, &mut mismatches);
    }
    expiring.sort_by_key(|e| (e.license.expire_time, e.license.id));

    let counts = [
        orphans.len(),
        missing.len(),
        mismatches.len(),
        expiring.len(),
    ]
    .map(|n| n as u64);
    orphans.truncate(MAX_LISTED);
    missing.truncate(MAX_LISTED);
    mismatches.truncate(MAX_LISTED);
    expiring.truncate(MAX_LISTED);
    DriftReport {
        generate_time: at.now,
        expiring_within_days: at.expiring_within_days,
        upstream_seen: upstream.len() as u64,
        local_checked: ours.len() as u64,
        orphan_count: counts[0],
        missing_count: counts[1],
        mismatch_count: counts[2],
        expiring_count: counts[3],
        orphans,
        missing,
        mismatches,
        expiring,
    }
}

/// Sorts one of our licenses into missing / mismatches given its upstream twin.
fn judge(
    license: &License,
    found: Option<&UpstreamLicense>,
    catalog: &PanelCatalog,
    missing: &mut Vec<Missing>,
    mismatches: &mut Vec<Mismatch>,
) {
    use LicenseState as S;
    let mut differs = |field, ours: String, upstream: String| {
        mismatches.push(Mismatch {
            license: license.clone(),
            field,
            ours,
            upstream,
        });
    };
    match license.state {
        S::Active | S::Suspended | S::Provisioning => {
            let Some(up) = present(license, found, missing) else {
                return;
            };
            let status_ok = match license.state {
                S::Active => up.status == UpstreamStatus::Active,
                S::Suspended => up.status == UpstreamStatus::Suspended,
                _ => matches!(
                    up.status,
                    UpstreamStatus::Active | UpstreamStatus::Processing
                ),
            };
            if !status_ok {
                differs(
                    MismatchField::Status,
                    license.state.to_string(),
                    status_name(up.status),
                );
            }
            if let Some(ip) = up.ip.as_deref().filter(|ip| !ip.is_empty())
                && normalize_ip(ip) != license.ip.to_string()
            {
                differs(MismatchField::Ip, license.ip.to_string(), ip.to_owned());
            }
            if let Some(tariff) = upstream_tariff(up, catalog)
                && tariff != license.tariff_id
            {
                differs(
                    MismatchField::Tariff,
                    tariff_text(license.tariff_id, catalog),
                    tariff_text(tariff, catalog),
                );
            }
            if license.state != S::Provisioning
                && let Some(theirs) = up.expire_date.as_deref().and_then(parse_date)
            {
                let ours = license.expire_time.map(utc_day);
                if ours != Some(utc_day(theirs)) {
                    differs(
                        MismatchField::Expiry,
                        ours.map(|d| d.to_string()).unwrap_or_default(),
                        utc_day(theirs).to_string(),
                    );
                }
            }
        }
        S::Cancelled | S::Failed => {
            // Still live upstream although we let it go: money keeps flowing.
            if let Some(up) = found.filter(|u| u.status != UpstreamStatus::Deleted) {
                differs(
                    MismatchField::Status,
                    license.state.to_string(),
                    status_name(up.status),
                );
            }
        }
        // In the pool: paid upstream, suspended and bound to no server (0.0.0.0).
        // Not an orphan (it is ours), and not missing while it is there.
        S::Parked => {
            let Some(up) = present(license, found, missing) else {
                return;
            };
            if up.status != UpstreamStatus::Suspended {
                differs(
                    MismatchField::Status,
                    license.state.to_string(),
                    status_name(up.status),
                );
            }
            if let Some(ip) = up.ip.as_deref().filter(|ip| !ip.is_empty())
                && normalize_ip(ip) != PARKED_IP
            {
                differs(MismatchField::Ip, PARKED_IP.to_owned(), ip.to_owned());
            }
        }
        // Nothing ordered yet, a person is already looking, or its upstream license
        // went on as another license of ours.
        S::Pending | S::NeedsAttention | S::Reused => {}
    }
}

/// What the upstream shows of `license`, which holds a paid upstream license: `None`
/// (and the license is listed as missing) when it is absent or deleted.
fn present<'u>(
    license: &License,
    found: Option<&'u UpstreamLicense>,
    missing: &mut Vec<Missing>,
) -> Option<&'u UpstreamLicense> {
    let up = found.filter(|u| u.status != UpstreamStatus::Deleted);
    if up.is_none() {
        missing.push(Missing {
            license: license.clone(),
            reason: if found.is_some() {
                MissingReason::Deleted
            } else {
                MissingReason::Absent
            },
        });
    }
    up
}

/// The address a parked license is bound to upstream.
const PARKED_IP: &str = crate::domain::PARKED_IP;

fn orphan(u: &UpstreamLicense, catalog: &PanelCatalog) -> Orphan {
    let tariff_id = upstream_tariff(u, catalog);
    Orphan {
        upstream_id: u.id,
        ip: u.ip.clone(),
        tariff_id,
        tariff_name: u.tariff_name.clone(),
        panel: tariff_id
            .and_then(|t| catalog.by_tariff(t))
            .map(|p| p.name.clone()),
        licname: u.licname.clone().filter(|s| !s.is_empty()),
        remote_id: u.remote_id.clone().filter(|s| !s.is_empty()),
        status: u.status.code(),
        create_time: u.create_date.as_deref().and_then(parse_date),
        expire_time: u.expire_date.as_deref().and_then(parse_date),
    }
}

/// Days until an ACTIVE, not auto-renewed license expires, if within the horizon.
fn expiring_days(license: &License, at: CompareAt<'_>) -> Option<i64> {
    if license.state != LicenseState::Active || license.auto_renew {
        return None;
    }
    let days_left = (utc_day(license.expire_time?) - utc_day(at.now)).whole_days();
    (days_left <= i64::from(at.expiring_within_days)).then_some(days_left)
}

fn utc_day(t: OffsetDateTime) -> time::Date {
    t.to_offset(UtcOffset::UTC).date()
}

fn tariff_text(tariff_id: u32, catalog: &PanelCatalog) -> String {
    match catalog.by_tariff(tariff_id) {
        Some(p) => format!("{tariff_id} ({})", p.name),
        None => tariff_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::{ClientName, LicenseId, LicenseIp, Period, ServerId};

    const NOW: OffsetDateTime = datetime!(2030-06-15 12:00 UTC);
    const LISTED: OffsetDateTime = datetime!(2030-06-15 11:59 UTC);
    const BEFORE: OffsetDateTime = datetime!(2030-06-01 00:00 UTC);

    fn at(catalog: &PanelCatalog) -> CompareAt<'_> {
        CompareAt {
            catalog,
            now: NOW,
            listed_at: LISTED,
            expiring_within_days: 14,
        }
    }

    fn ours(upstream_id: u64, ip: &str, state: LicenseState) -> License {
        License {
            id: LicenseId::generate(),
            client: ClientName::anonymous(),
            server_id: ServerId::parse(&format!("srv-{upstream_id}"), "serverId").unwrap(),
            ip: LicenseIp::parse(ip, "ip").unwrap(),
            hostname: None,
            panel: "ISPmanager 6 Pro".into(),
            tariff_id: 55228,
            nodes: None,
            period: Period::Month,
            auto_renew: true,
            state,
            license_key: Some("key".into()),
            upstream_id: Some(upstream_id),
            expire_time: Some(datetime!(2030-07-15 00:00 UTC)),
            create_time: BEFORE,
            update_time: BEFORE,
            last_error: None,
            reused_by: None,
            reused_from: None,
        }
    }

    fn theirs(id: u64, ip: &str, status: u32) -> UpstreamLicense {
        UpstreamLicense {
            id,
            ip: Some(ip.into()),
            licname: Some(String::new()),
            remote_id: Some(String::new()),
            status: UpstreamStatus::from_code(status),
            tariff_id: Some(55228),
            tariff_name: None,
            license_key: None,
            period: Some(1),
            create_date: Some("2030-06-15".into()),
            expire_date: Some("2030-07-15".into()),
            ip_change_date: None,
            key_change_date: None,
            ip_changed: None,
            key_changed: None,
        }
    }

    #[test]
    fn matching_lists_have_no_drift() {
        let catalog = PanelCatalog::defaults();
        let report = compare(
            &[theirs(1, "203.0.113.1", 2), theirs(2, "203.0.113.2", 3)],
            &[
                ours(1, "203.0.113.1", LicenseState::Active),
                ours(2, "203.0.113.2", LicenseState::Suspended),
            ],
            at(&catalog),
        );
        assert!(!report.has_drift(), "{report:#?}");
        assert_eq!((report.upstream_seen, report.local_checked), (2, 2));
    }

    #[test]
    fn an_unknown_live_upstream_license_is_an_orphan_and_a_deleted_one_is_not() {
        let catalog = PanelCatalog::defaults();
        let mut pro = theirs(7, "203.0.113.7", 2);
        pro.remote_id = Some("bought-elsewhere".into());
        let report = compare(&[pro, theirs(8, "203.0.113.8", 4)], &[], at(&catalog));
        assert_eq!(report.orphan_count, 1);
        let orphan = &report.orphans[0];
        assert_eq!(orphan.upstream_id, 7);
        assert_eq!(orphan.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(orphan.tariff_id, Some(55228));
        assert_eq!(orphan.panel.as_deref(), Some("ISPmanager 6 Pro"));
        assert_eq!(orphan.remote_id.as_deref(), Some("bought-elsewhere"));
        assert_eq!(orphan.licname, None);
        assert_eq!(orphan.expire_time, Some(datetime!(2030-07-15 00:00 UTC)));
    }

    #[test]
    fn a_tariff_listed_by_name_resolves_through_the_catalog() {
        let catalog = PanelCatalog::defaults();
        let mut lite = theirs(7, "203.0.113.7", 2);
        lite.tariff_id = None;
        lite.tariff_name = Some("ispmanager 6 lite".into());
        let report = compare(
            std::slice::from_ref(&lite),
            &[ours(7, "203.0.113.7", LicenseState::Active)],
            at(&catalog),
        );
        assert_eq!(report.mismatches.len(), 1);
        assert_eq!(report.mismatches[0].field, MismatchField::Tariff);
        assert_eq!(report.mismatches[0].upstream, "55227 (ISPmanager 6 Lite)");
    }

    #[test]
    fn live_licenses_absent_or_deleted_upstream_are_missing() {
        let catalog = PanelCatalog::defaults();
        let report = compare(
            &[theirs(2, "203.0.113.2", 4)],
            &[
                ours(1, "203.0.113.1", LicenseState::Active),
                ours(2, "203.0.113.2", LicenseState::Suspended),
                ours(3, "203.0.113.3", LicenseState::Provisioning),
                ours(4, "203.0.113.4", LicenseState::Cancelled),
                ours(5, "203.0.113.5", LicenseState::NeedsAttention),
            ],
            at(&catalog),
        );
        let reasons: Vec<_> = report
            .missing
            .iter()
            .map(|m| (m.license.upstream_id.unwrap(), m.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, MissingReason::Absent),
                (2, MissingReason::Deleted),
                (3, MissingReason::Absent)
            ]
        );
        assert_eq!(report.mismatch_count, 0);
    }

    #[test]
    fn each_differing_field_is_one_mismatch() {
        let catalog = PanelCatalog::defaults();
        let mut up = theirs(1, "203.0.113.99", 3);
        up.tariff_id = Some(55229);
        up.expire_date = Some("2030-08-15".into());
        let report = compare(
            &[up],
            &[ours(1, "203.0.113.1", LicenseState::Active)],
            at(&catalog),
        );
        let fields: Vec<_> = report
            .mismatches
            .iter()
            .map(|m| (m.field, m.ours.as_str(), m.upstream.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (MismatchField::Status, "ACTIVE", "3 (suspended)"),
                (MismatchField::Ip, "203.0.113.1", "203.0.113.99"),
                (
                    MismatchField::Tariff,
                    "55228 (ISPmanager 6 Pro)",
                    "55229 (ISPmanager 6 Host)"
                ),
                (MismatchField::Expiry, "2030-07-15", "2030-08-15"),
            ]
        );
    }

    #[test]
    fn provisioning_accepts_processing_and_active_but_not_suspended() {
        let catalog = PanelCatalog::defaults();
        let mut provisioning = ours(1, "203.0.113.1", LicenseState::Provisioning);
        provisioning.expire_time = None;
        let mut other = provisioning.clone();
        other.upstream_id = Some(2);
        let mut third = provisioning.clone();
        third.upstream_id = Some(3);
        let report = compare(
            &[
                theirs(1, "203.0.113.1", 5),
                theirs(2, "203.0.113.1", 2),
                theirs(3, "203.0.113.1", 3),
            ],
            &[provisioning, other, third],
            at(&catalog),
        );
        assert_eq!(report.mismatch_count, 1);
        assert_eq!(report.mismatches[0].license.upstream_id, Some(3));
    }

    #[test]
    fn a_cancelled_license_still_live_upstream_is_a_status_mismatch() {
        let catalog = PanelCatalog::defaults();
        let report = compare(
            &[theirs(1, "203.0.113.1", 2), theirs(2, "203.0.113.2", 4)],
            &[
                ours(1, "203.0.113.1", LicenseState::Cancelled),
                ours(2, "203.0.113.2", LicenseState::Cancelled),
            ],
            at(&catalog),
        );
        assert_eq!(report.orphan_count, 0);
        assert_eq!(report.mismatch_count, 1);
        assert_eq!(report.mismatches[0].ours, "CANCELLED");
        assert_eq!(report.mismatches[0].upstream, "2 (active)");
    }

    #[test]
    fn a_license_changed_after_the_listing_began_is_not_judged() {
        let catalog = PanelCatalog::defaults();
        let mut fresh = ours(1, "203.0.113.1", LicenseState::Active);
        fresh.update_time = LISTED;
        let report = compare(&[], &[fresh], at(&catalog));
        assert!(!report.has_drift());
        assert_eq!(report.local_checked, 1);
    }

    #[test]
    fn expiring_lists_active_licenses_without_auto_renew_within_the_horizon() {
        let catalog = PanelCatalog::defaults();
        let make = |id: u64, auto_renew: bool, expires: OffsetDateTime, state| {
            let mut l = ours(id, &format!("203.0.113.{id}"), state);
            l.auto_renew = auto_renew;
            l.expire_time = Some(expires);
            l
        };
        let licenses = [
            make(
                1,
                false,
                datetime!(2030-06-20 00:00 UTC),
                LicenseState::Active,
            ),
            make(
                2,
                true,
                datetime!(2030-06-20 00:00 UTC),
                LicenseState::Active,
            ),
            make(
                3,
                false,
                datetime!(2030-07-20 00:00 UTC),
                LicenseState::Active,
            ),
            make(
                4,
                false,
                datetime!(2030-06-10 00:00 UTC),
                LicenseState::Active,
            ),
            make(
                5,
                false,
                datetime!(2030-06-20 00:00 UTC),
                LicenseState::Suspended,
            ),
        ];
        let upstream: Vec<_> = licenses
            .iter()
            .map(|l| {
                let mut u = theirs(l.upstream_id.unwrap(), &l.ip.to_string(), 2);
                u.expire_date = None;
                if l.state == LicenseState::Suspended {
                    u.status = UpstreamStatus::Suspended;
                }
                u
            })
            .collect();
        let report = compare(&upstream, &licenses, at(&catalog));
        let days: Vec<_> = report
            .expiring
            .iter()
            .map(|e| (e.license.upstream_id.unwrap(), e.days_left))
            .collect();
        assert_eq!(days, [(4, -5), (1, 5)]);
        assert!(!report.has_drift(), "{report:#?}");
    }

    #[test]
    fn lists_are_cut_at_the_limit_but_counts_stay_exact() {
        let catalog = PanelCatalog::defaults();
        let upstream: Vec<_> = (1..=(MAX_LISTED as u64 + 5))
            .map(|id| theirs(id, "203.0.113.1", 2))
            .collect();
        let report = compare(&upstream, &[], at(&catalog));
        assert_eq!(report.orphan_count, MAX_LISTED as u64 + 5);
        assert_eq!(report.orphans.len(), MAX_LISTED);
        assert!(report.truncated());
    }

    #[test]
    fn the_report_survives_a_json_round_trip() {
        let catalog = PanelCatalog::defaults();
        let report = compare(
            &[theirs(9, "203.0.113.9", 2)],
            &[ours(1, "203.0.113.1", LicenseState::Active)],
            at(&catalog),
        );
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<DriftReport>(&json).unwrap(), report);
    }
}
