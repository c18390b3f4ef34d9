//! Changes to licenses: `/v1/licenses/{id}/…`, `DELETE /v1/licenses/{id}` and the
//! desired-state resource `PUT|DELETE /v1/servers/{serverId}/license`. Each answers
//! 202 with the license as accepted, or with `?wait=` the license once changed.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;
use super::licenses::WaitQuery;
use crate::api::{ensure_action_to_pb, license_to_pb};
use crate::domain::ClientName;
use crate::service::{Accepted, EnsureAction, OrderInput};

/// Answers an accepted change: 202 at once, or 200 with the changed license after a
/// `?wait=`.
async fn answer(
    state: &AppState,
    client: &ClientName,
    accepted: Accepted,
    wait: &WaitQuery,
) -> Result<Response, ApiError> {
    let location = format!("/v1/licenses/{}", accepted.license.id);
    let (status, license) = match wait.duration()? {
        Some(budget) => {
            let license = state
                .service
                .wait_operations(
                    Some(client),
                    accepted.license.id,
                    &accepted.operations,
                    budget,
                )
                .await?;
            (StatusCode::OK, license)
        }
        None => (StatusCode::ACCEPTED, accepted.license),
    };
    let mut response = (status, Json(license_to_pb(&license))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

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
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<RenewBody>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state
        .service
        .renew(Some(&client), &id, body.period_months)
        .await?;
    answer(&state, &client, accepted, &wait).await
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
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<ChangeIpBody>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state
        .service
        .change_ip(Some(&client), &id, &body.ip)
        .await?;
    answer(&state, &client, accepted, &wait).await
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
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<ChangePanelBody>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state
        .service
        .change_panel(Some(&client), &id, &body.panel, body.period_months)
        .await?;
    answer(&state, &client, accepted, &wait).await
}

/// `POST /v1/licenses/{id}/suspend`.
pub async fn suspend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state.service.suspend(Some(&client), &id).await?;
    answer(&state, &client, accepted, &wait).await
}

/// `POST /v1/licenses/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state.service.resume(Some(&client), &id).await?;
    answer(&state, &client, accepted, &wait).await
}

/// `POST /v1/licenses/{id}/reissue-key`.
pub async fn reissue_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state.service.reissue_key(Some(&client), &id).await?;
    answer(&state, &client, accepted, &wait).await
}

/// `DELETE /v1/licenses/{id}`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state.service.cancel(Some(&client), &id).await?;
    answer(&state, &client, accepted, &wait).await
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

/// `PUT /v1/servers/{serverId}/license`: 200 when it already matched, 202 when an
/// order or a change was queued (200 after `?wait=`), with an `X-Ensure-Action`
/// header saying which.
pub async fn ensure(
    State(state): State<AppState>,
    Path(server_id): Path<String>,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<EnsureBody>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let budget = wait.duration()?;
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
    let ensured = state.service.ensure_server_license(&client, input).await?;
    let mut license = ensured.license;
    let mut status = match ensured.action {
        EnsureAction::None => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    if let Some(budget) = budget {
        state
            .service
            .wait_settled(Some(&client), license.id, budget)
            .await?;
        license = state
            .service
            .wait_operations(Some(&client), license.id, &ensured.operations, budget)
            .await?;
        status = StatusCode::OK;
    }
    let action = ensure_action_to_pb(ensured.action).as_str_name();
    let mut response = (status, Json(license_to_pb(&license))).into_response();
    response
        .headers_mut()
        .insert("x-ensure-action", HeaderValue::from_static(action));
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/licenses/{}", license.id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `DELETE /v1/servers/{serverId}/license`.
pub async fn cancel_server(
    State(state): State<AppState>,
    Path(server_id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let client = ClientName::anonymous();
    let accepted = state
        .service
        .cancel_server_license(&client, &server_id)
        .await?;
    answer(&state, &client, accepted, &wait).await
}
