//! Command-line arguments of `license-facade sandbox`, with an optional TOML file for
//! everything else (price table, policies, faults). Flags and their
//! `LICENSE_FACADE_SANDBOX_*` environment variables override the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::config::{
    Addon, DuplicateIpPolicy, ListPricelist, OrderIdAt, PriceTable, SandboxConfig, SavedFilter,
    Tariff,
};
use super::faults::Fault;

/// `license-facade sandbox`: run a BILLmanager simulator.
#[derive(clap::Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Address to listen on (HOST:PORT; port 0 picks a free one).
    #[arg(
        long,
        env = "LICENSE_FACADE_SANDBOX_ADDR",
        default_value = "127.0.0.1:8089"
    )]
    pub addr: SocketAddr,
    /// Account login [default: demo].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_USER")]
    pub user: Option<String>,
    /// Account password [default: demo].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Starting balance in cents [default: 1000000, i.e. 10 000.00].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_BALANCE")]
    pub balance: Option<i64>,
    /// Milliseconds from an order until the license is active with a key [default: 1000].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_KEY_DELAY_MS")]
    pub key_delay_ms: Option<u64>,
    /// Milliseconds added to every request [default: 0].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_LATENCY_MS")]
    pub latency_ms: Option<u64>,
    /// A license in use: minimum time between two moves from one real address to
    /// another, e.g. 30d, 12h, 0 [default: 30d]. Parking and leaving the pool never count.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_IP_CHANGE_COOLDOWN", value_parser = parse_duration)]
    pub ip_change_cooldown: Option<Duration>,
    /// A parked license (IP 0.0.0.0) moves to a real address only once its last IP
    /// change is this many days old; 0 turns the rule off [default: 30].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_IP_CHANGE_COOLDOWN_DAYS")]
    pub ip_change_cooldown_days: Option<u32>,
    /// A parked license gets a new key only once its last key change is this many
    /// days old; 0 turns the rule off [default: 30].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_KEY_CHANGE_COOLDOWN_DAYS")]
    pub key_change_cooldown_days: Option<u32>,
    /// Injected fault FUNC:KIND:RATE (KIND: error5xx, timeout, drop-after-commit,
    /// malformed, doc-error, delay-<N>ms; FUNC may be *). Repeatable; comma-separated in
    /// the env var.
    #[arg(
        long = "fault",
        env = "LICENSE_FACADE_SANDBOX_FAULTS",
        value_delimiter = ','
    )]
    pub faults: Vec<Fault>,
    /// TOML file with any of the settings above plus policies and a price table.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the order answer carries the new id: `id` (doc/id), `item.id`, `both`, or
    /// `none` (an answer that says ok without an id) [default: id].
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_ORDER_ID_AT", value_parser = parse_order_id_at)]
    pub order_id_at: Option<OrderIdAt>,
    /// List a `remoteid` column in `soft` (the documented columns have none).
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_LIST_REMOTEID")]
    pub list_remoteid: bool,
    /// Leave the `licname` column out of the `soft` list.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_LIST_WITHOUT_LICNAME")]
    pub list_without_licname: bool,
    /// A saved filter that hides licenses from `soft`: `active-only` (only status 2
    /// is listed) or `hide-all`.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_SAVED_FILTER", value_parser = parse_saved_filter)]
    pub saved_filter: Option<SavedFilter>,
    /// Do not show the saved filter in `saved_filters` while it narrows the list.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_SAVED_FILTER_SILENT")]
    pub saved_filter_silent: bool,
    /// On a short balance, leave an unpaid item (status 1) behind and still refuse.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_UNPAID_ON_SHORT_BALANCE")]
    pub unpaid_on_short_balance: bool,
    /// Ordered licenses stay in this status instead of becoming active: 1 (ordered,
    /// unpaid, nothing debited) or 5 (processing).
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_STUCK_STATUS", value_parser = parse_stuck_status)]
    pub stuck_status: Option<u32>,
    /// List message columns (status, tariff, period) as translated text only, with no
    /// raw value in `orig`.
    #[arg(long, env = "LICENSE_FACADE_SANDBOX_TRANSLATED_WITHOUT_ORIG")]
    pub translated_without_orig: bool,
}

fn parse_order_id_at(s: &str) -> Result<OrderIdAt, String> {
    match s {
        "id" => Ok(OrderIdAt::Id),
        "item.id" => Ok(OrderIdAt::ItemId),
        "both" => Ok(OrderIdAt::Both),
        "none" => Ok(OrderIdAt::Nowhere),
        _ => Err(format!("{s:?}: expected id, item.id, both or none")),
    }
}

fn parse_saved_filter(s: &str) -> Result<SavedFilter, String> {
    match s {
        "active-only" => Ok(SavedFilter::ActiveOnly),
        "hide-all" => Ok(SavedFilter::HideAll),
        _ => Err(format!("{s:?}: expected active-only or hide-all")),
    }
}

fn parse_stuck_status(s: &str) -> Result<u32, String> {
    match s {
        "1" => Ok(1),
        "5" => Ok(5),
        _ => Err(format!("{s:?}: expected 1 or 5")),
    }
}

impl SandboxArgs {
    /// Builds the configuration: defaults, then the TOML file, then the flags.
    pub fn into_config(self) -> anyhow::Result<SandboxConfig> {
        let mut cfg = SandboxConfig::default();
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading sandbox config {}", path.display()))?;
            let file: FileConfig = toml::from_str(&text)
                .with_context(|| format!("parsing sandbox config {}", path.display()))?;
            file.apply(&mut cfg)
                .with_context(|| format!("in sandbox config {}", path.display()))?;
        }
        set(&mut cfg.user, self.user);
        set(&mut cfg.password, self.password);
        set(&mut cfg.balance_cents, self.balance);
        set(
            &mut cfg.key_delay,
            self.key_delay_ms.map(Duration::from_millis),
        );
        set(&mut cfg.latency, self.latency_ms.map(Duration::from_millis));
        set(&mut cfg.ip_change_cooldown, self.ip_change_cooldown);
        set(
            &mut cfg.ip_change_cooldown_days,
            self.ip_change_cooldown_days,
        );
        set(
            &mut cfg.key_change_cooldown_days,
            self.key_change_cooldown_days,
        );
        if !self.faults.is_empty() {
            cfg.faults = self.faults;
        }
        set(&mut cfg.order_id_at, self.order_id_at);
        cfg.list_remoteid |= self.list_remoteid;
        cfg.list_licname &= !self.list_without_licname;
        if self.saved_filter.is_some() {
            cfg.saved_filter = self.saved_filter;
        }
        cfg.saved_filter_silent |= self.saved_filter_silent;
        cfg.unpaid_on_short_balance |= self.unpaid_on_short_balance;
        if self.stuck_status.is_some() {
            cfg.stuck_status = self.stuck_status;
        }
        cfg.translated_without_orig |= self.translated_without_orig;
        Ok(cfg)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Parses `30d`, `12h`, `15m`, `90s`, `500ms` or `0`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("invalid duration {s:?}; use e.g. 30d, 12h, 15m, 90s, 500ms or 0");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// The TOML file; every key is optional and named like the [`SandboxConfig`] field
/// (durations as strings such as `"30d"`, money in cents).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    user: Option<String>,
    password: Option<String>,
    balance: Option<i64>,
    currency: Option<String>,
    key_delay_ms: Option<u64>,
    latency_ms: Option<u64>,
    session_ttl: Option<String>,
    ip_change_cooldown: Option<String>,
    key_change_cooldown: Option<String>,
    ip_change_cooldown_days: Option<u32>,
    key_change_cooldown_days: Option<u32>,
    timeout_hang: Option<String>,
    trial_days: Option<u32>,
    trial_once_per_ip: Option<bool>,
    /// `allow` or `refuse`.
    duplicate_ip: Option<String>,
    /// `name-with-orig`, `id` or `name`.
    list_pricelist: Option<String>,
    json_single_elem_as_array: Option<bool>,
    no_money_error_type: Option<String>,
    exists_error_type: Option<String>,
    not_found_error_type: Option<String>,
    change_dates_as_next_allowed: Option<bool>,
    first_id: Option<u64>,
    /// `active-only` or `hide-all`, as `--saved-filter`.
    saved_filter: Option<String>,
    saved_filter_silent: Option<bool>,
    faults: Option<Vec<String>>,
    /// Replaces the whole default tariff list when present.
    tariffs: Option<Vec<FileTariff>>,
    /// Replaces the whole default add-on list when present.
    addons: Option<Vec<FileAddon>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTariff {
    id: u32,
    name: String,
    #[serde(default = "default_family")]
    family: String,
    #[serde(default)]
    trial: bool,
    #[serde(default)]
    month_cents: i64,
    #[serde(default)]
    year_cents: i64,
    #[serde(default)]
    addons: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAddon {
    id: u32,
    name: String,
    month_cents: i64,
    year_cents: i64,
    #[serde(default = "default_addon_max")]
    max: u32,
}

fn default_family() -> String {
    "ispmanager6".into()
}

fn default_addon_max() -> u32 {
    1000
}

fn duration(field: &str, value: Option<String>) -> anyhow::Result<Option<Duration>> {
    value
        .map(|v| parse_duration(&v).map_err(|e| anyhow::anyhow!("{field}: {e}")))
        .transpose()
}

impl FileConfig {
    fn apply(self, cfg: &mut SandboxConfig) -> anyhow::Result<()> {
        set(&mut cfg.user, self.user);
        set(&mut cfg.password, self.password);
        set(&mut cfg.balance_cents, self.balance);
        set(&mut cfg.currency, self.currency);
        set(
            &mut cfg.key_delay,
            self.key_delay_ms.map(Duration::from_millis),
        );
        set(&mut cfg.latency, self.latency_ms.map(Duration::from_millis));
        set(
            &mut cfg.session_ttl,
            duration("session_ttl", self.session_ttl)?,
        );
        set(
            &mut cfg.ip_change_cooldown,
            duration("ip_change_cooldown", self.ip_change_cooldown)?,
        );
        set(
            &mut cfg.key_change_cooldown,
            duration("key_change_cooldown", self.key_change_cooldown)?,
        );
        set(
            &mut cfg.ip_change_cooldown_days,
            self.ip_change_cooldown_days,
        );
        set(
            &mut cfg.key_change_cooldown_days,
            self.key_change_cooldown_days,
        );
        set(
            &mut cfg.timeout_hang,
            duration("timeout_hang", self.timeout_hang)?,
        );
        set(&mut cfg.trial_days, self.trial_days);
        set(&mut cfg.trial_once_per_ip, self.trial_once_per_ip);
        set(
            &mut cfg.json_single_elem_as_array,
            self.json_single_elem_as_array,
        );
        set(&mut cfg.no_money_error_type, self.no_money_error_type);
        set(&mut cfg.exists_error_type, self.exists_error_type);
        set(&mut cfg.not_found_error_type, self.not_found_error_type);
        set(
            &mut cfg.change_dates_as_next_allowed,
            self.change_dates_as_next_allowed,
        );
        set(&mut cfg.first_id, self.first_id);
        if let Some(v) = self.saved_filter {
            cfg.saved_filter =
                Some(parse_saved_filter(&v).map_err(|e| anyhow::anyhow!("saved_filter: {e}"))?);
        }
        set(&mut cfg.saved_filter_silent, self.saved_filter_silent);
        if let Some(v) = self.duplicate_ip {
            cfg.duplicate_ip = match v.as_str() {
                "allow" => DuplicateIpPolicy::Allow,
                "refuse" => DuplicateIpPolicy::Refuse,
                _ => bail!("duplicate_ip must be \"allow\" or \"refuse\", not {v:?}"),
            };
        }
        if let Some(v) = self.list_pricelist {
            cfg.list_pricelist = match v.as_str() {
                "name-with-orig" => ListPricelist::NameWithOrig,
                "id" => ListPricelist::Id,
                "name" => ListPricelist::Name,
                _ => bail!(
                    "list_pricelist must be \"name-with-orig\", \"id\" or \"name\", not {v:?}"
                ),
            };
        }
        if let Some(faults) = self.faults {
            cfg.faults = faults
                .iter()
                .map(|f| f.parse::<Fault>())
                .collect::<Result<_, _>>()?;
        }
        if let Some(tariffs) = self.tariffs {
            cfg.prices.tariffs = tariffs.into_iter().map(FileTariff::into_tariff).collect();
        }
        if let Some(addons) = self.addons {
            cfg.prices.addons = addons.into_iter().map(FileAddon::into_addon).collect();
        }
        check_prices(&cfg.prices)
    }
}

impl FileTariff {
    fn into_tariff(self) -> Tariff {
        Tariff {
            id: self.id,
            name: self.name,
            family: self.family,
            trial: self.trial,
            month_cents: self.month_cents,
            year_cents: self.year_cents,
            addons: self.addons,
        }
    }
}

impl FileAddon {
    fn into_addon(self) -> Addon {
        Addon {
            id: self.id,
            name: self.name,
            month_cents: self.month_cents,
            year_cents: self.year_cents,
            max: self.max,
        }
    }
}

/// Tariffs must name add-ons that exist; ids must be unique.
fn check_prices(prices: &PriceTable) -> anyhow::Result<()> {
    for (i, t) in prices.tariffs.iter().enumerate() {
        if prices.tariffs[..i].iter().any(|o| o.id == t.id) {
            bail!("tariff id {} appears twice", t.id);
        }
        if let Some(a) = t.addons.iter().find(|a| prices.addon(**a).is_none()) {
            bail!("tariff {} names unknown add-on {a}", t.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    #[test]
    fn durations_accept_the_documented_units() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn flags_override_the_toml_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let toml = r#"
            balance = 500
            key_delay_ms = 50
            duplicate_ip = "refuse"
            ip_change_cooldown_days = 7
            key_change_cooldown_days = 5
            faults = ["soft:timeout:0.5"]
            [[tariffs]]
            id = 1
            name = "one"
            month_cents = 100
            year_cents = 1000
        "#;
        std::io::Write::write_all(&mut file, toml.as_bytes()).unwrap();
        let path = file.path().to_str().unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--config",
            path,
            "--balance",
            "700",
            "--fault",
            "*:malformed:1",
            "--ip-change-cooldown",
            "12h",
            "--ip-change-cooldown-days",
            "0",
        ])
        .unwrap();

        let cfg = cli.args.into_config().unwrap();

        assert_eq!(cfg.balance_cents, 700);
        assert_eq!(cfg.key_delay, Duration::from_millis(50));
        assert_eq!(cfg.duplicate_ip, DuplicateIpPolicy::Refuse);
        assert_eq!(cfg.ip_change_cooldown, Duration::from_secs(12 * 3600));
        assert_eq!(
            (cfg.ip_change_cooldown_days, cfg.key_change_cooldown_days),
            (0, 5)
        );
        assert_eq!(cfg.faults, vec!["*:malformed:1".parse::<Fault>().unwrap()]);
        assert_eq!(cfg.prices.tariffs.len(), 1);
    }

    #[test]
    fn a_saved_filter_is_set_by_flag_or_file_and_may_be_silent() {
        let flags =
            Cli::try_parse_from(["x", "--saved-filter", "hide-all", "--saved-filter-silent"])
                .unwrap()
                .args
                .into_config()
                .unwrap();
        assert_eq!(
            (flags.saved_filter, flags.saved_filter_silent),
            (Some(SavedFilter::HideAll), true)
        );

        let mut file = tempfile::NamedTempFile::new().unwrap();
        let toml = "saved_filter = \"active-only\"\nsaved_filter_silent = true\n";
        std::io::Write::write_all(&mut file, toml.as_bytes()).unwrap();
        let path = file.path().to_str().unwrap();
        let from_file = Cli::try_parse_from(["x", "--config", path])
            .unwrap()
            .args
            .into_config()
            .unwrap();
        assert_eq!(
            (from_file.saved_filter, from_file.saved_filter_silent),
            (Some(SavedFilter::ActiveOnly), true)
        );

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut bad, b"saved_filter = \"some\"\n").unwrap();
        let path = bad.path().to_str().unwrap();
        let refused = Cli::try_parse_from(["x", "--config", path])
            .unwrap()
            .args
            .into_config()
            .unwrap_err();
        assert!(
            format!("{refused:#}").contains("saved_filter"),
            "{refused:#}"
        );
    }

    #[test]
    fn a_bad_fault_flag_is_refused_by_clap() {
        let err = Cli::try_parse_from(["x", "--fault", "soft:boom:1"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown fault kind"), "{err}");
    }
}
