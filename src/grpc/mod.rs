//! The gRPC transport: `licensefacade.v1.LicenseService`, `grpc.health.v1.Health` and
//! server reflection (v1 and v1alpha).

mod auth;
pub(crate) mod codec;
mod content_type;
mod deadline;
mod error;
mod licenses;
mod observe;

pub use error::ERROR_DOMAIN;
pub use licenses::GrpcLicenses;

use tonic_health::server::HealthReporter;

use crate::api::pb::{self, v1::license_service_server::LicenseServiceServer};
use crate::service::LicenseService;

/// Largest request the gRPC server accepts.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The gRPC router with its observing layer (request id, span, metrics) and, inside
/// it, the deadline layer.
pub type Router = tonic::transport::server::Router<
    tower::layer::util::Stack<
        deadline::DeadlineLayer,
        tower::layer::util::Stack<
            content_type::GrpcOnlyLayer,
            tower::layer::util::Stack<
                observe::ObserveLayer,
                tower::layer::util::Stack<
                    crate::listener::TrackLayer,
                    tower::layer::util::Identity,
                >,
            >,
        >,
    >,
>;

/// The gRPC services on one router, and the reporter behind its health service
/// (flipped by readiness and shutdown; NOT_SERVING until told otherwise).
pub async fn router(
    service: LicenseService,
    auth: std::sync::Arc<crate::auth::Authenticator>,
    connections: &crate::listener::ConnectionLimits,
) -> anyhow::Result<(Router, HealthReporter)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    set_serving(&reporter, false).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let licenses = tower::Layer::layer(
        &auth::AuthLayer::new(auth),
        LicenseServiceServer::new(GrpcLicenses::new(service))
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    );
    let router = tonic::transport::Server::builder()
        // A call's own deadline (`grpc-timeout`) applies when shorter; waits are capped
        // at 60 s, so this only bounds a call that hangs.
        .timeout(std::time::Duration::from_secs(75))
        // Pings find a peer that is gone while its streams are quiet.
        .http2_keepalive_interval(Some(connections.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(connections.http2_keepalive_timeout))
        // Each call is a request in flight on its connection (listener.rs).
        .layer(crate::listener::TrackLayer)
        // Request id, span, access log and metrics for every call.
        .layer(observe::ObserveLayer)
        // Anything but gRPC is refused before a service reads it.
        .layer(content_type::GrpcOnlyLayer)
        // DEADLINE_EXCEEDED (not tonic's CANCELLED) for a call past its deadline.
        .layer(deadline::DeadlineLayer)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(licenses);
    Ok((router, reporter))
}

/// Marks the license service serving or not in the health service.
pub async fn set_serving(reporter: &HealthReporter, serving: bool) {
    if serving {
        reporter
            .set_serving::<LicenseServiceServer<GrpcLicenses>>()
            .await;
    } else {
        reporter
            .set_not_serving::<LicenseServiceServer<GrpcLicenses>>()
            .await;
    }
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    // The empty service name is the whole server's health.
    reporter.set_service_status("", status).await;
}
