//! `/v1/panels` and quotes.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::api::pb::v1 as pb;
use crate::api::{panel_to_pb, quote_to_pb};

/// `GET /v1/panels`.
pub async fn list(State(state): State<AppState>) -> Json<pb::ListPanelsResponse> {
    Json(pb::ListPanelsResponse {
        panels: state.service.panels().iter().map(panel_to_pb).collect(),
    })
}

/// Query of the quote.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteQuery {
    period_months: Option<i32>,
    nodes: Option<u32>,
}

/// `GET /v1/panels/{panel}/quote?periodMonths=12&nodes=3`.
pub async fn quote(
    State(state): State<AppState>,
    Path(panel): Path<String>,
    Query(q): Query<QuoteQuery>,
) -> Result<Json<pb::QuoteLicenseResponse>, ApiError> {
    let quote = state
        .service
        .quote(&panel, q.period_months.unwrap_or(0), q.nodes)
        .await?;
    Ok(Json(quote_to_pb(&quote)))
}
