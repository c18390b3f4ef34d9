//! Settings of the platform simulator. Every behaviour platforms.md marks as inferred
//! (paging parameters and the total's field, host tags, the DCImanager IP field, the
//! status of an expired session) is a setting here, so the adapters can be tested
//! against each plausible shape.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::platform::Paging;

/// An OS template the simulated VMmanager offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsTemplate {
    /// Its id (`os` in a host's creation body).
    pub id: u64,
    /// Its name, as listed with hosts.
    pub name: String,
}

/// Faults the simulator injects; all can be changed while it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimFaults {
    /// Answer this many next requests with 503, as a suspended platform does.
    pub busy_next: u64,
    /// Answer each request with 503 with this probability (0.0 to 1.0).
    pub busy_rate: f64,
    /// Lists leave out this many of their last elements while the total still counts
    /// them (a list cut short).
    pub cut_list: usize,
    /// Lists answer no elements and a total of 0 (a broken filter, a wrong account).
    pub empty_list: bool,
    /// The page starting at this index answers 500 (a page error mid-listing).
    pub fail_page_at: Option<usize>,
    /// The page starting at this index answers 503 this many times (the platform
    /// suspended mid-listing).
    pub busy_page_at: Option<(usize, u64)>,
}

/// Settings of the simulator.
#[derive(Debug, Clone)]
pub struct PlatformSimConfig {
    /// The administrator's e-mail (log-in).
    pub email: String,
    /// The administrator's password.
    pub password: String,
    /// Long-lived API tokens accepted without log-in (as made by `POST /auth/v4/token`).
    pub api_tokens: Vec<String>,
    /// Paging parameter and total field names.
    pub paging: Paging,
    /// Page size when a list request names none.
    pub default_page_size: usize,
    /// The largest page the platform answers, whatever the client asks.
    pub max_page_size: usize,
    /// A session (not an API token) expires this long after log-in.
    pub session_ttl: Option<Duration>,
    /// A session (not an API token) expires after this many calls (changeable while
    /// running).
    pub session_max_calls: Option<u64>,
    /// HTTP status of a call with an expired or unknown session: 401 or 403.
    pub expired_status: u16,
    /// How long a task (create, delete, IP change) runs before it is `complete`.
    pub task_duration: Duration,
    /// Whether hosts carry a `tags` list (inferred).
    pub host_tags: bool,
    /// The field of a DCImanager server that holds its addresses (inferred).
    pub dci_ip_field: String,
    /// The first address handed out to new hosts; the next ones follow it.
    pub ip_pool_start: Ipv4Addr,
    /// OS templates.
    pub os_templates: Vec<OsTemplate>,
    /// Injected faults.
    pub faults: SimFaults,
}

impl Default for PlatformSimConfig {
    fn default() -> Self {
        Self {
            email: "admin@example.com".into(),
            password: "demo".into(),
            api_tokens: Vec::new(),
            paging: Paging::default(),
            default_page_size: 100,
            max_page_size: 1000,
            session_ttl: None,
            session_max_calls: None,
            expired_status: 401,
            task_duration: Duration::ZERO,
            host_tags: true,
            dci_ip_field: "ip".into(),
            ip_pool_start: Ipv4Addr::new(203, 0, 113, 10),
            os_templates: vec![
                OsTemplate {
                    id: 1,
                    name: "AlmaLinux 9".into(),
                },
                OsTemplate {
                    id: 2,
                    name: "Ubuntu 22.04".into(),
                },
                OsTemplate {
                    id: 3,
                    name: "ISPmanager 6 Lite on AlmaLinux 9".into(),
                },
            ],
            faults: SimFaults::default(),
        }
    }
}
