//! The watcher's configuration file (`watcher.toml`), read once at start and checked
//! whole: a mistake fails the start with a message naming the setting, never a pass.
//!
//! Secrets (the license-facade client token, the platform password or API token) are
//! given by environment variable (`*_env`), by file (`*_file`) or, for trials only,
//! inline; they are held as `SecretString` and never logged.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config_file::{File, FileApi, FileGuest, FileMarkers, FilePlatform};
use crate::platform::{Credentials, Paging, PlatformConfig, PlatformKind};
use anyhow::{Context as _, bail, ensure};
use secrecy::SecretString;

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Names this platform instance in server ids (`vm6-<instance>:<host id>`).
    pub instance: String,
    /// Where absence bookkeeping is kept (written atomically after each pass).
    pub state_file: PathBuf,
    /// Time between passes of `watch` (without `--once`).
    pub interval: Duration,
    /// Calls to license-facade in flight at once.
    pub concurrency: usize,
    /// license-facade's gRPC endpoint and the watcher's client token.
    pub api: ApiConfig,
    /// The platform adapter's settings.
    pub platform: PlatformConfig,
    /// Whether an empty complete listing counts as evidence (it does not by default:
    /// a platform that suddenly lists nothing is more likely broken than empty).
    pub trust_empty_listing: bool,
    /// Which servers need which panel.
    pub markers: MarkerRules,
    /// Which address a license is bound to.
    pub address: AddressPick,
    /// Parameters of new orders.
    pub licenses: LicenseDefaults,
    /// When a license of a gone server is cancelled.
    pub cancel: CancelRules,
    /// Operator listener: `/metrics`, `/status`, `/healthz`.
    pub http_addr: Option<SocketAddr>,
    /// Guest listener: `/guest/license` only.
    pub guest: Option<GuestConfig>,
}

/// How the watcher reaches license-facade.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// gRPC URL, e.g. `http://127.0.0.1:50051`.
    pub grpc_url: String,
    /// The watcher's own client token (scopes `licenses.read` and `licenses.write`);
    /// `None` when its TLS client certificate identifies it.
    pub token: Option<SecretString>,
    /// Deadline of one call.
    pub timeout: Duration,
    /// TLS to the service, for an `https://` URL.
    pub tls: Option<ApiTls>,
}

/// TLS settings of the watcher's channel to license-facade.
#[derive(Clone)]
pub struct ApiTls {
    /// PEM of the CA that signed the service's certificate.
    pub ca_pem: String,
    /// PEM of the watcher's client certificate and its key, if it presents one.
    pub identity: Option<(String, SecretString)>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

/// Where the wanted panel of a server is read from, in this order.
#[derive(Debug, Clone)]
pub struct MarkerRules {
    /// `KEY=panel` in the comment (default `panel`); `KEY=none` unmarks.
    pub comment_key: Option<String>,
    /// A tag `KEY=panel` (default `panel`).
    pub tag_key: Option<String>,
    /// ISPsystem's recipe tag convention `lic_ISPmanager_6_<Tier>`, in tags or comment.
    pub recipe_tags: bool,
    /// OS template name → panel.
    pub os: BTreeMap<String, String>,
}

/// Which of a server's addresses the license is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPick {
    /// The first public IPv4 address (not private, loopback, link-local or shared).
    FirstPublic,
    /// The first IPv4 address, whatever it is (for panels reached over NAT).
    First,
}

/// Parameters of the licenses the watcher orders.
#[derive(Debug, Clone)]
pub struct LicenseDefaults {
    /// 1 or 12.
    pub period_months: i32,
    /// Whether the upstream renews them by itself.
    pub auto_renew: bool,
    /// A server whose last order was refused (FAILED: nothing bought) is ordered
    /// again after this long, not at every pass.
    pub retry_failed_after: Duration,
}

/// When a license whose server is gone (or unmarked) is cancelled.
#[derive(Debug, Clone)]
pub struct CancelRules {
    /// Complete listings the server must be absent from.
    pub absent_listings: u32,
    /// And for at least this long since the first of them.
    pub grace: Duration,
    /// A pass that would cancel more than this share of the watcher's live licenses
    /// cancels nothing and reports instead…
    pub max_share: f64,
    /// …unless it cancels at most this many.
    pub min_allowed: usize,
    /// What ends such a license: a cancellation, or a release to the service's pool.
    pub release: ReleasePolicy,
}

/// How the watcher ends the license of a gone (or unmarked) server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReleasePolicy {
    /// `CancelLicense`: deleted upstream; its paid time is lost.
    #[default]
    Cancel,
    /// `ReleaseLicense`: parked in the service's pool with its paid time, for the next
    /// order of its tariff to take instead of buying, or cancelled when the pool's
    /// rules of its tariff say it is not worth keeping.
    Park,
}

impl ReleasePolicy {
    /// Its name in the configuration file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Park => "park",
        }
    }
}

/// The guest listener.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Proxies whose `X-Forwarded-For` is believed (CIDR blocks).
    pub trusted_proxies: Vec<(IpAddr, u8)>,
}

impl WatcherConfig {
    /// Reads and checks the file at `path`; relative paths in it (state file, secret
    /// files) are taken from the directory it is in.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the watcher configuration {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text).context("invalid watcher configuration")?;
        let instance = file.instance;
        ensure!(
            !instance.is_empty()
                && instance.len() <= 32
                && instance
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "instance must be 1 to 32 characters of a-z, 0-9 and '-' (it names the platform in server ids)"
        );
        ensure!(file.interval_secs >= 1, "interval_secs must be at least 1");
        ensure!(
            (1..=64).contains(&file.concurrency),
            "concurrency must be between 1 and 64"
        );
        let api = api_config(file.license_facade, base)?;
        let (platform, trust_empty_listing, address) = platform_config(file.platform, base)?;
        let markers = marker_rules(file.markers);
        let licenses = file.licenses;
        ensure!(
            [1, 12].contains(&licenses.period_months),
            "licenses.period_months must be 1 or 12"
        );
        let cancel = file.cancel;
        ensure!(
            cancel.absent_listings >= 1,
            "cancel.absent_listings must be at least 1"
        );
        ensure!(
            (0.0..=1.0).contains(&cancel.max_share),
            "cancel.max_share must be between 0.0 and 1.0"
        );
        let release = match cancel.release.as_str() {
            "cancel" => ReleasePolicy::Cancel,
            "park" => ReleasePolicy::Park,
            other => bail!("cancel.release {other:?}: expected cancel or park"),
        };
        Ok(Self {
            instance,
            state_file: base.join(file.state_file),
            interval: Duration::from_secs(file.interval_secs),
            concurrency: file.concurrency,
            api,
            platform,
            trust_empty_listing,
            markers,
            address,
            licenses: LicenseDefaults {
                period_months: licenses.period_months,
                auto_renew: licenses.auto_renew,
                retry_failed_after: Duration::from_secs(licenses.retry_failed_after_secs),
            },
            cancel: CancelRules {
                absent_listings: cancel.absent_listings,
                grace: Duration::from_secs(cancel.grace_secs),
                max_share: cancel.max_share,
                min_allowed: cancel.min_allowed,
                release,
            },
            http_addr: file.http.map(|h| h.addr),
            guest: file.guest.map(guest_config).transpose()?,
        })
    }

    /// The prefix of every server id this watcher sends: `vm6-<instance>:`.
    pub fn server_prefix(&self) -> String {
        format!("{}-{}:", self.platform.kind.id_prefix(), self.instance)
    }
}

fn api_config(file: FileApi, base: &Path) -> anyhow::Result<ApiConfig> {
    let url =
        reqwest::Url::parse(&file.grpc_url).context("license_facade.grpc_url is not a URL")?;
    let read = |key: &str, path: &Path| {
        let path = base.join(path);
        std::fs::read_to_string(&path)
            .with_context(|| format!("license_facade.{key}: cannot read {}", path.display()))
    };
    let tls = match url.scheme() {
        "http" => {
            ensure!(
                file.ca_file.is_none() && file.cert_file.is_none() && file.key_file.is_none(),
                "license_facade.ca_file, cert_file and key_file need an https:// grpc_url"
            );
            None
        }
        "https" => {
            let ca = file.ca_file.as_deref().context(
                "an https:// license_facade.grpc_url needs ca_file (the CA of the service's \
                 certificate)",
            )?;
            let identity = match (&file.cert_file, &file.key_file) {
                (Some(cert), Some(key)) => Some((
                    read("cert_file", cert)?,
                    SecretString::from(read("key_file", key)?),
                )),
                (None, None) => None,
                _ => bail!("license_facade.cert_file and key_file go together"),
            };
            Some(ApiTls {
                ca_pem: read("ca_file", ca)?,
                identity,
            })
        }
        other => bail!("license_facade.grpc_url must be http:// or https://, not {other}://"),
    };
    let token = secret(
        "license_facade.token",
        file.token,
        file.token_env,
        file.token_file,
        base,
    )?;
    let has_certificate = tls.as_ref().is_some_and(|t| t.identity.is_some());
    ensure!(
        token.is_some() || has_certificate,
        "license_facade needs token_env, token_file or token (the watcher's client token), or \
         cert_file and key_file (a client certificate the service knows the watcher by)"
    );
    Ok(ApiConfig {
        grpc_url: file.grpc_url,
        token,
        timeout: Duration::from_secs(file.timeout_secs.max(1)),
        tls,
    })
}

fn platform_config(
    file: FilePlatform,
    base: &Path,
) -> anyhow::Result<(PlatformConfig, bool, AddressPick)> {
    let kind = match file.kind.as_str() {
        "vmmanager6" => PlatformKind::VmManager6,
        "dcimanager6" => PlatformKind::DciManager6,
        other => bail!("platform.kind {other:?}: expected vmmanager6 or dcimanager6"),
    };
    let token = secret(
        "platform.token",
        file.token,
        file.token_env,
        file.token_file,
        base,
    )?;
    let password = secret(
        "platform.password",
        file.password,
        file.password_env,
        file.password_file,
        base,
    )?;
    let credentials = match (token, file.email, password) {
        (Some(token), None, None) => Credentials::ApiToken(token),
        (None, Some(email), Some(password)) => Credentials::Password { email, password },
        _ => bail!(
            "platform needs either an API token (token_env / token_file / token) or email with a \
             password (password_env / password_file / password), not both"
        ),
    };
    let mut config = PlatformConfig::new(kind, &file.url, credentials);
    let defaults = Paging::default();
    config.paging = Paging {
        limit_param: file.limit_param.unwrap_or(defaults.limit_param),
        offset_param: file.offset_param.unwrap_or(defaults.offset_param),
        total_field: file.total_field.unwrap_or(defaults.total_field),
    };
    if let Some(n) = file.page_size {
        ensure!(
            (1..=10_000).contains(&n),
            "platform.page_size must be between 1 and 10000"
        );
        config.page_size = n;
    }
    config.filter = file.filter.filter(|f| !f.trim().is_empty());
    config.allow_http = file.allow_http.unwrap_or(false);
    if let Some(n) = file.busy_attempts {
        config.busy_attempts = n.max(1);
    }
    if let Some(ms) = file.busy_backoff_ms {
        config.busy_backoff = Duration::from_millis(ms);
    }
    if let Some(n) = file.listing_attempts {
        config.listing_attempts = n.max(1);
    }
    if let Some(secs) = file.timeout_secs {
        config.request_timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(field) = file.tags_field {
        config.tags_field = field;
    }
    if let Some(field) = file.dci_ip_field {
        config.dci_ip_field = field;
    }
    let address = match file.address.as_deref().unwrap_or("first-public") {
        "first-public" => AddressPick::FirstPublic,
        "first" => AddressPick::First,
        other => bail!("platform.address {other:?}: expected first-public or first"),
    };
    // Fails now rather than at the first pass: bad URL, http to a remote host.
    crate::platform::PlatformClient::new(&config)?;
    Ok((config, file.trust_empty_listing, address))
}

fn marker_rules(file: FileMarkers) -> MarkerRules {
    let key = |k: String| Some(k.trim().to_owned()).filter(|k| !k.is_empty());
    MarkerRules {
        comment_key: key(file.comment_key),
        tag_key: key(file.tag_key),
        recipe_tags: file.recipe_tags,
        os: file.os,
    }
}

fn guest_config(file: FileGuest) -> anyhow::Result<GuestConfig> {
    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .map(|cidr| parse_cidr(cidr).with_context(|| format!("guest.trusted_proxies: {cidr:?}")))
        .collect::<anyhow::Result<_>>()?;
    Ok(GuestConfig {
        addr: file.addr,
        trusted_proxies,
    })
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a block of one).
pub fn parse_cidr(text: &str) -> anyhow::Result<(IpAddr, u8)> {
    let (ip, bits) = match text.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (text, None),
    };
    let ip: IpAddr = ip.trim().parse().context("not an IP address")?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.trim().parse::<u8>().context("not a prefix length")?,
        None => max,
    };
    ensure!(bits <= max, "prefix length over {max}");
    Ok((ip, bits))
}

/// One secret from exactly one of: inline, environment variable, file.
fn secret(
    name: &str,
    inline: Option<String>,
    env: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> anyhow::Result<Option<SecretString>> {
    let value = match (inline, env, file) {
        (None, None, None) => return Ok(None),
        (Some(v), None, None) => v,
        (None, Some(var), None) => std::env::var(&var)
            .with_context(|| format!("{name}: environment variable {var} is not set"))?,
        (None, None, Some(path)) => {
            let path = base.join(path);
            std::fs::read_to_string(&path)
                .with_context(|| format!("{name}: cannot read {}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned()
        }
        _ => bail!("{name}: give only one of inline, _env or _file"),
    };
    ensure!(!value.is_empty(), "{name} is empty");
    Ok(Some(SecretString::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        instance = "dc1"
        state_file = "state.json"
        [license_facade]
        grpc_url = "http://127.0.0.1:50051"
        token = "t"
        [platform]
        kind = "vmmanager6"
        url = "https://vm.example.com"
        email = "w@example.com"
        password = "p"
    "#;

    #[test]
    fn a_minimal_file_takes_the_safe_defaults() {
        let c = WatcherConfig::parse(MINIMAL, Path::new("/etc/lf")).unwrap();
        assert_eq!(c.server_prefix(), "vm6-dc1:");
        assert_eq!(c.state_file, Path::new("/etc/lf/state.json"));
        assert_eq!(c.cancel.absent_listings, 3);
        assert_eq!(c.cancel.grace, Duration::from_secs(86_400));
        assert!(!c.trust_empty_listing);
        assert_eq!(c.cancel.release, ReleasePolicy::Cancel);
        assert_eq!(c.address, AddressPick::FirstPublic);
        assert!(matches!(
            c.platform.credentials,
            Credentials::Password { .. }
        ));
    }

    #[test]
    fn mistakes_are_refused_with_the_setting_named() {
        let bad = |from: &str, to: &str| {
            let text = MINIMAL.replace(from, to);
            format!(
                "{:#}",
                WatcherConfig::parse(&text, Path::new(".")).unwrap_err()
            )
        };
        assert!(bad("\"dc1\"", "\"DC 1\"").contains("instance"));
        assert!(bad("vmmanager6", "proxmox").contains("platform.kind"));
        assert!(bad("https://vm", "http://vm").contains("https"));
        assert!(bad("password = \"p\"", "token = \"x\"").contains("not both"));
        assert!(bad("token = \"t\"", "").contains("token"));
        assert!(bad("instance", "instanse").contains("unknown field"));
        assert!(
            bad(
                "password = \"p\"",
                "password = \"p\"\n[cancel]\nrelease = \"keep\""
            )
            .contains("cancel.release")
        );
    }

    #[test]
    fn the_release_policy_is_read_from_the_cancel_section() {
        let text = format!("{MINIMAL}\n        [cancel]\n        release = \"park\"\n");

        let c = WatcherConfig::parse(&text, Path::new(".")).unwrap();

        assert_eq!(c.cancel.release, ReleasePolicy::Park);
        assert_eq!(
            c.cancel.absent_listings, 3,
            "the other settings keep their defaults"
        );
    }

    #[test]
    fn an_https_service_needs_its_ca_and_a_client_certificate_may_replace_the_token() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.pem", "watcher.pem", "watcher.key"] {
            std::fs::write(dir.path().join(name), "PEM").unwrap();
        }
        let parse = |from: &str, to: &str| {
            WatcherConfig::parse(&MINIMAL.replace(from, to), dir.path())
                .map_err(|e| format!("{e:#}"))
        };
        let https = "grpc_url = \"https://127.0.0.1:50051\"";
        let tls = format!(
            "{https}\nca_file = \"ca.pem\"\ncert_file = \"watcher.pem\"\nkey_file = \"watcher.key\""
        );

        let by_cert = parse(
            "grpc_url = \"http://127.0.0.1:50051\"\n        token = \"t\"",
            &tls,
        )
        .unwrap();
        let no_ca = parse("grpc_url = \"http://127.0.0.1:50051\"", https).unwrap_err();
        let half = parse(
            "grpc_url = \"http://127.0.0.1:50051\"",
            &format!("{https}\nca_file = \"ca.pem\"\ncert_file = \"watcher.pem\""),
        )
        .unwrap_err();
        let ca_on_http = parse(
            "grpc_url = \"http://127.0.0.1:50051\"",
            "grpc_url = \"http://127.0.0.1:50051\"\nca_file = \"ca.pem\"",
        )
        .unwrap_err();

        assert!(by_cert.api.token.is_none());
        let api_tls = by_cert.api.tls.expect("TLS");
        assert_eq!(api_tls.ca_pem, "PEM");
        assert!(api_tls.identity.is_some());
        assert!(no_ca.contains("ca_file"), "{no_ca}");
        assert!(half.contains("go together"), "{half}");
        assert!(ca_on_http.contains("https://"), "{ca_on_http}");
    }

    #[test]
    fn cidr_blocks_parse() {
        assert_eq!(
            parse_cidr("10.0.0.0/8").unwrap(),
            ("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(parse_cidr("::1").unwrap(), ("::1".parse().unwrap(), 128));
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
