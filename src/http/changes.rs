//! Changes to licenses: `/v1/licenses/{id}/…`, `DELETE /v1/licenses/{id}` and the
//! desired-state resource `PUT|DELETE /v1/servers/{serverId}/license`. Each answers
//! 202 with the license as accepted, or with `?wait=` the license once changed.
//! Every one takes an `Idempotency-Key`.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::call::{Answer, call, respond};
use super::error::ApiError;
use super::extract::ApiJson;
use super::licenses::WaitQuery;
use crate::service::{OrderInput, ResolveAction, ResolveInput};

/// Body of `POST /v1/licenses/{id}/renew`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewBody {
    #[serde(default)]
    period_months: i32,
}

/// `POST /v1/licenses/{id}/renew`.
pub async fn renew(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<RenewBody>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state.service.renew(&call, &id, body.period_months).await?;
    Ok(respond(&outcome, Answer::Change))
}

/// Body of `POST /v1/licenses/{id}/change-ip`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeIpBody {
    ip: String,
}

/// `POST /v1/licenses/{id}/change-ip`.
pub async fn change_ip(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<ChangeIpBody>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state.service.change_ip(&call, &id, &body.ip).await?;
    Ok(respond(&outcome, Answer::Change))
}

/// Body of `POST /v1/licenses/{id}/change-panel`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePanelBody {
    panel: String,
    #[serde(default)]
    period_months: i32,
}

/// `POST /v1/licenses/{id}/change-panel`.
pub async fn change_panel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<ChangePanelBody>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state
        .service
        .change_panel(&call, &id, &body.panel, body.period_months)
        .await?;
    Ok(respond(&outcome, Answer::Change))
}

/// `POST /v1/licenses/{id}/suspend`.
pub async fn suspend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state.service.suspend(&call, &id).await?;
    Ok(respond(&outcome, Answer::Change))
}

/// `POST /v1/licenses/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state.service.resume(&call, &id).await?;
    Ok(respond(&outcome, Answer::Change))
}

/// `POST /v1/licenses/{id}/reissue-key`.
pub async fn reissue_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state.service.reissue_key(&call, &id).await?;
    Ok(respond(&outcome, Answer::Change))
}

/// `DELETE /v1/licenses/{id}`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let outcome = state.service.cancel(&call, &id).await?;
    Ok(respond(&outcome, Answer::Change))
}

/// Body of `PUT /v1/servers/{serverId}/license`: the license the server must have.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnsureBody {
    ip: String,
    panel: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    period_months: i32,
    #[serde(default)]
    auto_renew: bool,
    nodes: Option<u32>,
}

/// `PUT /v1/servers/{serverId}/license`: 200 when it already matched (or once done
/// after `?wait=`), 202 when an order or a change was queued, with an
/// `X-Ensure-Action` header saying which.
pub async fn ensure(
    State(state): State<AppState>,
    Path(server_id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<EnsureBody>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let input = OrderInput {
        server_id,
        ip: body.ip,
        hostname: body.hostname,
        panel: body.panel,
        period_months: body.period_months,
        auto_renew: body.auto_renew,
        nodes: body.nodes,
        trial: false,
    };
    let outcome = state.service.ensure_server_license(&call, input).await?;
    Ok(respond(&outcome, Answer::Ensure))
}

/// Query of `DELETE /v1/servers/{serverId}/license`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndQuery {
    /// How long to wait, e.g. `30s`.
    wait: Option<String>,
    /// `cancel` (the default) or `park`.
    policy: Option<String>,
}

/// `DELETE /v1/servers/{serverId}/license[?policy=park]`: cancels the server's
/// license, or releases it to the pool (`X-Release-Outcome: PARKED|CANCELLED`, and
/// why a release cancelled in `X-Release-Reason`).
pub async fn cancel_server(
    State(state): State<AppState>,
    Path(server_id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(query): Query<EndQuery>,
) -> Result<Response, ApiError> {
    let park = match query.policy.as_deref().map(str::trim) {
        None | Some("" | "cancel" | "CANCEL") => false,
        Some("park" | "PARK") => true,
        Some(other) => {
            return Err(ApiError::field(
                "policy",
                format!("must be cancel or park, not {other:?}"),
            ));
        }
    };
    let call = call(&principal, &headers, query.wait.as_deref())?;
    let released = state
        .service
        .end_server_license(&call, &server_id, park)
        .await?;
    let mut response = respond(&released.outcome, Answer::Change);
    if park {
        release_headers(&mut response, &released);
    }
    Ok(response)
}

/// `POST /v1/licenses/{id}/release`: parks the license by the pool's rules, else
/// cancels it; the body is the ReleaseLicenseResponse (license, outcome, reason).
pub async fn release(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let released = state.service.release(&call, &id).await?;
    // The status and headers of any change; the body says where the license went.
    let (parts, _) = respond(&released.outcome, Answer::Change).into_parts();
    let body = axum::Json(crate::api::release_to_pb(&released))
        .into_response()
        .into_body();
    let mut response = Response::from_parts(parts, body);
    release_headers(&mut response, &released);
    Ok(response)
}

fn release_headers(response: &mut Response, released: &crate::service::Released) {
    let outcome = crate::api::release_outcome_to_pb(released).as_str_name();
    let outcome = outcome.trim_start_matches("RELEASE_OUTCOME_");
    if let Ok(value) = axum::http::HeaderValue::from_str(outcome) {
        response.headers_mut().insert("x-release-outcome", value);
    }
    if let Some(why) = &released.cancelled
        && let Ok(value) = axum::http::HeaderValue::from_str(why)
    {
        response.headers_mut().insert("x-release-reason", value);
    }
}

/// Body of `POST /v1/licenses/{id}/resolve`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveBody {
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    upstream_id: String,
}

/// `POST /v1/licenses/{id}/resolve` (admin): 200 once bound or abandoned; a retry is
/// 202 (200 with `?wait=` once the retried work is done).
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    let input = ResolveInput {
        action: ResolveAction::parse(body.action.trim()),
        reason: body.reason,
        upstream_id: body.upstream_id,
    };
    let outcome = state.service.resolve(&call, &id, input).await?;
    Ok(respond(&outcome, Answer::Change))
}
