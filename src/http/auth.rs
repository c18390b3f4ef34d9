//! Authentication of the `/v1` routes: a middleware that checks the bearer token (or
//! the connection's TLS client certificate), the client's rate and the scope the route
//! needs, and hands the [`Principal`] to the handlers (the [`Caller`] extractor). Also
//! the problem+json answer to an oversized body.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::auth::{Authenticator, PeerCertificate, Principal, Scope};

/// The scope a REST call needs: drift, reconciliation, adoption, resolution and the
/// audit log are for admins; reads need `licenses.read`; everything else
/// `licenses.write`.
fn scope_of(method: &Method, path: &str) -> Scope {
    let admin = ["/v1/drift", "/v1/reconcile", "/v1/audit", "/v1/pool"]
        .iter()
        .any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        || path
            .strip_prefix("/v1/licenses/")
            .and_then(|rest| rest.strip_suffix("/resolve"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    if admin {
        Scope::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// The middleware: 401 without a valid token, 429 over the client's rate, 403 without
/// the scope; otherwise the request goes on with its [`Principal`] and without its
/// `Authorization` header, so nothing downstream can log the token.
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let scope = scope_of(request.method(), request.uri().path());
    let authorization = request.headers_mut().remove(header::AUTHORIZATION);
    // The connection's verified TLS client certificate, when the listener asked for one.
    let peer = request.extensions().get::<Arc<PeerCertificate>>().cloned();
    match auth.check(
        authorization.as_ref().map(|v| v.as_bytes()),
        peer.as_deref(),
        scope,
    ) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => {
            let e = crate::edge::auth_refusal(e);
            tracing::info!(code = e.code(), path = request.uri().path(), "call refused");
            ApiError::from(e).into_response()
        }
    }
}

/// The authenticated caller of a `/v1` route.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Self)
            .ok_or_else(|| ApiError::from(crate::service::ServiceError::Unauthenticated))
    }
}

/// Turns the body-limit layer's bare 413 into problem+json like every other error.
pub async fn oversized_as_problem(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return ApiError::request(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!(
                "the request body is larger than {} bytes",
                super::MAX_BODY_BYTES
            ),
        )
        .into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_routes_reads_and_writes_need_their_scopes() {
        assert_eq!(scope_of(&Method::GET, "/v1/licenses"), Scope::Read);
        assert_eq!(scope_of(&Method::GET, "/v1/events"), Scope::Read);
        assert_eq!(scope_of(&Method::POST, "/v1/licenses"), Scope::Write);
        assert_eq!(
            scope_of(&Method::PUT, "/v1/servers/s1/license"),
            Scope::Write
        );
        assert_eq!(scope_of(&Method::GET, "/v1/drift"), Scope::Admin);
        assert_eq!(scope_of(&Method::POST, "/v1/drift/7/adopt"), Scope::Admin);
        assert_eq!(
            scope_of(&Method::POST, "/v1/licenses/0190/resolve"),
            Scope::Admin
        );
        assert_eq!(
            scope_of(&Method::POST, "/v1/licenses/0190/renew"),
            Scope::Write
        );
        assert_eq!(scope_of(&Method::POST, "/v1/reconcile"), Scope::Admin);
        assert_eq!(scope_of(&Method::GET, "/v1/audit"), Scope::Admin);
        assert_eq!(scope_of(&Method::GET, "/v1/pool"), Scope::Admin);
        assert_eq!(scope_of(&Method::GET, "/v1/drifting"), Scope::Read);
    }
}
