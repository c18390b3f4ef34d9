//! The HTTP side: routes, parameter decoding, latency and faults, authentication, and
//! rendering the answer in the requested format (errors too, always with HTTP 200).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::config::SavedFilter;
use super::conn::ConnInfo;
use super::doc::{ApiError, Doc, Node};
use super::faults::{self, FaultKind};
use super::funcs;
use crate::protocol::{Params, decorate, parse_urlencoded};

/// The host the sandbox names in its answers.
const SANDBOX_HOST: &str = "https://sandbox.invalid";
use super::state::{self, Shared};
use crate::protocol::{Format, render};

/// Both paths BILLmanager is reached under; anything else is a plain 404.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/billmgr", get(handle).post(handle))
        .route("/manager/billmgr", get(handle).post(handle))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    method: Method,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // Clients may POST the form and still put some parameters in the query.
    let mut pairs = parse_urlencoded(query.as_deref().unwrap_or_default());
    if method == Method::POST {
        pairs.extend(parse_urlencoded(&String::from_utf8_lossy(&body)));
    }
    let params = Params(pairs);
    let func = params.get("func").unwrap_or_default().to_owned();
    let format = Format::from_out(params.get("out"));
    // Never log the parameters themselves: they carry authinfo and passwords.
    tracing::debug!(func = %func, out = ?format, remote = %conn.remote, "sandbox request");

    let fault = {
        let mut st = shared.lock();
        st.count_call(&func);
        if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            st.note_traceparent(&func, traceparent);
        }
        faults::pick(&st.faults, &func)
    };
    let cfg = &shared.config;
    if !cfg.latency.is_zero() {
        tokio::time::sleep(cfg.latency).await;
    }
    match fault {
        Some(FaultKind::Error5xx) => return faults::bad_gateway(),
        Some(FaultKind::Malformed) => return faults::malformed(format),
        Some(FaultKind::Timeout) => {
            // Ends early at shutdown so that the graceful drain is not held up.
            tokio::select! {
                () = tokio::time::sleep(cfg.timeout_hang) => {}
                () = shared.shutdown.cancelled() => {}
            }
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(FaultKind::DocError) => {
            let err = ApiError::new("api_error", &func, "Internal error, try again later");
            return respond(&shared, &params, format, Err(err));
        }
        Some(FaultKind::Delay(held)) => {
            // Like the timeout's hang, ends early at shutdown.
            tokio::select! {
                () = tokio::time::sleep(held) => {}
                () = shared.shutdown.cancelled() => {}
            }
        }
        Some(FaultKind::DropAfterCommit) | None => {}
    }

    let result = {
        let mut st = shared.lock();
        let result = authenticate(&shared, &mut st, &func, &params).and_then(|login| match login {
            Some(doc) => Ok(doc),
            None => funcs::dispatch(cfg, &mut st, &func, &params),
        });
        if result.is_ok() && params.sok() {
            st.count_carried_out(&func);
        }
        result
    };
    let response = respond(&shared, &params, format, result);
    if fault == Some(FaultKind::DropAfterCommit) {
        tracing::debug!(func = %func, "sandbox fault: dropping the connection after commit");
        conn.kill();
    }
    response
}

/// Checks the credentials. Returns the answer itself for `func=auth`, `None` when the
/// request may go on to its function.
fn authenticate(
    shared: &Shared,
    st: &mut state::State,
    func: &str,
    p: &Params,
) -> Result<Option<Doc>, ApiError> {
    let cfg = &shared.config;
    let valid = |user: &str, password: &str| user == cfg.user && password == cfg.password;
    if func == "auth" {
        let (user, password) = (p.get("username"), p.get("password"));
        return match (user, password) {
            (Some(u), Some(pw)) if valid(u, pw) => {
                let sid = st.open_session();
                let auth = Node::text("auth", &sid)
                    .with_attr("id", &sid)
                    .with_attr("level", 16);
                Ok(Some(Doc::form(vec![auth])))
            }
            _ => Err(ApiError::auth()),
        };
    }
    if let Some(authinfo) = p.get("authinfo") {
        let (user, password) = authinfo.split_once(':').unwrap_or((authinfo, ""));
        return if valid(user, password) {
            Ok(None)
        } else {
            Err(ApiError::auth())
        };
    }
    let ttl = time::Duration::try_from(cfg.session_ttl).unwrap_or(time::Duration::MAX);
    match p.get("auth") {
        Some(sid) if st.touch_session(sid, ttl) => Ok(None),
        _ => Err(ApiError::auth()),
    }
}

fn respond(
    shared: &Shared,
    params: &Params,
    format: Format,
    result: Result<Doc, ApiError>,
) -> Response {
    let func = params.get("func").unwrap_or_default();
    let mut doc = result.unwrap_or_else(|e| {
        tracing::debug!(func = %func, error.type = %e.kind, error.object = %e.object, "sandbox error answer");
        e.to_doc(func)
    });
    let filter = shared.lock().saved_filter;
    decorate(
        &mut doc,
        params,
        SANDBOX_HOST,
        saved_filters(filter.filter(|_| !shared.config.saved_filter_silent)),
    );
    let body = render(&doc, format, shared.config.json_single_elem_as_array);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The account's `saved_filters`: the configured filter, unless it is silent.
fn saved_filters(filter: Option<SavedFilter>) -> Node {
    let mut saved = Node::new("saved_filters");
    if let Some(filter) = filter {
        let (name, text) = match filter {
            SavedFilter::ActiveOnly => ("active", "Status: Active"),
            SavedFilter::HideAll => ("none", "Nothing"),
        };
        saved = saved.with_child(Node::text("filter", text).with_attr("name", name));
    }
    saved
}
