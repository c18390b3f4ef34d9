//! Readiness shared by `/readyz` and the gRPC health service: the store answers, the
//! upstream was reachable at the last probe, and the process is not shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::billmanager::Billmanager;

/// Readiness flags.
#[derive(Debug, Default)]
pub struct Readiness {
    upstream_ok: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
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

/// Probes the upstream (`pricelist.export`, a read) every `interval` until `stop`;
/// `on_change` runs whenever the result flips.
pub async fn probe_upstream<F, Fut>(
    upstream: Arc<dyn Billmanager>,
    readiness: Arc<Readiness>,
    interval: Duration,
    stop: CancellationToken,
    mut on_change: F,
) where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut last = None;
    loop {
        let ok = match upstream.price_list().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error.message = %e, "upstream probe failed");
                false
            }
        };
        readiness.set_upstream_ok(ok);
        if last != Some(ok) {
            tracing::info!(upstream_ok = ok, "upstream readiness changed");
            on_change(ok).await;
            last = Some(ok);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
