//! The watcher's two small listeners.
//!
//! - Operators (`http.addr`): `GET /metrics` (Prometheus), `GET /status` (HTML, or
//!   JSON with `?format=json` or `Accept: application/json`), `GET /healthz`.
//! - Guests (`guest.addr`): `GET /guest/license` only. A server's installer asks it
//!   whether the license of the address it calls from is active. The guest holds no
//!   credential: the answer is about the caller's own address (as seen on the
//!   connection, or in `X-Forwarded-For` when the connection comes from a trusted
//!   proxy), and says only the state and panel of that one license.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Watcher;
use super::status::Snapshot;

/// The operator routes.
pub fn operator_router(watcher: Arc<Watcher>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(watcher)
}

/// The guest route.
pub fn guest_router(watcher: Arc<Watcher>) -> Router {
    Router::new()
        .route("/guest/license", get(guest_license))
        .with_state(watcher)
}

async fn metrics(State(w): State<Arc<Watcher>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        w.board.metrics(),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct StatusQuery {
    format: Option<String>,
}

async fn status(
    State(w): State<Arc<Watcher>>,
    Query(q): Query<StatusQuery>,
    headers: HeaderMap,
) -> Response {
    let snapshot = w.board.snapshot();
    let wants_json = q.format.as_deref() == Some("json")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        axum::Json(snapshot).into_response()
    } else {
        Html(status_page(&w.config.server_prefix(), &snapshot)).into_response()
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The status page: the last pass, pending cancellations with their deadlines, and
/// every listed server with its license.
fn status_page(prefix: &str, s: &Snapshot) -> String {
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>license-facade watcher \
         {p}</title></head><body><h1>Watcher {p}</h1>",
        p = esc(prefix)
    );
    if let Some(error) = &s.last_error {
        page += &format!(
            "<p><strong>The last pass failed:</strong> {}</p>",
            esc(error)
        );
    }
    match &s.last_pass {
        None => page += "<p>No pass yet.</p>",
        Some(r) => {
            page += &format!(
                "<p>Last pass at {} ({} ms): {} servers listed ({}), {} marked, {} live licenses; \
                 ordered {}, moved {}, panel changed {}, cancelled {}, released {} (parked {}), \
                 errors {}.</p>",
                esc(&when(r.started_at)),
                r.duration_ms,
                r.listing.servers,
                if r.listing.complete {
                    "complete listing".to_owned()
                } else {
                    format!(
                        "incomplete: {}",
                        esc(r.listing.reason.as_deref().unwrap_or(""))
                    )
                },
                r.servers_marked,
                r.licenses_live,
                r.ordered,
                r.moved,
                r.panel_changed,
                r.cancelled,
                r.released,
                r.parked,
                r.errors
            );
            if let Some(blocked) = &r.blocked {
                page += &format!(
                    "<p><strong>Cancellations stopped:</strong> {}</p>",
                    esc(blocked)
                );
            }
            if !r.held.is_empty() {
                page += "<h2>Left alone</h2><ul>";
                for h in &r.held {
                    page += &format!("<li>{}: {}</li>", esc(&h.server_id), esc(&h.reason));
                }
                page += "</ul>";
            }
        }
    }
    if let Some(t) = s.last_complete_listing {
        page += &format!("<p>Last complete listing: {}</p>", esc(&when(t)));
    }
    page += "<h2>Pending cancellations</h2><table><tr><th>server</th><th>license</th>\
             <th>reason</th><th>listings</th><th>absent since</th><th>grace ends</th></tr>";
    for p in &s.pending {
        page += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}{}</td></tr>",
            esc(&p.server_id),
            esc(&p.license_id),
            p.reason,
            p.listings,
            p.listings_needed,
            esc(&when(p.since)),
            esc(&when(p.grace_ends)),
            if p.held_by_limit {
                " (held by the share limit)"
            } else {
                ""
            }
        );
    }
    page += "</table><h2>Servers</h2><table><tr><th>server</th><th>name</th><th>state</th>\
             <th>wants</th><th>license</th></tr>";
    for row in &s.servers {
        let license = row.license.as_ref().map_or_else(
            || "none".to_owned(),
            |l| format!("{} {} on {} ({})", l.state, l.panel, l.ip, l.id),
        );
        page += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.server_id),
            esc(&row.name),
            esc(&row.state),
            esc(&row.wants),
            esc(&license)
        );
    }
    page + "</table></body></html>"
}

/// The caller's address: the connection's peer, or, when the peer is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not a trusted proxy.
fn caller(peer: IpAddr, headers: &HeaderMap, trusted: &[(IpAddr, u8)]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|(net, bits)| in_block(ip, *net, *bits));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

async fn guest_license(
    State(w): State<Arc<Watcher>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let trusted = w
        .config
        .guest
        .as_ref()
        .map(|g| g.trusted_proxies.as_slice())
        .unwrap_or_default();
    let ip = match caller(peer.ip(), &headers, trusted) {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(ip) => ip,
            None => return unknown(None),
        },
    };
    let Some(server_id) = w.board.server_at(ip) else {
        return unknown(Some(ip));
    };
    match w.api.server_license(&server_id).await {
        Ok(Some(l)) if l.ip == ip.to_string() => {
            axum::Json(json!({"ip": ip.to_string(), "state": l.state, "panel": l.panel}))
                .into_response()
        }
        Ok(_) => axum::Json(json!({"ip": ip.to_string(), "state": "NONE"})).into_response(),
        Err(e) => {
            tracing::warn!(error.message = %e, "guest status: license-facade did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"state": "UNAVAILABLE"})),
            )
                .into_response()
        }
    }
}

fn unknown(ip: Option<Ipv4Addr>) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"ip": ip.map(|i| i.to_string()), "state": "UNKNOWN"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_caller_is_the_peer_unless_a_trusted_proxy_forwards() {
        let trusted = [(ip("10.0.0.0"), 8)];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7, 10.0.0.9".parse().unwrap(),
        );
        // An untrusted peer cannot claim another address.
        assert_eq!(
            caller(ip("203.0.113.50"), &headers, &trusted),
            ip("203.0.113.50")
        );
        // A trusted proxy's forwarding is followed back to the first untrusted hop.
        assert_eq!(
            caller(ip("10.1.2.3"), &headers, &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            caller(ip("10.1.2.3"), &HeaderMap::new(), &trusted),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_status_page_escapes_what_the_platform_wrote() {
        let snapshot = Snapshot {
            servers: vec![super::super::status::ServerRow {
                server_id: "vm6-a:1".into(),
                name: "<script>alert(1)</script>".into(),
                state: "active".into(),
                wants: "nothing (unmarked)".into(),
                license: None,
            }],
            ..Snapshot::default()
        };
        let page = status_page("vm6-a:", &snapshot);
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
