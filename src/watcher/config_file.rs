//! The shape of `watcher.toml` as read from disk (serde), before it is checked and
//! turned into [`WatcherConfig`](super::config::WatcherConfig). The defaults here are
//! the documented ones (docs/integrations.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) instance: String,
    pub(super) state_file: PathBuf,
    #[serde(default = "default_interval")]
    pub(super) interval_secs: u64,
    #[serde(default = "default_concurrency")]
    pub(super) concurrency: usize,
    pub(super) license_facade: FileApi,
    pub(super) platform: FilePlatform,
    #[serde(default)]
    pub(super) markers: FileMarkers,
    #[serde(default)]
    pub(super) licenses: FileLicenses,
    #[serde(default)]
    pub(super) cancel: FileCancel,
    #[serde(default)]
    pub(super) http: Option<FileListen>,
    #[serde(default)]
    pub(super) guest: Option<FileGuest>,
}

fn default_interval() -> u64 {
    60
}
fn default_concurrency() -> usize {
    8
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApi {
    pub(super) grpc_url: String,
    pub(super) token: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub(super) timeout_secs: u64,
    /// With an `https://` URL: the CA that signed the service's certificate.
    pub(super) ca_file: Option<PathBuf>,
    /// The watcher's TLS client certificate, when the service knows it by one.
    pub(super) cert_file: Option<PathBuf>,
    /// That certificate's private key.
    pub(super) key_file: Option<PathBuf>,
}

fn default_timeout() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePlatform {
    pub(super) kind: String,
    pub(super) url: String,
    pub(super) email: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) token: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) page_size: Option<usize>,
    pub(super) filter: Option<String>,
    pub(super) allow_http: Option<bool>,
    pub(super) busy_attempts: Option<u32>,
    pub(super) busy_backoff_ms: Option<u64>,
    pub(super) listing_attempts: Option<u32>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) limit_param: Option<String>,
    pub(super) offset_param: Option<String>,
    pub(super) total_field: Option<String>,
    pub(super) tags_field: Option<String>,
    pub(super) dci_ip_field: Option<String>,
    #[serde(default)]
    pub(super) trust_empty_listing: bool,
    pub(super) address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMarkers {
    #[serde(default = "default_key")]
    pub(super) comment_key: String,
    #[serde(default = "default_key")]
    pub(super) tag_key: String,
    #[serde(default = "yes")]
    pub(super) recipe_tags: bool,
    #[serde(default)]
    pub(super) os: BTreeMap<String, String>,
}

fn default_key() -> String {
    "panel".into()
}
fn yes() -> bool {
    true
}

impl Default for FileMarkers {
    fn default() -> Self {
        Self {
            comment_key: default_key(),
            tag_key: default_key(),
            recipe_tags: true,
            os: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLicenses {
    #[serde(default = "one")]
    pub(super) period_months: i32,
    #[serde(default = "yes")]
    pub(super) auto_renew: bool,
    #[serde(default = "default_retry_failed")]
    pub(super) retry_failed_after_secs: u64,
}

fn one() -> i32 {
    1
}
fn default_retry_failed() -> u64 {
    3600
}

impl Default for FileLicenses {
    fn default() -> Self {
        Self {
            period_months: 1,
            auto_renew: true,
            retry_failed_after_secs: default_retry_failed(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCancel {
    #[serde(default = "default_absent")]
    pub(super) absent_listings: u32,
    #[serde(default = "default_grace")]
    pub(super) grace_secs: u64,
    #[serde(default = "default_share")]
    pub(super) max_share: f64,
    #[serde(default = "default_min_allowed")]
    pub(super) min_allowed: usize,
    /// `cancel` or `park`.
    #[serde(default = "default_release")]
    pub(super) release: String,
}

fn default_absent() -> u32 {
    3
}
fn default_grace() -> u64 {
    86_400
}
fn default_share() -> f64 {
    0.1
}
fn default_min_allowed() -> usize {
    3
}
fn default_release() -> String {
    "cancel".into()
}

impl Default for FileCancel {
    fn default() -> Self {
        Self {
            absent_listings: default_absent(),
            grace_secs: default_grace(),
            max_share: default_share(),
            min_allowed: default_min_allowed(),
            release: default_release(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListen {
    pub(super) addr: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGuest {
    pub(super) addr: SocketAddr,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
}
