//! What the watcher shows about itself: counters since start and the picture of the
//! last pass (each listed server with its wanted panel and license, the pending
//! cancellations), rendered as Prometheus metrics and as the `/status` page. Also the
//! address → server map the guest endpoint answers from.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::api::License;
use super::desired::Observed;
use super::ids;
use super::plan::{PendingCancel, Plan};
use super::report::PassReport;
use crate::platform::ServerRecord;

/// A license as the status page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseRow {
    /// License id.
    pub id: String,
    /// State.
    pub state: &'static str,
    /// Address.
    pub ip: String,
    /// Panel.
    pub panel: String,
}

impl From<&License> for LicenseRow {
    fn from(l: &License) -> Self {
        Self {
            id: l.id.clone(),
            state: l.state,
            ip: l.ip.clone(),
            panel: l.panel.clone(),
        }
    }
}

/// A listed server as the status page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    /// Server id sent to license-facade.
    pub server_id: String,
    /// Host name on the platform.
    pub name: String,
    /// Platform state.
    pub state: String,
    /// What it should have: a panel on an address, or why nothing.
    pub wants: String,
    /// Its live license (as of the start of the last pass).
    pub license: Option<LicenseRow>,
}

/// The picture of the last pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The last pass's report (its steps left out).
    pub last_pass: Option<PassReport>,
    /// The last pass's error, when it failed.
    pub last_error: Option<String>,
    /// Listed servers.
    pub servers: Vec<ServerRow>,
    /// Cancellations waiting, with their deadlines.
    pub pending: Vec<PendingCancel>,
    /// Unix time of the last complete listing.
    pub last_complete_listing: Option<i64>,
    /// Servers by the address their license is bound to (for the guest endpoint).
    #[serde(skip)]
    pub by_address: HashMap<Ipv4Addr, String>,
}

#[derive(Default)]
struct Counters {
    passes_complete: AtomicU64,
    passes_incomplete: AtomicU64,
    passes_failed: AtomicU64,
    passes_blocked: AtomicU64,
    ordered: AtomicU64,
    moved: AtomicU64,
    panel_changed: AtomicU64,
    cancelled: AtomicU64,
    released: AtomicU64,
    parked: AtomicU64,
    call_errors: AtomicU64,
}

/// Counters and the last picture, shared by the passes and the listeners.
#[derive(Default)]
pub struct StatusBoard {
    counters: Counters,
    snapshot: Mutex<Snapshot>,
}

impl StatusBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the last picture.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// The server whose license is (to be) bound to `ip`.
    pub fn server_at(&self, ip: Ipv4Addr) -> Option<String> {
        self.lock().by_address.get(&ip).cloned()
    }

    /// Records a pass that failed before deciding anything.
    pub fn record_failure(&self, error: &anyhow::Error) {
        self.counters.passes_failed.fetch_add(1, Ordering::Relaxed);
        self.lock().last_error = Some(format!("{error:#}"));
    }

    /// Records a pass that sent its calls (a dry run is not recorded).
    pub fn record(
        &self,
        prefix: &str,
        report: &PassReport,
        servers: &[ServerRecord],
        observed: &[(u64, Observed)],
        licenses: &[License],
        plan: &Plan,
    ) {
        let c = &self.counters;
        let add = |counter: &AtomicU64, n: usize| counter.fetch_add(n as u64, Ordering::Relaxed);
        add(&c.ordered, report.ordered);
        add(&c.moved, report.moved);
        add(&c.panel_changed, report.panel_changed);
        add(&c.cancelled, report.cancelled);
        add(&c.released, report.released);
        add(&c.parked, report.parked);
        add(&c.call_errors, report.errors);
        let pass_counter = if report.blocked.is_some() {
            &c.passes_blocked
        } else if report.listing.complete {
            &c.passes_complete
        } else {
            &c.passes_incomplete
        };
        pass_counter.fetch_add(1, Ordering::Relaxed);

        let live: HashMap<&str, &License> = licenses
            .iter()
            .filter(|l| l.is_live())
            .map(|l| (l.server_id.as_str(), l))
            .collect();
        let mut by_address = HashMap::new();
        let rows = servers
            .iter()
            .zip(observed)
            .map(|(s, (_, o))| {
                let server_id = ids::server_id(prefix, s.id);
                let wants = match o {
                    Observed::Wanted(w) => {
                        by_address.insert(w.ip, server_id.clone());
                        format!("{} on {}", w.panel, w.ip)
                    }
                    Observed::Unmarked => "nothing (unmarked)".into(),
                    Observed::NoAddress { panel } => format!("{panel}, but no usable address"),
                    Observed::UnknownPanel { marker } => format!("unknown panel {marker:?}"),
                };
                ServerRow {
                    license: live.get(server_id.as_str()).map(|l| LicenseRow::from(*l)),
                    server_id,
                    name: s.name.clone(),
                    state: s.state.clone(),
                    wants,
                }
            })
            .collect();
        let mut last = report.clone();
        last.steps.clear();
        let mut snap = self.lock();
        *snap = Snapshot {
            last_pass: Some(last),
            last_error: None,
            servers: rows,
            pending: plan.pending.clone(),
            last_complete_listing: plan.state.last_complete_listing,
            by_address,
        };
    }

    /// The Prometheus text exposition.
    pub fn metrics(&self) -> String {
        let snap = self.lock();
        let c = &self.counters;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP license_facade_watcher_{name} {help}");
            let _ = writeln!(out, "# TYPE license_facade_watcher_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "license_facade_watcher_{name}{labels} {value}");
            }
        };
        let last = snap.last_pass.as_ref();
        let gauge = |f: fn(&PassReport) -> usize| last.map_or(0, |r| f(r) as u64);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "servers_seen",
            "gauge",
            "Servers in the last platform listing.",
            &[("", gauge(|r| r.listing.servers))],
        );
        metric(
            "servers_marked",
            "gauge",
            "Listed servers that should have a license.",
            &[("", gauge(|r| r.servers_marked))],
        );
        metric(
            "licenses",
            "gauge",
            "Live licenses of this instance at the last pass.",
            &[("", gauge(|r| r.licenses_live))],
        );
        metric(
            "pending_cancellations",
            "gauge",
            "Licenses of absent servers waiting for their evidence or grace period.",
            &[("", snap.pending.len() as u64)],
        );
        metric(
            "held",
            "gauge",
            "Servers or licenses left alone at the last pass (see /status).",
            &[("", gauge(|r| r.held.len()))],
        );
        metric(
            "cancellations_blocked",
            "gauge",
            "1 when the last pass's cancellations were stopped by the share limit.",
            &[("", u64::from(last.is_some_and(|r| r.blocked.is_some())))],
        );
        metric(
            "last_complete_listing_timestamp_seconds",
            "gauge",
            "Unix time of the last complete platform listing.",
            &[("", snap.last_complete_listing.unwrap_or(0).max(0) as u64)],
        );
        metric(
            "licenses_ordered_total",
            "counter",
            "Licenses ordered.",
            &[("", load(&c.ordered))],
        );
        metric(
            "licenses_moved_total",
            "counter",
            "Licenses moved to the server's new address.",
            &[("", load(&c.moved))],
        );
        metric(
            "licenses_panel_changed_total",
            "counter",
            "Licenses switched to another panel.",
            &[("", load(&c.panel_changed))],
        );
        metric(
            "licenses_cancelled_total",
            "counter",
            "Licenses cancelled because their server was gone or unmarked (released ones the pool's rules cancelled included).",
            &[("", load(&c.cancelled))],
        );
        metric(
            "licenses_released_total",
            "counter",
            "Licenses of gone or unmarked servers released to the service's pool (the park policy): parked or cancelled by the pool's rules.",
            &[("", load(&c.released))],
        );
        metric(
            "licenses_parked_total",
            "counter",
            "Released licenses the service parked in its pool.",
            &[("", load(&c.parked))],
        );
        metric(
            "call_errors_total",
            "counter",
            "Calls to license-facade that failed (retried at the next pass).",
            &[("", load(&c.call_errors))],
        );
        metric(
            "passes_total",
            "counter",
            "Passes by result: complete listing, incomplete listing, failed, cancellations blocked.",
            &[
                ("{result=\"complete\"}", load(&c.passes_complete)),
                ("{result=\"incomplete\"}", load(&c.passes_incomplete)),
                ("{result=\"failed\"}", load(&c.passes_failed)),
                ("{result=\"blocked\"}", load(&c.passes_blocked)),
            ],
        );
        out
    }
}
