//! The outermost gRPC layer: a request id (`x-request-id` metadata when usable, else a
//! new one, echoed in the response headers), a span carrying it and the client's name
//! (recorded by authentication), and the request metrics by method and status code.
//!
//! The method label is the call's path only when it names a method this server
//! serves; any other path is `unmatched`, so invented paths cannot add series.
//!
//! The code is the `grpc-status` of the response headers, where tonic puts it for
//! every error answer; a response without it is a success whose status follows in the
//! trailers (`OK`). For `WatchLicenses` the latency is the time to the stream's start.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tracing::Instrument as _;

use crate::http::observe::{REQUEST_ID, request_id};

/// Adds [`Observed`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed { inner }
    }
}

/// A service whose calls are observed; see the module docs.
#[derive(Debug, Clone)]
pub struct Observed<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Observed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = request_id(request.headers().get(REQUEST_ID));
        let method = request.uri().path().to_owned();
        let label = method_label(&method);
        let span = tracing::info_span!(
            "rpc",
            request_id = %id,
            rpc.method = %method,
            client = tracing::field::Empty,
        );
        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        crate::telemetry::otlp::continue_trace(&span, header("traceparent"), header("tracestate"));
        // Entered while the inner services start the call, so that authentication
        // (which runs here, synchronously) records the client in this span.
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let mut response = future.await?;
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                let elapsed = started.elapsed();
                let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                let code_name = upper_snake(&format!("{code:?}"));
                if method.starts_with("/licensefacade.") {
                    tracing::info!(code = %code_name, elapsed_ms, "call finished");
                } else {
                    tracing::debug!(code = %code_name, elapsed_ms, "call finished");
                }
                crate::metrics::request("grpc", &label, &code_name, elapsed);
                if let Ok(value) = http::HeaderValue::from_str(&id) {
                    response.headers_mut().insert(REQUEST_ID, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Every `/package.Service/Method` path this server serves, read from the descriptor
/// sets of its services, so a new RPC is counted without a list to keep.
static KNOWN_METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    use prost::Message as _;
    let mut known = HashSet::new();
    for set in [
        crate::api::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        // The sets are compiled into the binary; one that does not decode adds nothing.
        let Ok(fds) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in &fds.file {
            for service in &file.service {
                for method in &service.method {
                    known.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    known
});

/// The metrics label of a call's path: the path of a served method, else `unmatched`.
fn method_label(path: &str) -> String {
    if KNOWN_METHODS.contains(path) {
        path.to_owned()
    } else {
        crate::metrics::UNMATCHED.to_owned()
    }
}

/// `InvalidArgument` → `INVALID_ARGUMENT`, the status names of the gRPC spec.
fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_named_as_in_the_grpc_spec() {
        assert_eq!(super::upper_snake("Ok"), "OK");
        assert_eq!(super::upper_snake("InvalidArgument"), "INVALID_ARGUMENT");
    }

    #[test]
    fn served_methods_keep_their_path_and_others_fold_into_unmatched() {
        for served in [
            "/licensefacade.v1.LicenseService/OrderLicense",
            "/licensefacade.v1.LicenseService/WatchLicenses",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(super::method_label(served), served);
        }
        for invented in [
            "/licensefacade.v1.LicenseService/Invented",
            "/no.Such/Service",
            "/",
            "",
        ] {
            assert_eq!(super::method_label(invented), "unmatched");
        }
    }
}
