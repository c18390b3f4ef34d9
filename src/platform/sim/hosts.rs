//! The VMmanager 6 routes of the simulator: hosts, their addresses, tasks.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::server::{Answer, Refusal, body_json, error, gate, list_query, ok, page};
use super::state::{NewHost, SimHost};

fn host_json(shared: &Shared, h: &SimHost) -> Value {
    let os_name = shared
        .config
        .os_templates
        .iter()
        .find(|t| t.id == h.os)
        .map_or_else(String::new, |t| t.name.clone());
    let mut host = json!({
        "id": h.id,
        "name": h.name,
        "comment": h.comment,
        "domain": h.domain,
        "state": h.state.as_str(),
        "ip4": h.ips.iter().map(|a| json!({"id": a.id, "ip": a.ip.to_string()})).collect::<Vec<_>>(),
        "os": {"id": h.os, "name": os_name},
        "node": {"id": 1, "name": "node-1"},
        "cluster": {"id": 1, "name": "cluster-1"},
        "account": {"id": 3, "email": "customer@example.com"},
    });
    if shared.config.host_tags {
        host["tags"] = json!(h.tags);
    }
    host
}

pub(super) async fn list_hosts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    gate(&shared, "GET /vm/v3/host", Some(&headers))?;
    let q = list_query(&shared, raw.as_deref())?;
    let hosts: Vec<SimHost> = shared.lock().hosts.values().cloned().collect();
    let rows = hosts.iter().map(|h| host_json(&shared, h)).collect();
    page(&shared, rows, &q)
}

pub(super) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) async fn create_host(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    gate(&shared, "POST /vm/v3/host", Some(&headers))?;
    let body = body_json(&body)?;
    let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
        return Err(error(StatusCode::BAD_REQUEST, 400, "name is required"));
    };
    let os = body["os"].as_u64().unwrap_or(1);
    if !shared.config.os_templates.iter().any(|t| t.id == os) {
        return Err(error(StatusCode::BAD_REQUEST, 400, "unknown os"));
    }
    let new = NewHost {
        name: name.to_owned(),
        comment: body["comment"].as_str().unwrap_or_default().to_owned(),
        domain: body["domain"].as_str().unwrap_or_default().to_owned(),
        os,
        ipv4_number: body["ipv4_number"].as_u64().map_or(1, |n| n as usize),
        tags: strings(&body["tags"]),
    };
    let (id, task) = shared.lock().create_host(new, shared.config.task_duration);
    ok(json!({"id": id, "task": task}))
}

pub(super) fn parse_id(id: &str) -> Result<u64, Refusal> {
    id.parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, 400, "invalid id"))
}

pub(super) fn not_found(what: &str) -> Refusal {
    error(StatusCode::NOT_FOUND, 404, &format!("{what} not found"))
}

pub(super) async fn edit_host(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    gate(&shared, "POST /vm/v3/host/{id}", Some(&headers))?;
    let id = parse_id(&id)?;
    let body = body_json(&body)?;
    let mut st = shared.lock();
    let host = st.hosts.get_mut(&id).ok_or_else(|| not_found("host"))?;
    if let Some(name) = body["name"].as_str() {
        host.name = name.to_owned();
    }
    if let Some(comment) = body["comment"].as_str() {
        host.comment = comment.to_owned();
    }
    if body.get("tags").is_some() {
        host.tags = strings(&body["tags"]);
    }
    ok(json!({"id": id}))
}

pub(super) async fn delete_host(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    gate(&shared, "DELETE /vm/v3/host/{id}", Some(&headers))?;
    let id = parse_id(&id)?;
    let task = shared
        .lock()
        .delete_host(id, shared.config.task_duration)
        .ok_or_else(|| not_found("host"))?;
    ok(json!({"id": id, "task": task}))
}

/// `POST /vm/v3/host/{id}/stop` (inferred: the state `stopped` is seen in clients).
pub(super) async fn stop_host(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    power(&shared, &headers, &id, false)
}

/// `POST /vm/v3/host/{id}/start`.
pub(super) async fn start_host(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    power(&shared, &headers, &id, true)
}

fn power(shared: &Shared, headers: &HeaderMap, id: &str, running: bool) -> Answer {
    let label = if running {
        "POST /vm/v3/host/{id}/start"
    } else {
        "POST /vm/v3/host/{id}/stop"
    };
    gate(shared, label, Some(headers))?;
    let id = parse_id(id)?;
    let task = shared
        .lock()
        .power(id, running, shared.config.task_duration)
        .ok_or_else(|| error(StatusCode::CONFLICT, 409, "no such host, or it is busy"))?;
    ok(json!({"id": id, "task": task}))
}

pub(super) async fn list_host_ips(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    gate(&shared, "GET /vm/v3/host/{id}/ipv4", Some(&headers))?;
    let id = parse_id(&id)?;
    let st = shared.lock();
    let host = st.hosts.get(&id).ok_or_else(|| not_found("host"))?;
    let list: Vec<Value> = host
        .ips
        .iter()
        .map(|a| json!({"id": a.id, "ip": a.ip.to_string(), "host": id}))
        .collect();
    let mut answer = json!({"list": list});
    answer[&shared.config.paging.total_field] = json!(host.ips.len());
    ok(answer)
}

pub(super) async fn add_host_ip(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    gate(&shared, "POST /vm/v3/host/{id}/ipv4", Some(&headers))?;
    let id = parse_id(&id)?;
    let body = body_json(&body)?;
    let ip = match body["ip"].as_str() {
        Some(text) => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| error(StatusCode::BAD_REQUEST, 400, "invalid ip"))?,
        ),
        None => None,
    };
    let added = shared.lock().add_ip(id, ip, shared.config.task_duration);
    match added {
        Ok((ip, task)) => ok(json!({"id": ip.id, "ip": ip.ip.to_string(), "task": task})),
        Err("host not found") => Err(not_found("host")),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, 400, e)),
    }
}

pub(super) async fn remove_ip(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    gate(&shared, "DELETE /vm/v3/ip/{id}", Some(&headers))?;
    let id = parse_id(&id)?;
    let task = shared
        .lock()
        .remove_ip(id, shared.config.task_duration)
        .ok_or_else(|| not_found("ip"))?;
    ok(json!({"task": task}))
}

pub(super) async fn list_tasks(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    gate(&shared, "GET /vm/v3/task", Some(&headers))?;
    let q = list_query(&shared, raw.as_deref())?;
    let rows = shared.lock().tasks_json();
    page(&shared, rows, &q)
}
