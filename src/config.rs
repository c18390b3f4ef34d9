//! Configuration of `serve`: command-line flags (each also a `LICENSE_FACADE_*`
//! environment variable) over an optional TOML file over defaults, validated once at
//! start-up into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde::Deserialize;

use crate::billmanager::{ClientConfig, WireFormat};
use crate::domain::{PanelCatalog, PanelCatalogConfig};
use crate::downstream::DownstreamConfig;
use crate::listener::ConnectionLimits;
use crate::sandbox::SandboxConfig;
use crate::service::{FeedConfig, WebhookConfig, WorkflowConfig};

/// Flags of `license-facade serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// REST listen address [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "LICENSE_FACADE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// gRPC listen address [default: 127.0.0.1:50051]; port 0 picks a free port.
    #[arg(long, env = "LICENSE_FACADE_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Database URL: `sqlite:PATH` or `sqlite::memory:` [default: sqlite:license-facade.db
    /// in the working directory; with --sandbox, an in-memory database].
    #[arg(long, env = "LICENSE_FACADE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL connections this process may hold [default: 16]; a quarter more
    /// (at least 2) serve lease-only writes. Replicas times this must stay under the
    /// server's `max_connections`.
    #[arg(long, env = "LICENSE_FACADE_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,
    /// Run against a built-in BILLmanager sandbox started in this process.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX")]
    pub sandbox: bool,
    /// With --sandbox: milliseconds until an ordered license is active with its key.
    #[arg(
        long,
        env = "LICENSE_FACADE_SANDBOX_KEY_DELAY_MS",
        default_value_t = 1000
    )]
    pub sandbox_key_delay_ms: u64,
    /// With --sandbox: days a parked license (IP 0.0.0.0) waits after its last IP
    /// change before it may move to a real address; 0 turns the rule off [default: 30].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_IP_CHANGE_COOLDOWN_DAYS")]
    pub sandbox_ip_change_cooldown_days: Option<u32>,
    /// With --sandbox: days a parked license waits after its last key change before
    /// it may get a new key; 0 turns the rule off [default: 30].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_KEY_CHANGE_COOLDOWN_DAYS")]
    pub sandbox_key_change_cooldown_days: Option<u32>,
    /// BILLmanager API endpoint, e.g. https://api.ispmanager.com/billmgr.
    #[arg(long, env = "LICENSE_FACADE_BILLMANAGER_URL")]
    pub billmanager_url: Option<String>,
    /// BILLmanager account login.
    #[arg(long, env = "LICENSE_FACADE_BILLMANAGER_USER")]
    pub billmanager_user: Option<String>,
    /// BILLmanager account password. Prefer the environment variable or a file: a flag
    /// is visible in the process list.
    #[arg(
        long,
        env = "LICENSE_FACADE_BILLMANAGER_PASSWORD",
        hide_env_values = true
    )]
    pub billmanager_password: Option<String>,
    /// File holding the BILLmanager password (a trailing newline is ignored).
    #[arg(long, env = "LICENSE_FACADE_BILLMANAGER_PASSWORD_FILE")]
    pub billmanager_password_file: Option<PathBuf>,
    /// Allow a plain http:// BILLmanager URL to a non-loopback host. Without it such a
    /// URL is refused at start: the password or session id would cross the network in
    /// clear.
    #[arg(long, env = "LICENSE_FACADE_BILLMANAGER_ALLOW_HTTP")]
    pub billmanager_allow_http: bool,
    /// TOML configuration file (catalog, workflow, upstream tuning).
    #[arg(long, env = "LICENSE_FACADE_CONFIG")]
    pub config: Option<PathBuf>,
    /// TOML file of the API clients (`[[client]]` with name, token_sha256, scopes and
    /// optional caps). Required unless --sandbox, which without it accepts the token
    /// `sandbox-token` with every scope.
    #[arg(long, env = "LICENSE_FACADE_CLIENTS_FILE")]
    pub clients_file: Option<PathBuf>,
    /// On SIGTERM, milliseconds between turning readiness off and closing the
    /// listeners, so load balancers stop sending first [default: 2000].
    #[arg(long, env = "LICENSE_FACADE_DRAIN_DELAY_MS")]
    pub drain_delay_ms: Option<u64>,
    /// On SIGTERM, the longest wait in seconds for in-flight calls and workflow steps
    /// after the listeners close [default: 20].
    #[arg(long, env = "LICENSE_FACADE_DRAIN_TIMEOUT_SECS")]
    pub drain_timeout_secs: Option<u64>,
    /// PEM file of the server certificate chain: with it (and --tls-key-file) both API
    /// listeners serve TLS only. Reloaded on change or SIGHUP.
    #[arg(long, env = "LICENSE_FACADE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the server's private key.
    #[arg(long, env = "LICENSE_FACADE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM file of the CA that client certificates must chain to.
    #[arg(long, env = "LICENSE_FACADE_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Client certificates: off, optional (verified if presented) or required
    /// [default: off; optional when a client CA is given].
    #[arg(long, env = "LICENSE_FACADE_TLS_CLIENT_AUTH", value_enum)]
    pub tls_client_auth: Option<crate::tls::ClientAuth>,
    /// OTLP/gRPC endpoint to export traces to, e.g. http://127.0.0.1:4317 [default:
    /// OTEL_EXPORTER_OTLP_ENDPOINT; none: traces off].
    #[arg(long, env = "LICENSE_FACADE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// The TOML configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// REST listen address.
    pub http_addr: Option<SocketAddr>,
    /// gRPC listen address.
    pub grpc_addr: Option<SocketAddr>,
    /// Database URL.
    pub database_url: Option<String>,
    /// PostgreSQL connections this process may hold.
    pub database_max_connections: Option<u32>,
    /// The upstream.
    #[serde(default)]
    pub billmanager: BillmanagerFile,
    /// The panel catalog (replace or extend the defaults).
    #[serde(default)]
    pub catalog: PanelCatalogConfig,
    /// Workflow tuning.
    #[serde(default)]
    pub workflow: WorkflowFile,
    /// The reconciler.
    #[serde(default)]
    pub reconcile: ReconcileFile,
    /// Connection bounds of both API listeners.
    #[serde(default)]
    pub connections: ConnectionsFile,
    /// The change feed.
    #[serde(default)]
    pub feed: FeedFile,
    /// The web console.
    #[serde(default)]
    pub console: ConsoleFile,
    /// The shop's API at `/billmgr`.
    #[serde(default)]
    pub downstream: DownstreamFile,
    /// Webhook deliveries.
    #[serde(default)]
    pub webhooks: WebhooksFile,
    /// TLS on both API listeners.
    #[serde(default)]
    pub tls: TlsFile,
    /// The license pool: the upstream's cooldowns and the rules per tariff.
    #[serde(default)]
    pub pool: crate::domain::PoolConfig,
}

/// `[webhooks]` in the file; see [`WebhookConfig`] for the meaning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    /// Let deliveries go to loopback, link-local and metadata addresses [default:
    /// false].
    pub allow_private_targets: Option<bool>,
    /// Milliseconds to wait for a receiver's connection [default: 5000].
    pub connect_timeout_ms: Option<u64>,
    /// Milliseconds a whole delivery may take [default: 15000].
    pub timeout_ms: Option<u64>,
    /// Bytes of a receiver's answer read at most [default: 4096].
    pub max_response_bytes: Option<usize>,
    /// Milliseconds between looks for due deliveries [default: 1000].
    pub poll_ms: Option<u64>,
    /// Seconds a process holds a subscription it delivers to [default: 60].
    pub lease_secs: Option<u64>,
}

/// `[tls]` in the file; see [`crate::tls::TlsSettings`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM file of the server certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the server's private key.
    pub key_file: Option<PathBuf>,
    /// PEM file of the CA client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// `off`, `optional` or `required`.
    pub client_auth: Option<crate::tls::ClientAuth>,
}

/// `[downstream]` in the file; see [`DownstreamConfig`] for the meaning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamFile {
    /// Seconds a `func=auth` session lasts after its last request [default: 3600].
    pub session_idle_secs: Option<u64>,
    /// Seconds a session lasts after it was opened, however busy [default: 86400].
    pub session_lifetime_secs: Option<u64>,
    /// Sessions held at once [default: 10000].
    pub max_sessions: Option<usize>,
    /// (user name, network) pairs the log-in back-off keeps [default: 10000].
    pub backoff_entries: Option<usize>,
}

/// `[feed]` in the file; see [`FeedConfig`] for the meaning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedFile {
    /// Open change-feed streams per client and process [default: 8].
    pub max_streams_per_client: Option<usize>,
    /// Hours events are kept [default: 720, 30 days].
    pub retention_hours: Option<u64>,
}

/// `[connections]` in the file; see [`ConnectionLimits`] for the meaning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    /// Milliseconds from accepting a connection to the start of its first request
    /// [default: 5000].
    pub header_read_timeout_ms: Option<u64>,
    /// Seconds a connection may stay open with no request in flight [default: 60].
    pub idle_timeout_secs: Option<u64>,
    /// Connections open at once per listener; more wait to be accepted
    /// [default: 1024].
    pub max_per_listener: Option<usize>,
    /// Seconds between HTTP/2 keep-alive pings [default: 20].
    pub http2_keepalive_interval_secs: Option<u64>,
    /// Seconds a keep-alive ping may go unanswered before the connection is closed
    /// [default: 10].
    pub http2_keepalive_timeout_secs: Option<u64>,
}

/// `[console]` in the file; see [`crate::console::ConsoleConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    /// Mark the session cookie `Secure` even when the request did not say it came
    /// over TLS (set it behind a TLS-terminating proxy that does not send
    /// `X-Forwarded-Proto`).
    pub secure_cookies: Option<bool>,
    /// How long a console session lasts, in seconds (default 8 hours).
    pub session_ttl_secs: Option<u64>,
    /// A file holding the key that signs sessions (at least 32 bytes). Without it a
    /// random key is made at start, so a restart logs everyone out; with it, replacing
    /// the file and restarting revokes every session.
    pub session_key_file: Option<PathBuf>,
    /// Platform watchers whose status the console's Servers page shows
    /// (`[[console.watchers]]`, each a `name` and the `url` of its operator listener).
    pub watchers: Option<Vec<WatcherLinkFile>>,
}

/// One `[[console.watchers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatcherLinkFile {
    /// What the page calls it (its platform instance, e.g. `vm6-a`).
    pub name: String,
    /// The base URL of the watcher's operator listener (its `[http] addr`), e.g.
    /// `http://10.0.0.5:9464`; the console reads `/status?format=json` under it.
    pub url: String,
}

/// `[reconcile]` in the file; see [`crate::service::ReconcileConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileFile {
    /// Seconds between periodic reconciliations; 0 turns them off [default: 300].
    pub interval_secs: Option<u64>,
    /// Default horizon of the "expiring without auto-renew" list, in days
    /// [default: 14].
    pub expiring_within_days: Option<u32>,
}

/// `[billmanager]` in the file. The password is never read from here, only from a
/// flag, an environment variable or `password_file`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillmanagerFile {
    /// Endpoint URL.
    pub url: Option<String>,
    /// Login.
    pub user: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// `xml` (default) or `json`.
    pub format: Option<WireFormat>,
    /// Log in once (`func=auth`) and reuse the session instead of sending the password
    /// with every call [default: true].
    pub use_session: Option<bool>,
    /// Connect timeout in milliseconds [default: 5000].
    pub connect_timeout_ms: Option<u64>,
    /// Whole-request timeout in milliseconds [default: 30000].
    pub request_timeout_ms: Option<u64>,
    /// Licenses per `soft` page [default: 1000].
    pub page_size: Option<u32>,
    /// Seconds between upstream readiness probes [default: 30].
    pub probe_interval_secs: Option<u64>,
    /// Allow a plain http:// URL to a non-loopback host [default: false].
    pub allow_http: Option<bool>,
    /// Outbound rate limit in requests per second; 0 is unlimited [default: 20].
    pub max_calls_per_second: Option<u32>,
    /// Consecutive failed calls (unreachable or outcome unknown) that open the circuit
    /// breaker; 0 turns it off [default: 5].
    pub breaker_failures: Option<u32>,
    /// Seconds the open breaker waits before a trial call [default: 30].
    pub breaker_cool_down_secs: Option<u64>,
    /// How `pricelist.export` is narrowed: `itemtype`, `elid`, `project` [default:
    /// none of them].
    pub price_list: Option<crate::billmanager::PriceListFilter>,
    /// The largest price-list answer accepted, in bytes [default: 4 MiB].
    pub price_list_max_bytes: Option<usize>,
}

/// `[workflow]` in the file; see [`WorkflowConfig`] for the meaning and defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// Operations run at once.
    pub concurrency: Option<usize>,
    /// Lease length in seconds (renewed while a step runs).
    pub lease_secs: Option<u64>,
    /// Spacing of recovery look-ups once a request can no longer land, in
    /// milliseconds.
    pub settle_interval_ms: Option<u64>,
    /// Look-ups that must find nothing before an order is re-sent.
    pub settle_checks: Option<u32>,
    /// Failed look-ups before NEEDS_ATTENTION.
    pub max_lookup_failures: Option<u32>,
    /// First activation poll delay, in milliseconds.
    pub poll_initial_ms: Option<u64>,
    /// Longest activation poll delay, in milliseconds.
    pub poll_max_ms: Option<u64>,
    /// Automatic re-sends of an order or a change whose outcome stayed unknown (0
    /// allowed).
    pub max_resends: Option<u32>,
    /// Seconds an ordered license may stay unpaid (1) or processing (5) upstream.
    pub activation_timeout_secs: Option<u64>,
}

/// Validated settings of `serve`.
pub struct Settings {
    /// REST listen address.
    pub http_addr: SocketAddr,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// PostgreSQL connections this process may hold (SQLite ignores it).
    pub database_max_connections: u32,
    /// An in-process sandbox to start and use as the upstream.
    pub sandbox: Option<SandboxConfig>,
    /// The upstream client; with a sandbox its URL is filled in once the sandbox is bound.
    pub billmanager: ClientConfig,
    /// The panel catalog.
    pub catalog: PanelCatalog,
    /// Workflow tuning.
    pub workflow: WorkflowConfig,
    /// Time between upstream readiness probes.
    pub probe_interval: Duration,
    /// The reconciler: interval (zero: off) and the default expiring horizon.
    pub reconcile: crate::service::ReconcileConfig,
    /// Shutdown: time between readiness off and closing the listeners.
    pub drain_delay: Duration,
    /// Shutdown: longest wait for in-flight calls and workflow steps.
    pub drain_timeout: Duration,
    /// Connection bounds of both API listeners.
    pub connections: ConnectionLimits,
    /// Bounds of the change feed.
    pub feed: FeedConfig,
    /// The API clients: from `--clients-file`, else with `--sandbox` the sandbox
    /// client; `serve` refuses to start without them.
    pub clients: Option<crate::auth::Clients>,
    /// The web console at `/console`.
    pub console: crate::console::ConsoleConfig,
    /// Bounds of the log-ins of the shop's API at `/billmgr`.
    pub downstream: DownstreamConfig,
    /// Webhook deliveries.
    pub webhooks: WebhookConfig,
    /// TLS on both API listeners; plain TCP when `None`.
    pub tls: Option<crate::tls::TlsSettings>,
    /// The license pool.
    pub pool: crate::domain::PoolConfig,
}

fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

impl Settings {
    /// Resolves flags, file and defaults.
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let file: FileConfig = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let tls = tls_settings(&args, file.tls)?;
        file.pool
            .check()
            .map_err(|e| anyhow::anyhow!("invalid [pool]: {e}"))?;
        let catalog = PanelCatalog::from_config(file.catalog)
            .map_err(|e| anyhow::anyhow!("invalid panel catalog: {e}"))?;
        let clients = match &args.clients_file {
            Some(path) => Some(crate::auth::Clients::from_file(path)?),
            None if args.sandbox => Some(crate::auth::Clients::sandbox()),
            None => None,
        };
        let database_url = match args.database_url.or(file.database_url) {
            Some(url) => url,
            None if args.sandbox => "sqlite::memory:".to_owned(),
            None => "sqlite:license-facade.db".to_owned(),
        };
        let bm = file.billmanager;
        let mut billmanager = ClientConfig {
            format: bm.format.unwrap_or_default(),
            use_session: bm.use_session.unwrap_or(true),
            connect_timeout: Duration::from_millis(bm.connect_timeout_ms.unwrap_or(5_000)),
            request_timeout: Duration::from_millis(bm.request_timeout_ms.unwrap_or(30_000)),
            page_size: bm.page_size.unwrap_or(1000).max(1),
            max_calls_per_second: bm.max_calls_per_second.unwrap_or(20),
            breaker: crate::billmanager::BreakerConfig {
                failure_threshold: bm.breaker_failures.unwrap_or(5),
                cool_down: Duration::from_secs(bm.breaker_cool_down_secs.unwrap_or(30)),
            },
            price_list_filter: bm.price_list.unwrap_or_default(),
            max_price_list_bytes: bm.price_list_max_bytes.unwrap_or(4 * 1024 * 1024).max(1),
            ..ClientConfig::default()
        };
        let sandbox = if args.sandbox {
            let defaults = SandboxConfig::default();
            let config = SandboxConfig {
                key_delay: Duration::from_millis(args.sandbox_key_delay_ms),
                ip_change_cooldown_days: args
                    .sandbox_ip_change_cooldown_days
                    .unwrap_or(defaults.ip_change_cooldown_days),
                key_change_cooldown_days: args
                    .sandbox_key_change_cooldown_days
                    .unwrap_or(defaults.key_change_cooldown_days),
                ..defaults
            };
            billmanager.user = config.user.clone();
            billmanager.password = SecretString::from(config.password.clone());
            Some(config)
        } else {
            billmanager.url = args
                .billmanager_url
                .or(bm.url)
                .context("--billmanager-url is required (or run with --sandbox)")?;
            crate::billmanager::check_url(
                &billmanager.url,
                args.billmanager_allow_http || bm.allow_http.unwrap_or(false),
            )?;
            billmanager.user = args
                .billmanager_user
                .or(bm.user)
                .context("--billmanager-user is required (or run with --sandbox)")?;
            billmanager.password = match (
                args.billmanager_password,
                args.billmanager_password_file.or(bm.password_file),
            ) {
                (Some(p), _) => SecretString::from(p),
                (None, Some(path)) => read_secret_file(&path)?,
                (None, None) => bail!(
                    "the BILLmanager password is required: set LICENSE_FACADE_BILLMANAGER_PASSWORD \
                     or LICENSE_FACADE_BILLMANAGER_PASSWORD_FILE (or run with --sandbox)"
                ),
            };
            None
        };
        let wf = file.workflow;
        let defaults = WorkflowConfig::default();
        let ms = Duration::from_millis;
        let workflow = WorkflowConfig {
            concurrency: wf.concurrency.unwrap_or(defaults.concurrency).max(1),
            lease: wf
                .lease_secs
                .map(Duration::from_secs)
                .unwrap_or(defaults.lease),
            settle_interval: wf
                .settle_interval_ms
                .map(ms)
                .unwrap_or(defaults.settle_interval),
            settle_checks: wf.settle_checks.unwrap_or(defaults.settle_checks).max(1),
            max_lookup_failures: wf
                .max_lookup_failures
                .unwrap_or(defaults.max_lookup_failures)
                .max(1),
            poll_initial: wf.poll_initial_ms.map(ms).unwrap_or(defaults.poll_initial),
            poll_max: wf.poll_max_ms.map(ms).unwrap_or(defaults.poll_max),
            max_resends: wf.max_resends.unwrap_or(defaults.max_resends),
            activation_timeout: wf
                .activation_timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(defaults.activation_timeout),
            ..defaults
        };
        // The lease need not outlast an upstream call (a heartbeat renews it every
        // third of its length while a step runs), and a request that may still land
        // is waited out by the stored send time, not by the lease or the settle
        // spacing; so neither is tied to the request timeout.
        if workflow.lease.is_zero() {
            bail!("workflow.lease_secs must be at least 1");
        }
        if workflow.settle_interval.is_zero() {
            bail!("workflow.settle_interval_ms must be positive");
        }
        let database_max_connections = args
            .database_max_connections
            .or(file.database_max_connections)
            .unwrap_or(crate::store::DEFAULT_MAX_CONNECTIONS);
        // Each worker loop holds a connection through its claim and its saves; with
        // fewer, loops wait for connections while their leases run out, and other
        // replicas take their work over mid-step.
        let needed = workflow.concurrency as u32 + 2;
        if database_max_connections < needed {
            bail!(
                "database_max_connections ({database_max_connections}) must be at least \
                 workflow.concurrency + 2 ({needed})"
            );
        }
        Ok(Self {
            http_addr: args
                .http_addr
                .or(file.http_addr)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address")),
            grpc_addr: args
                .grpc_addr
                .or(file.grpc_addr)
                .unwrap_or_else(|| "127.0.0.1:50051".parse().expect("valid address")),
            database_url,
            database_max_connections,
            sandbox,
            billmanager,
            catalog,
            workflow,
            probe_interval: Duration::from_secs(bm.probe_interval_secs.unwrap_or(30).max(1)),
            reconcile: reconcile_config(file.reconcile)?,
            connections: connection_limits(file.connections)?,
            feed: feed_config(file.feed)?,
            drain_delay: Duration::from_millis(args.drain_delay_ms.unwrap_or(2_000)),
            drain_timeout: Duration::from_secs(args.drain_timeout_secs.unwrap_or(20)),
            clients,
            console: console_config(file.console)?,
            downstream: downstream_config(file.downstream)?,
            webhooks: webhook_config(file.webhooks)?,
            tls,
            pool: file.pool,
        })
    }
}

/// The webhook settings from `[webhooks]`, with defaults.
fn webhook_config(file: WebhooksFile) -> anyhow::Result<WebhookConfig> {
    let d = WebhookConfig::default();
    let ms = |v: Option<u64>, default: Duration| v.map(Duration::from_millis).unwrap_or(default);
    let config = WebhookConfig {
        allow_private_targets: file
            .allow_private_targets
            .unwrap_or(d.allow_private_targets),
        connect_timeout: ms(file.connect_timeout_ms, d.connect_timeout),
        timeout: ms(file.timeout_ms, d.timeout),
        max_response_bytes: file.max_response_bytes.unwrap_or(d.max_response_bytes),
        poll: ms(file.poll_ms, d.poll),
        lease: file.lease_secs.map(Duration::from_secs).unwrap_or(d.lease),
    };
    if config.connect_timeout.is_zero() || config.timeout.is_zero() || config.poll.is_zero() {
        bail!("webhooks.connect_timeout_ms, timeout_ms and poll_ms must be positive");
    }
    if config.lease <= config.timeout {
        bail!("webhooks.lease_secs must be longer than webhooks.timeout_ms");
    }
    Ok(config)
}

/// TLS from the flags over `[tls]`: a certificate and a key together, or neither.
fn tls_settings(
    args: &ServeArgs,
    file: TlsFile,
) -> anyhow::Result<Option<crate::tls::TlsSettings>> {
    use crate::tls::ClientAuth;
    let cert_file = args.tls_cert_file.clone().or(file.cert_file);
    let key_file = args.tls_key_file.clone().or(file.key_file);
    let client_ca_file = args.tls_client_ca_file.clone().or(file.client_ca_file);
    let client_auth = args.tls_client_auth.or(file.client_auth);
    let (cert_file, key_file) = match (cert_file, key_file) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            if client_ca_file.is_some() || client_auth.is_some_and(|m| m != ClientAuth::Off) {
                bail!("client certificates need TLS: set tls.cert_file and tls.key_file too");
            }
            return Ok(None);
        }
        _ => bail!("tls.cert_file and tls.key_file go together"),
    };
    let client_auth = client_auth.unwrap_or(if client_ca_file.is_some() {
        ClientAuth::Optional
    } else {
        ClientAuth::Off
    });
    if client_auth != ClientAuth::Off && client_ca_file.is_none() {
        bail!("tls.client_auth = {client_auth:?} needs tls.client_ca_file");
    }
    Ok(Some(crate::tls::TlsSettings {
        cert_file,
        key_file,
        client_ca_file,
        client_auth,
    }))
}

/// The change feed's bounds from `[feed]`, with defaults.
fn feed_config(file: FeedFile) -> anyhow::Result<FeedConfig> {
    let defaults = FeedConfig::default();
    let config = FeedConfig {
        max_streams_per_client: file
            .max_streams_per_client
            .unwrap_or(defaults.max_streams_per_client),
        retention: file
            .retention_hours
            .map(|h| Duration::from_secs(h.saturating_mul(3600)))
            .unwrap_or(defaults.retention),
    };
    if config.max_streams_per_client == 0 {
        bail!("feed.max_streams_per_client must be positive");
    }
    if config.retention.is_zero() {
        bail!("feed.retention_hours must be positive");
    }
    Ok(config)
}

/// The connection bounds from `[connections]`, with defaults.
fn connection_limits(file: ConnectionsFile) -> anyhow::Result<ConnectionLimits> {
    let defaults = ConnectionLimits::default();
    let limits = ConnectionLimits {
        header_read_timeout: file
            .header_read_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(defaults.header_read_timeout),
        idle_timeout: file
            .idle_timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.idle_timeout),
        max_connections: file.max_per_listener.unwrap_or(defaults.max_connections),
        http2_keepalive_interval: file
            .http2_keepalive_interval_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.http2_keepalive_interval),
        http2_keepalive_timeout: file
            .http2_keepalive_timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.http2_keepalive_timeout),
    };
    if limits.header_read_timeout.is_zero() || limits.idle_timeout.is_zero() {
        bail!("connections.header_read_timeout_ms and idle_timeout_secs must be positive");
    }
    if limits.max_connections == 0 {
        bail!("connections.max_per_listener must be positive");
    }
    if limits.http2_keepalive_interval.is_zero() || limits.http2_keepalive_timeout.is_zero() {
        bail!(
            "connections.http2_keepalive_interval_secs and http2_keepalive_timeout_secs must be positive"
        );
    }
    Ok(limits)
}

/// The `/billmgr` log-in bounds from `[downstream]`, with defaults.
fn downstream_config(file: DownstreamFile) -> anyhow::Result<DownstreamConfig> {
    let defaults = DownstreamConfig::default();
    let config = DownstreamConfig {
        session_idle: file
            .session_idle_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.session_idle),
        session_lifetime: file
            .session_lifetime_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.session_lifetime),
        max_sessions: file.max_sessions.unwrap_or(defaults.max_sessions),
        backoff_entries: file.backoff_entries.unwrap_or(defaults.backoff_entries),
    };
    if config.session_idle.is_zero() || config.session_lifetime.is_zero() {
        bail!("downstream.session_idle_secs and session_lifetime_secs must be positive");
    }
    if config.max_sessions == 0 || config.backoff_entries == 0 {
        bail!("downstream.max_sessions and backoff_entries must be positive");
    }
    Ok(config)
}

/// The console's settings from `[console]`, with defaults.
fn console_config(file: ConsoleFile) -> anyhow::Result<crate::console::ConsoleConfig> {
    let defaults = crate::console::ConsoleConfig::default();
    let session_key = match &file.session_key_file {
        None => None,
        Some(path) => {
            let key = std::fs::read(path).with_context(|| {
                format!("cannot read the console session key {}", path.display())
            })?;
            let key = key.trim_ascii().to_vec();
            if key.len() < 32 {
                bail!(
                    "console.session_key_file {} must hold at least 32 bytes",
                    path.display()
                );
            }
            Some(secrecy::SecretBox::new(Box::new(key)))
        }
    };
    let session_ttl = file
        .session_ttl_secs
        .map(Duration::from_secs)
        .unwrap_or(defaults.session_ttl);
    if session_ttl < Duration::from_secs(60) {
        bail!("console.session_ttl_secs must be at least 60");
    }
    let watchers = file
        .watchers
        .unwrap_or_default()
        .into_iter()
        .map(|w| crate::console::WatcherLink::new(&w.name, &w.url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, w) in watchers.iter().enumerate() {
        if watchers[..i].iter().any(|other| other.name == w.name) {
            bail!("console.watchers: the name {:?} is given twice", w.name);
        }
    }
    Ok(crate::console::ConsoleConfig {
        secure_cookies: file.secure_cookies.unwrap_or(defaults.secure_cookies),
        session_ttl,
        session_key,
        watchers,
    })
}

/// The reconciler's settings from `[reconcile]`, with defaults.
fn reconcile_config(file: ReconcileFile) -> anyhow::Result<crate::service::ReconcileConfig> {
    let defaults = crate::service::ReconcileConfig::default();
    let expiring_within_days = file
        .expiring_within_days
        .unwrap_or(defaults.expiring_within_days);
    if expiring_within_days > crate::service::MAX_EXPIRING_WITHIN_DAYS {
        bail!(
            "reconcile.expiring_within_days must be at most {}",
            crate::service::MAX_EXPIRING_WITHIN_DAYS
        );
    }
    Ok(crate::service::ReconcileConfig {
        interval: file
            .interval_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.interval),
        expiring_within_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(text: &str) -> anyhow::Result<crate::console::ConsoleConfig> {
        let file: FileConfig = toml::from_str(text)?;
        console_config(file.console)
    }

    #[test]
    fn a_pool_smaller_than_the_worker_loops_need_is_refused_at_start() {
        let args = |n| ServeArgs {
            database_max_connections: Some(n),
            sandbox: true,
            ..ServeArgs::default()
        };
        let refused = Settings::from_args(args(4)).err().expect("refused");
        assert!(
            refused.to_string().contains("database_max_connections"),
            "{refused}"
        );
        let settings = Settings::from_args(args(10)).expect("enough for 8 loops");
        assert_eq!(settings.database_max_connections, 10);
    }

    #[test]
    fn the_sandbox_cooldowns_on_parked_licenses_default_to_30_days_and_can_be_turned_off() {
        let cooldowns = |ip, key| {
            let settings = Settings::from_args(ServeArgs {
                sandbox: true,
                sandbox_ip_change_cooldown_days: ip,
                sandbox_key_change_cooldown_days: key,
                ..ServeArgs::default()
            })
            .expect("valid settings");
            let sandbox = settings.sandbox.expect("a sandbox");
            (
                sandbox.ip_change_cooldown_days,
                sandbox.key_change_cooldown_days,
            )
        };

        assert_eq!(cooldowns(None, None), (30, 30));
        assert_eq!(cooldowns(Some(0), Some(7)), (0, 7));
    }

    #[test]
    fn tls_needs_a_certificate_and_a_key_and_client_certificates_a_ca() {
        let tls = |text: &str, args: ServeArgs| {
            let file: FileConfig = toml::from_str(text)?;
            tls_settings(&args, file.tls)
        };
        assert_eq!(tls("", ServeArgs::default()).unwrap(), None, "plain TCP");
        let both = tls(
            "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"\n",
            ServeArgs::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(both.client_auth, crate::tls::ClientAuth::Optional);
        let flags = tls(
            "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"\n",
            ServeArgs {
                tls_cert_file: Some("flag.pem".into()),
                tls_client_auth: Some(crate::tls::ClientAuth::Required),
                ..ServeArgs::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(flags.cert_file, PathBuf::from("flag.pem"), "a flag wins");
        assert_eq!(flags.client_auth, crate::tls::ClientAuth::Required);
        for refused in [
            "[tls]\ncert_file = \"c.pem\"\n",
            "[tls]\nclient_ca_file = \"ca.pem\"\n",
            "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_auth = \"required\"\n",
            "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_auth = \"sometimes\"\n",
        ] {
            assert!(tls(refused, ServeArgs::default()).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_console_defaults_to_an_eight_hour_session_under_a_random_key() {
        let c = console("").unwrap();
        assert_eq!(c.session_ttl, Duration::from_secs(8 * 3600));
        assert!(!c.secure_cookies);
        assert!(c.session_key.is_none());
    }

    #[test]
    fn console_watchers_need_a_plain_base_url_and_distinct_names() {
        let one =
            console("[[console.watchers]]\nname = \"vm6-a\"\nurl = \"http://10.0.0.5:9464/\"\n")
                .unwrap();
        assert_eq!(one.watchers.len(), 1);
        assert_eq!(
            one.watchers[0].status_url().as_str(),
            "http://10.0.0.5:9464/status?format=json"
        );
        for (bad, says) in [
            ("ftp://10.0.0.5/", "http or https"),
            ("http://ops:secret@10.0.0.5/", "credentials"),
            ("http://10.0.0.5/?x=1", "query"),
            ("not a url", "console.watchers"),
        ] {
            let refused = console(&format!(
                "[[console.watchers]]\nname = \"a\"\nurl = {bad:?}\n"
            ))
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
            let text = format!("{refused:#}");
            assert!(text.contains(says), "{bad}: {text}");
            assert!(
                !text.contains("secret"),
                "the password is not repeated: {text}"
            );
        }
        let twice = console(
            "[[console.watchers]]\nname = \"a\"\nurl = \"http://h1/\"\n\
             [[console.watchers]]\nname = \"a\"\nurl = \"http://h2/\"\n",
        )
        .expect_err("refused");
        assert!(twice.to_string().contains("twice"), "{twice}");
    }

    #[test]
    fn a_console_session_key_must_hold_at_least_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        let long = dir.path().join("long");
        std::fs::write(&short, "too short\n").unwrap();
        std::fs::write(&long, format!("{}\n", "k".repeat(32))).unwrap();
        let text = |p: &Path| {
            format!(
                "[console]\nsession_key_file = {:?}\n",
                p.display().to_string()
            )
        };
        let e = console(&text(&short)).expect_err("refused");
        assert!(e.to_string().contains("at least 32 bytes"), "{e}");
        use secrecy::ExposeSecret;
        let c = console(&text(&long)).unwrap();
        assert_eq!(
            c.session_key.unwrap().expose_secret().len(),
            32,
            "newline trimmed"
        );
    }

    #[test]
    fn console_settings_are_read_and_a_too_short_session_refused() {
        let c = console("[console]\nsecure_cookies = true\nsession_ttl_secs = 600\n").unwrap();
        assert!(c.secure_cookies);
        assert_eq!(c.session_ttl, Duration::from_secs(600));
        assert!(console("[console]\nsession_ttl_secs = 5\n").is_err());
        assert!(
            console("[console]\nsecure = true\n").is_err(),
            "unknown keys refused"
        );
    }

    #[test]
    fn downstream_session_and_back_off_bounds_are_read_and_zero_refused() {
        let downstream = |text: &str| {
            let file: FileConfig = toml::from_str(text)?;
            downstream_config(file.downstream)
        };
        assert_eq!(downstream("").unwrap(), DownstreamConfig::default());
        let c = downstream(
            "[downstream]\nsession_idle_secs = 600\nsession_lifetime_secs = 7200\n\
             max_sessions = 50\nbackoff_entries = 70\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.session_idle,
                c.session_lifetime,
                c.max_sessions,
                c.backoff_entries
            ),
            (Duration::from_secs(600), Duration::from_secs(7200), 50, 70)
        );
        for zero in [
            "session_idle_secs = 0",
            "session_lifetime_secs = 0",
            "max_sessions = 0",
            "backoff_entries = 0",
        ] {
            assert!(
                downstream(&format!("[downstream]\n{zero}\n")).is_err(),
                "{zero}"
            );
        }
    }
}
