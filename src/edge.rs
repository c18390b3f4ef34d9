//! What the transports (REST, gRPC, `/billmgr`, the console) share at their edge: the
//! auth layer's refusals in the core's error vocabulary, so each transport maps them
//! once with the rest of its errors, to the same stable reason codes. The core itself
//! never sees the auth layer. Also the cost report's CSV download, which the REST API
//! and the console both serve.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::service::ServiceError;

/// An auth refusal as the error every transport already knows how to answer.
pub fn auth_refusal(e: AuthError) -> ServiceError {
    match e {
        AuthError::Unauthenticated => ServiceError::Unauthenticated,
        AuthError::PermissionDenied(scope) => ServiceError::PermissionDenied(scope),
        AuthError::RateLimited { retry_after } => ServiceError::RateLimited { retry_after },
    }
}

/// The report as a CSV download named after its month.
pub fn csv_response(report: &crate::domain::CostReport) -> Response {
    let disposition = format!("attachment; filename=\"costs-{}.csv\"", report.month);
    let mut response = report.to_csv().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
