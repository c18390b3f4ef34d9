//! The platform simulator: the VMmanager 6 and DCImanager 6 API shapes that the
//! watcher reads (platforms.md), so the whole chain — platform, watcher,
//! license-facade, BILLmanager sandbox — runs on a laptop and in tests. It is the
//! BILLmanager sandbox's sibling: bound first (port 0 works), served until a shutdown
//! future resolves, inspected and changed through a [`PlatformSimHandle`].
//!
//! What it serves: log-in (`POST /auth/v4/public/token`) and long-lived tokens
//! (`POST /auth/v4/token`); VMmanager hosts (list with `where=` filters and paging,
//! create, edit, delete, addresses, tasks); DCImanager servers (list, read, edit). Each
//! path also answers under `/api`. Faults ([`SimFaults`]): 503 while "suspended",
//! sessions that expire by time or by calls, lists cut short or empty, a page error.
//!
//! Layout: `config` (settings), `state` (data, tasks, sessions), `filter` (`where=`),
//! `server` (routes, authentication, faults, paging), `hosts` and `dci` (each
//! platform's handlers), `args` (the `platform-sim` command).

mod args;
mod config;
mod dci;
mod filter;
mod hosts;
mod server;
mod state;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;

pub use args::PlatformSimArgs;
pub use config::{OsTemplate, PlatformSimConfig, SimFaults};
pub use filter::{Filter, FilterError};
pub use state::{DciServer, HostState, NewHost, SimHost, SimIp};

/// What the routes share.
pub(crate) struct Shared {
    config: PlatformSimConfig,
    state: Mutex<state::State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, state::State> {
        // A panic while holding the lock leaves plain data behind; serving on is safe.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bound, not yet serving, simulator.
pub struct PlatformSim {
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl PlatformSim {
    /// Binds the listener (port 0 picks a free port) but serves nothing yet.
    pub async fn bind(addr: SocketAddr, config: PlatformSimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Mutex::new(state::State::new(&config));
        Ok(Self {
            listener,
            addr,
            shared: Arc::new(Shared { config, state }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The platform's base URL, e.g. `http://127.0.0.1:8090` (paths follow it, with or
    /// without `/api`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A cloneable handle to inspect and change the state while it runs.
    pub fn handle(&self) -> PlatformSimHandle {
        PlatformSimHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "platform simulator listening");
        axum::serve(self.listener, server::router(self.shared))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// A cloneable window on a running simulator, for tests, benchmarks and the demo.
#[derive(Clone)]
pub struct PlatformSimHandle {
    shared: Arc<Shared>,
}

impl PlatformSimHandle {
    /// Requests received under `label` (`"GET /vm/v3/host"`, `"POST /vm/v3/host/{id}"`,
    /// …; `"503"` counts busy answers, `"expired"` answers to expired sessions).
    pub fn calls(&self, label: &str) -> u64 {
        self.shared.lock().calls(label)
    }

    /// Every request received, faults included (the `503` and `expired` counters are
    /// not requests and are left out).
    pub fn total_calls(&self) -> u64 {
        let st = self.shared.lock();
        st.total_calls() - st.calls("503") - st.calls("expired")
    }

    /// Every host, in id order (tasks due by now applied).
    pub fn hosts(&self) -> Vec<SimHost> {
        let mut st = self.shared.lock();
        st.settle();
        st.hosts.values().cloned().collect()
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: SimFaults) {
        self.shared.lock().faults = faults;
    }

    /// The injected faults now (a busy count goes down as it fires).
    pub fn faults(&self) -> SimFaults {
        self.shared.lock().faults.clone()
    }

    /// Expires every open session, as a platform restart does.
    pub fn expire_sessions(&self) {
        self.shared.lock().expire_sessions();
    }

    /// Sessions expire after this many calls from now on (`None`: never by calls).
    pub fn set_session_max_calls(&self, max: Option<u64>) {
        self.shared.lock().session_max_calls = max;
    }

    /// Completes every running task now.
    pub fn finish_tasks(&self) {
        self.shared.lock().finish_tasks();
    }

    /// Creates `n` active hosts at once, without going through HTTP (for benchmarks),
    /// with the comment `comment(i)` for the i-th; their ids.
    pub fn seed_hosts(&self, n: usize, comment: impl Fn(usize) -> String) -> Vec<u64> {
        let mut st = self.shared.lock();
        let ids: Vec<u64> = (0..n)
            .map(|i| {
                let new = NewHost {
                    name: format!("seed-{i}"),
                    comment: comment(i),
                    os: 1,
                    ipv4_number: 1,
                    ..NewHost::default()
                };
                st.create_host(new, std::time::Duration::ZERO).0
            })
            .collect();
        ids
    }

    /// Racks a DCImanager server; its id.
    pub fn add_dci_server(&self, name: &str, ips: &[Ipv4Addr], comment: &str) -> u64 {
        self.shared.lock().add_server(DciServer {
            id: 0,
            name: name.to_owned(),
            comment: comment.to_owned(),
            tags: Vec::new(),
            ips: ips.to_vec(),
            os: "AlmaLinux 9".into(),
        })
    }

    /// Takes a DCImanager server out (decommissioned); whether it was there.
    pub fn remove_dci_server(&self, id: u64) -> bool {
        self.shared.lock().servers.remove(&id).is_some()
    }

    /// Every DCImanager server, in id order.
    pub fn dci_servers(&self) -> Vec<DciServer> {
        self.shared.lock().servers.values().cloned().collect()
    }
}
