//! `GET /v1/reports/costs`: the cost report of a month, as JSON or, for
//! `Accept: text/csv`, as CSV; and `GET /v1/pool`, what the license pool holds.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::api::cost_report_to_pb;

/// Query of `GET /v1/reports/costs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostQuery {
    month: Option<String>,
}

/// `GET /v1/reports/costs?month=YYYY-MM`: an admin's covers every client, anyone
/// else's its own calls.
pub async fn costs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    query: Result<Query<CostQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::request(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.body_text())
    })?;
    let report = state
        .service
        .cost_report(
            principal.owner_filter(),
            q.month.as_deref().unwrap_or_default(),
        )
        .await?;
    if wants_csv(&headers) {
        return Ok(crate::edge::csv_response(&report));
    }
    Ok(Json(cost_report_to_pb(&report, time::OffsetDateTime::now_utc())).into_response())
}

/// Whether the caller asked for CSV (and not JSON first).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .find(|v| *v == "text/csv" || *v == "application/json")
        == Some("text/csv")
}

/// `GET /v1/pool` (admin): per tariff, the parked licenses, how many an order could
/// take now, their monthly cost and what reuse saved; then every parked license.
pub async fn pool(
    State(state): State<AppState>,
) -> Result<Json<crate::api::pb::v1::GetPoolResponse>, ApiError> {
    let view = state.service.pool_view().await?;
    Ok(Json(crate::api::pool_to_pb(&view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_chosen_only_when_asked_for_before_json() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT,
                axum::http::HeaderValue::from_str(accept).unwrap(),
            );
            wants_csv(&h)
        };
        assert!(with("text/csv"));
        assert!(with("text/csv; charset=utf-8"));
        assert!(with("text/csv, application/json;q=0.5"));
        assert!(!with("application/json, text/csv"));
        assert!(!with("*/*"));
        assert!(!wants_csv(&HeaderMap::new()));
    }
}
