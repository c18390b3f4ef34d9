//! The pass's decisions, one rule at a time.

use std::time::Duration;

use super::api::License;
use super::config::{CancelRules, LicenseDefaults, ReleasePolicy};
use super::desired::{Observed, Wanted};
use super::plan::{EnsureWhy, Inputs, Plan, decide};
use super::state::{Absence, WatcherState};

const PREFIX: &str = "vm6-t:";
const PRO: &str = "ISPmanager 6 Pro";
const GRACE: i64 = 3600;

fn wanted(ip: &str, panel: &str) -> Observed {
    Observed::Wanted(Wanted {
        ip: ip.parse().unwrap(),
        panel: panel.into(),
        hostname: String::new(),
    })
}

fn license(host: u64, id: &str, ip: &str, panel: &str, state: &'static str) -> License {
    License {
        id: id.into(),
        server_id: format!("{PREFIX}{host}"),
        ip: ip.into(),
        panel: panel.into(),
        state,
        updated: "1.0".into(),
        updated_secs: 1,
    }
}

fn defaults() -> LicenseDefaults {
    LicenseDefaults {
        period_months: 1,
        auto_renew: true,
        retry_failed_after: Duration::from_secs(600),
    }
}

fn rules(release: ReleasePolicy) -> CancelRules {
    CancelRules {
        absent_listings: 3,
        grace: Duration::from_secs(GRACE as u64),
        max_share: 0.5,
        min_allowed: 1,
        release,
    }
}

struct Case {
    observed: Vec<(u64, Observed)>,
    licenses: Vec<License>,
    state: WatcherState,
    complete: bool,
    now: i64,
    allow_mass_cancel: bool,
    release: ReleasePolicy,
}

impl Case {
    fn new(observed: Vec<(u64, Observed)>, licenses: Vec<License>) -> Self {
        Self {
            observed,
            licenses,
            state: WatcherState::default(),
            complete: true,
            now: 10_000,
            allow_mass_cancel: false,
            release: ReleasePolicy::Cancel,
        }
    }

    fn decide(&self) -> Plan {
        let (defaults, cancel) = (defaults(), rules(self.release));
        decide(&Inputs {
            prefix: PREFIX,
            listing_complete: self.complete,
            observed: &self.observed,
            licenses: &self.licenses,
            state: &self.state,
            now: self.now,
            defaults: &defaults,
            cancel: &cancel,
            allow_mass_cancel: self.allow_mass_cancel,
        })
    }

    /// Runs passes, carrying the bookkeeping over; the last plan.
    fn passes(&mut self, n: usize, step: i64) -> Plan {
        let mut plan = self.decide();
        for _ in 1..n {
            self.state = plan.state.clone();
            self.now += step;
            plan = self.decide();
        }
        plan
    }
}

#[test]
fn a_new_marked_server_is_ordered_and_a_matching_one_left_alone() {
    let case = Case::new(
        vec![
            (1, wanted("203.0.113.1", PRO)),
            (2, wanted("203.0.113.2", PRO)),
        ],
        vec![license(2, "L2", "203.0.113.2", PRO, "ACTIVE")],
    );
    let plan = case.decide();
    assert_eq!(plan.ensures.len(), 1);
    assert_eq!(plan.ensures[0].why, EnsureWhy::Order);
    assert_eq!(plan.ensures[0].call.server_id, "vm6-t:1");
    assert_eq!(plan.in_order, 1);
    assert!(plan.cancels.is_empty() && plan.pending.is_empty());
}

#[test]
fn an_address_or_panel_change_moves_the_live_license_and_orders_nothing() {
    let case = Case::new(
        vec![
            (1, wanted("203.0.113.9", PRO)),
            (2, wanted("203.0.113.2", "ISPmanager 6 Lite")),
            (3, wanted("203.0.113.8", "ISPmanager 6 Lite")),
        ],
        vec![
            license(1, "L1", "203.0.113.1", PRO, "ACTIVE"),
            license(2, "L2", "203.0.113.2", PRO, "SUSPENDED"),
            license(3, "L3", "203.0.113.3", PRO, "ACTIVE"),
        ],
    );
    let plan = case.decide();
    let whys: Vec<_> = plan.ensures.iter().map(|e| (e.host, e.why)).collect();
    assert_eq!(
        whys,
        [
            (1, EnsureWhy::Move),
            (2, EnsureWhy::Panel),
            (3, EnsureWhy::MoveAndPanel)
        ]
    );
    assert_eq!(plan.ensures[0].license_id.as_deref(), Some("L1"));
    assert_eq!(plan.ensures[0].from_ip.as_deref(), Some("203.0.113.1"));
}

#[test]
fn a_license_being_ordered_or_needing_attention_is_not_changed() {
    let case = Case::new(
        vec![
            (1, wanted("203.0.113.9", PRO)),
            (2, wanted("203.0.113.8", PRO)),
        ],
        vec![
            license(1, "L1", "203.0.113.1", PRO, "PROVISIONING"),
            license(2, "L2", "203.0.113.2", PRO, "NEEDS_ATTENTION"),
        ],
    );
    let plan = case.decide();
    assert!(plan.ensures.is_empty());
    assert_eq!(plan.held.len(), 2);
}

#[test]
fn a_gone_server_is_cancelled_only_after_enough_complete_listings_and_the_grace() {
    let licenses = vec![license(1, "L1", "203.0.113.1", PRO, "ACTIVE")];
    // Three listings one second apart: the count is there, the grace is not.
    let mut fast = Case::new(vec![], licenses.clone());
    let plan = fast.passes(3, 1);
    assert!(plan.cancels.is_empty());
    assert_eq!(plan.pending[0].listings, 3);
    assert_eq!(plan.pending[0].grace_ends, 10_000 + GRACE);
    // Two listings far apart: the grace is over, the count is not.
    let mut sparse = Case::new(vec![], licenses.clone());
    let plan = sparse.passes(2, GRACE);
    assert!(plan.cancels.is_empty());
    // Both: cancelled, by id, with a stable request id.
    let mut both = Case::new(vec![], licenses);
    let plan = both.passes(3, GRACE / 2);
    assert_eq!(plan.cancels.len(), 1);
    assert_eq!(plan.cancels[0].license_id, "L1");
    assert_eq!(plan.cancels[0].reason, "gone");
    let again = both.decide();
    assert_eq!(again.cancels[0].request_id, plan.cancels[0].request_id);
}

#[test]
fn an_incomplete_listing_neither_advances_nor_resets_an_absence() {
    let absence = Absence {
        license_id: "L1".into(),
        since: 9_000,
        listings: 2,
    };
    let mut case = Case::new(vec![], vec![license(1, "L1", "203.0.113.1", PRO, "ACTIVE")]);
    case.state
        .absences
        .insert("vm6-t:1".into(), absence.clone());
    case.complete = false;
    case.now = 9_000 + GRACE * 10;
    let plan = case.decide();
    assert!(plan.cancels.is_empty());
    assert_eq!(plan.state.absences["vm6-t:1"], absence);
    // Listed again, but incomplete: still no reset.
    case.observed = vec![(1, wanted("203.0.113.1", PRO))];
    assert_eq!(case.decide().state.absences["vm6-t:1"], absence);
    // Listed in a complete listing: the absence ends.
    case.complete = true;
    assert!(case.decide().state.absences.is_empty());
}

#[test]
fn an_unmarked_server_counts_as_absent_and_a_new_license_starts_its_own_count() {
    let mut case = Case::new(
        vec![(1, Observed::Unmarked)],
        vec![license(1, "L2", "203.0.113.1", PRO, "ACTIVE")],
    );
    case.state.absences.insert(
        "vm6-t:1".into(),
        Absence {
            license_id: "L1".into(),
            since: 1,
            listings: 9,
        },
    );
    let plan = case.decide();
    assert_eq!(plan.pending[0].reason, "unmarked");
    assert_eq!(plan.state.absences["vm6-t:1"].license_id, "L2");
    assert_eq!(plan.state.absences["vm6-t:1"].listings, 1);
}

#[test]
fn too_many_cancellations_at_once_are_all_held_unless_lifted() {
    let licenses: Vec<_> = (1..=4)
        .map(|h| {
            license(
                h,
                &format!("L{h}"),
                &format!("203.0.113.{h}"),
                PRO,
                "ACTIVE",
            )
        })
        .collect();
    // Three of four gone: over half of the licenses.
    let mut case = Case::new(vec![(4, wanted("203.0.113.4", PRO))], licenses);
    let plan = case.passes(3, GRACE);
    assert!(plan.cancels.is_empty());
    assert!(
        plan.blocked
            .as_deref()
            .unwrap()
            .contains("3 cancellations are due")
    );
    assert!(plan.pending.iter().all(|p| p.held_by_limit));
    case.allow_mass_cancel = true;
    assert_eq!(case.decide().cancels.len(), 3);
}

#[test]
fn a_license_needing_attention_is_never_cancelled() {
    let mut case = Case::new(
        vec![],
        vec![license(1, "L1", "203.0.113.1", PRO, "NEEDS_ATTENTION")],
    );
    let plan = case.passes(5, GRACE);
    assert!(plan.cancels.is_empty());
    assert_eq!(plan.held.len(), 1);
}

#[test]
fn a_refused_order_is_retried_after_a_pause_with_a_new_request_id() {
    let mut failed = license(1, "L1", "203.0.113.1", PRO, "FAILED");
    failed.updated_secs = 10_000;
    let mut case = Case::new(vec![(1, wanted("203.0.113.1", PRO))], vec![failed]);
    case.now = 10_100;
    let plan = case.decide();
    assert!(plan.ensures.is_empty());
    assert!(plan.held[0].reason.contains("refused"));
    case.now = 10_700;
    let plan = case.decide();
    assert_eq!(plan.ensures[0].why, EnsureWhy::Order);
    let first = Case::new(vec![(1, wanted("203.0.113.1", PRO))], vec![]).decide();
    assert_ne!(
        plan.ensures[0].call.request_id,
        first.ensures[0].call.request_id
    );
}

#[test]
fn cancelled_history_is_not_live_and_ends_its_bookkeeping() {
    let mut case = Case::new(
        vec![],
        vec![
            license(1, "L1", "203.0.113.1", PRO, "CANCELLED"),
            license(2, "L2", "203.0.113.2", PRO, "FAILED"),
        ],
    );
    case.state.absences.insert(
        "vm6-t:1".into(),
        Absence {
            license_id: "L1".into(),
            since: 1,
            listings: 3,
        },
    );
    let plan = case.decide();
    assert_eq!(plan.live_licenses, 0);
    assert!(plan.cancels.is_empty() && plan.pending.is_empty());
    assert!(plan.state.absences.is_empty());
}

#[test]
fn with_the_park_policy_a_due_license_is_released_under_a_request_id_of_its_own() {
    let licenses = vec![license(1, "L1", "203.0.113.1", PRO, "ACTIVE")];
    let mut cancelling = Case::new(vec![], licenses.clone());
    let mut parking = Case::new(vec![], licenses);
    parking.release = ReleasePolicy::Park;

    let cancel = cancelling.passes(3, GRACE / 2);
    let release = parking.passes(3, GRACE / 2);

    assert_eq!(cancel.cancels[0].policy, ReleasePolicy::Cancel);
    assert_eq!(release.cancels.len(), 1);
    assert_eq!(release.cancels[0].policy, ReleasePolicy::Park);
    assert_eq!(release.cancels[0].license_id, "L1");
    assert!(release.cancels[0].request_id.starts_with("lfw-rel-"));
    assert!(cancel.cancels[0].request_id.starts_with("lfw-can-"));
    assert_eq!(
        parking.decide().cancels[0].request_id,
        release.cancels[0].request_id,
        "the same release is asked again under the same id"
    );
}

#[test]
fn parked_and_reused_licenses_hold_no_server_and_a_server_left_with_them_is_ordered() {
    // Host 1 is gone and its license parked; host 2's old license was taken by another
    // (REUSED) and the host is listed again; host 3 holds the license that took it.
    let mut case = Case::new(
        vec![
            (2, wanted("203.0.113.2", PRO)),
            (3, wanted("203.0.113.3", PRO)),
        ],
        vec![
            license(3, "L3", "203.0.113.3", PRO, "ACTIVE"),
            license(1, "L1", "0.0.0.0", PRO, "PARKED"),
            license(2, "L2", "203.0.113.2", PRO, "REUSED"),
        ],
    );
    case.state.absences.insert(
        "vm6-t:1".into(),
        Absence {
            license_id: "L1".into(),
            since: 1,
            listings: 3,
        },
    );

    let plan = case.decide();

    assert_eq!(plan.live_licenses, 1);
    assert!(plan.cancels.is_empty() && plan.pending.is_empty());
    assert!(
        plan.state.absences.is_empty(),
        "a parked license's absence ends"
    );
    let orders: Vec<_> = plan.ensures.iter().map(|e| (e.host, e.why)).collect();
    assert_eq!(orders, [(2, EnsureWhy::Order)]);
    assert_eq!(plan.in_order, 1);
}
