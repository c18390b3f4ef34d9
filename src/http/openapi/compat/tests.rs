use serde_json::{Value, json};

use super::breaking_changes;

/// A small document: one operation that takes `Order` and answers `License` (with a
/// `State` enum), plus a shared `Server` used both ways.
fn baseline() -> Value {
    json!({
        "openapi": "3.1.0",
        "paths": {
            "/v1/licenses": {
                "post": {
                    "operationId": "OrderLicense",
                    "parameters": [
                        {"name": "wait", "in": "query", "required": false, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}
                    },
                    "responses": {
                        "201": {
                            "description": "Ordered",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/License"}}}
                        },
                        "404": {"$ref": "#/components/responses/Error404"}
                    }
                },
                "get": {
                    "operationId": "ListLicenses",
                    "responses": {"200": {"description": "OK"}}
                }
            }
        },
        "components": {
            "responses": {
                "Error404": {
                    "description": "Not found",
                    "content": {"application/problem+json": {"schema": {"type": "object"}}}
                }
            },
            "schemas": {
                "Order": {
                    "type": "object",
                    "required": ["panel"],
                    "properties": {
                        "panel": {"type": "string"},
                        "nodes": {"type": ["integer", "null"], "format": "int64"},
                        "server": {"$ref": "#/components/schemas/Server"}
                    }
                },
                "License": {
                    "type": "object",
                    "required": ["id", "state"],
                    "properties": {
                        "id": {"type": "string"},
                        "eventId": {"type": "string", "format": "int64"},
                        "state": {"$ref": "#/components/schemas/State"},
                        "server": {"$ref": "#/components/schemas/Server"},
                        "tags": {"type": "array", "items": {"type": "string"}}
                    }
                },
                "State": {"type": "string", "enum": ["PENDING", "ACTIVE"]},
                "Server": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "ip": {"type": "string"}}
                },
                "Unused": {"type": "object", "properties": {"x": {"type": "integer"}}}
            }
        }
    })
}

/// The breaks of `baseline()` changed by `edit`, as text.
fn breaks(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut current = baseline();
    edit(&mut current);
    breaking_changes(&baseline(), &current)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn at<'a>(doc: &'a mut Value, pointer: &str) -> &'a mut Value {
    doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is in the test document"))
}

fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    // JSON Pointer escapes: `~1` is `/`, `~0` is `~`.
    let key = key.replace("~1", "/").replace("~0", "~");
    let key = key.as_str();
    let removed = match at(doc, parent) {
        Value::Object(map) => map.remove(key),
        Value::Array(items) => Some(items.remove(key.parse().unwrap())),
        _ => None,
    };
    assert!(removed.is_some(), "{pointer} was there to remove");
}

fn assert_breaks(found: Vec<String>, expected: &str) {
    assert!(
        found.iter().any(|b| b == expected),
        "expected the break `{expected}`, found {found:#?}"
    );
}

#[test]
fn the_same_document_breaks_nothing() {
    assert_eq!(breaks(|_| {}), Vec::<String>::new());
}

#[test]
fn additions_pass() {
    let found = breaks(|doc| {
        // A new path, a new operation, an optional parameter, a new response status,
        // an optional request field, a response field, an enum value, a schema.
        at(doc, "/paths").as_object_mut().unwrap().insert(
            "/v1/panels".into(),
            json!({"get": {"responses": {"200": {"description": "OK"}}}}),
        );
        at(doc, "/paths/~1v1~1licenses")
            .as_object_mut()
            .unwrap()
            .insert(
                "delete".into(),
                json!({"responses": {"200": {"description": "OK"}}}),
            );
        at(doc, "/paths/~1v1~1licenses/post/parameters")
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "dryRun", "in": "query", "required": false, "schema": {"type": "boolean"}}));
        at(doc, "/paths/~1v1~1licenses/post/responses")
            .as_object_mut()
            .unwrap()
            .insert("409".into(), json!({"description": "Conflict"}));
        at(doc, "/components/schemas/Order/properties")
            .as_object_mut()
            .unwrap()
            .insert("trial".into(), json!({"type": "boolean"}));
        at(doc, "/components/schemas/License/properties")
            .as_object_mut()
            .unwrap()
            .insert(
                "expireTime".into(),
                json!({"type": "string", "format": "date-time"}),
            );
        at(doc, "/components/schemas/License/required")
            .as_array_mut()
            .unwrap()
            .push(json!("expireTime"));
        at(doc, "/components/schemas/State/enum")
            .as_array_mut()
            .unwrap()
            .push(json!("FAILED"));
        at(doc, "/components/schemas")
            .as_object_mut()
            .unwrap()
            .insert("Panel".into(), json!({"type": "object"}));
        // A request field may accept more than before.
        *at(doc, "/components/schemas/Order/properties/panel/type") = json!(["string", "null"]);
    });
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn a_removed_path_or_operation_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/paths/~1v1~1licenses")),
        "/v1/licenses: path removed",
    );
    assert_breaks(
        breaks(|doc| remove(doc, "/paths/~1v1~1licenses/get")),
        "GET /v1/licenses: operation removed",
    );
}

#[test]
fn a_removed_or_newly_required_parameter_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/paths/~1v1~1licenses/post/parameters/0")),
        "POST /v1/licenses query parameter wait: parameter removed",
    );
    assert_breaks(
        breaks(|doc| *at(doc, "/paths/~1v1~1licenses/post/parameters/0/required") = json!(true)),
        "POST /v1/licenses query parameter wait: optional parameter made required",
    );
    assert_breaks(
        breaks(|doc| {
            at(doc, "/paths/~1v1~1licenses/post/parameters")
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "X-Tenant", "in": "header", "required": true, "schema": {"type": "string"}}));
        }),
        "POST /v1/licenses header parameter X-Tenant: required parameter added",
    );
    assert_breaks(
        breaks(|doc| {
            *at(doc, "/paths/~1v1~1licenses/post/parameters/0/schema/type") = json!("integer")
        }),
        "POST /v1/licenses query parameter wait: retyped: type {\"string\"} → {\"integer\"}",
    );
}

#[test]
fn a_removed_response_header_or_media_type_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/paths/~1v1~1licenses/post/responses/404")),
        "POST /v1/licenses response 404: response removed",
    );
    assert_breaks(
        breaks(|doc| {
            remove(
                doc,
                "/paths/~1v1~1licenses/post/responses/201/headers/Location",
            )
        }),
        "POST /v1/licenses response 201 header Location: response header removed",
    );
    assert_breaks(
        breaks(|doc| {
            remove(
                doc,
                "/components/responses/Error404/content/application~1problem+json",
            )
        }),
        "POST /v1/licenses response 404 application/problem+json: media type removed",
    );
}

#[test]
fn a_removed_or_retyped_property_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/components/schemas/License/properties/id")),
        "#/components/schemas/License.id: property removed",
    );
    assert_breaks(
        breaks(|doc| {
            *at(doc, "/components/schemas/License/properties/eventId/type") = json!("integer")
        }),
        "#/components/schemas/License.eventId: retyped: type {\"string\"} → {\"integer\"}",
    );
    assert_breaks(
        breaks(|doc| {
            *at(doc, "/components/schemas/Order/properties/nodes/format") = json!("int32")
        }),
        "#/components/schemas/Order.nodes: retyped: format int64 → int32",
    );
    assert_breaks(
        breaks(|doc| {
            *at(doc, "/components/schemas/License/properties/state") =
                json!({"$ref": "#/components/schemas/Server"})
        }),
        "#/components/schemas/License.state: retyped: State → Server",
    );
    assert_breaks(
        breaks(|doc| {
            *at(
                doc,
                "/components/schemas/License/properties/tags/items/type",
            ) = json!("integer")
        }),
        "#/components/schemas/License.tags.items: retyped: type {\"string\"} → {\"integer\"}",
    );
    // A response may not start sending null where clients expect a string.
    assert_breaks(
        breaks(|doc| {
            *at(doc, "/components/schemas/License/properties/id/type") = json!(["string", "null"])
        }),
        "#/components/schemas/License.id: retyped: type {\"string\"} → {\"null\", \"string\"}",
    );
    // A schema used both ways keeps its fields for both.
    assert_breaks(
        breaks(|doc| remove(doc, "/components/schemas/Server/properties/ip")),
        "#/components/schemas/Server.ip: property removed",
    );
    // Also one that no operation refers to.
    assert_breaks(
        breaks(|doc| remove(doc, "/components/schemas/Unused/properties/x")),
        "#/components/schemas/Unused.x: property removed",
    );
}

#[test]
fn a_removed_schema_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/components/schemas/Unused")),
        "#/components/schemas/Unused: schema removed",
    );
}

#[test]
fn a_required_field_added_to_a_request_fails() {
    // An existing optional field made required.
    assert_breaks(
        breaks(|doc| {
            at(doc, "/components/schemas/Order/required")
                .as_array_mut()
                .unwrap()
                .push(json!("nodes"))
        }),
        "#/components/schemas/Order.nodes: required field added to a request",
    );
    // A new field, required.
    assert_breaks(
        breaks(|doc| {
            at(doc, "/components/schemas/Order/properties")
                .as_object_mut()
                .unwrap()
                .insert("account".into(), json!({"type": "string"}));
            at(doc, "/components/schemas/Order/required")
                .as_array_mut()
                .unwrap()
                .push(json!("account"));
        }),
        "#/components/schemas/Order.account: required field added to a request",
    );
    // Through a shared schema too.
    assert_breaks(
        breaks(|doc| {
            at(doc, "/components/schemas/Server")
                .as_object_mut()
                .unwrap()
                .insert("required".into(), json!(["ip"]));
        }),
        "#/components/schemas/Server.ip: required field added to a request",
    );
    // A body that was optional made required.
    assert_breaks(
        breaks(|doc| {
            at(doc, "/paths/~1v1~1licenses/get")
                .as_object_mut()
                .unwrap()
                .insert(
                    "requestBody".into(),
                    json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}}),
                );
        }),
        "GET /v1/licenses request body: required request body added",
    );
}

#[test]
fn a_response_field_that_is_no_longer_always_sent_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/components/schemas/License/required/0")),
        "#/components/schemas/License.id: response field no longer always present",
    );
}

#[test]
fn a_removed_enum_value_fails() {
    assert_breaks(
        breaks(|doc| remove(doc, "/components/schemas/State/enum/0")),
        "#/components/schemas/State: enum value \"PENDING\" removed",
    );
}

#[test]
fn a_schema_that_refers_to_itself_is_compared_once() {
    let recursive = |doc: &mut Value| {
        at(doc, "/components/schemas/Unused/properties")
            .as_object_mut()
            .unwrap()
            .insert(
                "next".into(),
                json!({"$ref": "#/components/schemas/Unused"}),
            );
    };
    let mut old = baseline();
    recursive(&mut old);
    let mut new = baseline();
    recursive(&mut new);
    remove(&mut new, "/components/schemas/Unused/properties/x");
    let found: Vec<String> = breaking_changes(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, ["#/components/schemas/Unused.x: property removed"]);
}
