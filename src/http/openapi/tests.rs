use super::*;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
const BASELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.baseline.json");

/// The breaking-change gate of the REST API: the spec keeps every promise of the last
/// released one. A deliberate break is a new API version beside this one
/// (docs/clients.md, "Versioning policy"); the baseline moves only at a release.
#[test]
fn the_spec_breaks_nothing_of_the_released_baseline() {
    let baseline: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(BASELINE).expect("docs/openapi.baseline.json is committed"),
    )
    .expect("the baseline is JSON");
    let current: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    let breaks = compat::breaking_changes(&baseline, &current);
    assert!(
        breaks.is_empty(),
        "the REST API breaks clients of the released one (docs/openapi.baseline.json):\n{}\n\
         Add instead of changing, or make the change in a new API version (docs/clients.md).",
        breaks
            .iter()
            .map(|b| format!("  {b}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// In proto3 JSON a reader takes a missing field as its default, so a request message
/// requires no field; and so a field added to a request message (proto additions are
/// allowed) adds no required field, which the gate would rightly refuse.
#[test]
fn request_messages_require_no_field_and_answers_may_gain_fields() {
    let value: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    let schemas = &value["components"]["schemas"];
    for request in [
        "OrderLicenseRequest",
        "Server",
        "AdoptLicenseRequest",
        "ReconcileRequest",
    ] {
        assert!(
            schemas[request].get("required").is_none(),
            "{request}: {}",
            schemas[request]
        );
    }
    assert!(
        schemas["QuoteLicenseResponse"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&serde_json::json!("price")))
    );
    // The service refuses unknown request fields; answers may gain fields in v1.
    assert_eq!(
        schemas["OrderLicenseRequest"]["additionalProperties"],
        false
    );
    assert!(schemas["License"].get("additionalProperties").is_none());
}

/// Every 64-bit integer of every message in the spec is a string (as the proto3 JSON
/// mapping writes it), every timestamp a `date-time` string.
#[test]
fn every_64_bit_integer_is_a_string_and_every_timestamp_a_date_time() {
    use prost::Message as _;
    use prost_types::field_descriptor_proto::{Label, Type};

    fn check(
        schemas: &serde_json::Value,
        prefix: &str,
        message: &prost_types::DescriptorProto,
        checked: &mut usize,
    ) {
        let name = format!("{prefix}{}", message.name());
        for nested in &message.nested_type {
            check(schemas, &format!("{name}."), nested, checked);
        }
        let Some(schema) = schemas.get(&name) else {
            return;
        };
        for field in &message.field {
            let mut property = &schema["properties"][field.json_name()];
            if field.label() == Label::Repeated {
                property = &property["items"];
            }
            let types = |p: &serde_json::Value| match &p["type"] {
                serde_json::Value::Array(list) => list.clone(),
                one => vec![one.clone()],
            };
            let wide = matches!(
                field.r#type(),
                Type::Int64 | Type::Uint64 | Type::Sint64 | Type::Fixed64 | Type::Sfixed64
            );
            if wide {
                assert!(
                    types(property).contains(&serde_json::json!("string")),
                    "{name}.{}: {property}",
                    field.json_name()
                );
                assert!(!types(property).contains(&serde_json::json!("integer")));
                *checked += 1;
            }
            if field.type_name() == ".google.protobuf.Timestamp" {
                assert_eq!(property["type"], "string", "{name}.{}", field.json_name());
                assert_eq!(
                    property["format"],
                    "date-time",
                    "{name}.{}",
                    field.json_name()
                );
                *checked += 1;
            }
        }
    }

    let value: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
    let set = prost_types::FileDescriptorSet::decode(crate::api::pb::FILE_DESCRIPTOR_SET).unwrap();
    let file = set
        .file
        .iter()
        .find(|f| f.package() == "licensefacade.v1")
        .unwrap();
    let mut checked = 0;
    for message in &file.message_type {
        check(&value["components"]["schemas"], "", message, &mut checked);
    }
    // LicenseEvent.id, AuditEntry.id and the timestamps of License, LicenseEvent,
    // DriftReport, OrphanLicense and AuditEntry at least.
    assert!(checked >= 10, "only {checked} fields checked");
}

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
