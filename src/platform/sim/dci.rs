//! The DCImanager 6 routes of the simulator: servers (list, read, edit).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::Shared;
use super::hosts::{not_found, parse_id, strings};
use super::server::{Answer, body_json, gate, list_query, ok, page};

fn server_json(shared: &Shared, s: &super::state::DciServer) -> Value {
    let mut server = json!({
        "id": s.id,
        "name": s.name,
        "comment": s.comment,
        "tags": s.tags,
        "state": "active",
        "os": {"name": s.os},
    });
    server[&shared.config.dci_ip_field] = json!(
        s.ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect::<Vec<_>>()
    );
    server
}

pub(super) async fn list_servers(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    gate(&shared, "GET /dci/v3/server", Some(&headers))?;
    let q = list_query(&shared, raw.as_deref())?;
    let servers: Vec<_> = shared.lock().servers.values().cloned().collect();
    let rows = servers.iter().map(|s| server_json(&shared, s)).collect();
    page(&shared, rows, &q)
}

pub(super) async fn get_server(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    gate(&shared, "GET /dci/v3/server/{id}", Some(&headers))?;
    let id = parse_id(&id)?;
    let server = shared.lock().servers.get(&id).cloned();
    let server = server.ok_or_else(|| not_found("server"))?;
    ok(server_json(&shared, &server))
}

pub(super) async fn edit_server(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    gate(&shared, "POST /dci/v3/server/{id}", Some(&headers))?;
    let id = parse_id(&id)?;
    let body = body_json(&body)?;
    let mut st = shared.lock();
    let server = st.servers.get_mut(&id).ok_or_else(|| not_found("server"))?;
    if let Some(comment) = body["comment"].as_str() {
        server.comment = comment.to_owned();
    }
    if body.get("tags").is_some() {
        server.tags = strings(&body["tags"]);
    }
    ok(json!({"id": id}))
}
