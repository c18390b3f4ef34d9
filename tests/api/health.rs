use serde_json::Value;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_while_the_process_runs() {
    let app = spawn_app().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_reports_store_and_upstream() {
    let app = spawn_app().await;

    // The first upstream probe runs at start-up; wait for it without sleeping blind.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let body: Value = loop {
        let response = app.get("/readyz").await;
        if response.status() == 200 {
            break response.json().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    assert_eq!(body["store"], true);
    assert_eq!(body["upstream"], true);
}

#[tokio::test]
async fn grpc_health_reports_the_license_service_serving() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: "licensefacade.v1.LicenseService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == ServingStatus::Serving {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never serving");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
