//! `/v1/panels`.

use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::api::panel_to_pb;
use crate::api::pb::v1 as pb;

/// `GET /v1/panels`.
pub async fn list(State(state): State<AppState>) -> Json<pb::ListPanelsResponse> {
    Json(pb::ListPanelsResponse {
        panels: state.service.panels().iter().map(panel_to_pb).collect(),
    })
}
