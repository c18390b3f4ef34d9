//! The outermost REST middleware: a request id (the caller's `x-request-id` when it is
//! usable, else a new UUIDv7, echoed in the response), a span carrying it and the
//! client's name (recorded by authentication), an access log line, and the request
//! metrics by matched route and status code. A request that matched no route, or
//! whose method is not a standard one, is counted as `unmatched`: callers choose paths
//! and methods freely, and each label value would be a series of its own.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The request id header, read and echoed by both transports.
pub const REQUEST_ID: &str = "x-request-id";

/// The caller's request id when it is short printable ASCII, else a new one.
pub fn request_id(header: Option<&HeaderValue>) -> String {
    header
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

fn header_str<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The middleware; see the module docs.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(request.headers().get(REQUEST_ID));
    // The route template, never the raw path: ids in paths would make a series each.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(crate::metrics::UNMATCHED, |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        http.method = %method,
        http.route = %route,
        client = tracing::field::Empty,
    );
    crate::telemetry::otlp::continue_trace(
        &span,
        header_str(&request, "traceparent"),
        header_str(&request, "tracestate"),
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if route.starts_with("/v1/") {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request finished");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "request finished");
        }
    });
    crate::metrics::request(
        "rest",
        &method_label(&method, &route),
        status.as_str(),
        elapsed,
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The metrics label of a request: `METHOD /route/template` for a matched route and a
/// standard method, else `unmatched`.
fn method_label(method: &axum::http::Method, route: &str) -> String {
    use axum::http::Method;
    let standard = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ]
    .contains(method);
    if standard && route != crate::metrics::UNMATCHED {
        format!("{method} {route}")
    } else {
        crate::metrics::UNMATCHED.to_owned()
    }
}

/// Turns the plain-text 4xx answers of axum's extractors (a query string or path that
/// does not parse) into problem+json like every other error.
pub async fn rejection_as_problem(response: Response) -> Response {
    use axum::response::IntoResponse as _;
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() && plain) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let code = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        _ => "BAD_REQUEST",
    };
    super::ApiError::request(status, code, String::from_utf8_lossy(&body).into_owned())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_caller_request_id_is_kept_and_others_are_replaced() {
        let given = HeaderValue::from_static("abc-123");
        assert_eq!(request_id(Some(&given)), "abc-123");

        let spaces = HeaderValue::from_static("has spaces");
        let long = HeaderValue::from_str(&"x".repeat(200)).unwrap();
        for bad in [None, Some(&spaces), Some(&long)] {
            let id = request_id(bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
    }

    #[test]
    fn invented_methods_and_unmatched_routes_fold_into_one_label() {
        use axum::http::Method;
        assert_eq!(
            method_label(&Method::POST, "/v1/licenses"),
            "POST /v1/licenses"
        );
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented, "/v1/licenses"), "unmatched");
        assert_eq!(method_label(&Method::GET, "unmatched"), "unmatched");
    }
}
