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
