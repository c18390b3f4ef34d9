//! One pass's decisions, money first, as a pure function of what was read: the
//! platform's servers (with the listing's completeness), the watcher's licenses and
//! the absence bookkeeping. Nothing here calls anything.
//!
//! - A marked server without a live license gets one ordered; one whose license is on
//!   another address or panel gets it changed (never a second license).
//! - A live license whose server is absent or unmarked is cancelled only after the
//!   server has been missing from `absent_listings` complete listings and for `grace`.
//! - An incomplete listing counts as no evidence: it neither advances nor resets an
//!   absence.
//! - A pass that would cancel more than the allowed share of the watcher's licenses
//!   cancels nothing and says so.
//! - NEEDS_ATTENTION licenses are a person's: the watcher neither changes nor cancels
//!   them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::api::{EnsureCall, License};
use super::config::{CancelRules, LicenseDefaults, ReleasePolicy};
use super::desired::Observed;
use super::ids;
use super::state::{Absence, WatcherState};

/// What a pass reads.
pub struct Inputs<'a> {
    /// The server id prefix of this instance.
    pub prefix: &'a str,
    /// Whether the listing may count as evidence of absence.
    pub listing_complete: bool,
    /// Each listed server: its host id and what it should have.
    pub observed: &'a [(u64, Observed)],
    /// The watcher's licenses (this prefix), newest first, history included.
    pub licenses: &'a [License],
    /// The bookkeeping so far.
    pub state: &'a WatcherState,
    /// Unix time now.
    pub now: i64,
    /// Parameters of new orders.
    pub defaults: &'a LicenseDefaults,
    /// Cancellation rules.
    pub cancel: &'a CancelRules,
    /// Lift the share limit for this pass (an operator's decision).
    pub allow_mass_cancel: bool,
}

/// Why a license is ensured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsureWhy {
    /// The server has no live license.
    Order,
    /// The server's address changed.
    Move,
    /// The server's panel changed.
    Panel,
    /// Both.
    MoveAndPanel,
}

/// An `EnsureServerLicense` call to make.
#[derive(Debug, Clone, Serialize)]
pub struct EnsureStep {
    /// The platform's host id.
    pub host: u64,
    /// Why.
    pub why: EnsureWhy,
    /// The live license it changes, if any.
    pub license_id: Option<String>,
    /// Its address now, when it moves.
    pub from_ip: Option<String>,
    /// Its panel now, when that changes.
    pub from_panel: Option<String>,
    /// The call.
    #[serde(flatten)]
    pub call: EnsureCall,
}

/// A cancellation (or, with the park policy, a release) to make.
#[derive(Debug, Clone, Serialize)]
pub struct CancelStep {
    /// Server id.
    pub server_id: String,
    /// The license.
    pub license_id: String,
    /// `CancelLicense` or `ReleaseLicense`.
    pub policy: ReleasePolicy,
    /// Request id.
    pub request_id: String,
    /// `gone` or `unmarked`.
    pub reason: &'static str,
    /// Unix time it was first found absent.
    pub since: i64,
    /// Complete listings it was absent from.
    pub listings: u32,
}

/// A cancellation waiting for its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct PendingCancel {
    /// Server id.
    pub server_id: String,
    /// The license.
    pub license_id: String,
    /// `gone` or `unmarked`.
    pub reason: &'static str,
    /// Complete listings it was absent from so far.
    pub listings: u32,
    /// Complete listings needed.
    pub listings_needed: u32,
    /// Unix time it was first found absent.
    pub since: i64,
    /// Unix time the grace period ends.
    pub grace_ends: i64,
    /// Due, but held back by the share limit.
    pub held_by_limit: bool,
}

/// A server or license the watcher leaves alone this pass, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    /// Server id.
    pub server_id: String,
    /// Its live license, if any.
    pub license_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// Everything a pass decided.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Ensure calls, moves and panel changes before orders (a move may free the
    /// address an order needs).
    pub ensures: Vec<EnsureStep>,
    /// Cancellations due now.
    pub cancels: Vec<CancelStep>,
    /// Cancellations still waiting.
    pub pending: Vec<PendingCancel>,
    /// What is left alone.
    pub held: Vec<Held>,
    /// Why no cancellation is made this pass, when the share limit stopped them.
    pub blocked: Option<String>,
    /// Live licenses of this instance.
    pub live_licenses: usize,
    /// Servers whose license matches already.
    pub in_order: usize,
    /// The bookkeeping after this pass.
    #[serde(skip)]
    pub state: WatcherState,
}

/// A server's licenses: the live one and the newest one.
#[derive(Default)]
struct Generations<'a> {
    live: Option<&'a License>,
    latest: Option<&'a License>,
}

/// Decides one pass.
pub fn decide(input: &Inputs<'_>) -> Plan {
    let mut by_server: BTreeMap<&str, Generations<'_>> = BTreeMap::new();
    for l in input.licenses {
        let g = by_server.entry(l.server_id.as_str()).or_default();
        g.latest.get_or_insert(l);
        if l.is_live() && g.live.is_none() {
            g.live = Some(l);
        }
    }
    // Bookkeeping ends for a license that is no longer live (cancelled, by the watcher
    // or anyone) or was replaced by a newer one: that is not listing evidence.
    let mut state = input.state.clone();
    state.absences.retain(|server, a| {
        by_server
            .get(server.as_str())
            .and_then(|g| g.live)
            .is_some_and(|l| l.id == a.license_id)
    });
    let mut plan = Plan {
        ensures: Vec::new(),
        cancels: Vec::new(),
        pending: Vec::new(),
        held: Vec::new(),
        blocked: None,
        live_licenses: by_server.values().filter(|g| g.live.is_some()).count(),
        in_order: 0,
        state,
    };
    if input.listing_complete {
        plan.state.last_complete_listing = Some(input.now);
    }
    // Servers that are present and keep their license (reset their absence), and
    // servers present but unmarked (their license counts as absent).
    let mut kept = BTreeSet::new();
    let mut unmarked = BTreeSet::new();
    for (host, observed) in input.observed {
        let server_id = ids::server_id(input.prefix, *host);
        let g = by_server.remove(server_id.as_str()).unwrap_or_default();
        match observed {
            Observed::Unmarked => {
                if let Some(live) = g.live {
                    unmarked.insert(server_id.clone());
                    by_server.insert(live.server_id.as_str(), g);
                }
                continue;
            }
            Observed::Wanted(wanted) => {
                wanted_server(input, &mut plan, *host, &server_id, wanted, &g);
            }
            Observed::NoAddress { panel } => plan.held.push(Held {
                server_id: server_id.clone(),
                license_id: g.live.map(|l| l.id.clone()),
                reason: format!("marked for {panel} but has no usable IPv4 address; its license is left as it is"),
            }),
            Observed::UnknownPanel { marker } => plan.held.push(Held {
                server_id: server_id.clone(),
                license_id: g.live.map(|l| l.id.clone()),
                reason: format!("marker {marker:?} names no panel license-facade knows; its license is left as it is"),
            }),
        }
        kept.insert(server_id);
    }
    if input.listing_complete {
        plan.state
            .absences
            .retain(|server, _| !kept.contains(server));
    }
    absent_servers(input, &mut plan, &by_server, &unmarked);
    limit_cancellations(input, &mut plan);
    plan.ensures
        .sort_by_key(|e| (e.why == EnsureWhy::Order, e.host));
    plan
}

/// A marked server with an address: order, change, or nothing.
fn wanted_server(
    input: &Inputs<'_>,
    plan: &mut Plan,
    host: u64,
    server_id: &str,
    wanted: &super::desired::Wanted,
    g: &Generations<'_>,
) {
    let held = |reason: String| Held {
        server_id: server_id.to_owned(),
        license_id: g.live.map(|l| l.id.clone()),
        reason,
    };
    let call = EnsureCall {
        server_id: server_id.to_owned(),
        ip: wanted.ip.to_string(),
        hostname: wanted.hostname.clone(),
        panel: wanted.panel.clone(),
        period_months: input.defaults.period_months,
        auto_renew: input.defaults.auto_renew,
        request_id: ids::ensure_request_id(
            server_id,
            wanted,
            input.defaults.period_months,
            input.defaults.auto_renew,
            g.latest,
        ),
    };
    let Some(live) = g.live else {
        let retry_after = input.defaults.retry_failed_after.as_secs() as i64;
        if let Some(failed) = g.latest.filter(|l| l.state == "FAILED")
            && input.now < failed.updated_secs + retry_after
        {
            plan.held.push(held(format!(
                "its last order was refused upstream (license {}); ordered again after {} s",
                failed.id, retry_after
            )));
            return;
        }
        plan.ensures.push(EnsureStep {
            host,
            why: EnsureWhy::Order,
            license_id: None,
            from_ip: None,
            from_panel: None,
            call,
        });
        return;
    };
    let moved = live.ip != call.ip;
    let repanelled = live.panel != call.panel;
    if !moved && !repanelled {
        plan.in_order += 1;
        return;
    }
    let why = match (moved, repanelled) {
        (true, true) => EnsureWhy::MoveAndPanel,
        (true, false) => EnsureWhy::Move,
        _ => EnsureWhy::Panel,
    };
    match live.state {
        "NEEDS_ATTENTION" => plan.held.push(held(
            "its license needs a person's attention; no change is sent".into(),
        )),
        "PENDING" | "PROVISIONING" => plan.held.push(held(
            "its license is still being ordered; the change follows once it is active".into(),
        )),
        _ => plan.ensures.push(EnsureStep {
            host,
            why,
            license_id: Some(live.id.clone()),
            from_ip: moved.then(|| live.ip.clone()),
            from_panel: repanelled.then(|| live.panel.clone()),
            call,
        }),
    }
}

/// Live licenses of servers that are not listed (or listed unmarked).
fn absent_servers(
    input: &Inputs<'_>,
    plan: &mut Plan,
    by_server: &BTreeMap<&str, Generations<'_>>,
    unmarked: &BTreeSet<String>,
) {
    let grace = input.cancel.grace.as_secs() as i64;
    let needed = input.cancel.absent_listings;
    for (server_id, g) in by_server {
        let Some(license) = g.live else { continue };
        let reason = if unmarked.contains(*server_id) {
            "unmarked"
        } else {
            "gone"
        };
        if license.state == "NEEDS_ATTENTION" {
            plan.held.push(Held {
                server_id: (*server_id).to_owned(),
                license_id: Some(license.id.clone()),
                reason: format!("server {reason}, but its license needs a person's attention; not cancelled automatically"),
            });
            continue;
        }
        if input.listing_complete {
            let entry = plan
                .state
                .absences
                .entry((*server_id).to_owned())
                .or_insert_with(|| Absence {
                    license_id: license.id.clone(),
                    since: input.now,
                    listings: 0,
                });
            entry.listings += 1;
        }
        let Some(absence) = plan.state.absences.get(*server_id) else {
            continue;
        };
        if absence.listings >= needed && input.now >= absence.since + grace {
            let request_id = match input.cancel.release {
                ReleasePolicy::Cancel => ids::cancel_request_id(server_id, &license.id),
                ReleasePolicy::Park => ids::release_request_id(server_id, &license.id),
            };
            plan.cancels.push(CancelStep {
                server_id: (*server_id).to_owned(),
                license_id: license.id.clone(),
                policy: input.cancel.release,
                request_id,
                reason,
                since: absence.since,
                listings: absence.listings,
            });
        } else {
            plan.pending.push(PendingCancel {
                server_id: (*server_id).to_owned(),
                license_id: license.id.clone(),
                reason,
                listings: absence.listings,
                listings_needed: needed,
                since: absence.since,
                grace_ends: absence.since + grace,
                held_by_limit: false,
            });
        }
    }
}

/// Stops every cancellation of a pass that would cancel too many.
fn limit_cancellations(input: &Inputs<'_>, plan: &mut Plan) {
    let due = plan.cancels.len();
    let by_share = (input.cancel.max_share * plan.live_licenses as f64).floor() as usize;
    let allowed = by_share.max(input.cancel.min_allowed);
    if due <= allowed || input.allow_mass_cancel {
        return;
    }
    plan.blocked = Some(format!(
        "{due} cancellations are due, more than the {allowed} allowed in one pass ({:.0}% of {} \
         licenses, at least {}): nothing was cancelled. If the servers are really gone, run \
         once with --allow-mass-cancel; otherwise check the platform filter and the markers",
        input.cancel.max_share * 100.0,
        plan.live_licenses,
        input.cancel.min_allowed
    ));
    let grace = input.cancel.grace.as_secs() as i64;
    for c in plan.cancels.drain(..) {
        plan.pending.push(PendingCancel {
            server_id: c.server_id,
            license_id: c.license_id,
            reason: c.reason,
            listings: c.listings,
            listings_needed: input.cancel.absent_listings,
            since: c.since,
            grace_ends: c.since + grace,
            held_by_limit: true,
        });
    }
}
