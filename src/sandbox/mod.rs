//! The sandbox: a BILLmanager simulator speaking the real wire protocol, so that the
//! whole service can be run, demonstrated and tested without an upstream account.
//!
//! It follows billmanager-api.md: `/billmgr` and `/manager/billmgr`, GET and POST,
//! `authinfo` and `func=auth` sessions, `out=xml|json|sjson`, errors as `doc/error` with
//! HTTP 200, the `soft` license functions, a balance debited by the price table, status
//! 5 → 2 after a key delay, and configurable fault injection. Every behaviour the
//! document marks as inferred is a [`SandboxConfig`] field.
//!
//! Layout: `config` (settings), `state` (data, clock, sessions), `rules` (business
//! rules), `cooldown` (how soon an IP or key may change again, parked or in use),
//! `funcs` (one function per `func`), `views` (read-only answers), `doc` and
//! `render` (the answer tree and its formats), `faults`, `conn` (connections that can
//! be cut), `server` (HTTP), `args` (the standalone command).

mod args;
mod config;
mod conn;
mod cooldown;
mod doc;
mod faults;
mod funcs;
mod rules;
mod server;
mod state;
mod views;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_pool;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use args::SandboxArgs;
pub use config::{
    Addon, DuplicateIpPolicy, ListPricelist, OrderIdAt, PriceTable, SandboxConfig, SavedFilter,
    Tariff,
};
pub use faults::{Fault, FaultKind, FaultParseError};
pub use state::{NewSandboxLicense, SandboxLicense, SandboxRenewal};

use conn::{ConnInfo, KillableListener};
use state::{Shared, status};

/// A bound, not yet serving, simulator.
pub struct Sandbox {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Sandbox {
    /// Binds the listener (port 0 picks a free port) but serves nothing yet.
    pub async fn bind(addr: SocketAddr, config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            shared: Arc::new(Shared::new(config)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API URL to give a BILLmanager client: `http://{addr}/billmgr`.
    pub fn url(&self) -> String {
        format!("http://{}/billmgr", self.addr)
    }

    /// A cloneable handle to inspect and change the state while the sandbox runs.
    pub fn handle(&self) -> SandboxHandle {
        SandboxHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` resolves, then drains the open requests (a hanging
    /// `timeout` fault is released at that moment).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "sandbox BILLmanager listening");
        let token = self.shared.shutdown.clone();
        let app = server::router(self.shared).into_make_service_with_connect_info::<ConnInfo>();
        axum::serve(KillableListener(self.listener), app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                token.cancel();
            })
            .await
    }
}

/// A cloneable window on a running sandbox, for tests, benchmarks and the CLI.
#[derive(Clone)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
}

impl SandboxHandle {
    /// Requests received for `func` (`""` when no `func` was sent), counted on arrival,
    /// so also when a fault fired or authentication failed.
    pub fn call_count(&self, func: &str) -> u64 {
        self.shared.lock().call_count(func)
    }

    /// The W3C `traceparent` headers of the last requests for `func` (up to 64),
    /// oldest first: what a caller's tracing sent along.
    pub fn traceparents(&self, func: &str) -> Vec<String> {
        self.shared.lock().traceparents(func)
    }

    /// Requests for `func` with `sok` (the form submitted: an order, a renewal, an
    /// edit, a suspension…) that the sandbox carried out; refused ones are not counted.
    /// How many times a change was applied, where the state alone cannot tell (a second
    /// suspension of a suspended license changes nothing).
    pub fn carried_out(&self, func: &str) -> u64 {
        self.shared.lock().carried_out(func)
    }

    /// Every renewal (`service.prolong`) carried out, oldest first.
    pub fn renewals(&self) -> Vec<SandboxRenewal> {
        self.shared.lock().renewals.clone()
    }

    /// Every license, deleted ones (status 4) included, by id, with effective status.
    pub fn licenses(&self) -> Vec<SandboxLicense> {
        let mut st = self.shared.lock();
        st.settled().map(|r| r.lic.clone()).collect()
    }

    /// One license with its effective status.
    pub fn license(&self, id: u64) -> Option<SandboxLicense> {
        let mut st = self.shared.lock();
        st.record(&self.shared.config, id)
            .ok()
            .map(|r| r.lic.clone())
    }

    /// Plants a license as if it had been bought elsewhere; nothing is debited.
    pub fn insert_license(&self, new: NewSandboxLicense) -> u64 {
        self.shared.lock().insert(new, None)
    }

    /// Puts license `id` in `status` as the upstream's own processing would (5 while
    /// it carries out a change), where it stays until told otherwise. Returns
    /// whether the license exists.
    pub fn set_status(&self, id: u64, status: u32) -> bool {
        match self.shared.lock().records.get_mut(&id) {
            Some(rec) => {
                rec.lic.status = status;
                rec.activates_at = None;
                true
            }
            None => false,
        }
    }

    /// Makes a license vanish without a trace (not even status 4).
    pub fn remove_license(&self, id: u64) -> bool {
        self.shared.lock().records.remove(&id).is_some()
    }

    /// Account balance in cents.
    pub fn balance(&self) -> i64 {
        self.shared.lock().balance
    }

    /// Sets the account balance in cents.
    pub fn set_balance(&self, cents: i64) {
        self.shared.lock().balance = cents;
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.shared.lock().faults = faults;
    }

    /// Sets (or clears) the filter saved on the `soft` list.
    pub fn set_saved_filter(&self, filter: Option<SavedFilter>) {
        self.shared.lock().saved_filter = filter;
    }

    /// Moves the sandbox clock forward (key delay, cooldowns, sessions, dates).
    pub fn advance_clock(&self, by: time::Duration) {
        self.shared.lock().advance_clock(by);
    }

    /// Makes license `id`'s last IP change and last new key (`real_ipchange`,
    /// `real_keychange` and what the cooldowns count from) `by` older, as if they had
    /// happened that long ago; the sandbox clock and every other license stay as they
    /// are. Returns whether the license exists.
    pub fn age_changes(&self, id: u64, by: time::Duration) -> bool {
        match self.shared.lock().records.get_mut(&id) {
            Some(rec) => {
                rec.age_changes(by);
                true
            }
            None => false,
        }
    }

    /// Plants `n` active licenses of `tariff` with distinct IPs (`10.x.y.z`, derived
    /// from the id) and remoteids (`seed-<id>`); returns their ids.
    pub fn bulk_seed(&self, n: usize, tariff: u32) -> Vec<u64> {
        let mut st = self.shared.lock();
        (0..n)
            .map(|_| {
                let id = st.alloc_id();
                let ip = format!("10.{}.{}.{}", (id >> 16) & 255, (id >> 8) & 255, id & 255);
                let mut new = NewSandboxLicense::new(ip, tariff);
                new.licname = format!("seed-{id}");
                new.remote_id = format!("seed-{id}");
                new.status = status::ACTIVE;
                st.insert_at(id, new, None)
            })
            .collect()
    }
}
