//! The REST transport (axum): `/v1/...` resources whose bodies are the proto3 JSON
//! mapping of the API messages, plus health endpoints. Errors are problem+json.

mod audit;
mod auth;
mod call;
mod changes;
mod drift;
mod error;
mod events;
mod extract;
mod health;
mod licenses;
mod metrics;
pub(crate) mod observe;
pub mod openapi;
mod panels;
mod rendered;
mod reports;
mod serve;
mod webhooks;

pub use error::ApiError;
pub use serve::serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::health::Readiness;
use crate::service::LicenseService;

pub use crate::limits::MAX_BODY_BYTES;

/// Shared state of the handlers; axum clones it for every extractor, so it is a few
/// `Arc`s (the service alone holds a dozen).
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub service: Arc<LicenseService>,
    /// Readiness flags.
    pub readiness: Arc<Readiness>,
    /// Checks the bearer token of every `/v1` call.
    pub auth: Arc<crate::auth::Authenticator>,
    /// The JSON of licenses as last answered.
    pub rendered: Arc<rendered::RenderedLicenses>,
}

/// The REST API's own routes: `/v1` (each behind a token), health, metrics and the
/// OpenAPI document. The other parts served on the same listener (the console, the
/// shop's `/billmgr` API) are composed beside it by the caller, then [`layered`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/panels", get(panels::list))
        .route("/v1/panels/{panel}/quote", get(panels::quote))
        .route("/v1/licenses", get(licenses::list).post(licenses::order))
        .route(
            "/v1/licenses/{id}",
            get(licenses::get).delete(changes::cancel),
        )
        .route("/v1/licenses/{id}/renew", post(changes::renew))
        .route("/v1/licenses/{id}/change-ip", post(changes::change_ip))
        .route(
            "/v1/licenses/{id}/change-panel",
            post(changes::change_panel),
        )
        .route("/v1/licenses/{id}/suspend", post(changes::suspend))
        .route("/v1/licenses/{id}/resume", post(changes::resume))
        .route("/v1/licenses/{id}/reissue-key", post(changes::reissue_key))
        .route("/v1/licenses/{id}/resolve", post(changes::resolve))
        .route("/v1/licenses/{id}/release", post(changes::release))
        .route("/v1/pool", get(reports::pool))
        .route(
            "/v1/servers/{server_id}/license",
            get(licenses::get_by_server)
                .put(changes::ensure)
                .delete(changes::cancel_server),
        )
        .route("/v1/events", get(events::stream))
        .route("/v1/reconcile", post(drift::reconcile))
        .route("/v1/drift", get(drift::latest))
        .route("/v1/drift/{upstream_id}/adopt", post(drift::adopt))
        .route("/v1/audit", get(audit::list))
        .route("/v1/reports/costs", get(reports::costs))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/resume", post(webhooks::resume))
        // Every route above needs a token; the ones below (health, and whatever is
        // added after this line) do not.
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::scrape))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .with_state(state)
}

/// Wraps everything served on the HTTP listener: problem+json for an unknown path or
/// method, the body limit, the overall timeout, and (outermost) the request id, span,
/// access log and metrics, so every answer of every part passes through them.
///
/// The layers are composed into one stack and given to the router once: each
/// `Router::layer` call boxes every route again, and every box is cloned on every
/// request.
pub fn layered(app: Router) -> Router {
    let layers = tower::ServiceBuilder::new()
        // Outermost: request id, span, access log and metrics see every answer.
        .layer(axum::middleware::from_fn(observe::observe))
        // Waits are capped at 60 s; the timeout sits above that.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(75),
        ))
        .layer(axum::middleware::map_response(plain_errors_as_problems))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(layers)
}

/// The plain-text answers of the body limit and of axum's extractors as problem+json,
/// in one layer for both. Generic over the body: in one stack the body limit's
/// answers reach it with the limit's own body type.
async fn plain_errors_as_problems<B>(response: axum::http::Response<B>) -> axum::response::Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = response.map(axum::body::Body::new);
    observe::rejection_as_problem(auth::oversized_as_problem(response).await).await
}

async fn not_found() -> ApiError {
    ApiError::request(StatusCode::NOT_FOUND, "NOT_FOUND", "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::request(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this resource does not support the method",
    )
}
