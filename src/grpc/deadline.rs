//! Deadlines: a call still running when its `grpc-timeout` runs out answers
//! `DEADLINE_EXCEEDED`, as the gRPC spec says. tonic's server enforces the header too,
//! outside every layer of ours, and answers `CANCELLED` (which tells a caller the
//! call was cancelled, not that it was too slow); this layer ends the call a little
//! earlier, so the caller sees the right code, and the metrics layer around it counts
//! it. Work a call had handed over (an accepted order) goes on in the worker.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;

/// How much earlier than tonic's own deadline this layer answers: a tenth of the
/// deadline, at most this.
const MARGIN: Duration = Duration::from_millis(20);

/// Adds [`Deadline`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

/// A service whose calls end with `DEADLINE_EXCEEDED` at their deadline.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let budget = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|d| d.saturating_sub(MARGIN.min(d / 10)));
        // The end is fixed now, when tonic's own timer starts too, not at the first
        // poll: on a busy runtime that poll can come later than the margin, and
        // tonic's CANCELLED would then win.
        let end = budget.map(|b| tokio::time::Instant::now() + b);
        let future = self.inner.call(request);
        Box::pin(async move {
            let Some(end) = end else {
                return future.await;
            };
            match tokio::time::timeout_at(end, future).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(
                    "the call's deadline passed before it finished",
                )
                .into_http()),
            }
        })
    }
}

/// A `grpc-timeout` value (e.g. `5S`, `200m`): digits and one unit letter.
pub(super) fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    let (value, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let value: u64 = value.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_in_every_unit_and_nonsense_is_ignored() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("200m"), Some(Duration::from_millis(200)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(parse_grpc_timeout("5"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }
}
