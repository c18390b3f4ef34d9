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

#[tokio::test]
async fn a_failing_price_list_export_fails_quotes_but_neither_readiness_nor_orders() {
    let app = spawn_app().await;
    app.sandbox
        .set_faults(vec!["pricelist.export:error5xx:1.0".parse().unwrap()]);
    // Wait for the first probe to have run (it asks for the price list once).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.sandbox.call_count("pricelist.export") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no probe");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // More failed exports than the breaker's threshold.
    for _ in 0..8 {
        let quote = app.get("/v1/panels/ISPmanager%206%20Pro/quote").await;
        assert_eq!(quote.status(), 503);
    }
    let ready = app.get("/readyz").await;
    let license = app
        .order_and_wait(&serde_json::json!({
            "server": {"id": "srv-export", "ip": "203.0.113.240"},
            "panel": "ISPmanager 6 Pro",
        }))
        .await;

    assert_eq!(ready.status(), 200);
    assert_eq!(license["state"], "ACTIVE", "{license}");
}

#[tokio::test]
async fn grpc_reflection_lists_the_license_service_on_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("not a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "licensefacade.v1.LicenseService")
    );

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = alpha
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.message().await.unwrap().is_some());
}
