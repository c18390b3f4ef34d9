//! Extractors whose rejections are problem+json like every other error.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body (the proto3 JSON mapping of an API message).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::request(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "send the body as application/json",
                ),
                JsonRejection::JsonDataError(e) => ApiError::request(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    format!("the JSON body does not match the schema: {}", e.body_text()),
                ),
                JsonRejection::JsonSyntaxError(e) => ApiError::request(
                    StatusCode::BAD_REQUEST,
                    "MALFORMED_JSON",
                    format!("the body is not valid JSON: {}", e.body_text()),
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::request(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "the request body is too large",
                ),
                other => ApiError::request(other.status(), "BAD_REQUEST", other.body_text()),
            }),
        }
    }
}
