//! Settings of a platform adapter (built by the watcher from its configuration file).

use std::time::Duration;

use secrecy::SecretString;

/// Names of the paging parameters of a list (inferred: platforms.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// Query parameter with the page size.
    pub limit_param: String,
    /// Query parameter with the index of the first element.
    pub offset_param: String,
    /// Field of the answer with the number of elements of the whole list.
    pub total_field: String,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            limit_param: "limit".into(),
            offset_param: "offset".into(),
            total_field: "size".into(),
        }
    }
}

/// Which platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformKind {
    /// VMmanager 6: virtual machines (`/vm/v3/host`).
    VmManager6,
    /// DCImanager 6: bare-metal servers (`/dci/v3/server`).
    DciManager6,
}

impl PlatformKind {
    /// The prefix of the server ids the watcher sends for this platform's servers.
    pub fn id_prefix(self) -> &'static str {
        match self {
            PlatformKind::VmManager6 => "vm6",
            PlatformKind::DciManager6 => "dci6",
        }
    }
}

/// How the adapter authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Logs in with `POST /auth/v4/public/token`, and again when the session expires.
    Password {
        /// The user's e-mail.
        email: String,
        /// The password.
        password: SecretString,
    },
    /// A long-lived token (made with `POST /auth/v4/token`); it cannot be renewed, so
    /// a refusal fails the listing.
    ApiToken(SecretString),
}

/// Settings of one platform adapter.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Which platform.
    pub kind: PlatformKind,
    /// Base URL, e.g. `https://vm.example.com` (or with `/api`; both work on the
    /// platform).
    pub url: String,
    /// Credentials.
    pub credentials: Credentials,
    /// Elements asked per page.
    pub page_size: usize,
    /// Paging parameter and total field names (inferred shapes: configurable).
    pub paging: Paging,
    /// A `where=` expression narrowing the list (e.g. one cluster); none by default.
    pub filter: Option<String>,
    /// Attempts of one request while the platform answers 503.
    pub busy_attempts: u32,
    /// Wait before the first retry after a 503; doubled each time, at most 30 s.
    pub busy_backoff: Duration,
    /// Whole listings tried before the listing is reported incomplete.
    pub listing_attempts: u32,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// DCImanager: the server field holding its addresses (inferred).
    pub dci_ip_field: String,
    /// The field holding a server's tags (inferred for both platforms).
    pub tags_field: String,
    /// Allow plain `http://` to a non-loopback host.
    pub allow_http: bool,
}

impl PlatformConfig {
    /// Settings with the defaults for everything but the platform, URL and credentials.
    pub fn new(kind: PlatformKind, url: &str, credentials: Credentials) -> Self {
        Self {
            kind,
            url: url.trim_end_matches('/').to_owned(),
            credentials,
            page_size: 500,
            paging: Paging::default(),
            filter: None,
            busy_attempts: 5,
            busy_backoff: Duration::from_millis(500),
            listing_attempts: 3,
            request_timeout: Duration::from_secs(30),
            dci_ip_field: "ip".into(),
            tags_field: "tags".into(),
            allow_http: false,
        }
    }
}
