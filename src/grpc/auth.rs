//! Authentication of `licensefacade.v1.LicenseService` (health and reflection stay
//! open): a tower layer that checks the `authorization` metadata (or the connection's
//! TLS client certificate), the client's rate and the scope the method needs, and
//! hands the [`Principal`] to the methods through the request's extensions.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::{Request, Status};

use super::error::status;
use crate::auth::{Authenticator, PeerCertificate, Principal, Scope};
use crate::service::ServiceError;

/// The scope a method needs.
fn scope_of(method: &str) -> Scope {
    match method {
        "ListPanels" | "GetLicense" | "ListLicenses" | "QuoteLicense" | "WatchLicenses"
        | "GetCostReport" | "ListWebhooks" => Scope::Read,
        "Reconcile" | "ListDrift" | "AdoptLicense" | "ResolveLicense" | "ListAuditEntries"
        | "GetPool" => Scope::Admin,
        _ => Scope::Write,
    }
}

/// Wraps a service so that every call is authenticated.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer checking calls with `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// A service whose calls are authenticated; see [`AuthLayer`].
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Self::Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let method = path.rsplit('/').next().unwrap_or_default();
        let scope = scope_of(method);
        // Removed before the call goes on, so nothing downstream can log the token.
        let authorization = request.headers_mut().remove(http::header::AUTHORIZATION);
        // The connection's verified TLS client certificate, when the listener asked for
        // one.
        let peer = request.extensions().get::<Arc<PeerCertificate>>().cloned();
        match self.auth.check(
            authorization.as_ref().map(|v| v.as_bytes()),
            peer.as_deref(),
            scope,
        ) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                Either::Left(self.inner.call(request))
            }
            Err(e) => {
                let e = crate::edge::auth_refusal(e);
                tracing::info!(code = e.code(), method, "call refused");
                Either::Right(ready(Ok(status(e).into_http())))
            }
        }
    }
}

/// The authenticated caller of a method.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| status(ServiceError::Unauthenticated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_admin_methods_need_their_scopes() {
        assert_eq!(scope_of("GetLicense"), Scope::Read);
        assert_eq!(scope_of("WatchLicenses"), Scope::Read);
        assert_eq!(scope_of("OrderLicense"), Scope::Write);
        assert_eq!(scope_of("CancelServerLicense"), Scope::Write);
        assert_eq!(scope_of("ResolveLicense"), Scope::Admin);
        assert_eq!(scope_of("ListDrift"), Scope::Admin);
        assert_eq!(scope_of("ListAuditEntries"), Scope::Admin);
        assert_eq!(scope_of("GetPool"), Scope::Admin);
        assert_eq!(scope_of("ReleaseLicense"), Scope::Write);
        assert_eq!(scope_of("GetCostReport"), Scope::Read);
        assert_eq!(scope_of("ListWebhooks"), Scope::Read);
        assert_eq!(scope_of("CreateWebhook"), Scope::Write);
    }
}
