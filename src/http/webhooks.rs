//! `/v1/webhooks`: a client's webhook subscriptions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::api::pb::v1 as pb;
use crate::api::{webhook_input, webhook_to_pb};

/// `POST /v1/webhooks`: 201 with `Location`; the answer carries the secret, once.
pub async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<pb::CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let view = state
        .service
        .create_webhook(
            &principal.client,
            principal.owner_filter().is_none(),
            webhook_input(body),
        )
        .await?;
    let location = format!("/v1/webhooks/{}", view.webhook.id);
    let body = pb::CreateWebhookResponse {
        webhook: Some(webhook_to_pb(&view)),
        secret: view.webhook.secret.clone(),
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// `GET /v1/webhooks`: the caller's subscriptions (an admin's: everyone's).
pub async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<pb::ListWebhooksResponse>, ApiError> {
    let hooks = state
        .service
        .list_webhooks(principal.owner_filter())
        .await?;
    Ok(Json(pb::ListWebhooksResponse {
        webhooks: hooks.iter().map(webhook_to_pb).collect(),
    }))
}

/// `GET /v1/webhooks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<pb::Webhook>, ApiError> {
    let view = state
        .service
        .get_webhook(principal.owner_filter(), &id)
        .await?;
    Ok(Json(webhook_to_pb(&view)))
}

/// `DELETE /v1/webhooks/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<pb::DeleteWebhookResponse>, ApiError> {
    state
        .service
        .delete_webhook(principal.owner_filter(), &id)
        .await?;
    Ok(Json(pb::DeleteWebhookResponse {}))
}

/// `POST /v1/webhooks/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<pb::Webhook>, ApiError> {
    let view = state
        .service
        .resume_webhook(principal.owner_filter(), &id)
        .await?;
    Ok(Json(webhook_to_pb(&view)))
}
