//! Prometheus metrics: the process-wide recorder, the names of every series, and the
//! small recording helpers the transports, the upstream client and the service call.
//!
//! The recorder is installed once per process (tests build many applications in one
//! process; they all share it) and rendered by `GET /metrics`. Gauges that describe
//! the database (licenses by state, the latest drift report) are refreshed on scrape,
//! so every replica reports the same shared numbers.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Calls served, by `transport` (`rest`, `grpc`), `method` and `code`.
pub const REQUESTS: &str = "license_facade_requests_total";
/// Latency of served calls, same labels as [`REQUESTS`].
pub const REQUEST_SECONDS: &str = "license_facade_request_duration_seconds";
/// Upstream calls by `function` and `outcome`.
pub const UPSTREAM_CALLS: &str = "license_facade_upstream_calls_total";
/// Upstream call latency by `function` and `outcome`.
pub const UPSTREAM_SECONDS: &str = "license_facade_upstream_call_duration_seconds";
/// 1 while the upstream circuit breaker is open, else 0.
pub const BREAKER_OPEN: &str = "license_facade_upstream_circuit_open";
/// Breaker transitions by `to` (`open`, `half_open`, `closed`).
pub const BREAKER_TRANSITIONS: &str = "license_facade_upstream_circuit_transitions_total";
/// 1 while calls are held back because the upstream refused the credentials, else 0.
pub const UPSTREAM_AUTH_REFUSED: &str = "license_facade_upstream_auth_refused";
/// Upstream answers the workflow met: `kind` = `unpaid` (an ordered item left in
/// status 1), `activation_timeout`, `unreadable_order` (an order answer without an id
/// we can read), `unreadable_change` (a change's answer without an error that cannot
/// be read), `incomplete_list` (a look-up on a list that may leave licenses
/// out), `unprovable_absence` (an order not found on a list that shows no license in
/// some status an order may be in, handed to a person; a change not seen on a license
/// in processing).
pub const UPSTREAM_ANOMALIES: &str = "license_facade_upstream_anomalies_total";
/// Upstream requests that had to wait for the outbound rate limit.
pub const RATE_LIMITED: &str = "license_facade_upstream_rate_limited_total";
/// Licenses in the database by `state`.
pub const LICENSES: &str = "license_facade_licenses";
/// Licenses in NEEDS_ATTENTION (the alerting series).
pub const NEEDS_ATTENTION: &str = "license_facade_licenses_needs_attention";
/// Counts of the latest drift report by `kind` (`orphan`, `missing`, `mismatch`,
/// `expiring`).
pub const DRIFT: &str = "license_facade_drift";
/// Unix time of the latest drift report.
pub const DRIFT_TIME: &str = "license_facade_drift_report_timestamp_seconds";
/// Orders accepted (new licenses) by `client`.
pub const ORDERS: &str = "license_facade_orders_total";
/// List price of the accepted orders in hundredths of the currency (cents), by
/// `client` and `currency`.
pub const SPEND: &str = "license_facade_order_spend_cents_total";
/// Orders that took a parked license instead of buying, by `panel`.
pub const POOL_REUSES: &str = "license_facade_pool_reuses_total";

/// Open change-feed streams by `client` (this process).
pub const FEED_STREAMS: &str = "license_facade_feed_streams";
/// Store reads made by change-feed streams, by `client`.
pub const FEED_READS: &str = "license_facade_feed_reads_total";
/// Change-feed events delivered to webhooks (this process).
pub const WEBHOOK_DELIVERIES: &str = "license_facade_webhook_deliveries_total";
/// Failed webhook delivery attempts (this process).
pub const WEBHOOK_FAILURES: &str = "license_facade_webhook_failures_total";
/// Time from an event's commit to its delivery to a webhook.
pub const WEBHOOK_DELAY: &str = "license_facade_webhook_delay_seconds";

/// (user name, network) pairs the `/billmgr` log-in back-off holds (this process);
/// at most `downstream.backoff_entries`.
pub const BILLMGR_BACKOFF_ENTRIES: &str = "license_facade_billmgr_backoff_entries";
/// `/billmgr` sessions held (this process); at most `downstream.max_sessions`.
pub const BILLMGR_SESSIONS: &str = "license_facade_billmgr_sessions";

/// The `method` label of a call that matched no route, method or service: callers
/// choose paths and methods freely, so only known ones may become series.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets in seconds, from a cached read to a slow upstream call.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. When another
/// recorder was installed first (an embedding program's), this one still renders, but
/// empty.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        } else {
            describe();
        }
        handle
    })
}

/// Installs the recorder (idempotent) so that series recorded before the first scrape
/// are kept.
pub fn install() {
    let _ = handle();
}

/// How often the recorded latencies are folded into their histogram buckets when
/// nothing scrapes `/metrics`.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the latencies recorded since the last scrape into their buckets `every`
/// ([`UPKEEP_INTERVAL`] when serving) until `stop`. The recorder keeps every
/// recorded value until then: a service that nobody scraped kept each call's sample
/// (8 bytes and more a call) without bound.
pub async fn run_upkeep(every: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => handle().run_upkeep(),
        }
    }
}

/// The text exposition of every series.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "API calls served, by transport, method and code");
    describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "API call latency, by transport, method and code"
    );
    describe_counter!(UPSTREAM_CALLS, "BILLmanager calls by function and outcome");
    describe_histogram!(
        UPSTREAM_SECONDS,
        metrics::Unit::Seconds,
        "BILLmanager call latency by function and outcome"
    );
    describe_gauge!(BREAKER_OPEN, "1 while the upstream circuit breaker is open");
    describe_counter!(BREAKER_TRANSITIONS, "Upstream circuit breaker transitions");
    describe_gauge!(
        UPSTREAM_AUTH_REFUSED,
        "1 while no upstream call is made because the credentials were refused"
    );
    describe_counter!(
        UPSTREAM_ANOMALIES,
        "Upstream answers that sent a license to a person or held it back, by kind"
    );
    describe_counter!(
        RATE_LIMITED,
        "Upstream requests that waited for the outbound rate limit"
    );
    describe_gauge!(LICENSES, "Licenses in the database by state");
    describe_gauge!(
        NEEDS_ATTENTION,
        "Licenses in NEEDS_ATTENTION: a person must look"
    );
    describe_gauge!(DRIFT, "Entries of the latest drift report by kind");
    describe_gauge!(DRIFT_TIME, "Unix time of the latest drift report");
    describe_counter!(ORDERS, "Orders accepted (new licenses) by client");
    describe_counter!(
        POOL_REUSES,
        "Orders that took a parked license instead of buying, by panel"
    );
    describe_gauge!(FEED_STREAMS, "Open change-feed streams by client");
    describe_gauge!(
        BILLMGR_BACKOFF_ENTRIES,
        "User name and network pairs held by the /billmgr log-in back-off"
    );
    describe_gauge!(BILLMGR_SESSIONS, "Sessions held by /billmgr");
    describe_counter!(
        FEED_READS,
        "Store reads made by change-feed streams, by client"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Change-feed events delivered to webhooks"
    );
    describe_counter!(WEBHOOK_FAILURES, "Failed webhook delivery attempts");
    describe_histogram!(
        WEBHOOK_DELAY,
        metrics::Unit::Seconds,
        "Time from an event's commit to its webhook delivery"
    );
    describe_counter!(
        SPEND,
        "List price of accepted orders in cents, by client and currency"
    );
}

/// The handles of one request series: its counter and its latency histogram.
type RequestSeries = (metrics::Counter, metrics::Histogram);

thread_local! {
    /// This thread's request series by `transport\nmethod\ncode`. The macros build
    /// the key (three labels, six strings), hash it and look it up in the recorder's
    /// registry at every call, on every read; a known series costs one lookup of a
    /// short string here. The label values are bounded (routes, not paths; `unmatched`
    /// for the rest), so the map is too.
    static REQUEST_SERIES: std::cell::RefCell<(String, std::collections::HashMap<String, RequestSeries>)> =
        std::cell::RefCell::default();
}

/// Records one served API call.
pub fn request(transport: &'static str, method: &str, code: &str, elapsed: Duration) {
    REQUEST_SERIES.with_borrow_mut(|(key, series)| {
        key.clear();
        for part in [transport, method, code] {
            key.push_str(part);
            key.push('\n');
        }
        let (count, latency) = match series.get(key.as_str()) {
            Some(known) => known,
            None => {
                // Handles made before the recorder is installed would record nowhere.
                install();
                let labels = [
                    ("transport", transport.to_owned()),
                    ("method", method.to_owned()),
                    ("code", code.to_owned()),
                ];
                series.entry(key.clone()).or_insert((
                    metrics::counter!(REQUESTS, &labels),
                    metrics::histogram!(REQUEST_SECONDS, &labels),
                ))
            }
        };
        count.increment(1);
        latency.record(elapsed.as_secs_f64());
    });
}

/// Records one upstream call (its log-in included, as function `auth`).
pub fn upstream_call(function: &str, outcome: &'static str, elapsed: Duration) {
    let labels = [
        ("function", function.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!(UPSTREAM_CALLS, &labels).increment(1);
    metrics::histogram!(UPSTREAM_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// Records one accepted order by `client`.
pub fn order(client: &str) {
    metrics::counter!(ORDERS, "client" => client.to_owned()).increment(1);
}

/// Adds an accepted order's recorded price (hundredths, add-ons included) to
/// `client`'s spend.
pub fn spend(client: &str, cents: i64, currency: &str) {
    // Counters are integers; the spend is kept in hundredths (cents).
    metrics::counter!(SPEND, "client" => client.to_owned(), "currency" => currency.to_owned())
        .increment(u64::try_from(cents).unwrap_or(0));
}

/// Sets `client`'s count of open change-feed streams.
pub fn feed_streams(client: &str, open: usize) {
    metrics::gauge!(FEED_STREAMS, "client" => client.to_owned()).set(open as f64);
}

/// Sets the count of pairs the `/billmgr` back-off holds.
pub fn billmgr_backoff_entries(held: usize) {
    metrics::gauge!(BILLMGR_BACKOFF_ENTRIES).set(held as f64);
}

/// Sets the count of `/billmgr` sessions held.
pub fn billmgr_sessions(held: usize) {
    metrics::gauge!(BILLMGR_SESSIONS).set(held as f64);
}

/// Counts one event delivered to a webhook, committed at `event_time`.
pub fn webhook_delivered(event_time: time::OffsetDateTime) {
    metrics::counter!(WEBHOOK_DELIVERIES).increment(1);
    let delay = time::OffsetDateTime::now_utc() - event_time;
    metrics::histogram!(WEBHOOK_DELAY).record(delay.as_seconds_f64().max(0.0));
}

/// Counts one failed webhook delivery attempt.
pub fn webhook_failed() {
    metrics::counter!(WEBHOOK_FAILURES).increment(1);
}

/// Counts one store read of a change-feed stream of `client`.
pub fn feed_read(client: &str) {
    metrics::counter!(FEED_READS, "client" => client.to_owned()).increment(1);
}

/// The counts of the latest drift report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftCounts {
    /// Unix time of the report.
    pub generated_unix: i64,
    /// Paid upstream, unknown here.
    pub orphans: u64,
    /// Live here, gone upstream.
    pub missing: u64,
    /// Field mismatches.
    pub mismatches: u64,
    /// Expiring without auto-renewal.
    pub expiring: u64,
}

/// The figures of the shared database that the gauges show, as the service hands
/// them over at a scrape: what could not be read is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Licenses by state, every state listed.
    pub licenses: Option<Vec<(crate::domain::LicenseState, u64)>>,
    /// The newest drift report's counts; `None` before the first one.
    pub drift: Option<DriftCounts>,
}

/// Sets the gauges that describe the shared database: licenses by state, the
/// NEEDS_ATTENTION count and the latest drift report's counts. A figure that could
/// not be read leaves the previous values.
pub fn refresh(figures: &Figures) {
    for (state, n) in figures.licenses.iter().flatten() {
        metrics::gauge!(LICENSES, "state" => state.as_str()).set(*n as f64);
        if *state == crate::domain::LicenseState::NeedsAttention {
            metrics::gauge!(NEEDS_ATTENTION).set(*n as f64);
        }
    }
    if let Some(drift) = figures.drift {
        for (kind, n) in [
            ("orphan", drift.orphans),
            ("missing", drift.missing),
            ("mismatch", drift.mismatches),
            ("expiring", drift.expiring),
        ] {
            metrics::gauge!(DRIFT, "kind" => kind).set(n as f64);
        }
        metrics::gauge!(DRIFT_TIME).set(drift.generated_unix as f64);
    }
}

#[cfg(test)]
mod upkeep_tests {
    use super::*;

    #[tokio::test]
    async fn the_upkeep_runs_on_until_stopped_and_then_ends() {
        install();
        request("rest", "GET /v1/x", "200", Duration::from_millis(3));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run_upkeep(Duration::from_millis(5), stop.clone()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!task.is_finished(), "the upkeep ended on its own");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the upkeep ends when stopped")
            .expect("no panic");
        assert!(
            render().contains(REQUEST_SECONDS),
            "samples are kept in buckets"
        );
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    /// The value of the `license_facade_requests_total` sample with these labels.
    fn requests(rendered: &str, method: &str, code: &str) -> Option<u64> {
        let labels = format!("code=\"{code}\",method=\"{method}\",transport=\"grpc\"");
        rendered.lines().find_map(|line| {
            let rest = line.strip_prefix(REQUESTS)?.strip_prefix('{')?;
            let (found, value) = rest.split_once("} ")?;
            let mut sorted: Vec<&str> = found.split(',').collect();
            sorted.sort_unstable();
            (sorted.join(",") == labels).then(|| value.trim().parse().ok())?
        })
    }

    #[test]
    fn each_series_counts_its_own_calls_from_every_thread() {
        install();
        let method = "/licensefacade.v1.Test/CountedTwice";
        request("grpc", method, "OK", Duration::from_millis(1));
        std::thread::spawn(move || request("grpc", method, "OK", Duration::from_millis(2)))
            .join()
            .unwrap();
        request("grpc", method, "NOT_FOUND", Duration::from_millis(1));

        let rendered = render();
        assert_eq!(requests(&rendered, method, "OK"), Some(2), "{rendered}");
        assert_eq!(
            requests(&rendered, method, "NOT_FOUND"),
            Some(1),
            "{rendered}"
        );
    }
}
