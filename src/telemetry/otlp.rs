//! OpenTelemetry traces: the service's spans (each REST, gRPC and `/billmgr` request,
//! each workflow step, each upstream call) exported over OTLP/gRPC when an endpoint is
//! configured (`--otlp-endpoint`, `LICENSE_FACADE_OTLP_ENDPOINT`, else the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`). W3C `traceparent` is read from incoming calls and
//! sent on upstream calls; an order's workflow steps continue the trace of the request
//! that enqueued them (the `traceparent` is stored with the operation).
//!
//! Without an endpoint nothing of this runs: no layer is installed, and the helpers
//! here return at once on a flag ([`exporting`]).
//!
//! Spans are batched (`OTEL_BSP_SCHEDULE_DELAY`, default 5000 ms, and the other
//! standard `OTEL_BSP_*` variables apply) and the queue is exported at exit.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The layer that turns spans into OpenTelemetry spans.
pub type Layer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::SdkTracer,
>;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (a layer is installed).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

pub(super) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The OTLP endpoint: the flag or `LICENSE_FACADE_OTLP_ENDPOINT` (`flag`), else
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; none (tracing off) when neither is set or empty.
pub fn endpoint(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

/// The exporter and its provider; dropping it exports what is queued.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// A batching OTLP/gRPC exporter to `endpoint` (e.g. `http://collector:4317`).
    /// Must be called within the Tokio runtime (the gRPC channel lives there).
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("license-facade")
                    .build(),
            )
            .build();
        Ok(Self { provider })
    }

    /// The tracing layer exporting through this provider.
    pub fn layer(&self) -> Layer {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("license-facade"))
            // Only the spans; events stay log lines.
            .with_location(false)
            .with_threads(false)
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error.message = %e, "cannot export the last spans");
        }
    }
}

/// Makes `span` continue the trace of an incoming W3C `traceparent` (with its
/// `tracestate`); nothing when not exporting, absent or malformed.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !exporting() {
        return;
    }
    let Some(traceparent) = traceparent else {
        return;
    };
    struct Get<'a>(&'a str, Option<&'a str>);
    impl Extractor for Get<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => Some(self.0),
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    let context = TraceContextPropagator::new().extract(&Get(traceparent, tracestate));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Continues the trace of a stored `traceparent` (see [`traceparent`]).
pub fn continue_stored(span: &tracing::Span, traceparent: Option<&str>) {
    continue_trace(span, traceparent, None);
}

/// The W3C `traceparent` of the current span, to send on an upstream call or store
/// with enqueued work; `None` when not exporting.
pub fn traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    struct Put(Option<String>);
    impl Injector for Put {
        fn set(&mut self, key: &str, value: String) {
            if key == "traceparent" {
                self.0 = Some(value);
            }
        }
    }
    let mut put = Put(None);
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut put);
    put.0
}

/// The trace id of the span `id`, for the log line of an event in it; `None` when not
/// exporting.
pub(super) fn trace_id_of(id: &tracing::span::Id) -> Option<String> {
    if !exporting() {
        return None;
    }
    tracing::dispatcher::get_default(|dispatch| {
        let context = tracing_opentelemetry::get_otel_context(id, dispatch)?;
        let span = context.span();
        let span_context = span.span_context();
        span_context
            .is_valid()
            .then(|| span_context.trace_id().to_string())
    })
}
