//! The one mapping of the service's errors onto the shop's `doc/error` answers. Where
//! the shop has an error for the case (`value`, `missed`, `exists`, `auth`, `access`)
//! its shape is used, with the request's parameter as `object`; a case the shop does
//! not have (a change in progress, a spend cap, the store down) has the service's
//! stable reason code, in lower case, as its `type`, as REST and gRPC carry it.

use crate::protocol::ApiError;
use crate::service::ServiceError;

/// The request parameter a service field stands for.
fn param_of(field: &str) -> &str {
    match field {
        "server.ip" | "ip" => "ip",
        "server.id" => "remoteid",
        "server.hostname" => "licname",
        "periodMonths" => "period",
        "panel" | "trial" => "pricelist",
        "nodes" => "addon",
        "autoRenew" => "autoprolong",
        other => other,
    }
}

/// The answer to `e`; `elid` is the id the request named, for a not-found answer.
pub fn to_api_error(e: &ServiceError, elid: Option<&str>) -> ApiError {
    match e {
        ServiceError::InvalidArgument(violations) => match violations.first() {
            Some(v) => ApiError::value(param_of(&v.field), "", v.message.clone()),
            None => ApiError::value("", "", e.to_string()),
        },
        ServiceError::UnknownPanel(unknown) => {
            ApiError::value("pricelist", "", unknown.to_string())
        }
        ServiceError::NotFound => ApiError::not_found("value", elid.unwrap_or_default()),
        ServiceError::ServerHasLicense { .. } => ApiError::new("exists", "remoteid", e.to_string()),
        ServiceError::IpHasLicense { .. } => ApiError::new("exists", "ip", e.to_string()),
        ServiceError::IdempotencyKeyReused => ApiError::new(
            "exists",
            "remoteid",
            "this remoteid was used for another order; an order is repeated only with the \
             same parameters",
        ),
        ServiceError::Precondition(p) => {
            ApiError::value("elid", elid.unwrap_or_default(), p.message.clone())
        }
        ServiceError::Unauthenticated => ApiError::auth(),
        ServiceError::PermissionDenied(_) => ApiError::new("access", "", e.to_string()),
        ServiceError::Store(_) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "downstream call failed");
            ApiError::new(
                "store_unavailable",
                "",
                "The service is unavailable, try again later",
            )
        }
        other => ApiError::new(&other.code().to_ascii_lowercase(), "", other.to_string()),
    }
}
