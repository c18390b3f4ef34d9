//! The HTTP side of the simulator: the VMmanager 6 and DCImanager 6 routes (each also
//! under `/api`, as on the real platform), authentication by `x-xsrf-token` header or
//! `ses6` cookie, and the injected faults.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use rand::Rng;
use serde_json::{Value, json};

use super::filter::Filter;
use super::state::TokenCheck;
use super::{Shared, dci, hosts};
use crate::protocol::parse_urlencoded;

pub(super) type Answer = Result<Response, Refusal>;

/// An answer other than success.
#[derive(Debug)]
pub(super) enum Refusal {
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
            .route(
                "/vm/v3/host",
                get(hosts::list_hosts).post(hosts::create_host),
            )
            .route(
                "/vm/v3/host/{id}",
                post(hosts::edit_host).delete(hosts::delete_host),
            )
            .route(
                "/vm/v3/host/{id}/ipv4",
                get(hosts::list_host_ips).post(hosts::add_host_ip),
            )
            .route("/vm/v3/host/{id}/stop", post(hosts::stop_host))
            .route("/vm/v3/host/{id}/start", post(hosts::start_host))
            .route("/vm/v3/ip/{id}", delete(hosts::remove_ip))
            .route("/vm/v3/task", get(hosts::list_tasks))
            .route("/dci/v3/server", get(dci::list_servers))
            .route(
                "/dci/v3/server/{id}",
                get(dci::get_server).post(dci::edit_server),
            )
    };
    Router::new()
        .merge(routes())
        .nest("/api", routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, 404, "no such function") })
        .with_state(shared)
}

/// An error answer: `{"error": {"code": …, "msg": …}}` (the shape is inferred).
pub(super) fn error(status: StatusCode, code: u32, msg: &str) -> Refusal {
    Refusal::Error {
        status,
        code,
        msg: msg.to_owned(),
    }
}

pub(super) fn ok(value: Value) -> Answer {
    Ok(axum::Json(value).into_response())
}

/// Counts the call and applies the busy fault; for every route but the log-in, also
/// checks the session.
pub(super) fn gate(
    shared: &Shared,
    label: &str,
    headers: Option<&HeaderMap>,
) -> Result<(), Refusal> {
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

pub(super) fn body_json(body: &Bytes) -> Result<Value, Refusal> {
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
pub(super) struct ListQuery {
    filter: Option<Filter>,
    limit: Option<usize>,
    offset: usize,
}

pub(super) fn list_query(shared: &Shared, raw: Option<&str>) -> Result<ListQuery, Refusal> {
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
pub(super) fn page(shared: &Shared, rows: Vec<Value>, q: &ListQuery) -> Answer {
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
