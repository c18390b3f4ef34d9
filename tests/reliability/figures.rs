//! Counts a test reports about its run (printed, so `--nocapture` shows them; the figures
//! in docs/reliability.md come from these lines).

use license_facade::sandbox::SandboxHandle;

#[derive(Debug, Default, Clone, Copy)]
pub struct Figures {
    /// Scenario runs (iterations, rounds, cases).
    pub runs: u64,
    /// Orders the service acknowledged.
    pub orders: u64,
    /// Changes of licenses (renewals, IP and panel changes, …) the service accepted.
    pub changes: u64,
    /// `soft.order.param` requests that reached the sandbox.
    pub upstream_calls: u64,
    /// Processes aborted or killed (or in-process applications dropped).
    pub crashes: u64,
    /// Upstream licenses beyond the first for one server IP.
    pub duplicates: u64,
    /// Acknowledged orders without an upstream license at the end.
    pub lost: u64,
    /// Orders whose upstream license a restarted service found by look-up and adopted
    /// (from the child's log; `None` where the service runs in this process).
    pub recovered: Option<u64>,
}

impl Figures {
    pub fn add(&mut self, other: Figures) {
        self.runs += other.runs;
        self.orders += other.orders;
        self.changes += other.changes;
        self.upstream_calls += other.upstream_calls;
        self.crashes += other.crashes;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.recovered = match (self.recovered, other.recovered) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }

    pub fn report(&self, name: &str) {
        let recovered = self
            .recovered
            .map(|n| format!(" adopted_by_recovery={n}"))
            .unwrap_or_default();
        eprintln!(
            "reliability-figures: {name}: runs={} orders={} changes={} upstream_order_calls={} crashes={} duplicates={} lost={}{recovered}",
            self.runs,
            self.orders,
            self.changes,
            self.upstream_calls,
            self.crashes,
            self.duplicates,
            self.lost
        );
    }
}

/// Upstream licenses (deleted ones included: the sandbox never deletes by itself) per
/// IP beyond the first, and IPs among `acknowledged` with none.
pub fn duplicates_and_lost<'a>(
    sandbox: &SandboxHandle,
    acknowledged: impl IntoIterator<Item = &'a str>,
) -> (u64, u64) {
    duplicates_and_lost_within(sandbox, |_| true, acknowledged)
}

/// [`duplicates_and_lost`] counting only the upstream licenses on the addresses
/// `within` admits.
pub fn duplicates_and_lost_within<'a>(
    sandbox: &SandboxHandle,
    within: impl Fn(&str) -> bool,
    acknowledged: impl IntoIterator<Item = &'a str>,
) -> (u64, u64) {
    let all = sandbox.licenses();
    let mut per_ip = std::collections::BTreeMap::<&str, u64>::new();
    for l in all.iter().filter(|l| within(&l.ip)) {
        *per_ip.entry(l.ip.as_str()).or_default() += 1;
    }
    let duplicates = per_ip.values().map(|n| n.saturating_sub(1)).sum();
    let lost = acknowledged
        .into_iter()
        .filter(|ip| !per_ip.contains_key(ip))
        .count() as u64;
    (duplicates, lost)
}

/// Prints how long a recovery took against the bound it is held to.
pub fn report_time(name: &str, took: std::time::Duration, bound: std::time::Duration) {
    eprintln!(
        "reliability-figures: {name}: took_ms={} bound_ms={}",
        took.as_millis(),
        bound.as_millis()
    );
}
