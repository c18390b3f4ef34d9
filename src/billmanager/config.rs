//! [`ClientConfig`]: how to reach BILLmanager, with a `Debug` that hides the password.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use secrecy::SecretString;

/// The answer format requested with `out=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// `out=xml`.
    #[default]
    Xml,
    /// `out=json`.
    Json,
}

impl WireFormat {
    pub(crate) fn out(self) -> &'static str {
        match self {
            Self::Xml => "xml",
            Self::Json => "json",
        }
    }
}

impl FromStr for WireFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "xml" => Ok(Self::Xml),
            "json" => Ok(Self::Json),
            _ => bail!("unknown BILLmanager wire format (expected xml or json)"),
        }
    }
}

/// The narrowing parameters of `pricelist.export`; each is sent only when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceListFilter {
    /// `itemtype`: the item type whose tariffs to export.
    pub itemtype: Option<String>,
    /// `elid`: one tariff (or provider) id.
    pub elid: Option<String>,
    /// `project`: the provider's project id.
    pub project: Option<String>,
}

impl PriceListFilter {
    pub(crate) fn params(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("itemtype", &self.itemtype),
            ("elid", &self.elid),
            ("project", &self.project),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    }
}

/// How to reach and talk to BILLmanager.
#[derive(Clone)]
pub struct ClientConfig {
    /// The full endpoint, e.g. `https://api.ispmanager.com/billmgr`. No credentials or
    /// query string: those belong in the request body.
    pub url: String,
    /// The account's user name.
    pub user: String,
    /// The account's password. Never logged or shown.
    pub password: SecretString,
    /// Time allowed to establish the connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for the whole call, answer included (default 30 s).
    pub request_timeout: Duration,
    /// `out=xml` (default) or `out=json`.
    pub format: WireFormat,
    /// `false`: `authinfo` on every call. `true`: log in once (`func=auth`) and send
    /// `auth=SID`, logging in again once when the session is rejected.
    pub use_session: bool,
    /// Rows per `soft` page (`p_cnt`, default 1000).
    pub page_size: u32,
    /// The largest answer accepted, in bytes (default 32 MiB).
    pub max_response_bytes: usize,
    /// Outbound rate limit: upstream HTTP requests per second, log-ins included; calls
    /// over it wait their turn. 0 means unlimited (default 20).
    pub max_calls_per_second: u32,
    /// The circuit breaker wrapped around the client by the service.
    pub breaker: super::BreakerConfig,
    /// How `pricelist.export` is narrowed, as real callers narrow it (a full export
    /// can be tens of megabytes and take the billing seconds): `itemtype`, `elid`,
    /// `project` parameters sent when set.
    pub price_list_filter: PriceListFilter,
    /// The largest `pricelist.export` answer accepted, in bytes (default 4 MiB). A
    /// larger one fails quotes and `panels --check` with a clear message.
    pub max_price_list_bytes: usize,
    /// After the upstream refuses the credentials, how long no call (and so no log-in)
    /// is made; each further refusal doubles it up to 16 times this (default 60 s,
    /// growing to 16 min). Panels block addresses whose log-ins keep failing.
    pub auth_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            user: String::new(),
            password: SecretString::from(""),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            format: WireFormat::Xml,
            use_session: false,
            page_size: 1000,
            max_response_bytes: 32 * 1024 * 1024,
            auth_backoff: Duration::from_secs(60),
            price_list_filter: PriceListFilter::default(),
            max_price_list_bytes: 4 * 1024 * 1024,
            max_calls_per_second: 20,
            breaker: super::BreakerConfig::default(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &redacted_url(&self.url))
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("format", &self.format)
            .field("use_session", &self.use_session)
            .field("page_size", &self.page_size)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_calls_per_second", &self.max_calls_per_second)
            .field("breaker", &self.breaker)
            .finish()
    }
}

/// The URL without userinfo or query, which could hold credentials by mistake.
pub(crate) fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) if url.is_empty() => String::new(),
        Err(_) => "[unparseable]".to_owned(),
    }
}

/// Checks the URL's scheme: `https`, or plain `http` only to a loopback address (the
/// request never leaves the host) or when `allow_http` says so explicitly. The
/// password and the session id travel in the request body, so plain http across a
/// network would expose them.
pub fn check_url(url: &str, allow_http: bool) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| anyhow::anyhow!("the BILLmanager url is not a valid URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                bail!(
                    "the BILLmanager url must be https (plain http would send the credentials \
                     in clear); pass --billmanager-allow-http to allow it anyway"
                )
            }
        }
        _ => bail!("the BILLmanager url must be an http:// or https:// URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn https_is_required_except_on_loopback_or_when_allowed() {
        assert!(check_url("https://api.ispmanager.com/billmgr", false).is_ok());
        assert!(check_url("http://api.ispmanager.com/billmgr", false).is_err());
        assert!(check_url("http://api.ispmanager.com/billmgr", true).is_ok());
        assert!(check_url("http://127.0.0.1:8081/billmgr", false).is_ok());
        assert!(check_url("http://[::1]:8081/billmgr", false).is_ok());
        assert!(check_url("http://localhost/billmgr", false).is_ok());
        assert!(check_url("ftp://api.ispmanager.com/billmgr", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }
}
