//! `/v1/reconcile` and `/v1/drift`: run a reconciliation, read the latest drift
//! report, adopt an orphan.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::api::pb::v1 as pb;
use crate::api::{drift_report_to_pb, license_to_pb};

/// `POST /v1/reconcile`: runs a reconciliation now and answers its report. The body
/// (a `ReconcileRequest`, e.g. `{"expiringWithinDays": 30}`) is optional.
pub async fn reconcile(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<pb::DriftReport>, ApiError> {
    let request: pb::ReconcileRequest = if body.iter().all(u8::is_ascii_whitespace) {
        pb::ReconcileRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::request(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                format!("the JSON body does not match the schema: {e}"),
            )
        })?
    };
    let report = state
        .service
        .reconcile(request.expiring_within_days)
        .await?;
    Ok(Json(drift_report_to_pb(&report)))
}

/// `GET /v1/drift`: the latest report of any replica; 404 before the first run.
pub async fn latest(State(state): State<AppState>) -> Result<Json<pb::DriftReport>, ApiError> {
    let report = state.service.latest_drift().await?;
    Ok(Json(drift_report_to_pb(&report)))
}

/// `POST /v1/drift/{upstreamId}/adopt` with `{"serverId": "…"}`: 201 with the new
/// license and its `Location`.
pub async fn adopt(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(upstream_id): Path<String>,
    ApiJson(body): ApiJson<pb::AdoptLicenseRequest>,
) -> Result<Response, ApiError> {
    let license = state
        .service
        .adopt(
            &principal.client,
            &upstream_id,
            &body.server_id,
            &body.hostname,
        )
        .await?;
    let mut response = (StatusCode::CREATED, Json(license_to_pb(&license))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/licenses/{}", license.id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}
