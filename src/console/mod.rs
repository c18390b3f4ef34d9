//! The web console at `/console`: server-rendered pages over the same application
//! core as the REST and gRPC transports. A console session is an API client's
//! principal (logged in with its token), so a person sees and does exactly what the
//! client's scopes allow on the API; every page handler calls the same
//! [`LicenseService`] methods the REST handlers call and renders the result.
//!
//! Pages work without JavaScript and without network access (the stylesheet is
//! served from here), and carry a Content-Security-Policy that allows no script.

mod actions;
mod admin;
mod backoff;
mod costs;
mod error;
mod license;
mod login;
mod pages;
mod pool;
mod session;
mod views;
mod watchers;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::Authenticator;
use crate::health::Readiness;
use crate::service::LicenseService;

pub use backoff::{FREE_FAILURES as LOGIN_FREE_FAILURES, MAX_BACKOFF as LOGIN_MAX_BACKOFF};
pub use session::{CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE};
pub use watchers::WatcherLink;

/// Settings of the console (`[console]` in the configuration file).
pub struct ConsoleConfig {
    /// Mark cookies `Secure` whatever the request says about TLS.
    pub secure_cookies: bool,
    /// How long a session lasts after log-in.
    pub session_ttl: Duration,
    /// The key that signs sessions and CSRF tokens; `None`: a random key per start.
    pub session_key: Option<secrecy::SecretBox<Vec<u8>>>,
    /// Platform watchers whose status the Servers page reads.
    pub watchers: Vec<WatcherLink>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_ttl: Duration::from_secs(8 * 3600),
            session_key: None,
            watchers: Vec::new(),
        }
    }
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("secure_cookies", &self.secure_cookies)
            .field("session_ttl", &self.session_ttl)
            .field("session_key", &self.session_key.as_ref().map(|_| "[set]"))
            .field("watchers", &self.watchers)
            .finish()
    }
}

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    service: Arc<LicenseService>,
    readiness: Arc<Readiness>,
    auth: Arc<Authenticator>,
    keys: Arc<session::Keys>,
    login_backoff: Arc<backoff::LoginBackoff>,
    watchers: Arc<watchers::Watchers>,
    secure_cookies: bool,
    session_ttl: Duration,
}

impl ConsoleState {
    /// The console over `service`, authenticating with `auth`.
    pub fn new(
        service: Arc<LicenseService>,
        readiness: Arc<Readiness>,
        auth: Arc<Authenticator>,
        config: &ConsoleConfig,
    ) -> Self {
        use secrecy::ExposeSecret;
        let keys = match &config.session_key {
            Some(key) => session::Keys::new(key.expose_secret().clone()),
            None => session::Keys::random(),
        };
        Self {
            service,
            readiness,
            auth,
            keys: Arc::new(keys),
            login_backoff: Arc::default(),
            watchers: Arc::new(watchers::Watchers::new(config.watchers.clone())),
            secure_cookies: config.secure_cookies,
            session_ttl: config.session_ttl,
        }
    }
}

/// The console's routes, relative to where they are nested (`/console`).
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login::login_page).post(login::log_in))
        .route("/logout", post(login::log_out))
        .route("/static/console.css", get(stylesheet))
        .route("/licenses", get(pages::licenses))
        .route("/licenses/{id}", get(license::license))
        .route(
            "/licenses/{id}/actions/{action}",
            get(actions::confirm).post(actions::carry_out),
        )
        .route("/drift", get(admin::drift))
        .route("/drift/reconcile", post(admin::reconcile))
        .route("/drift/{upstream_id}/adopt", post(admin::adopt))
        .route("/audit", get(admin::audit))
        .route("/costs", get(costs::costs))
        .route("/costs.csv", get(costs::costs_csv))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}/resume", post(webhooks::resume))
        .route("/webhooks/{id}/delete", post(webhooks::delete))
        .route("/servers", get(watchers::servers))
        .route("/pool", get(pool::pool))
        .fallback(error::not_found)
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// Where the pages live, for links and redirects.
pub const BASE: &str = "/console";

/// The policy of every console response: nothing but this origin's stylesheet and
/// forms; no script, no frames, no plug-ins.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console response. Pages are never cached
/// (they show licenses and keys); the stylesheet may be.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `GET /console/static/console.css`: compiled into the binary, so the console needs
/// no network and no files beside the binary.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/console.css"),
    )
        .into_response()
}
