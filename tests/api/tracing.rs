//! OpenTelemetry traces: the real binary exports to an OTLP/gRPC collector run by the
//! test; one REST order that comes with a `traceparent` is one trace, from the request
//! down to the upstream `soft.order.param` call (placed later by the worker), and the
//! upstream receives the same trace id.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::mpsc;

use crate::support::{DEADLINE, Order, Service, ServiceDir, TOKEN, sandbox_config, start_sandbox};

/// Receives spans and hands them to the test.
struct Collector(mpsc::UnboundedSender<Span>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let _ = self.0.send(span);
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A collector on a free port: its URL and the spans it receives.
async fn start_collector() -> (String, mpsc::UnboundedReceiver<Span>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(sender)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (url, receiver)
}

#[tokio::test]
async fn one_order_is_one_trace_from_the_rest_request_to_the_upstream_call() {
    // Arrange
    let (collector, mut spans) = start_collector().await;
    let sandbox = start_sandbox(sandbox_config()).await;
    let dir = ServiceDir::new();
    let mut service = Service::start(
        dir.path(),
        "traced",
        &dir.database_url(),
        &sandbox.url,
        &["--otlp-endpoint", &collector],
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");

    // Act: an order that waits for its license, so that the worker's upstream call
    // is made before the answer; then a stop, which exports what is queued.
    let response = crate::support::http_client()
        .build()
        .unwrap()
        .post(format!("{}/v1/licenses?wait=20s", service.api.base))
        .bearer_auth(TOKEN)
        .header("traceparent", &traceparent)
        .json(&Order::new(1).body())
        .send()
        .await
        .unwrap();
    let status = response.status();
    // A gRPC call with its own trace, in metadata.
    let grpc_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut grpc = license_facade::api::pb::v1::license_service_client::LicenseServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", service.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut list = tonic::Request::new(license_facade::api::pb::v1::ListLicensesRequest::default());
    list.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    list.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    let listed = grpc.list_licenses(list).await;
    service.terminate();
    let exit = service.wait_exit(DEADLINE).await;
    service.read_to_end();

    // Assert
    assert!(status.is_success(), "{status}");
    assert!(exit.success(), "{exit:?}");
    let wanted = hex::decode(trace_id).unwrap();
    let caller = hex::decode("00f067aa0ba902b7").unwrap();
    let mut trace: HashMap<Vec<u8>, Span> = HashMap::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // Spans arrive as they end, children first: read until the chain from the upstream
    // call reaches the caller's span.
    let chain = loop {
        if let Some(chain) = chain_from(&trace, "soft.order.param")
            && chain.last().is_some_and(|s| s.parent_span_id == caller)
        {
            break chain;
        }
        let span = tokio::time::timeout_at(deadline, spans.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the whole chain in time; have {:?}",
                    chain_from(&trace, "soft.order.param")
                        .map(|c| c.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
                )
            })
            .expect("the collector runs");
        if span.trace_id == wanted {
            trace.insert(span.span_id.clone(), span);
        }
    };
    let chain: Vec<String> = chain.iter().map(|s| s.name.clone()).collect();
    let rpc_wanted = hex::decode(grpc_trace).unwrap();
    let rpc = loop {
        if let Some(span) = trace.values().find(|s| s.trace_id == rpc_wanted) {
            break span.clone();
        }
        let span = tokio::time::timeout_at(deadline, spans.recv())
            .await
            .expect("the gRPC call's span in time")
            .expect("the collector runs");
        if span.trace_id == rpc_wanted {
            trace.insert(span.span_id.clone(), span);
        }
    };
    assert_eq!(
        chain.last().map(String::as_str),
        Some("request"),
        "the upstream call descends from the REST request: {chain:?}"
    );
    assert!(
        chain.iter().any(|n| n == "operation"),
        "a workflow step between: {chain:?}"
    );
    assert!(listed.is_ok(), "{listed:?}");
    assert_eq!(
        rpc.name, "rpc",
        "the gRPC call continues its caller's trace"
    );
    assert_eq!(hex::encode(&rpc.parent_span_id), "b7ad6b7169203331");
    let sent = sandbox.handle.traceparents("soft.order.param");
    assert!(
        sent.iter().any(|t| t.contains(trace_id)),
        "the upstream received the trace: {sent:?}"
    );
    // The log lines of the request carry its trace id.
    let logged = service.logged("request finished");
    assert!(
        logged.iter().any(|l| l["trace_id"] == trace_id),
        "{logged:?}"
    );
}

/// The spans from the one named `name` up through its parents, as far as they have
/// arrived.
fn chain_from<'a>(trace: &'a HashMap<Vec<u8>, Span>, name: &str) -> Option<Vec<&'a Span>> {
    let mut span = trace.values().find(|s| s.name == name)?;
    let mut chain = vec![span];
    while let Some(parent) = trace.get(&span.parent_span_id) {
        chain.push(parent);
        span = parent;
    }
    Some(chain)
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_sent_upstream_and_no_line_has_a_trace_id() {
    // Arrange
    let sandbox = start_sandbox(sandbox_config()).await;
    let dir = ServiceDir::new();
    let mut service = Service::start(
        dir.path(),
        "untraced",
        &dir.database_url(),
        &sandbox.url,
        &[],
    );

    // Act
    let response = crate::support::http_client()
        .build()
        .unwrap()
        .post(format!("{}/v1/licenses?wait=20s", service.api.base))
        .bearer_auth(TOKEN)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&Order::new(2).body())
        .send()
        .await
        .unwrap();

    let status = response.status();
    // Its log lines are all written out once it has stopped.
    service.terminate();
    let exit = service.wait_exit(DEADLINE).await;
    service.read_to_end();

    // Assert
    assert!(status.is_success(), "{status}");
    assert!(exit.success(), "{exit:?}");
    assert!(sandbox.handle.traceparents("soft.order.param").is_empty());
    let logged = service.logged("request finished");
    assert!(!logged.is_empty());
    assert!(
        logged.iter().all(|l| l.get("trace_id").is_none()),
        "{logged:?}"
    );
}
