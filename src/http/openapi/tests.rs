use super::*;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

/// The served spec is the committed `docs/openapi.json`. After an intended API change,
/// regenerate it with `LICENSE_FACADE_UPDATE_OPENAPI=1 cargo test --lib openapi`
/// (or `license-facade print-openapi > docs/openapi.json`) and review the diff.
#[test]
fn the_spec_matches_the_committed_snapshot() {
    let current = spec_json();
    if std::env::var_os("LICENSE_FACADE_UPDATE_OPENAPI").is_some() {
        std::fs::write(SNAPSHOT, current).expect("the snapshot is writable");
        return;
    }
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        committed == current,
        "docs/openapi.json is out of date: run LICENSE_FACADE_UPDATE_OPENAPI=1 cargo test --lib \
         openapi and review the diff"
    );
}

#[test]
fn the_spec_is_openapi_3_1_and_every_reference_resolves() {
    let value: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    assert_eq!(value["openapi"], "3.1.0");
    let mut refs = Vec::new();
    collect_refs(&value, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference.trim_start_matches('#');
        assert!(
            value.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
}

fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_operation_is_described_by_its_rpc_or_a_summary_and_ids_are_unique() {
    let value: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    let mut ids = std::collections::HashSet::new();
    for op in operations() {
        assert!(ids.insert(op.id), "duplicate operationId {}", op.id);
        let described = &value["paths"][op.path][op.method];
        assert_eq!(described["operationId"], op.id);
    }
    let order = &value["paths"]["/v1/licenses"]["post"];
    assert!(
        order["description"]
            .as_str()
            .is_some_and(|d| d.contains("Idempotent by nature")),
        "the OrderLicense proto comment describes the operation"
    );
}

#[test]
fn license_fields_follow_the_proto3_json_mapping() {
    let value: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    let license = &value["components"]["schemas"]["License"];
    let required: Vec<&str> = license["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"serverId"));
    assert!(!required.contains(&"nodes"), "proto3 optional");
    assert!(!required.contains(&"expireTime"), "message field");
    assert_eq!(license["properties"]["expireTime"]["format"], "date-time");
    assert_eq!(
        license["properties"]["state"]["$ref"],
        "#/components/schemas/License.State"
    );
    let event = &value["components"]["schemas"]["LicenseEvent"];
    assert_eq!(
        event["properties"]["id"]["type"], "string",
        "int64 is a string"
    );
}

#[test]
fn an_order_documents_each_answer_of_a_waiting_call_with_its_location() {
    let value: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    let order = &value["paths"]["/v1/licenses"]["post"];
    let described = |status: &str| {
        let answer = &order["responses"][status];
        assert!(
            answer["headers"]["Location"].is_object(),
            "{status} names the license: {answer}"
        );
        answer["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(described("201").contains("`ACTIVE` with its key within the wait"));
    assert!(described("202").contains("still running when the wait ran out"));
    assert!(described("200").contains("`FAILED`"));
    let wait = order["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wait")
        .expect("a wait parameter");
    assert_eq!(wait["in"], "query");
}
