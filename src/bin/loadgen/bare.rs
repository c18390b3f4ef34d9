//! The limit of the read path: a bare axum handler and a bare tonic unary handler,
//! run by `loadgen bare-server` in a child process of its own (like the service), each
//! answering every call with the same canned license the service returns: the REST
//! body as bytes, the gRPC message as a clone. No state, no middleware, no store.
//! Optionally each answer first burns a fixed CPU time (`--work-us`), which tells what
//! a given cost per request does to the requests per second on the same machine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::routing::get;
use license_facade::api::pb::v1 as pb;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{BoxFuture, http};
use tonic::server::{NamedService, UnaryService};

/// Serves both until killed.
pub async fn serve(
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    json: String,
    work: Duration,
) -> anyhow::Result<()> {
    let license: pb::License = serde_json::from_str(&json)?;
    let body = axum::body::Bytes::from(json);
    let router = axum::Router::new().route(
        "/v1/licenses/{id}",
        get(move || {
            let body = body.clone();
            burn(work);
            async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let http = tokio::net::TcpListener::bind(http_addr).await?;
    let grpc = tokio::net::TcpListener::bind(grpc_addr).await?;
    let svc = BareGrpc {
        answer: Arc::new(pb::GetLicenseResponse {
            license: Some(license),
        }),
        work,
    };
    let grpc_server = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming(TcpListenerStream::new(grpc));
    tokio::try_join!(
        async { axum::serve(http, router).await.map_err(anyhow::Error::from) },
        async { grpc_server.await.map_err(anyhow::Error::from) },
    )?;
    Ok(())
}

/// Spins for `work` on this thread (nothing at zero). A spin, not a sleep: the point
/// is CPU that the client's threads then lack, as a real handler's work would take it.
fn burn(work: Duration) {
    if work.is_zero() {
        return;
    }
    let started = Instant::now();
    while started.elapsed() < work {
        std::hint::spin_loop();
    }
}

/// Answers any unary call of the license service with the canned `GetLicense` answer.
#[derive(Clone)]
struct BareGrpc {
    answer: Arc<pb::GetLicenseResponse>,
    work: Duration,
}

impl NamedService for BareGrpc {
    const NAME: &'static str = "licensefacade.v1.LicenseService";
}

struct Echo(Arc<pb::GetLicenseResponse>);

impl UnaryService<pb::GetLicenseRequest> for Echo {
    type Response = pb::GetLicenseResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<pb::GetLicenseRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new((*self.0).clone())))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for BareGrpc {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let answer = self.answer.clone();
        burn(self.work);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Echo(answer), req).await)
        })
    }
}
