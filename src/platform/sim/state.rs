//! What the simulated platform holds: VMmanager hosts with their addresses, the tasks
//! that create and delete them, DCImanager servers, sessions, and call counts.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::{PlatformSimConfig, SimFaults};

/// The state of a VMmanager host (the values public clients show: platforms.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Being created (its task runs).
    Creating,
    /// Running.
    Active,
    /// Stopped.
    Stopped,
    /// Being deleted (its task runs); gone from the list when the task completes.
    Deleting,
}

impl HostState {
    /// The string the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Creating => "creating",
            HostState::Active => "active",
            HostState::Stopped => "stopped",
            HostState::Deleting => "deleting",
        }
    }
}

/// One address of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimIp {
    /// The address's own id (`DELETE /vm/v3/ip/{id}`).
    pub id: u64,
    /// The address.
    pub ip: Ipv4Addr,
}

/// A VMmanager host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimHost {
    /// Host id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Free-text comment.
    pub comment: String,
    /// Domain name.
    pub domain: String,
    /// State.
    pub state: HostState,
    /// OS template id.
    pub os: u64,
    /// Addresses, in the order they were added.
    pub ips: Vec<SimIp>,
    /// Tags (shown only when the configuration says hosts carry tags).
    pub tags: Vec<String>,
}

/// A DCImanager server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DciServer {
    /// Server id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Free-text comment.
    pub comment: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Addresses.
    pub ips: Vec<Ipv4Addr>,
    /// Installed OS.
    pub os: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Activate,
    Remove,
    Nothing,
}

#[derive(Debug, Clone)]
struct Task {
    name: &'static str,
    host: u64,
    done_at: Instant,
    effect: Effect,
    complete: bool,
}

struct Session {
    created: Instant,
    calls: u64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// A live session or an API token.
    Valid,
    /// A session that has expired (by time or by calls).
    Expired,
    /// Never issued.
    Unknown,
}

/// The whole state, behind one mutex.
pub struct State {
    pub(super) hosts: BTreeMap<u64, SimHost>,
    pub(super) servers: BTreeMap<u64, DciServer>,
    tasks: BTreeMap<u64, Task>,
    sessions: HashMap<String, Session>,
    api_tokens: Vec<String>,
    pub(super) session_max_calls: Option<u64>,
    next_host: u64,
    next_ip_id: u64,
    next_task: u64,
    next_address: u32,
    calls: HashMap<String, u64>,
    pub(super) faults: SimFaults,
}

impl State {
    /// An empty platform with the configured faults.
    pub fn new(config: &PlatformSimConfig) -> Self {
        Self {
            hosts: BTreeMap::new(),
            servers: BTreeMap::new(),
            tasks: BTreeMap::new(),
            sessions: HashMap::new(),
            api_tokens: config.api_tokens.clone(),
            session_max_calls: config.session_max_calls,
            next_host: 1,
            next_ip_id: 1,
            next_task: 1000,
            next_address: u32::from(config.ip_pool_start),
            calls: HashMap::new(),
            faults: config.faults.clone(),
        }
    }

    /// Counts a call under `label` (e.g. `GET /vm/v3/host`).
    pub fn count(&mut self, label: &str) {
        *self.calls.entry(label.to_owned()).or_default() += 1;
    }

    /// Calls counted under `label`.
    pub fn calls(&self, label: &str) -> u64 {
        self.calls.get(label).copied().unwrap_or(0)
    }

    /// Every call counted.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Opens a session; returns its token.
    pub fn open_session(&mut self) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        self.sessions.insert(
            token.clone(),
            Session {
                created: Instant::now(),
                calls: 0,
            },
        );
        token
    }

    /// Issues a long-lived API token (never expires by time or calls).
    pub fn issue_api_token(&mut self) -> String {
        let token = format!(
            "{}-{:032x}",
            self.api_tokens.len() + 1,
            rand::random::<u128>()
        );
        self.api_tokens.push(token.clone());
        token
    }

    /// Checks a session token and counts the call against it.
    pub fn use_session(&mut self, token: &str, config: &PlatformSimConfig) -> TokenCheck {
        if self.api_tokens.iter().any(|t| t == token) {
            return TokenCheck::Valid;
        }
        let Some(session) = self.sessions.get_mut(token) else {
            return TokenCheck::Unknown;
        };
        session.calls += 1;
        let too_old = config
            .session_ttl
            .is_some_and(|ttl| session.created.elapsed() >= ttl);
        let too_used = self
            .session_max_calls
            .is_some_and(|max| session.calls > max);
        if too_old || too_used {
            TokenCheck::Expired
        } else {
            TokenCheck::Valid
        }
    }

    /// Makes every open session expired (as a platform restart does).
    pub fn expire_sessions(&mut self) {
        for session in self.sessions.values_mut() {
            session.calls = u64::MAX / 2;
            session.created = Instant::now()
                .checked_sub(Duration::from_secs(10 * 365 * 86_400))
                .unwrap_or(session.created);
        }
    }

    /// Applies every task whose time has come.
    pub fn settle(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.complete && t.done_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.complete_task(id);
        }
    }

    /// Completes every running task now.
    pub fn finish_tasks(&mut self) {
        let open: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.complete)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.complete_task(id);
        }
    }

    fn complete_task(&mut self, id: u64) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.complete = true;
        let (host, effect) = (task.host, task.effect);
        match effect {
            Effect::Activate => {
                if let Some(h) = self.hosts.get_mut(&host) {
                    h.state = HostState::Active;
                }
            }
            Effect::Remove => {
                self.hosts.remove(&host);
            }
            Effect::Nothing => {}
        }
    }

    fn start_task(&mut self, name: &'static str, host: u64, effect: Effect, run: Duration) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.insert(
            id,
            Task {
                name,
                host,
                done_at: Instant::now() + run,
                effect,
                complete: false,
            },
        );
        if run.is_zero() {
            self.complete_task(id);
        }
        id
    }

    /// The next free address of the pool.
    fn allocate_address(&mut self) -> Ipv4Addr {
        loop {
            let ip = Ipv4Addr::from(self.next_address);
            self.next_address = self.next_address.wrapping_add(1);
            if !self.address_in_use(ip) {
                return ip;
            }
        }
    }

    fn address_in_use(&self, ip: Ipv4Addr) -> bool {
        self.hosts
            .values()
            .any(|h| h.ips.iter().any(|a| a.ip == ip))
            || self.servers.values().any(|s| s.ips.contains(&ip))
    }

    /// Creates a host (state `creating` until its task completes); its id and task.
    pub fn create_host(&mut self, new: NewHost, run: Duration) -> (u64, u64) {
        let id = self.next_host;
        self.next_host += 1;
        let ips = (0..new.ipv4_number)
            .map(|_| {
                let ip = self.allocate_address();
                self.new_ip(ip)
            })
            .collect();
        self.hosts.insert(
            id,
            SimHost {
                id,
                name: new.name,
                comment: new.comment,
                domain: new.domain,
                state: HostState::Creating,
                os: new.os,
                ips,
                tags: new.tags,
            },
        );
        let task = self.start_task("host_create", id, Effect::Activate, run);
        (id, task)
    }

    fn new_ip(&mut self, ip: Ipv4Addr) -> SimIp {
        let id = self.next_ip_id;
        self.next_ip_id += 1;
        SimIp { id, ip }
    }

    /// Starts deleting a host; its task, or `None` when there is no such host.
    pub fn delete_host(&mut self, id: u64, run: Duration) -> Option<u64> {
        let host = self.hosts.get_mut(&id)?;
        host.state = HostState::Deleting;
        Some(self.start_task("host_delete", id, Effect::Remove, run))
    }

    /// Stops (`running` false) or starts a host; a task, or `None` when there is no
    /// such host or it is being created or deleted.
    pub fn power(&mut self, id: u64, running: bool, run: Duration) -> Option<u64> {
        let host = self.hosts.get_mut(&id)?;
        if matches!(host.state, HostState::Creating | HostState::Deleting) {
            return None;
        }
        host.state = if running {
            HostState::Active
        } else {
            HostState::Stopped
        };
        let name = if running { "host_start" } else { "host_stop" };
        Some(self.start_task(name, id, Effect::Nothing, run))
    }

    /// Adds an address to a host (`ip`, or the pool's next); the address and a task.
    pub fn add_ip(
        &mut self,
        host: u64,
        ip: Option<Ipv4Addr>,
        run: Duration,
    ) -> Result<(SimIp, u64), &'static str> {
        if !self.hosts.contains_key(&host) {
            return Err("host not found");
        }
        let ip = match ip {
            Some(ip) if self.address_in_use(ip) => return Err("address in use"),
            Some(ip) => ip,
            None => self.allocate_address(),
        };
        let added = self.new_ip(ip);
        if let Some(h) = self.hosts.get_mut(&host) {
            h.ips.push(added);
        }
        let task = self.start_task("ip_add", host, Effect::Nothing, run);
        Ok((added, task))
    }

    /// Removes the address with id `ip_id` from its host; a task, or `None`.
    pub fn remove_ip(&mut self, ip_id: u64, run: Duration) -> Option<u64> {
        let host = self
            .hosts
            .values_mut()
            .find(|h| h.ips.iter().any(|a| a.id == ip_id))?;
        host.ips.retain(|a| a.id != ip_id);
        let id = host.id;
        Some(self.start_task("ip_delete", id, Effect::Nothing, run))
    }

    /// A task as the API shows it.
    pub fn task_json(&self, id: u64) -> Option<Value> {
        let t = self.tasks.get(&id)?;
        Some(json!({
            "id": id,
            "consul_id": id,
            "name": t.name,
            "status": if t.complete { "complete" } else { "running" },
            "host": t.host,
        }))
    }

    /// Every task as the API shows them.
    pub fn tasks_json(&self) -> Vec<Value> {
        self.tasks
            .keys()
            .filter_map(|id| self.task_json(*id))
            .collect()
    }

    /// Adds a DCImanager server; its id.
    pub fn add_server(&mut self, mut server: DciServer) -> u64 {
        let id = self.servers.keys().next_back().map_or(1, |last| last + 1);
        server.id = id;
        self.servers.insert(id, server);
        id
    }
}

/// The fields of a host creation that the simulator keeps.
#[derive(Debug, Clone, Default)]
pub struct NewHost {
    /// Name.
    pub name: String,
    /// Comment.
    pub comment: String,
    /// Domain.
    pub domain: String,
    /// OS template id.
    pub os: u64,
    /// Number of addresses to hand out.
    pub ipv4_number: usize,
    /// Tags.
    pub tags: Vec<String>,
}
