//! [`CircuitBreaker`]: a [`Billmanager`] around another that stops calling an upstream
//! which keeps failing.
//!
//! Closed: calls pass; `failure_threshold` consecutive `Unavailable`/`Indeterminate`
//! answers open it. Open: every call fails at once with `Unavailable` (nothing is
//! sent, so failing fast is safe for every function, orders included) until the
//! cool-down has passed; then one call is let through as a trial (half-open) while the
//! others still fail fast. The trial's success closes the breaker, its failure opens
//! it for another cool-down. Any definite answer (a refusal, an auth error) counts as
//! success: the upstream is there.
//!
//! [`CircuitBreaker::run_recovery`] sends the trial itself (a [`Billmanager::ping`]) when
//! nothing else does, so an idle service notices the upstream's return. Readiness
//! follows [`CircuitBreaker::subscribe`]: NOT_SERVING while open.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    Billmanager, LicenseList, OrderParams, UpstreamError, UpstreamId, UpstreamLicense,
    UpstreamTariff,
};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker; 0 turns the breaker off
    /// [default: 5].
    pub failure_threshold: u32,
    /// How long the breaker stays open before a trial call [default: 30 s].
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// A trial call is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    consecutive_failures: u32,
}

/// The breaker; see the module docs.
pub struct CircuitBreaker {
    inner: Arc<dyn Billmanager>,
    config: BreakerConfig,
    // A std mutex: held only to read or flip the phase, never across an await.
    state: Mutex<State>,
    open: watch::Sender<bool>,
}

/// Why a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Trial,
}

impl CircuitBreaker {
    /// A closed breaker around `inner`.
    pub fn new(inner: Arc<dyn Billmanager>, config: BreakerConfig) -> Self {
        Self {
            inner,
            config,
            state: Mutex::new(State {
                phase: Phase::Closed,
                consecutive_failures: 0,
            }),
            open: watch::Sender::new(false),
        }
    }

    /// Whether calls currently fail fast (open or half-open).
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Follows the breaker: `true` while open (or half-open), `false` once closed.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.open.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(&self, function: &str) -> Result<Admission, UpstreamError> {
        if self.config.failure_threshold == 0 {
            return Ok(Admission::Normal);
        }
        let mut state = self.lock();
        match state.phase {
            Phase::Closed => Ok(Admission::Normal),
            Phase::Open { until } if Instant::now() >= until => {
                state.phase = Phase::HalfOpen;
                drop(state);
                transition("half_open");
                Ok(Admission::Trial)
            }
            Phase::Open { .. } | Phase::HalfOpen => {
                crate::metrics::upstream_call(function, "circuit_open", Duration::ZERO);
                Err(UpstreamError::Unavailable(
                    super::error::BREAKER_OPEN.into(),
                ))
            }
        }
    }

    fn record(&self, failed: bool, admission: Admission) {
        if self.config.failure_threshold == 0 {
            return;
        }
        let mut state = self.lock();
        if failed {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            let trip = admission == Admission::Trial
                || (state.phase == Phase::Closed
                    && state.consecutive_failures >= self.config.failure_threshold);
            if trip {
                state.phase = Phase::Open {
                    until: Instant::now() + self.config.cool_down,
                };
                let failures = state.consecutive_failures;
                drop(state);
                tracing::warn!(
                    failures,
                    cool_down_ms = self.config.cool_down.as_millis() as u64,
                    "upstream circuit breaker open"
                );
                transition("open");
                self.open.send_replace(true);
            }
        } else {
            state.consecutive_failures = 0;
            if state.phase != Phase::Closed {
                state.phase = Phase::Closed;
                drop(state);
                tracing::info!("upstream circuit breaker closed");
                transition("closed");
                self.open.send_replace(false);
            }
        }
    }

    /// Runs `call` under the breaker.
    async fn guarded<T, F>(&self, function: &str, call: F) -> Result<T, UpstreamError>
    where
        F: Future<Output = Result<T, UpstreamError>>,
    {
        let admission = self.admit(function)?;
        // A trial dropped mid-flight (its caller gave up) reopens the breaker at once,
        // so the next call may try again instead of it staying half-open forever.
        let mut guard = TrialGuard {
            breaker: self,
            armed: admission == Admission::Trial,
        };
        let result = call.await;
        guard.armed = false;
        let failed = matches!(
            result,
            Err(UpstreamError::Unavailable(_) | UpstreamError::Indeterminate(_))
        );
        self.record(failed, admission);
        result
    }

    /// Until `stop`: whenever the breaker is open and its cool-down has passed, sends
    /// the trial call (a [`Billmanager::ping`], a read) so that the breaker closes once the
    /// upstream is back even when nothing else calls it.
    pub async fn run_recovery(self: Arc<Self>, stop: CancellationToken) {
        let mut open = self.subscribe();
        loop {
            let wait = match self.lock().phase {
                Phase::Closed => None,
                Phase::Open { until } => Some(until.saturating_duration_since(Instant::now())),
                Phase::HalfOpen => Some(self.config.cool_down),
            };
            match wait {
                None => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        changed = open.changed() => if changed.is_err() { return },
                    }
                }
                Some(wait) => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    if matches!(self.lock().phase, Phase::Open { until } if Instant::now() >= until)
                    {
                        let _ = self.ping().await;
                    }
                }
            }
        }
    }
}

struct TrialGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.breaker.lock();
            if state.phase == Phase::HalfOpen {
                state.phase = Phase::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

fn transition(to: &'static str) {
    metrics::counter!(crate::metrics::BREAKER_TRANSITIONS, "to" => to).increment(1);
    let open = if to == "closed" { 0.0 } else { 1.0 };
    metrics::gauge!(crate::metrics::BREAKER_OPEN).set(open);
}

#[async_trait]
impl Billmanager for CircuitBreaker {
    async fn order_license(&self, params: &OrderParams) -> Result<UpstreamId, UpstreamError> {
        self.guarded("soft.order.param", self.inner.order_license(params))
            .await
    }

    async fn license_details(&self, id: UpstreamId) -> Result<UpstreamLicense, UpstreamError> {
        self.guarded("soft.edit", self.inner.license_details(id))
            .await
    }

    async fn list_licenses(&self) -> Result<LicenseList, UpstreamError> {
        self.guarded("soft", self.inner.list_licenses()).await
    }

    async fn ping(&self) -> Result<(), UpstreamError> {
        self.guarded("subaccount", self.inner.ping()).await
    }

    /// Not guarded: the export only feeds quotes and checks, and a slow or huge one
    /// must neither open the breaker that guards orders nor be refused by it.
    async fn price_list(&self) -> Result<Vec<UpstreamTariff>, UpstreamError> {
        self.inner.price_list().await
    }

    async fn renew_license(
        &self,
        id: UpstreamId,
        period: i32,
    ) -> Result<Option<String>, UpstreamError> {
        self.guarded("service.prolong", self.inner.renew_license(id, period))
            .await
    }

    async fn change_ip(&self, id: UpstreamId, ip: IpAddr) -> Result<(), UpstreamError> {
        self.guarded("soft.edit", self.inner.change_ip(id, ip))
            .await
    }

    async fn change_tariff(
        &self,
        id: UpstreamId,
        tariff_id: u32,
        period: i32,
    ) -> Result<(), UpstreamError> {
        self.guarded(
            "service.changepricelist",
            self.inner.change_tariff(id, tariff_id, period),
        )
        .await
    }

    async fn suspend_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.guarded("soft.suspend", self.inner.suspend_license(id))
            .await
    }

    async fn resume_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.guarded("soft.resume", self.inner.resume_license(id))
            .await
    }

    async fn delete_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.guarded("soft.delete", self.inner.delete_license(id))
            .await
    }

    async fn reissue_key(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.guarded("soft.edit", self.inner.reissue_key(id)).await
    }

    async fn move_license(
        &self,
        id: UpstreamId,
        ip: IpAddr,
        name: &str,
    ) -> Result<(), UpstreamError> {
        self.guarded("soft.edit", self.inner.move_license(id, ip, name))
            .await
    }

    fn auth_refused(&self) -> Option<String> {
        self.inner.auth_refused()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    /// An upstream whose ping fails while `down` is set, and counts calls.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        calls: AtomicU32,
    }

    #[async_trait]
    impl Billmanager for Flaky {
        async fn order_license(&self, _: &OrderParams) -> Result<UpstreamId, UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn license_details(&self, _: UpstreamId) -> Result<UpstreamLicense, UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn list_licenses(&self) -> Result<LicenseList, UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn price_list(&self) -> Result<Vec<UpstreamTariff>, UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn ping(&self) -> Result<(), UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                Err(UpstreamError::Indeterminate("HTTP 502".into()))
            } else {
                Ok(())
            }
        }
        async fn renew_license(
            &self,
            _: UpstreamId,
            _: i32,
        ) -> Result<Option<String>, UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn change_ip(&self, _: UpstreamId, _: IpAddr) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn change_tariff(&self, _: UpstreamId, _: u32, _: i32) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn suspend_license(&self, _: UpstreamId) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn resume_license(&self, _: UpstreamId) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn delete_license(&self, _: UpstreamId) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn reissue_key(&self, _: UpstreamId) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
        async fn move_license(
            &self,
            _: UpstreamId,
            _: IpAddr,
            _: &str,
        ) -> Result<(), UpstreamError> {
            unreachable!("the breaker tests call only ping")
        }
    }

    fn breaker(cool_down: Duration) -> (Arc<Flaky>, CircuitBreaker) {
        let flaky = Arc::new(Flaky::default());
        let breaker = CircuitBreaker::new(
            flaky.clone(),
            BreakerConfig {
                failure_threshold: 3,
                cool_down,
            },
        );
        (flaky, breaker)
    }

    #[tokio::test]
    async fn opens_after_the_threshold_of_consecutive_failures_and_then_fails_fast() {
        let (flaky, breaker) = breaker(Duration::from_secs(3600));
        flaky.down.store(true, Ordering::SeqCst);

        for _ in 0..3 {
            assert!(breaker.ping().await.is_err());
        }
        let fast = breaker.ping().await;

        assert!(breaker.is_open());
        assert!(
            matches!(fast, Err(UpstreamError::Unavailable(_))),
            "{fast:?}"
        );
        assert_eq!(
            flaky.calls.load(Ordering::SeqCst),
            3,
            "the fourth was not sent"
        );
    }

    #[tokio::test]
    async fn a_success_resets_the_count_of_consecutive_failures() {
        let (flaky, breaker) = breaker(Duration::from_secs(3600));

        for down in [true, true, false, true, true] {
            flaky.down.store(down, Ordering::SeqCst);
            let _ = breaker.ping().await;
        }

        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn after_the_cool_down_a_successful_trial_closes_it() {
        let (flaky, breaker) = breaker(Duration::from_millis(20));
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = breaker.ping().await;
        }
        let mut open = breaker.subscribe();
        assert!(*open.borrow_and_update());
        flaky.down.store(false, Ordering::SeqCst);

        tokio::time::sleep(Duration::from_millis(30)).await;
        let trial = breaker.ping().await;

        assert!(trial.is_ok());
        assert!(!breaker.is_open());
        assert!(open.has_changed().unwrap());
        assert!(!*open.borrow());
    }

    #[tokio::test]
    async fn a_failed_trial_opens_it_for_another_cool_down() {
        let (flaky, breaker) = breaker(Duration::from_millis(20));
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = breaker.ping().await;
        }

        tokio::time::sleep(Duration::from_millis(30)).await;
        let trial = breaker.ping().await;
        let next = breaker.ping().await;

        assert!(matches!(trial, Err(UpstreamError::Indeterminate(_))));
        assert!(matches!(next, Err(UpstreamError::Unavailable(_))));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 4, "one trial was sent");
        assert!(breaker.is_open());
    }

    #[tokio::test]
    async fn recovery_sends_the_trial_by_itself_once_the_upstream_is_back() {
        let (flaky, breaker) = breaker(Duration::from_millis(10));
        let breaker = Arc::new(breaker);
        flaky.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let _ = breaker.ping().await;
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(breaker.clone().run_recovery(stop.clone()));
        let mut open = breaker.subscribe();

        flaky.down.store(false, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), open.wait_for(|open| !open))
            .await
            .expect("closed in time")
            .unwrap();

        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_zero_threshold_turns_it_off() {
        let flaky = Arc::new(Flaky::default());
        let breaker = CircuitBreaker::new(
            flaky.clone(),
            BreakerConfig {
                failure_threshold: 0,
                cool_down: Duration::from_secs(1),
            },
        );
        flaky.down.store(true, Ordering::SeqCst);

        for _ in 0..10 {
            let _ = breaker.ping().await;
        }

        assert!(!breaker.is_open());
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 10);
    }
}
