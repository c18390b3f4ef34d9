//! Transport-level refusals are problem+json like every other error.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn unknown_paths_are_a_problem_json_404() {
    let app = spawn_app().await;

    let response = app.get("/v2/nothing").await;

    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "NOT_FOUND");
    assert_eq!(problem["status"], 404);
}

#[tokio::test]
async fn an_unknown_license_id_is_a_404_with_a_stable_code() {
    let app = spawn_app().await;

    for path in [
        "/v1/licenses/0190aaaa-0000-7000-8000-000000000000",
        "/v1/licenses/not-an-id",
        "/v1/servers/nobody/license",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "LICENSE_NOT_FOUND", "{path}");
    }
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_are_a_400() {
    let app = spawn_app().await;

    let malformed = app
        .client
        .post(format!("{}/v1/licenses", app.http))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let unknown_field = app
        .post_json("/v1/licenses", &serde_json::json!({"server": {"id": "s", "ip": "203.0.113.1"}, "panel": "ISPmanager 6 Pro", "periodMonth": 12}))
        .await;

    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["code"],
        "MALFORMED_JSON"
    );
    assert_eq!(unknown_field.status(), 400);
    assert_eq!(app.sandbox.call_count("soft.order.param"), 0);
}

#[tokio::test]
async fn a_wrong_method_is_a_problem_json_405() {
    let app = spawn_app().await;

    let response = app
        .client
        .delete(format!("{}/v1/panels", app.http))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

/// A message whose field 1 is bytes: sent where a string is expected, invalid UTF-8
/// makes a body that does not decode.
#[derive(Clone, PartialEq, prost::Message)]
struct RawField {
    #[prost(bytes = "vec", tag = "1")]
    data: Vec<u8>,
}

#[tokio::test]
async fn a_malformed_protobuf_body_is_invalid_argument_not_internal() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(RawField {
        data: vec![0xff, 0xfe, 0xfd],
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", license_facade::auth::SANDBOX_TOKEN)
            .parse()
            .unwrap(),
    );

    let status = grpc
        .unary::<_, RawField, _>(
            request,
            "/licensefacade.v1.LicenseService/GetLicense"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();

    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(crate::helpers::reason(&status), "MALFORMED_PROTOBUF");
}

#[tokio::test]
async fn the_grpc_port_refuses_a_content_type_that_is_not_grpc() {
    let app = spawn_app().await;
    let h2 = crate::support::http_client()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let response = h2
        .post(format!(
            "http://{}/licensefacade.v1.LicenseService/ListPanels",
            app.grpc_addr
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 415);
    assert_eq!(app.sandbox.call_count("pricelist.export"), 0);
}
