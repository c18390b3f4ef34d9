//! The one mapping from service errors to gRPC statuses, with `google.rpc` details
//! carrying the same reason code as REST's problem+json.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::service::{ErrorKind, ServiceError};

/// The `ErrorInfo.domain` of every error this service raises.
pub const ERROR_DOMAIN: &str = "licensefacade.v1";

/// Converts a service error into a status; internal causes are logged, not sent.
pub fn status(e: ServiceError) -> Status {
    let code = match e.kind() {
        ErrorKind::InvalidArgument | ErrorKind::Unprocessable => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::FailedPrecondition | ErrorKind::Refused => Code::FailedPrecondition,
        ErrorKind::Aborted => Code::Aborted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
    };
    let mut metadata = HashMap::new();
    if let ServiceError::ServerHasLicense {
        existing,
        use_instead,
    } = &e
    {
        metadata.insert("licenseId".to_owned(), existing.id.to_string());
        metadata.insert("useInstead".to_owned(), (*use_instead).to_owned());
    }
    if let ServiceError::IpHasLicense {
        visible: Some(id), ..
    } = &e
    {
        metadata.insert("licenseId".to_owned(), id.clone());
    }
    if let ServiceError::ServerIdAmbiguous { clients, .. } = &e {
        metadata.insert("clients".to_owned(), clients.join(","));
    }
    let mut details = ErrorDetails::with_error_info(e.code(), ERROR_DOMAIN, metadata);
    for v in e.violations() {
        details.add_bad_request_violation(v.field, v.message);
    }
    if code == Code::Unavailable {
        tracing::error!(error.message = %e, error.cause_chain = ?e, "request failed");
    }
    if let Some(wait) = e.retry_after() {
        details.set_retry_info(Some(wait));
    } else if matches!(code, Code::Unavailable | Code::Aborted) {
        details.set_retry_info(Some(Duration::from_secs(1)));
    }
    Status::with_error_details(code, e.to_string(), details)
}
