//! Command-line arguments of `license-facade platform-sim`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

use super::config::{PlatformSimConfig, SimFaults};
use crate::platform::Paging;

/// `license-facade platform-sim`: run a VMmanager 6 / DCImanager 6 API simulator.
#[derive(clap::Args, Debug, Clone)]
pub struct PlatformSimArgs {
    /// Address to listen on (HOST:PORT; port 0 picks a free one).
    #[arg(
        long,
        env = "LICENSE_FACADE_PLATFORM_SIM_ADDR",
        default_value = "127.0.0.1:8090"
    )]
    pub addr: SocketAddr,
    /// Administrator e-mail for `POST /auth/v4/public/token`.
    #[arg(long, default_value = "admin@example.com")]
    pub email: String,
    /// Administrator password.
    #[arg(
        long,
        env = "LICENSE_FACADE_PLATFORM_SIM_PASSWORD",
        default_value = "demo",
        hide_env_values = true
    )]
    pub password: String,
    /// A long-lived API token to accept without log-in (repeatable).
    #[arg(
        long = "api-token",
        env = "LICENSE_FACADE_PLATFORM_SIM_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// Page size of a list request that names none.
    #[arg(long, default_value_t = 100)]
    pub page_size: usize,
    /// The largest page answered, whatever the client asks.
    #[arg(long, default_value_t = 1000)]
    pub max_page_size: usize,
    /// Query parameter of the page size (inferred).
    #[arg(long, default_value = "limit")]
    pub limit_param: String,
    /// Query parameter of the first element's index (inferred).
    #[arg(long, default_value = "offset")]
    pub offset_param: String,
    /// Answer field with the whole list's length (inferred).
    #[arg(long, default_value = "size")]
    pub total_field: String,
    /// Sessions expire this many seconds after log-in.
    #[arg(long)]
    pub session_ttl_secs: Option<u64>,
    /// Sessions expire after this many calls.
    #[arg(long)]
    pub session_max_calls: Option<u64>,
    /// Status of a call with an expired session: 401 or 403.
    #[arg(long, default_value_t = 401)]
    pub expired_status: u16,
    /// Milliseconds a task (create, delete, address change) runs.
    #[arg(long, default_value_t = 2000)]
    pub task_ms: u64,
    /// Hosts carry no `tags` list.
    #[arg(long)]
    pub no_host_tags: bool,
    /// DCImanager server field with the addresses (inferred).
    #[arg(long, default_value = "ip")]
    pub dci_ip_field: String,
    /// Answer each request with 503 with this probability.
    #[arg(long, default_value_t = 0.0)]
    pub busy_rate: f64,
    /// Lists leave out this many of their last elements (the total still counts them).
    #[arg(long, default_value_t = 0)]
    pub cut_list: usize,
    /// Create this many active hosts at start, each marked `panel=<seed-panel>`.
    #[arg(long, default_value_t = 0)]
    pub seed_hosts: usize,
    /// The marker of the seeded hosts.
    #[arg(long, default_value = "ispmanager-6-lite")]
    pub seed_panel: String,
}

impl PlatformSimArgs {
    /// The simulator's settings.
    pub fn into_config(self) -> anyhow::Result<PlatformSimConfig> {
        if !(0.0..=1.0).contains(&self.busy_rate) {
            bail!("--busy-rate must be between 0.0 and 1.0");
        }
        if ![401, 403].contains(&self.expired_status) {
            bail!("--expired-status must be 401 or 403");
        }
        if self.page_size == 0 || self.max_page_size == 0 {
            bail!("page sizes must be at least 1");
        }
        Ok(PlatformSimConfig {
            email: self.email,
            password: self.password,
            api_tokens: self.api_tokens,
            paging: Paging {
                limit_param: self.limit_param,
                offset_param: self.offset_param,
                total_field: self.total_field,
            },
            default_page_size: self.page_size,
            max_page_size: self.max_page_size,
            session_ttl: self.session_ttl_secs.map(Duration::from_secs),
            session_max_calls: self.session_max_calls,
            expired_status: self.expired_status,
            task_duration: Duration::from_millis(self.task_ms),
            host_tags: !self.no_host_tags,
            dci_ip_field: self.dci_ip_field,
            faults: SimFaults {
                busy_rate: self.busy_rate,
                cut_list: self.cut_list,
                ..SimFaults::default()
            },
            ..PlatformSimConfig::default()
        })
    }
}
