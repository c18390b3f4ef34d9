//! `GET /v1/audit`: the audit log, for admins.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::api::audit_entry_to_pb;
use crate::api::pb::v1 as pb;
use crate::service::AuditQuery;

/// Query of `GET /v1/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditListQuery {
    license_id: Option<String>,
    page_size: Option<String>,
    page_token: Option<String>,
}

/// `GET /v1/audit?licenseId=&pageSize=&pageToken=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<AuditListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<pb::ListAuditEntriesResponse>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::request(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.body_text())
    })?;
    let page_size = match q.page_size.as_deref() {
        None | Some("") => 0,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::field("pageSize", "must be a whole number"))?,
    };
    let page = state
        .service
        .list_audit(AuditQuery {
            license_id: q.license_id.unwrap_or_default(),
            page_size,
            page_token: q.page_token.unwrap_or_default(),
            ..AuditQuery::default()
        })
        .await?;
    Ok(Json(pb::ListAuditEntriesResponse {
        entries: page.items.iter().map(audit_entry_to_pb).collect(),
        next_page_token: page.next_token.unwrap_or_default(),
    }))
}
