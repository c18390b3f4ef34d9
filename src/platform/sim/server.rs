//! The HTTP side of the simulator: the VMmanager 6 and DCImanager 6 routes (each also
//! under `/api`, as on the real platform), authentication by `x-xsrf-token` header or
//! `ses6` cookie, and the injected faults.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use rand::Rng;
use serde_json::{Value, json};

use super::Shared;
use super::filter::Filter;
use super::state::{NewHost, SimHost, TokenCheck};
use crate::protocol::parse_urlencoded;

type Answer = Result<Response, Refusal>;

/// An answer other than success.
#[derive(Debug)]
enum Refusal {
    /// A JSON error with its HTTP status.
    Error {
        status: StatusCode,
        code: u32,
        msg: String,
    },
    /// 503, as a suspended platform answers.
    Busy,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            // The error body's shape is inferred: `{"error": {"code": …, "msg": …}}`.
            Refusal::Error { status, code, msg } => (
                status,
                axum::Json(json!({"error": {"code": code, "msg": msg}})),
            )
                .into_response(),
            Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "platform is starting, try again later",
            )
                .into_response(),
        }
    }
}

/// Every route, at the root and under `/api`.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    let routes = || {
        Router::new()
            .route("/auth/v4/public/token", post(login))
            .route("/auth/v4/token", post(issue_token))
            .route("/vm/v3/host", get(list_hosts).post(create_host))
            .route("/vm/v3/host/{id}", post(edit_host).delete(delete_host))
            .route(
                "/vm/v3/host/{id}/ipv4",
                get(list_host_ips).post(add_host_ip),
            )
            .route("/vm/v3/ip/{id}", delete(remove_ip))
            .route("/vm/v3/task", get(list_tasks))
            .route("/dci/v3/server", get(list_servers))
            .route("/dci/v3/server/{id}", get(get_server).post(edit_server))
    };
    Router::new()
        .merge(routes())
        .nest("/api", routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, 404, "no such function") })
        .with_state(shared)
}

/// An error answer: `{"error": {"code": …, "msg": …}}` (the shape is inferred).
fn error(status: StatusCode, code: u32, msg: &str) -> Refusal {
    Refusal::Error {
        status,
        code,
        msg: msg.to_owned(),
    }
}

fn ok(value: Value) -> Answer {
    Ok(axum::Json(value).into_response())
}

/// Counts the call and applies the busy fault; for every route but the log-in, also
/// checks the session.
fn gate(shared: &Shared, label: &str, headers: Option<&HeaderMap>) -> Result<(), Refusal> {
    let mut st = shared.lock();
    st.count(label);
    let busy = if st.faults.busy_next > 0 {
        st.faults.busy_next -= 1;
        true
    } else {
        st.faults.busy_rate > 0.0 && rand::rng().random_bool(st.faults.busy_rate.min(1.0))
    };
    if busy {
        st.count("503");
        return Err(Refusal::Busy);
    }
    st.settle();
    let Some(headers) = headers else {
        return Ok(());
    };
    let status =
        StatusCode::from_u16(shared.config.expired_status).unwrap_or(StatusCode::UNAUTHORIZED);
    match token_of(headers).map(|t| st.use_session(&t, &shared.config)) {
        Some(TokenCheck::Valid) => Ok(()),
        Some(TokenCheck::Expired) => {
            st.count("expired");
            Err(error(status, 3001, "session expired"))
        }
        _ => Err(error(status, 3000, "unauthorized")),
    }
}

/// The token from `x-xsrf-token`, else from the `ses6` cookie.
fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get("x-xsrf-token").and_then(|v| v.to_str().ok()) {
        return Some(token.to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("ses6=").map(str::to_owned))
}

fn body_json(body: &Bytes) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| error(StatusCode::BAD_REQUEST, 400, "invalid JSON"))
}

async fn login(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    gate(&shared, "POST /auth/v4/public/token", None)?;
    let body = body_json(&body)?;
    let email = body["email"].as_str().unwrap_or_default();
    let password = body["password"].as_str().unwrap_or_default();
    if email != shared.config.email || password != shared.config.password {
        return Err(error(
            StatusCode::FORBIDDEN,
            3004,
            "invalid email or password",
        ));
    }
    let token = shared.lock().open_session();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"token": token, "id": 1})),
    )
        .into_response())
}

async fn issue_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Answer {
    gate(&shared, "POST /auth/v4/token", Some(&headers))?;
    let token = shared.lock().issue_api_token();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": 1, "token": token})),
    )
        .into_response())
}

/// The query parameters of a list request.
struct ListQuery {
    filter: Option<Filter>,
    limit: Option<usize>,
    offset: usize,
}

fn list_query(shared: &Shared, raw: Option<&str>) -> Result<ListQuery, Refusal> {
    let pairs = parse_urlencoded(raw.unwrap_or_default());
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let paging = &shared.config.paging;
    let number = |name: &str| -> Result<Option<usize>, Refusal> {
        get(name)
            .map(|v| v.trim().parse::<usize>())
            .transpose()
            .map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    400,
                    &format!("{name} is not a number"),
                )
            })
    };
    let filter = get("where")
        .map(|w| Filter::parse(&w))
        .transpose()
        .map_err(|e| error(StatusCode::BAD_REQUEST, 400, &e.to_string()))?;
    Ok(ListQuery {
        filter,
        limit: number(&paging.limit_param)?,
        offset: number(&paging.offset_param)?.unwrap_or(0),
    })
}

/// One page of `rows` as `{"list": […], <total>: n}`, with the list faults applied.
fn page(shared: &Shared, rows: Vec<Value>, q: &ListQuery) -> Answer {
    let faults = {
        let mut st = shared.lock();
        if let Some((offset, times)) = st.faults.busy_page_at.as_mut()
            && *offset == q.offset
            && *times > 0
        {
            *times -= 1;
            st.count("503");
            return Err(Refusal::Busy);
        }
        st.faults.clone()
    };
    if faults.fail_page_at == Some(q.offset) {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            "internal error",
        ));
    }
    let mut rows: Vec<Value> = rows
        .into_iter()
        .filter(|row| q.filter.as_ref().is_none_or(|f| f.matches(row)))
        .collect();
    if faults.empty_list {
        rows.clear();
    }
    let total = rows.len();
    rows.truncate(total.saturating_sub(faults.cut_list));
    let size = q
        .limit
        .unwrap_or(shared.config.default_page_size)
        .clamp(1, shared.config.max_page_size);
    let list: Vec<Value> = rows.into_iter().skip(q.offset).take(size).collect();
    let mut answer = json!({"list": list});
    answer[&shared.config.paging.total_field] = json!(total);
    ok(answer)
}

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

async fn list_hosts(
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn create_host(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Answer {
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

fn parse_id(id: &str) -> Result<u64, Refusal> {
    id.parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, 400, "invalid id"))
}

fn not_found(what: &str) -> Refusal {
    error(StatusCode::NOT_FOUND, 404, &format!("{what} not found"))
}

async fn edit_host(
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

async fn delete_host(
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

async fn list_host_ips(
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

async fn add_host_ip(
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

async fn remove_ip(
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

async fn list_tasks(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    gate(&shared, "GET /vm/v3/task", Some(&headers))?;
    let q = list_query(&shared, raw.as_deref())?;
    let rows = shared.lock().tasks_json();
    page(&shared, rows, &q)
}

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

async fn list_servers(
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

async fn get_server(
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

async fn edit_server(
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
