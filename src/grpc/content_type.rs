//! Refusal of requests that are not gRPC: the gRPC port answers a request whose
//! `content-type` does not start with `application/grpc` with HTTP 415 Unsupported
//! Media Type, as the gRPC-over-HTTP/2 protocol specifies, before any service reads
//! its body as a gRPC message.

use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::codegen::http;

/// Adds [`GrpcOnly`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcOnlyLayer;

impl<S> tower::Layer<S> for GrpcOnlyLayer {
    type Service = GrpcOnly<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcOnly { inner }
    }
}

/// A service that only sees gRPC requests; see the module docs.
#[derive(Debug, Clone)]
pub struct GrpcOnly<S> {
    inner: S,
}

/// Whether a `content-type` header names gRPC (`application/grpc`, `+proto`, …).
fn is_grpc(content_type: Option<&http::HeaderValue>) -> bool {
    content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcOnly<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if is_grpc(request.headers().get(http::header::CONTENT_TYPE)) {
            return Either::Left(self.inner.call(request));
        }
        // The status is for gRPC clients that read only the trailers-only headers;
        // the HTTP status is the answer the protocol gives everyone else.
        let mut response = tonic::Status::invalid_argument(
            "the gRPC port accepts only content-type application/grpc",
        )
        .into_http::<R>();
        *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        Either::Right(ready(Ok(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types_pass_and_others_do_not() {
        for grpc in ["application/grpc", "application/grpc+proto"] {
            assert!(
                is_grpc(Some(&http::HeaderValue::from_static(grpc))),
                "{grpc}"
            );
        }
        for other in ["application/json", "text/plain", "application/grp"] {
            assert!(
                !is_grpc(Some(&http::HeaderValue::from_static(other))),
                "{other}"
            );
        }
        assert!(!is_grpc(None));
    }
}
