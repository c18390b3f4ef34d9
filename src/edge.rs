//! What the transports (REST, gRPC, `/billmgr`, the console) share at their edge: the
//! auth layer's refusals in the core's error vocabulary, so each transport maps them
//! once with the rest of its errors, to the same stable reason codes. The core itself
//! never sees the auth layer.

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
