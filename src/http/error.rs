//! The one mapping from errors to RFC 9457 `application/problem+json` responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::service::{ErrorKind, ServiceError};

/// An error answered over REST.
#[derive(Debug)]
pub enum ApiError {
    /// A service-layer error; its code and status come from the service.
    Service(ServiceError),
    /// A request the transport itself refuses (bad JSON, bad query): 400 or another
    /// 4xx with a reason code.
    Request {
        /// HTTP status.
        status: StatusCode,
        /// Stable reason code.
        code: &'static str,
        /// What is wrong.
        detail: String,
        /// Field violations, if any: (field, message).
        errors: Vec<(String, String)>,
    },
}

impl ApiError {
    /// A 400 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Request {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            detail: format!("{field}: {message}"),
            errors: vec![(field.to_owned(), message)],
        }
    }

    /// A 4xx without fields.
    pub fn request(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::Request {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

#[derive(Serialize)]
struct Problem {
    r#type: String,
    title: &'static str,
    status: u16,
    detail: String,
    code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    #[serde(rename = "licenseId", skip_serializing_if = "Option::is_none")]
    license_id: Option<String>,
}

#[derive(Serialize)]
struct FieldError {
    field: String,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, code, detail, errors, license_id) = match self {
            Self::Service(e) => {
                let status = match e.kind() {
                    ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::FailedPrecondition | ErrorKind::Aborted => StatusCode::CONFLICT,
                    ErrorKind::Refused | ErrorKind::Unprocessable => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
                    ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                    ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                };
                retry_after = e.retry_after();
                if status.is_server_error() {
                    tracing::error!(error.message = %e, error.cause_chain = ?e, "request failed");
                }
                let license_id = match &e {
                    ServiceError::ServerHasLicense { existing, .. } => {
                        Some(existing.id.to_string())
                    }
                    ServiceError::IpHasLicense { visible, .. } => visible.clone(),
                    _ => None,
                };
                let errors = e
                    .violations()
                    .into_iter()
                    .map(|v| (v.field, v.message))
                    .collect();
                (status, e.code(), e.to_string(), errors, license_id)
            }
            Self::Request {
                status,
                code,
                detail,
                errors,
            } => (status, code, detail, errors, None),
        };
        let problem = Problem {
            r#type: format!("urn:license-facade:problem:{}", code.to_ascii_lowercase()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            errors: errors
                .into_iter()
                .map(|(field, message)| FieldError { field, message })
                .collect(),
            license_id,
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(wait) = retry_after {
            // Whole seconds, rounded up: Retry-After has no finer unit.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        } else if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        } else if status == StatusCode::SERVICE_UNAVAILABLE
            || matches!(code, "OPERATION_IN_PROGRESS" | "REQUEST_IN_PROGRESS")
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
