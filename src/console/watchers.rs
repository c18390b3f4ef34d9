//! The Servers page: what the platform watchers see. A watcher is an API client of
//! this service like any other (it never touches the core or the store); the
//! servers it lists and the cancellations it holds back until their grace period
//! ends live in the watcher. The console reads each configured watcher's own status
//! document (`GET /status?format=json` on its operator listener) when the page is
//! asked for, and links every license it names to the license's page here.
//!
//! What is read is the watcher's JSON; the types below take only the fields the page
//! shows and default the rest, so a newer watcher's additions do not break the page.

use std::time::Duration;

use anyhow::bail;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;

use super::ConsoleState;
use super::error::PageError;
use super::session::Session;
use super::views::{Chrome, render, state_class, when};
use crate::auth::Scope;
use crate::domain::LicenseState;

/// Time to connect to a watcher.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for a watcher's whole answer: the page waits for the slowest.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest status document read (10,000 servers come to about 2 MB).
const MAX_STATUS_BYTES: usize = 16 << 20;
/// Servers shown per watcher; the rest are on the watcher's own status page.
const SERVER_ROWS: usize = 500;

/// A watcher the console reads (`[[console.watchers]]`).
#[derive(Debug, Clone)]
pub struct WatcherLink {
    /// What the page calls it.
    pub name: String,
    base: reqwest::Url,
}

impl WatcherLink {
    /// A link to the watcher whose operator listener is at `url` (a base URL: http or
    /// https, no credentials, no query).
    pub fn new(name: &str, url: &str) -> anyhow::Result<Self> {
        let name = name.trim();
        if name.is_empty() {
            bail!("console.watchers: a watcher needs a name");
        }
        let Ok(mut base) = reqwest::Url::parse(url) else {
            bail!("console.watchers {name:?}: the url is not a URL");
        };
        if !matches!(base.scheme(), "http" | "https") {
            bail!("console.watchers {name:?}: the url must be http or https");
        }
        if !base.username().is_empty() || base.password().is_some() {
            bail!("console.watchers {name:?}: the url must not carry credentials");
        }
        if base.query().is_some() || base.fragment().is_some() {
            bail!("console.watchers {name:?}: the url must not carry a query or fragment");
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            name: name.to_owned(),
            base,
        })
    }

    /// Where its status document is read.
    pub fn status_url(&self) -> reqwest::Url {
        let mut url = self.base.join("status").expect("a relative path joins");
        url.set_query(Some("format=json"));
        url
    }

    /// Its own status page, for operators who want every server.
    fn page_url(&self) -> String {
        self.base
            .join("status")
            .expect("a relative path joins")
            .into()
    }
}

/// The configured watchers and the HTTP client that reads them.
pub struct Watchers {
    links: Vec<WatcherLink>,
    client: Result<reqwest::Client, String>,
}

impl Watchers {
    /// Reads `links`.
    pub fn new(links: Vec<WatcherLink>) -> Self {
        let https = links.iter().any(|l| l.base.scheme() == "https");
        let client = if links.is_empty() {
            Err("no watcher is configured".to_owned())
        } else {
            crate::billmanager::transport::http_client(CONNECT_TIMEOUT, READ_TIMEOUT, https)
                .map_err(|e| format!("{e:#}"))
        };
        Self { links, client }
    }

    /// Each watcher's status, or why it could not be read; all read at once.
    async fn read_all(&self) -> Vec<(&WatcherLink, Result<Status, String>)> {
        let reads = self.links.iter().map(|link| async move {
            let status = match &self.client {
                Ok(client) => read(client, link).await,
                Err(e) => Err(e.clone()),
            };
            (link, status)
        });
        futures::future::join_all(reads).await
    }
}

/// One watcher's status document, capped at [`MAX_STATUS_BYTES`].
async fn read(client: &reqwest::Client, link: &WatcherLink) -> Result<Status, String> {
    let mut response = client
        .get(link.status_url())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("not reachable: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("answered HTTP {}", response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the answer broke off: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_STATUS_BYTES {
            return Err(format!(
                "its status is larger than {} MiB",
                MAX_STATUS_BYTES >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("its status is not readable: {e}"))
}

/// The watcher's status document (its `/status?format=json`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Status {
    last_pass: Option<LastPass>,
    last_error: Option<String>,
    servers: Vec<ServerEntry>,
    pending: Vec<PendingEntry>,
    last_complete_listing: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LastPass {
    started_at: i64,
    duration_ms: u64,
    listing: Listing,
    servers_marked: usize,
    licenses_live: usize,
    ordered: usize,
    moved: usize,
    panel_changed: usize,
    cancelled: usize,
    released: usize,
    parked: usize,
    errors: usize,
    held: Vec<HeldEntry>,
    blocked: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Listing {
    complete: bool,
    reason: Option<String>,
    servers: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HeldEntry {
    server_id: String,
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ServerEntry {
    server_id: String,
    name: String,
    state: String,
    wants: String,
    license: Option<LicenseEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LicenseEntry {
    id: String,
    state: String,
    ip: String,
    panel: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PendingEntry {
    server_id: String,
    license_id: String,
    reason: String,
    listings: u32,
    listings_needed: u32,
    since: i64,
    grace_ends: i64,
    held_by_limit: bool,
}

/// The page.
#[derive(askama::Template)]
#[template(path = "console/servers.html")]
pub struct ServersPage {
    pub chrome: Chrome,
    pub watchers: Vec<WatcherView>,
}

/// One watcher's part of the page.
pub struct WatcherView {
    pub name: String,
    pub page_url: String,
    /// Why its status could not be read.
    pub unreadable: Option<String>,
    /// The last pass in one sentence.
    pub last_pass: Option<String>,
    pub last_error: Option<String>,
    pub blocked: Option<String>,
    pub last_complete_listing: Option<String>,
    pub held: Vec<(String, String)>,
    pub pending: Vec<PendingRow>,
    pub servers: Vec<ServerRowView>,
    pub servers_total: usize,
}

/// A cancellation waiting for its evidence.
pub struct PendingRow {
    pub server_id: String,
    pub license_id: String,
    pub reason: String,
    pub listings: String,
    pub since: String,
    pub grace_ends: String,
    /// `due` (grace over, listings complete), `waiting`, or `held by the share limit`.
    pub due: &'static str,
}

/// A listed server.
pub struct ServerRowView {
    pub server_id: String,
    pub name: String,
    pub state: String,
    pub wants: String,
    pub license: Option<(String, String, String)>,
    pub license_state: String,
    pub license_class: &'static str,
}

fn unix(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map_or_else(|_| t.to_string(), when)
}

fn view(link: &WatcherLink, status: Result<Status, String>, now: i64) -> WatcherView {
    let mut view = WatcherView {
        name: link.name.clone(),
        page_url: link.page_url(),
        unreadable: None,
        last_pass: None,
        last_error: None,
        blocked: None,
        last_complete_listing: None,
        held: Vec::new(),
        pending: Vec::new(),
        servers: Vec::new(),
        servers_total: 0,
    };
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            view.unreadable = Some(e);
            return view;
        }
    };
    if let Some(p) = status.last_pass {
        let listing = if p.listing.complete {
            "a complete listing".to_owned()
        } else {
            format!(
                "an incomplete listing ({})",
                p.listing.reason.as_deref().unwrap_or("no reason given")
            )
        };
        // Releases are shown only by a watcher that makes them (the park policy).
        let released = if p.released > 0 {
            format!(", released {} (parked {})", p.released, p.parked)
        } else {
            String::new()
        };
        view.last_pass = Some(format!(
            "{} ({} ms): {} servers in {listing}, {} marked, {} live licenses; \
             ordered {}, moved {}, panel changed {}, cancelled {}{released}, failed calls {}.",
            unix(p.started_at),
            p.duration_ms,
            p.listing.servers,
            p.servers_marked,
            p.licenses_live,
            p.ordered,
            p.moved,
            p.panel_changed,
            p.cancelled,
            p.errors
        ));
        view.blocked = p.blocked;
        view.held = p
            .held
            .into_iter()
            .map(|h| (h.server_id, h.reason))
            .collect();
    }
    view.last_error = status.last_error;
    view.last_complete_listing = status.last_complete_listing.map(unix);
    view.pending = status
        .pending
        .into_iter()
        .map(|p| PendingRow {
            due: if p.held_by_limit {
                "held by the share limit"
            } else if p.grace_ends <= now && p.listings >= p.listings_needed {
                "due at the next pass"
            } else {
                "waiting"
            },
            listings: format!("{} ({} needed)", p.listings, p.listings_needed),
            since: unix(p.since),
            grace_ends: unix(p.grace_ends),
            server_id: p.server_id,
            license_id: p.license_id,
            reason: p.reason,
        })
        .collect();
    view.servers_total = status.servers.len();
    view.servers = status
        .servers
        .into_iter()
        .take(SERVER_ROWS)
        .map(|s| ServerRowView {
            license_class: s
                .license
                .as_ref()
                .and_then(|l| LicenseState::parse(&l.state))
                .map_or("", state_class),
            license_state: s
                .license
                .as_ref()
                .map(|l| l.state.clone())
                .unwrap_or_default(),
            license: s.license.map(|l| (l.id, l.panel, l.ip)),
            server_id: s.server_id,
            name: s.name,
            state: s.state,
            wants: s.wants,
        })
        .collect();
    view
}

/// `GET /console/servers`: every configured watcher's servers, their licenses and the
/// cancellations waiting for their grace period. Admins only, like drift.
pub async fn servers(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, PageError> {
    session.require(Scope::Admin)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let watchers = state
        .watchers
        .read_all()
        .await
        .into_iter()
        .map(|(link, status)| view(link, status, now))
        .collect();
    Ok(render(&ServersPage {
        chrome: Chrome::of(&session, "servers"),
        watchers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> WatcherLink {
        WatcherLink::new("vm6-a", "http://10.0.0.5:9464").unwrap()
    }

    #[test]
    fn a_status_document_becomes_rows_with_the_deadline_and_whether_it_is_due() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "last_pass": {"started_at": 1_800_000_000, "duration_ms": 12,
                          "listing": {"complete": true, "servers": 2},
                          "ordered": 1, "cancelled": 1, "released": 3, "parked": 2,
                          "held": [{"server_id": "vm6-a:3", "reason": "no usable address"}],
                          "some_later_field": true},
            "servers": [{"server_id": "vm6-a:1", "name": "web1", "state": "active",
                         "wants": "ISPmanager 6 Pro on 198.51.100.1",
                         "license": {"id": "L1", "state": "ACTIVE", "ip": "198.51.100.1", "panel": "ISPmanager 6 Pro"}},
                        {"server_id": "vm6-a:2", "name": "web2", "state": "active", "wants": "nothing (unmarked)"}],
            "pending": [{"server_id": "vm6-a:9", "license_id": "L9", "reason": "gone",
                         "listings": 3, "listings_needed": 3, "since": 1_799_990_000,
                         "grace_ends": 1_799_999_000, "held_by_limit": false},
                        {"server_id": "vm6-a:8", "license_id": "L8", "reason": "unmarked",
                         "listings": 1, "listings_needed": 3, "since": 1_799_999_990,
                         "grace_ends": 1_800_003_590, "held_by_limit": false}],
            "last_complete_listing": 1_800_000_000
        }))
        .unwrap();

        let view = view(&link(), Ok(status), 1_800_000_000);

        assert!(view.unreadable.is_none());
        let last_pass = view.last_pass.as_deref().unwrap();
        assert!(last_pass.contains("ordered 1"), "{last_pass}");
        assert!(
            last_pass.contains("cancelled 1, released 3 (parked 2)"),
            "{last_pass}"
        );
        assert_eq!(
            view.held,
            [("vm6-a:3".to_owned(), "no usable address".to_owned())]
        );
        assert_eq!(view.pending[0].due, "due at the next pass");
        assert_eq!(view.pending[1].due, "waiting");
        assert_eq!(view.pending[1].listings, "1 (3 needed)");
        assert_eq!(view.pending[1].grace_ends, "2027-01-15 08:59 UTC");
        assert_eq!(view.servers.len(), 2);
        assert_eq!(view.servers[0].license_state, "ACTIVE");
        assert_eq!(view.servers[0].license_class, "ok");
        assert!(view.servers[1].license.is_none());
        assert_eq!(view.page_url, "http://10.0.0.5:9464/status");
    }

    #[test]
    fn an_unreadable_watcher_says_why() {
        let view = view(&link(), Err("not reachable: connection refused".into()), 0);
        assert_eq!(
            view.unreadable.as_deref(),
            Some("not reachable: connection refused")
        );
        assert!(view.servers.is_empty() && view.pending.is_empty());
    }
}
