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
use super::funcs::{self, Params};
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
        filter.filter(|_| !shared.config.saved_filter_silent),
    );
    let body = render(&doc, format, shared.config.json_single_elem_as_array);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Parameters never echoed in `tparams`.
const SECRET_PARAMS: [&str; 4] = ["authinfo", "password", "auth", "key"];

/// What every recorded answer carries besides its content: attributes on `doc`, a
/// `tparams` echo of the request without secrets, and the account's `saved_filters`.
fn decorate(doc: &mut Doc, params: &Params, filter: Option<SavedFilter>) {
    let func = params.get("func").unwrap_or_default();
    let lang = params.get("lang").unwrap_or("en");
    for (name, value) in [
        ("lang", lang),
        ("func", func),
        ("binary", "/billmgr"),
        ("host", "https://sandbox.invalid"),
        ("themename", "orion"),
        ("theme", "orion"),
        ("stylesheet", func),
        ("features", "a0c6f79b4a7c43dbcd05f09e8e1800e7"),
        ("notify", ""),
        ("branddir", "https://sandbox.invalid/manimg/orion/"),
    ] {
        doc.root.attrs.push((name.to_owned(), value.to_owned()));
    }
    let mut tparams = Node::new("tparams");
    for (name, value) in &params.0 {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if plain && !SECRET_PARAMS.contains(&name.as_str()) {
            tparams.add_field(name, value);
        }
    }
    let mut saved = Node::new("saved_filters");
    if let Some(filter) = filter {
        let (name, text) = match filter {
            SavedFilter::ActiveOnly => ("active", "Status: Active"),
            SavedFilter::HideAll => ("none", "Nothing"),
        };
        saved = saved.with_child(Node::text("filter", text).with_attr("name", name));
    }
    doc.root.children.push(tparams);
    doc.root.children.push(saved);
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte).
pub(crate) fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::parse_urlencoded;

    #[test]
    fn decodes_plus_percent_and_bare_keys() {
        let got = parse_urlencoded("func=soft.edit&licname=a+b%3Bc&sok&bad=%zz&x=%4");
        let want = [
            ("func", "soft.edit"),
            ("licname", "a b;c"),
            ("sok", ""),
            ("bad", "%zz"),
            ("x", "%4"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
