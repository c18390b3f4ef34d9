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
