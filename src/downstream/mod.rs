//! The downstream endpoint: the shop's own license API (BILLmanager's `/billmgr`)
//! in front of this service, so that a BILLmanager processing module, the WHMCS
//! module or a script that speaks to the shop can be pointed at the facade by URL
//! alone. A transport like `http` and `grpc`: it parses the request (query or form),
//! logs the account in, calls the service's use cases and renders the answer with the
//! shared [`protocol`](crate::protocol) — errors as `doc/error` with HTTP 200, in
//! `out=xml|json|sjson|bjson`. It never talks to the store or the upstream itself.
//!
//! Layout: `accounts` (log-ins: verification, limits), `backoff` (failed log-ins per
//! user name and network), `sessions` (`func=auth` sessions), `bounded` (the
//! fixed-capacity map both keep), `loggable` (what of a request may be logged),
//! `request` (one call's context), `error` (service errors as the shop's), `items` (a
//! license as a `soft` item), and one file per group of functions: `soft`, `order`,
//! `changes`, `catalog`.

mod accounts;
mod backoff;
mod bounded;
mod catalog;
mod changes;
mod error;
mod items;
mod loggable;
mod order;
mod request;
mod sessions;
mod soft;

pub use accounts::{MAX_PASSWORD_BYTES, VERIFIED_TTL};
pub use backoff::{FREE_FAILURES, MAX_BACKOFF};
pub use loggable::LOGGED_CHARS;
pub use request::CHANGE_WAIT;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::{AuthError, Authenticator, Principal, Scope};
use crate::domain::ClientName;
use crate::protocol::{ApiError, Doc, Format, Node, Params, decorate, parse_urlencoded, render};
use crate::service::LicenseService;

use accounts::{Accounts, Refused};
use changes::Group;
use loggable::loggable;
use request::Req;

/// Bounds of the `/billmgr` log-ins (`[downstream]` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamConfig {
    /// A session ends this long after its last request (the shop's own rule).
    pub session_idle: Duration,
    /// A session ends this long after it was opened, however busy.
    pub session_lifetime: Duration,
    /// Sessions held at once; when full, the least recently used one ends.
    pub max_sessions: usize,
    /// (user name, network) pairs the log-in back-off keeps; when full, the least
    /// recently failed one is forgotten.
    pub backoff_entries: usize,
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(3600),
            session_lifetime: Duration::from_secs(24 * 3600),
            max_sessions: 10_000,
            backoff_entries: 10_000,
        }
    }
}

/// The paths real clients use for the shop's API.
pub const PATHS: [&str; 2] = ["/billmgr", "/manager/billmgr"];

#[derive(Clone)]
struct Downstream {
    service: Arc<LicenseService>,
    auth: Arc<Authenticator>,
    accounts: Arc<Accounts>,
}

/// The endpoint at both [`PATHS`], GET and POST.
pub fn router(
    service: Arc<LicenseService>,
    auth: Arc<Authenticator>,
    config: &DownstreamConfig,
) -> Router {
    let state = Downstream {
        service,
        accounts: Arc::new(Accounts::new(auth.clone(), config)),
        auth,
    };
    let mut router = Router::new();
    for path in PATHS {
        router = router.route(path, get(handle).post(handle));
    }
    router.with_state(state)
}

async fn handle(State(st): State<Downstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    // Clients may POST the form and still put some parameters in the query.
    let mut pairs = parse_urlencoded(parts.uri.query().unwrap_or_default());
    if parts.method == Method::POST {
        let body = axum::body::to_bytes(body, crate::limits::MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        pairs.extend(parse_urlencoded(&String::from_utf8_lossy(&body)));
    }
    let params = Params(pairs);
    let func = params.get("func").unwrap_or_default().to_owned();
    let format = Format::from_out(params.get("out"));
    // Never the parameters themselves: they carry authinfo and passwords. What is
    // logged of the caller's text is cut and escaped.
    tracing::debug!(func = %loggable(&func), out = ?format, "downstream request");
    let result = answer(&st, &func, &params, remote).await;
    let mut doc = result.unwrap_or_else(|e| {
        tracing::info!(
            func = %loggable(&func),
            error.type = %loggable(&e.kind),
            error.object = %loggable(&e.object),
            "downstream refusal"
        );
        e.to_doc(&func)
    });
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    decorate(
        &mut doc,
        &params,
        &format!("http://{host}"),
        Node::new("saved_filters"),
    );
    let body = render(&doc, format, false);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn answer(
    st: &Downstream,
    func: &str,
    params: &Params,
    remote: Option<std::net::IpAddr>,
) -> Result<Doc, ApiError> {
    if func == "auth" {
        let user = params.get("username").unwrap_or_default();
        let password = params.get("password").unwrap_or_default();
        let client = log_in(st, user, password, remote, None).await?;
        // A log-in is a call like any other: it counts against the client's rate limit.
        let principal = admit(st, &client)?;
        let sid = st.accounts.open_session(principal.client);
        let auth = Node::text("auth", &sid)
            .with_attr("id", &sid)
            .with_attr("level", 16);
        return Ok(Doc::form(vec![auth]));
    }
    let principal = principal(st, params, remote).await?;
    let r = Req {
        service: &st.service,
        principal,
        params,
    };
    let writes = params.sok() || !matches!(func, "soft" | "soft.edit" | "service.prolong");
    let scope = match func {
        "soft.checkip" | "pricelist.export" => Scope::Read,
        _ if writes => Scope::Write,
        _ => Scope::Read,
    };
    r.principal
        .require(scope)
        .map_err(|e| r.fail(&crate::edge::auth_refusal(e)))?;
    match func {
        "soft" => soft::list(&r).await,
        "soft.edit" => soft::edit(&r).await,
        "soft.order.param" => order::order(&r).await,
        "soft.checkip" => order::checkip(&r).await,
        "service.prolong" => changes::prolong(&r).await,
        "soft.suspend" => changes::group(&r, Group::Suspend).await,
        "soft.resume" => changes::group(&r, Group::Resume).await,
        "soft.delete" => changes::group(&r, Group::Delete).await,
        "pricelist.export" => catalog::export(&r).await,
        other => Err(ApiError::unknown_func(other)),
    }
}

/// The caller: `authinfo=user:password`, else `auth=SID` of a live session; then the
/// client's rate limit. Scopes and limits are the client's, as on the other APIs.
async fn principal(
    st: &Downstream,
    params: &Params,
    remote: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    let client = if let Some(authinfo) = params.get("authinfo") {
        let (user, password) = authinfo.split_once(':').unwrap_or((authinfo, ""));
        log_in(st, user, password, remote, Some("authinfo")).await?
    } else {
        params
            .get("auth")
            .and_then(|sid| st.accounts.session(sid))
            .ok_or_else(ApiError::auth)?
    };
    admit(st, &client)
}

/// The client of `user:password`; `carrier` is the parameter that carried both
/// (`authinfo`), if one did, for the refusal of a user name or password longer than
/// any account has (else the refusal names `username` or `password`).
async fn log_in(
    st: &Downstream,
    user: &str,
    password: &str,
    remote: Option<std::net::IpAddr>,
    carrier: Option<&str>,
) -> Result<ClientName, ApiError> {
    st.accounts
        .log_in(user, password, remote)
        .await
        .map_err(|refused| match refused {
            Refused::BadCredentials | Refused::BackingOff => ApiError::auth(),
            // The value is never echoed: it is the oversized text itself.
            Refused::TooLong(what) => ApiError::value(
                carrier.unwrap_or(what),
                "",
                format!("The {what} is too long"),
            ),
        })
}

/// The principal of `client`, once its rate limit admits one more call.
fn admit(st: &Downstream, client: &ClientName) -> Result<Principal, ApiError> {
    let principal = st.auth.principal_of(client).ok_or_else(ApiError::auth)?;
    tracing::Span::current().record("client", principal.client.as_str());
    st.auth.admit(&principal).map_err(|e| match e {
        AuthError::RateLimited { .. } => error::to_api_error(&crate::edge::auth_refusal(e), None),
        _ => ApiError::auth(),
    })?;
    Ok(principal)
}
