//! Readiness shared by `/readyz` and the gRPC health service: the store answers, the
//! upstream was reachable at the last probe, and the process is not shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::billmanager::Billmanager;
use crate::domain::{CatalogCheck, PanelCatalog};

/// Readiness flags.
#[derive(Debug, Default)]
pub struct Readiness {
    upstream_ok: AtomicBool,
    draining: AtomicBool,
    breaker_open: AtomicBool,
    /// Wakes the upstream probe before its interval is up (the breaker closed).
    probe_now: tokio::sync::Notify,
}

impl Readiness {
    /// Whether the upstream circuit breaker is open (calls fail fast).
    pub fn breaker_open(&self) -> bool {
        self.breaker_open.load(Ordering::Relaxed)
    }

    /// Records the breaker's state; when it closes, the upstream probe runs at once.
    pub fn set_breaker_open(&self, open: bool) {
        self.breaker_open.store(open, Ordering::Relaxed);
        if !open {
            self.probe_now.notify_one();
        }
    }

    /// Whether the process should receive calls, as far as these flags tell (the
    /// store is checked by `/readyz` itself).
    pub fn serving(&self) -> bool {
        self.upstream_ok() && !self.breaker_open() && !self.draining()
    }

    /// Whether the last upstream probe succeeded.
    pub fn upstream_ok(&self) -> bool {
        self.upstream_ok.load(Ordering::Relaxed)
    }

    /// Whether shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the process as shutting down: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records a probe result.
    pub fn set_upstream_ok(&self, ok: bool) {
        self.upstream_ok.store(ok, Ordering::Relaxed);
    }
}

/// Compares the catalog with the upstream price list. Errors only when the upstream
/// cannot be asked.
pub async fn check_catalog(
    upstream: &dyn Billmanager,
    catalog: &PanelCatalog,
) -> Result<CatalogCheck, crate::billmanager::UpstreamError> {
    let tariffs: Vec<u32> = upstream.price_list().await?.iter().map(|t| t.id).collect();
    Ok(catalog.check(&tariffs))
}

/// Probes the upstream every `interval` until `stop`. Ready means the upstream answers
/// a cheap read ([`Billmanager::ping`]). The catalog is compared with the price list
/// in the same round, but only reported: the export can be slow or huge, and a
/// failure to read it must not take the service out of rotation (it fails quotes
/// and `panels --check` instead). `on_change` runs whenever readiness flips.
pub async fn probe_upstream<F, Fut>(
    upstream: Arc<dyn Billmanager>,
    catalog: Arc<PanelCatalog>,
    readiness: Arc<Readiness>,
    interval: Duration,
    stop: CancellationToken,
    mut on_change: F,
) where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut last = None;
    let mut last_missing: Option<Vec<u32>> = None;
    loop {
        let ok = match upstream.ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error.message = %e, "upstream probe failed");
                false
            }
        };
        if ok {
            match check_catalog(upstream.as_ref(), &catalog).await {
                Ok(check) => {
                    let missing: Vec<u32> = check.missing.iter().map(|p| p.tariff_id).collect();
                    if !missing.is_empty() && last_missing.as_ref() != Some(&missing) {
                        for p in &check.missing {
                            tracing::error!(panel = %p.name, tariff_id = p.tariff_id, "configured panel is not offered upstream; orders for it will be refused");
                        }
                    }
                    last_missing = Some(missing);
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, "cannot read the upstream price list; quotes will fail until it can be read");
                }
            }
        }
        readiness.set_upstream_ok(ok);
        if last != Some(ok) {
            tracing::info!(upstream_ok = ok, "upstream readiness changed");
            on_change(ok).await;
            last = Some(ok);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = readiness.probe_now.notified() => {}
        }
    }
}
