//! Errors of console pages: an HTML page with the status the API would answer and
//! the same words; internal details are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::views::{ErrorPage, render};
use crate::service::{ErrorKind, ServiceError};

/// A page that could not be shown, or an action that was refused.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            message: message.into(),
        }
    }

    /// 403: a form without a valid CSRF token.
    pub fn csrf() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "Form refused",
            message: "The form was not sent from this console's own page (its security token \
                      is missing or stale). Go back, reload the page and try again."
                .into(),
        }
    }

    /// 404.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            message: "There is no such page, or nothing here this client may see.".into(),
        }
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        let (status, title) = match e.kind() {
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "Invalid request"),
            ErrorKind::NotFound if matches!(e, ServiceError::NotFound) => {
                return Self::not_found();
            }
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            ErrorKind::FailedPrecondition | ErrorKind::Aborted => {
                (StatusCode::CONFLICT, "Not possible now")
            }
            ErrorKind::Refused => (StatusCode::UNPROCESSABLE_ENTITY, "Refused upstream"),
            ErrorKind::Unprocessable => (StatusCode::UNPROCESSABLE_ENTITY, "Not possible"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Upstream unavailable"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "Not logged in"),
            ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "Not allowed"),
            ErrorKind::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "Limit reached"),
        };
        let internal = matches!(e, ServiceError::Store(_))
            || (status.is_server_error() && e.kind() != ErrorKind::Unavailable);
        let message = if internal {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "console page failed");
            "Something went wrong on our side; the service log has the details.".to_owned()
        } else {
            e.to_string()
        };
        Self {
            status,
            title,
            message,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            title: self.title,
            message: self.message,
            status: self.status.as_u16(),
        };
        (self.status, render(&page)).into_response()
    }
}

/// The console's fallback.
pub async fn not_found() -> PageError {
    PageError::not_found()
}
