//! `/v1/licenses` and `/v1/servers/{serverId}/license`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::api::pb::v1 as pb;
use crate::api::{license_to_pb, list_input, order_input, state_from_pb};
use crate::domain::ClientName;

/// The longest `?wait=` a caller may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// `?wait=30s` on calls that may wait for the upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    wait: Option<String>,
}

impl WaitQuery {
    pub(super) fn duration(&self) -> Result<Option<Duration>, ApiError> {
        let Some(raw) = self.wait.as_deref() else {
            return Ok(None);
        };
        let parsed = if let Some(ms) = raw.strip_suffix("ms") {
            ms.parse().ok().map(Duration::from_millis)
        } else if let Some(s) = raw.strip_suffix('s') {
            s.parse().ok().map(Duration::from_secs)
        } else {
            None
        };
        match parsed {
            Some(d) if d <= MAX_WAIT => Ok(Some(d)),
            _ => Err(ApiError::field(
                "wait",
                "must be a duration such as 30s or 500ms, at most 60s",
            )),
        }
    }
}

/// `POST /v1/licenses`: 202 with `Location` when accepted, 200 when the server already
/// had this license, 201 when `?wait=` saw it settle.
pub async fn order(
    State(state): State<AppState>,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<pb::OrderLicenseRequest>,
) -> Result<Response, ApiError> {
    let wait = wait.duration()?;
    let client = ClientName::anonymous();
    let ordered = state
        .service
        .order_license(&client, order_input(body))
        .await?;
    let mut license = ordered.license;
    let mut status = if ordered.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if let Some(wait) = wait {
        license = state
            .service
            .wait_settled(Some(&client), license.id, wait)
            .await?;
        if ordered.created && license.state == crate::domain::LicenseState::Active {
            status = StatusCode::CREATED;
        }
    }
    let location = format!("/v1/licenses/{}", license.id);
    let mut response = (status, Json(license_to_pb(&license))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /v1/licenses/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<pb::License>, ApiError> {
    let client = ClientName::anonymous();
    let license = state.service.get_license(Some(&client), &id).await?;
    Ok(Json(license_to_pb(&license)))
}

/// `GET /v1/servers/{serverId}/license`.
pub async fn get_by_server(
    State(state): State<AppState>,
    Path(server_id): Path<String>,
) -> Result<Json<pb::License>, ApiError> {
    let client = ClientName::anonymous();
    let license = state
        .service
        .get_server_license(Some(&client), &server_id)
        .await?;
    Ok(Json(license_to_pb(&license)))
}

/// Query of `GET /v1/licenses`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    server_id: Option<String>,
    ip: Option<String>,
    panel: Option<String>,
    state: Option<String>,
    page_size: Option<String>,
    page_token: Option<String>,
}

/// `GET /v1/licenses`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<pb::ListLicensesResponse>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::request(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.body_text())
    })?;
    let page_size = match q.page_size.as_deref() {
        None | Some("") => 0,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::field("pageSize", "must be a whole number"))?,
    };
    let license_state = match q.state.as_deref() {
        None | Some("") => pb::license::State::Unspecified,
        Some(s) => pb::license::State::from_str_name(s)
            .filter(|s| state_from_pb(*s).is_some())
            .ok_or_else(|| {
                ApiError::field(
                    "state",
                    "must be one of PENDING, PROVISIONING, ACTIVE, SUSPENDED, CANCELLED, FAILED, NEEDS_ATTENTION",
                )
            })?,
    };
    let request = pb::ListLicensesRequest {
        server_id: q.server_id.unwrap_or_default(),
        ip: q.ip.unwrap_or_default(),
        panel: q.panel.unwrap_or_default(),
        state: license_state as i32,
        page_size,
        page_token: q.page_token.unwrap_or_default(),
    };
    let client = ClientName::anonymous();
    let page = state
        .service
        .list_licenses(Some(&client), list_input(request))
        .await?;
    Ok(Json(pb::ListLicensesResponse {
        licenses: page.items.iter().map(license_to_pb).collect(),
        next_page_token: page.next_token.unwrap_or_default(),
    }))
}
