//! Recognising a paid step in what the upstream shows: an order in the `soft` list
//! (when its answer did not say which license it created, or was lost), a change in
//! a license's details; and the readings of upstream values (addresses, tariffs,
//! dates) that the workflow and the reconciler share, so both compare alike.
//!
//! Nothing upstream carries an idempotency key, and the official `soft` list has no
//! `remoteid` column, so a license is recognised by what the list does show: our id
//! in `remoteid` (when listed) or `licname`, else, for rows without a `licname`, the
//! IP, the tariff and a creation date no earlier than the order.
//!
//! Absence is proven for the state the sought license could be in, or not at all. A
//! result that finds nothing proves the order was not placed only when the list
//! could have shown it in every status an order may be in ([`ORDER_STATUSES`]):
//! nothing in the answer suggests a filter or a short page, it shows every license
//! this service knows to be live upstream (the positive control), and it shows some
//! license in each of those statuses. The last is what a silent saved filter (one
//! the answer does not show, as `saved_filters` may not) cannot fake: a filter that
//! hides a status hides every license in it, and a list that shows none in status 5
//! may hide the order that is being set up right now. Where no list proves it, the
//! order is never sent again: it is found later, or a person looks.

use std::collections::HashSet;
use std::net::IpAddr;

use time::{Date, OffsetDateTime, macros::format_description};

use crate::billmanager::{LicenseList, UpstreamId, UpstreamLicense, UpstreamStatus};
use crate::domain::{License, LicenseState, OperationKind, PanelCatalog, canonical_ip};

/// What a look-up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Exactly one upstream license is ours.
    Found(UpstreamId),
    /// None is ours, and the list is complete: the order was not carried out.
    Absent,
    /// Several licenses could be ours (or one could be, but its creation date is not
    /// shown): only a person can tell.
    Ambiguous(String),
    /// None is ours, but the list may leave licenses out; proves nothing.
    Untrusted(String),
    /// None is ours and nothing suggests the list leaves licenses out, but it shows
    /// no license in some status the order may be in (say 5, processing): an order
    /// in that status could be hidden. Not found, not proven absent.
    Unseen(String),
}

/// The upstream statuses a placed order may be in: 5 processing (being set up), 2
/// active (set up at once), 1 ordered (kept unpaid, as after a short balance). A
/// look-up proves an order absent only on a list that shows licenses in all three.
pub(crate) const ORDER_STATUSES: [UpstreamStatus; 3] = [
    UpstreamStatus::Processing,
    UpstreamStatus::Active,
    UpstreamStatus::Ordered,
];

/// Why a list that finds nothing still cannot prove an order absent because it shows
/// no license in some status the order may be in; `None` when it shows them all.
pub(crate) fn unseen_statuses(list: &LicenseList) -> Option<String> {
    let hidden = list.statuses_not_shown(&ORDER_STATUSES);
    if hidden.is_empty() {
        return None;
    }
    let names: Vec<String> = hidden.iter().map(|s| status_name(*s)).collect();
    Some(format!(
        "the upstream list shows no license in status {}, which a new order may be in, so a filter (a saved one need not show itself) could hide it",
        names.join(" or ")
    ))
}

/// A status as people read it: `5 (processing)`.
pub(crate) fn status_name(status: UpstreamStatus) -> String {
    let name = match status {
        UpstreamStatus::Ordered => "ordered",
        UpstreamStatus::Active => "active",
        UpstreamStatus::Suspended => "suspended",
        UpstreamStatus::Deleted => "deleted",
        UpstreamStatus::Processing => "processing",
        UpstreamStatus::Other(_) => "unknown",
    };
    format!("{} ({name})", status.code())
}

/// Looks for `license` in the upstream `list`. `known`: every license here with an
/// upstream id. Those of others are left out of the matches (they are someone else's
/// order), and the live ones must be in the list (the positive control) before it
/// can prove anything absent.
pub(crate) fn find_order(
    list: &LicenseList,
    license: &License,
    known: &[License],
    catalog: &PanelCatalog,
) -> Lookup {
    let known_live: Vec<UpstreamId> = known
        .iter()
        .filter(|l| l.id != license.id)
        .filter(|l| {
            matches!(
                l.state,
                LicenseState::Active | LicenseState::Suspended | LicenseState::Provisioning
            )
        })
        .filter_map(|l| l.upstream_id)
        .collect();
    let taken: HashSet<UpstreamId> = known
        .iter()
        .filter(|l| l.id != license.id)
        .filter_map(|l| l.upstream_id)
        .collect();
    let found = match_ours(&list.licenses, license, &taken, catalog);
    if !matches!(found, Lookup::Absent) {
        return found;
    }
    if let Some(why) = list.incomplete.clone() {
        metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "incomplete_list")
            .increment(1);
        return Lookup::Untrusted(why);
    }
    let listed: HashSet<UpstreamId> = list.licenses.iter().map(|l| l.id).collect();
    if let Some(hidden) = known_live.iter().find(|id| !listed.contains(id)) {
        metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "incomplete_list")
            .increment(1);
        return Lookup::Untrusted(format!(
            "the list does not show license {hidden}, which is live upstream; it is filtered or incomplete"
        ));
    }
    if let Some(why) = unseen_statuses(list) {
        return Lookup::Unseen(why);
    }
    Lookup::Absent
}

/// Our license among the upstream's (deleted ones and those bound to another license
/// of ours left out): by `remoteid`, else by `licname` (both carry our id), else, for
/// rows that show no `licname`, by IP + tariff + creation date.
pub(crate) fn match_ours(
    all: &[UpstreamLicense],
    license: &License,
    taken: &HashSet<UpstreamId>,
    catalog: &PanelCatalog,
) -> Lookup {
    let ours = license.id.to_string();
    let candidates: Vec<&UpstreamLicense> = all
        .iter()
        .filter(|l| l.status != UpstreamStatus::Deleted && !taken.contains(&l.id))
        .collect();
    let by = |pick: &dyn Fn(&UpstreamLicense) -> Option<&str>| -> Vec<UpstreamId> {
        candidates
            .iter()
            .filter(|l| pick(l) == Some(ours.as_str()))
            .map(|l| l.id)
            .collect()
    };
    for (what, ids) in [
        ("remoteid", by(&|l| l.remote_id.as_deref())),
        ("licname", by(&|l| l.licname.as_deref())),
    ] {
        match ids.as_slice() {
            [] => {}
            [one] => return Lookup::Found(*one),
            many => {
                return Lookup::Ambiguous(format!(
                    "{} upstream licenses carry our id in `{what}`: {many:?}",
                    many.len()
                ));
            }
        }
    }
    // Without a name, a row is ours when IP and tariff match and it was created no
    // earlier than the day before the order: the upstream's dates are in its own
    // time zone, and a day of slack never misses a license created after the order.
    let ip = license.ip.to_string();
    let earliest = license.create_time.date().previous_day();
    let mut dated = Vec::new();
    let mut undated = Vec::new();
    for l in candidates
        .iter()
        .filter(|l| l.licname.as_deref().is_none_or(str::is_empty))
        .filter(|l| l.ip.as_deref().map(normalize_ip).as_deref() == Some(ip.as_str()))
        .filter(|l| upstream_tariff(l, catalog).is_none_or(|t| t == license.tariff_id))
    {
        match l.create_date.as_deref().and_then(parse_day) {
            Some(day) if earliest.is_none_or(|e| day >= e) => dated.push(l.id),
            Some(_) => {}
            None => undated.push(l.id),
        }
    }
    match (dated.as_slice(), undated.as_slice()) {
        ([], []) => Lookup::Absent,
        ([one], []) => Lookup::Found(*one),
        _ => Lookup::Ambiguous(format!(
            "upstream licenses on this IP and tariff without a name could be ours: {:?}",
            [dated, undated].concat()
        )),
    }
}

fn parse_day(s: &str) -> Option<Date> {
    let format = format_description!("[year]-[month]-[day]");
    // `createdate` may carry a time after the day.
    Date::parse(s.get(..10)?, &format).ok()
}

/// Whether the upstream's view of the license shows the change made.
pub(crate) fn applied(kind: &OperationKind, d: &UpstreamLicense, license: &License) -> bool {
    match kind {
        OperationKind::Renew {
            previous_expiry, ..
        } => match (&d.expire_date, previous_expiry) {
            // ISO dates compare correctly as text.
            (Some(now), Some(before)) => now > before,
            _ => false,
        },
        OperationKind::ChangeIp { ip } | OperationKind::Unpark { ip, .. } => {
            d.ip.as_deref().map(normalize_ip).as_deref() == Some(ip)
        }
        OperationKind::ChangePanel { tariff_id, .. } => d.tariff_id == Some(*tariff_id),
        OperationKind::Suspend => d.status == UpstreamStatus::Suspended,
        OperationKind::Resume => {
            d.status == UpstreamStatus::Active && license.state == LicenseState::Suspended
        }
        OperationKind::Cancel => d.status == UpstreamStatus::Deleted,
        OperationKind::ReissueKey { previous_key } => d.license_key != *previous_key,
        OperationKind::Park => {
            d.status == UpstreamStatus::Suspended
                && d.ip.as_deref().map(normalize_ip).as_deref() == Some(crate::domain::PARKED_IP)
        }
        // Moved here and resumed (with a new key when asked): done.
        OperationKind::Reuse {
            new_key,
            previous_key,
            ..
        } => {
            d.status == UpstreamStatus::Active
                && d.ip.as_deref().map(normalize_ip) == Some(license.ip.to_string())
                && (!new_key || d.license_key != *previous_key)
        }
        OperationKind::Order => false,
    }
}

/// The tariff of an upstream license: its id, or its name resolved in the catalog
/// (the listing may carry the tariff's name instead of its id).
pub(crate) fn upstream_tariff(u: &UpstreamLicense, catalog: &PanelCatalog) -> Option<u32> {
    u.tariff_id.or_else(|| {
        u.tariff_name
            .as_deref()
            .and_then(|name| catalog.resolve(name).ok())
            .map(|p| p.tariff_id)
    })
}

/// The canonical text of an upstream address (`crate::domain::canonical_ip`), so
/// `::FFFF:10.0.0.1` and `::10.0.0.1` equal `10.0.0.1`; text that is no address is
/// kept as it is.
pub(crate) fn normalize_ip(raw: &str) -> String {
    raw.trim()
        .parse::<IpAddr>()
        .map_or_else(|_| raw.trim().to_owned(), |ip| canonical_ip(ip).to_string())
}

/// An upstream date (`YYYY-MM-DD`) as midnight UTC.
pub(crate) fn parse_date(s: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year]-[month]-[day]");
    Date::parse(s, &format)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientName, LicenseId, LicenseIp, Period, ServerId};

    fn license() -> License {
        let now = time::OffsetDateTime::now_utc();
        License {
            id: LicenseId::generate(),
            client: ClientName::anonymous(),
            server_id: ServerId::parse("srv-1", "serverId").unwrap(),
            ip: LicenseIp::parse("203.0.113.7", "ip").unwrap(),
            hostname: None,
            panel: "ISPmanager 6 Pro".into(),
            tariff_id: 55228,
            nodes: None,
            period: Period::Month,
            auto_renew: false,
            state: LicenseState::Provisioning,
            license_key: None,
            upstream_id: None,
            expire_time: None,
            create_time: now,
            update_time: now,
            last_error: None,
            reused_by: None,
            reused_from: None,
        }
    }

    fn row(id: u64, ip: &str, licname: Option<&str>, created: Option<&str>) -> UpstreamLicense {
        UpstreamLicense {
            id,
            ip: Some(ip.into()),
            licname: licname.map(Into::into),
            remote_id: None,
            status: UpstreamStatus::Processing,
            tariff_id: Some(55228),
            tariff_name: None,
            license_key: None,
            period: Some(1),
            create_date: created.map(Into::into),
            expire_date: None,
            ip_change_date: None,
            key_change_date: None,
            ip_changed: None,
            key_changed: None,
        }
    }

    fn today() -> String {
        time::OffsetDateTime::now_utc().date().to_string()
    }

    #[test]
    fn an_unpark_is_only_for_a_parked_license_and_done_once_the_upstream_shows_its_ip() {
        let parked = License {
            state: LicenseState::Parked,
            upstream_id: Some(9),
            ..license()
        };
        let to = |ip: &str| OperationKind::Unpark {
            ip: ip.into(),
            previous_ip: "203.0.113.7".into(),
        };
        assert_eq!(parked.check_change(&to("198.51.100.4")), Ok(()));
        assert_eq!(
            parked.check_change(&to("0.0.0.0")).unwrap_err().code,
            "SAME_IP"
        );
        for state in [
            LicenseState::Active,
            LicenseState::Suspended,
            LicenseState::Reused,
        ] {
            let other = License {
                state,
                ..parked.clone()
            };
            assert_eq!(
                other.check_change(&to("198.51.100.4")).unwrap_err().code,
                "INVALID_LICENSE_STATE",
                "{state}"
            );
        }
        let mut upstream = row(9, "0.0.0.0", None, None);
        upstream.status = UpstreamStatus::Suspended;
        assert!(!applied(&to("198.51.100.4"), &upstream, &parked));
        upstream.ip = Some("::ffff:198.51.100.4".into());
        assert!(applied(&to("198.51.100.4"), &upstream, &parked));
        assert_eq!(to("198.51.100.4").target_ip(), Some("198.51.100.4"));
    }

    #[test]
    fn licname_finds_ours_and_ignores_other_names_on_the_same_ip() {
        let l = license();
        let ours = l.id.to_string();
        let all = [
            row(1, "203.0.113.7", Some("someone-else"), Some(&today())),
            row(2, "203.0.113.7", Some(&ours), Some(&today())),
        ];
        let got = match_ours(&all, &l, &HashSet::new(), &PanelCatalog::defaults());
        assert_eq!(got, Lookup::Found(2));
    }

    #[test]
    fn without_licname_ip_tariff_and_a_recent_createdate_match() {
        let l = license();
        let all = [
            row(1, "203.0.113.7", None, Some("2001-01-01")),
            row(2, "203.0.113.7", None, Some(&today())),
            row(3, "203.0.113.8", None, Some(&today())),
        ];
        let got = match_ours(&all, &l, &HashSet::new(), &PanelCatalog::defaults());
        assert_eq!(got, Lookup::Found(2));
    }

    #[test]
    fn two_nameless_candidates_or_one_without_a_date_are_ambiguous() {
        let l = license();
        let two = [
            row(1, "203.0.113.7", None, Some(&today())),
            row(2, "203.0.113.7", None, Some(&today())),
        ];
        let undated = [row(3, "203.0.113.7", None, None)];
        let catalog = PanelCatalog::defaults();
        assert!(matches!(
            match_ours(&two, &l, &HashSet::new(), &catalog),
            Lookup::Ambiguous(_)
        ));
        assert!(matches!(
            match_ours(&undated, &l, &HashSet::new(), &catalog),
            Lookup::Ambiguous(_)
        ));
    }

    fn with_statuses(statuses: &[u32]) -> LicenseList {
        LicenseList {
            licenses: statuses
                .iter()
                .enumerate()
                .map(|(i, code)| {
                    let mut r = row(i as u64 + 1, "198.51.100.1", Some("other"), None);
                    r.status = UpstreamStatus::from_code(*code);
                    r
                })
                .collect(),
            incomplete: None,
        }
    }

    #[test]
    fn only_a_list_showing_every_status_an_order_may_be_in_can_prove_it_absent() {
        // A new account, or one that a "hide all" filter empties.
        let empty = unseen_statuses(&with_statuses(&[])).expect("unproven");
        assert!(
            empty.contains("status 5 (processing) or 2 (active) or 1 (ordered)"),
            "{empty}"
        );
        // Active licenses only: what an "active only" filter leaves.
        let active = unseen_statuses(&with_statuses(&[2, 2, 3])).expect("unproven");
        assert!(
            active.contains("status 5 (processing) or 1 (ordered)"),
            "{active}"
        );
        assert!(
            unseen_statuses(&with_statuses(&[2, 5])).is_some(),
            "no unpaid item"
        );
        assert_eq!(unseen_statuses(&with_statuses(&[4, 1, 2, 5, 3])), None);
    }

    #[test]
    fn a_license_bound_to_another_of_ours_is_not_a_candidate() {
        let l = license();
        let all = [row(1, "203.0.113.7", None, Some(&today()))];
        let taken = HashSet::from([1]);
        let got = match_ours(&all, &l, &taken, &PanelCatalog::defaults());
        assert_eq!(got, Lookup::Absent);
    }
}
