use license_facade::api::pb::v1 as pb;
use serde_json::Value;

use crate::helpers::spawn_app;

const EXPECTED: [(&str, u32); 6] = [
    ("ISPmanager 6 Lite", 55227),
    ("ISPmanager 6 Pro", 55228),
    ("ISPmanager 6 Host", 55229),
    ("ISPmanager 6 Business", 55230),
    ("ISPmanager 6 Trial", 55239),
    ("ISPmanager 6 Business Trial", 55240),
];

#[tokio::test]
async fn rest_lists_the_six_ispmanager_tariffs_with_their_ids() {
    let app = spawn_app().await;

    let body: Value = app.get("/v1/panels").await.json().await.unwrap();

    let panels: Vec<(String, u64)> = body["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["tariffId"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = EXPECTED
        .iter()
        .map(|(n, id)| ((*n).to_owned(), u64::from(*id)))
        .collect();
    assert_eq!(panels, expected);
    assert_eq!(body["panels"][3]["supportsNodes"], true);
}

#[tokio::test]
async fn grpc_lists_the_same_panels() {
    let app = spawn_app().await;

    let panels = app
        .grpc()
        .await
        .list_panels(pb::ListPanelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .panels;

    let got: Vec<(&str, u32)> = panels
        .iter()
        .map(|p| (p.name.as_str(), p.tariff_id))
        .collect();
    assert_eq!(got, EXPECTED);
}
