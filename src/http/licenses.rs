//! `/v1/licenses` and `/v1/servers/{serverId}/license`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::call::{Answer, call, respond};
use super::error::ApiError;
use super::extract::ApiJson;
use crate::api::pb::v1 as pb;
use crate::api::{license_to_pb, list_input, order_input, state_from_pb};

/// `?wait=30s` on calls that may wait for the upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// How long to wait, e.g. `30s`.
    pub wait: Option<String>,
}

/// `POST /v1/licenses`: 202 with `Location` when accepted, 200 when the server already
/// had this license, 201 when `?wait=` saw it become active.
pub async fn order(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    ApiJson(body): ApiJson<pb::OrderLicenseRequest>,
) -> Result<Response, ApiError> {
    let call = call(&principal, &headers, wait.wait.as_deref())?;
    if !body.request_id.is_empty() {
        return Err(ApiError::field(
            "requestId",
            "send the request id as the Idempotency-Key header",
        ));
    }
    let outcome = state
        .service
        .order_license(&call, order_input(body))
        .await?;
    Ok(respond(&outcome, Answer::Order))
}

/// `GET /v1/licenses/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let license = state
        .service
        .get_license(principal.owner_filter(), &id)
        .await?;
    Ok(json_of(&state, &license))
}

/// Query of `GET /v1/servers/{serverId}/license`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerQuery {
    /// Admin only: the client whose server it is, when several use the server id.
    client: Option<String>,
}

/// `GET /v1/servers/{serverId}/license?client=`.
pub async fn get_by_server(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(server_id): Path<String>,
    Query(query): Query<ServerQuery>,
) -> Result<Response, ApiError> {
    let license = state
        .service
        .get_server_license(
            principal.owner_filter(),
            &server_id,
            query.client.as_deref(),
        )
        .await?;
    Ok(json_of(&state, &license))
}

/// A license as the answer's JSON body, as [`Json`] renders it.
fn json_of(state: &AppState, license: &crate::domain::License) -> Response {
    use axum::response::IntoResponse as _;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        state.rendered.json(license),
    )
        .into_response()
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
    Caller(principal): Caller,
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
    let page = state
        .service
        .list_licenses(principal.owner_filter(), list_input(request))
        .await?;
    Ok(Json(pb::ListLicensesResponse {
        licenses: page.items.iter().map(license_to_pb).collect(),
        next_page_token: page.next_token.unwrap_or_default(),
    }))
}
