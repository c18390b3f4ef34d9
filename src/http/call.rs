//! The call context of a mutating REST request: the client, its `Idempotency-Key`, and
//! `?wait=` — and how an outcome is answered.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::api::license_to_pb;
use crate::auth::Principal;
use crate::service::{Call, Outcome, RequestKey};

/// The longest `?wait=` a caller may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Parses `?wait=30s` / `?wait=500ms`.
pub fn parse_wait(raw: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = raw else {
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

/// The call of a mutating request by `principal`.
pub fn call(
    principal: &Principal,
    headers: &HeaderMap,
    wait: Option<&str>,
) -> Result<Call, ApiError> {
    let request = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?;
            Some(
                RequestKey::parse(text, "Idempotency-Key")
                    .map_err(|v| ApiError::field(&v.field, v.message))?,
            )
        }
    };
    Ok(Call {
        client: principal.client.clone(),
        admin: principal.owner_filter().is_none(),
        request,
        wait: parse_wait(wait)?,
        arrived: tokio::time::Instant::now(),
    })
}

/// How an outcome is answered.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// An order: 202 accepted, 201 when waited until ACTIVE, 200 when it existed.
    Order,
    /// A change: 202 accepted, 200 once done.
    Change,
    /// A desired state: 200 when nothing was needed or once done, else 202.
    Ensure,
}

/// The response for `outcome`: the license as the body, a `Location`, the status.
pub fn respond(outcome: &Outcome, answer: Answer) -> Response {
    use crate::domain::LicenseState;
    use crate::service::EnsureAction;
    let status = match answer {
        Answer::Order if !outcome.created => StatusCode::OK,
        Answer::Order if outcome.settled && outcome.license.state == LicenseState::Active => {
            StatusCode::CREATED
        }
        Answer::Ensure if outcome.action == Some(EnsureAction::None) => StatusCode::OK,
        _ if outcome.settled => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    let mut response = (status, Json(license_to_pb(&outcome.license))).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/licenses/{}", outcome.license.id)) {
        headers.insert(header::LOCATION, value);
    }
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(action) = outcome.action {
        let name = crate::api::ensure_action_to_pb(action).as_str_name();
        headers.insert("x-ensure-action", HeaderValue::from_static(name));
    }
    response
}
