//! The platform watcher: licenses follow the servers they license.
//!
//! It reads a VMmanager 6 or DCImanager 6 platform (neither pushes events) and keeps
//! exactly one live license on the current address of every server whose markers ask
//! for a panel, and none for servers that are gone. It is a client of license-facade
//! like any provider's integration: it talks to the service only through the public
//! gRPC API with its own client token, never through the core or the store.
//!
//! Layout: `config` and `config_file` (watcher.toml, checked and as read), `desired` (markers → panel and address), `api`
//! (the gRPC client), `plan` (a pass's decisions, pure), `ids` (server and request
//! ids), `state` (absence bookkeeping on disk), `pass` (one pass), `report`, `status`
//! (metrics and the status page's data), `http` (the operator and guest listeners),
//! `args` (the `watch` command).

mod api;
mod args;
mod config;
mod config_file;
mod desired;
mod http;
mod ids;
mod pass;
mod plan;
#[cfg(test)]
mod plan_tests;
mod report;
mod state;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api::{ApiError, License, LicenseApi};
pub use args::{WatchArgs, run_command};
pub use config::{
    AddressPick, CancelRules, LicenseDefaults, MarkerRules, ReleasePolicy, WatcherConfig,
};
pub use pass::PassMode;
pub use plan::{Held, PendingCancel};
pub use report::{ListingSummary, PassReport, StepResult};
pub use status::{Snapshot, StatusBoard};

use crate::platform::Platform;
use state::StateFile;

/// A configured watcher: platform adapter, API client, bookkeeping, status.
pub struct Watcher {
    config: WatcherConfig,
    platform: Platform,
    api: LicenseApi,
    state_file: StateFile,
    board: StatusBoard,
    /// Seconds added to the system clock (tests and drills move time forward).
    clock_offset: AtomicI64,
    /// One pass at a time, whoever asks for it.
    passes: tokio::sync::Mutex<()>,
}

impl Watcher {
    /// Builds the adapter and the client; connects to nothing yet.
    pub fn new(config: WatcherConfig) -> anyhow::Result<Self> {
        let platform = Platform::new(config.platform.clone())?;
        let api = LicenseApi::new(
            &config.api.grpc_url,
            config.api.token.as_ref(),
            config.api.timeout,
            config.api.tls.as_ref(),
        )?;
        let state_file = StateFile::new(config.state_file.clone(), &config.server_prefix());
        state_file.load().context("the state file")?;
        Ok(Self {
            config,
            platform,
            api,
            state_file,
            board: StatusBoard::default(),
            clock_offset: AtomicI64::new(0),
            passes: tokio::sync::Mutex::new(()),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &WatcherConfig {
        &self.config
    }

    /// Its counters and the last pass's picture.
    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    /// Unix time on the watcher's clock.
    pub fn now(&self) -> i64 {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        now + self.clock_offset.load(Ordering::Relaxed)
    }

    /// Moves the watcher's clock forward (tests and drills: a grace period passes
    /// without waiting for it).
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset
            .fetch_add(by.as_secs() as i64, Ordering::Relaxed);
    }

    /// Runs one pass and logs what it did.
    pub async fn pass(&self, mode: PassMode) -> anyhow::Result<PassReport> {
        let _one = self.passes.lock().await;
        match pass::run(self, mode).await {
            Ok(report) => {
                log_pass(&report);
                Ok(report)
            }
            Err(e) => {
                tracing::error!(error.message = %e, error.cause_chain = ?e, "watcher pass failed; nothing was decided");
                self.board.record_failure(&e);
                Err(e)
            }
        }
    }
}

fn log_pass(r: &PassReport) {
    tracing::info!(
        dry_run = r.dry_run,
        servers = r.listing.servers,
        listing_complete = r.listing.complete,
        listing_reason = r.listing.reason.as_deref().unwrap_or(""),
        platform_requests = r.listing.requests,
        api_calls = r.api_calls,
        marked = r.servers_marked,
        licenses = r.licenses_live,
        in_order = r.in_order,
        ordered = r.ordered,
        moved = r.moved,
        panel_changed = r.panel_changed,
        cancelled = r.cancelled,
        released = r.released,
        parked = r.parked,
        pending_cancellations = r.pending.len(),
        held = r.held.len(),
        errors = r.errors,
        blocked = r.blocked.is_some(),
        duration_ms = r.duration_ms,
        "watcher pass done"
    );
    if let Some(why) = &r.blocked {
        tracing::warn!(reason = %why, "cancellations stopped by the share limit");
    }
}

/// The watcher's listeners, bound before anything runs (port 0 works).
pub struct Listeners {
    http: Option<TcpListener>,
    guest: Option<TcpListener>,
}

impl Listeners {
    /// Binds the operator and guest listeners the configuration names.
    pub async fn bind(config: &WatcherConfig) -> anyhow::Result<Self> {
        let bind = |addr: Option<SocketAddr>, what: &'static str| async move {
            match addr {
                Some(addr) => TcpListener::bind(addr)
                    .await
                    .map(Some)
                    .with_context(|| format!("cannot bind the {what} listener on {addr}")),
                None => Ok(None),
            }
        };
        Ok(Self {
            http: bind(config.http_addr, "operator").await?,
            guest: bind(config.guest.as_ref().map(|g| g.addr), "guest").await?,
        })
    }

    /// Listeners bound already (a caller that must know the operator address before
    /// the watcher's configuration exists, as a console that links to it does).
    pub fn from_bound(http: Option<TcpListener>, guest: Option<TcpListener>) -> Self {
        Self { http, guest }
    }

    /// The operator listener's address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The guest listener's address.
    pub fn guest_addr(&self) -> Option<SocketAddr> {
        self.guest.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Serves the listeners and runs a pass every interval until `shutdown` resolves; a
/// pass under way is finished first.
pub async fn serve(
    watcher: Arc<Watcher>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let mut servers = tokio::task::JoinSet::new();
    let routes = [
        (listeners.http, http::operator_router(watcher.clone())),
        (listeners.guest, http::guest_router(watcher.clone())),
    ];
    for (listener, router) in routes {
        let Some(listener) = listener else { continue };
        let stop = stop.clone();
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
    }
    let interval = watcher.config.interval;
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.cancel();
    });
    loop {
        // A failed pass is logged and shown on /status; the next one tries again.
        let _ = watcher.pass(PassMode::default()).await;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => break,
        }
    }
    while let Some(done) = servers.join_next().await {
        done.context("a watcher listener task failed")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The watcher is a client of the public API (design §11): no module of it may
    /// reach into the service core, the store or the domain types behind the API.
    #[test]
    fn the_watcher_uses_nothing_of_the_service_but_its_grpc_api() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/watcher");
        // Built here, so that this file does not name them itself.
        let forbidden = ["service", "store", "domain", "startup"].map(|m| format!("crate::{m}"));
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("src/watcher") {
            let path = entry.expect("an entry").path();
            let text = std::fs::read_to_string(&path).expect("a source file");
            for name in &forbidden {
                assert!(
                    !text.contains(name.as_str()),
                    "{} uses {name}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked > 5);
    }
}
