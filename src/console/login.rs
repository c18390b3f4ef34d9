//! Logging in and out of the console. The log-in checks an API token as the API does,
//! behind a back-off per client address (`backoff`); the log-out revokes the session
//! for every replica before it clears the cookie (`session`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use super::error::PageError;
use super::session::{
    LOGIN_COOKIE, LOGIN_FORM_TTL_SECS, Posted, SESSION_COOKIE, cookie, secure, set_cookie,
};
use super::views::{Login, render};
use super::{BASE, ConsoleState};
use crate::auth::Scope;
use crate::service::ErrorKind;

/// `GET /console/login`: the form, with a fresh nonce cookie for its CSRF token.
pub async fn login_page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    login_form(&state, &headers, StatusCode::OK, None)
}

fn login_form(
    state: &ConsoleState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let page = Login {
        csrf: state.keys.token("login", &nonce),
        error: error.unwrap_or_default().to_owned(),
    };
    let mut response = (status, render(&page)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            &nonce,
            LOGIN_FORM_TTL_SECS,
            secure(state, headers),
        ),
    );
    response
}

/// The log-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/login`: checks the token like the API does (and the client's
/// rate, and that it may at least read); sets the session cookie. An address that
/// sent too many wrong tokens is refused unchecked until its wait is over.
pub async fn log_in(
    State(state): State<ConsoleState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let csrf_ok = cookie(&headers, LOGIN_COOKIE)
        .is_some_and(|nonce| state.keys.check_token("login", nonce, &form.csrf));
    if !csrf_ok {
        tracing::info!("console log-in refused: CSRF token");
        return PageError::csrf().into_response();
    }
    let from: Option<IpAddr> = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    if let Some(wait) = state.login_backoff.wait(from, Instant::now()) {
        tracing::info!(remote = ?from, "console log-in refused unchecked: backing off");
        return backing_off(&state, &headers, wait);
    }
    let authorization = format!("Bearer {}", form.token.trim());
    let principal = match state
        .auth
        .check(Some(authorization.as_bytes()), None, Scope::Read)
    {
        Ok(principal) => principal,
        Err(e) => {
            let e = crate::edge::auth_refusal(e);
            tracing::info!(code = e.code(), "console log-in refused");
            let (status, message) = match e.kind() {
                ErrorKind::PermissionDenied => (
                    StatusCode::FORBIDDEN,
                    "This client may not read licenses, so it cannot use the console.",
                ),
                ErrorKind::ResourceExhausted => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests from this client; wait a moment and try again.",
                ),
                _ => {
                    state.login_backoff.failed(from, Instant::now());
                    (StatusCode::UNAUTHORIZED, "That token is not valid.")
                }
            };
            return login_form(&state, &headers, status, Some(message));
        }
    };
    state.login_backoff.succeeded(from);
    let ttl = i64::try_from(state.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let expires = OffsetDateTime::now_utc().unix_timestamp() + ttl;
    let value = state.keys.issue(&principal.client, expires);
    tracing::info!(client = %principal.client, "console log-in");
    let secure = secure(&state, &headers);
    let mut response = Redirect::to(&format!("{BASE}/")).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &value, ttl, secure),
    );
    h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0, secure));
    response
}

/// 429 with the form again, saying how long to wait (and `Retry-After`).
fn backing_off(state: &ConsoleState, headers: &HeaderMap, wait: Duration) -> Response {
    // Whole seconds, rounded up: "0 seconds" would invite an attempt that is refused.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let message = format!(
        "Too many wrong tokens were sent from your address. Wait {secs} second{} before \
         trying again; until then no token is checked, not even the right one.",
        if secs == 1 { "" } else { "s" }
    );
    let mut response = login_form(
        state,
        headers,
        StatusCode::TOO_MANY_REQUESTS,
        Some(&message),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// `POST /console/logout`: ends the session for every replica, then clears the
/// cookie. When the revocation cannot be stored the log-out fails visibly: the
/// cookie alone would leave the session usable by whoever kept a copy.
pub async fn log_out(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    posted: Posted<serde::de::IgnoredAny>,
) -> Result<Response, PageError> {
    posted.session.revoke(&state).await?;
    tracing::info!(client = %posted.session.principal.client, "console log-out");
    let mut response = Redirect::to(&format!("{BASE}/login")).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, secure(&state, &headers)),
    );
    Ok(response)
}
