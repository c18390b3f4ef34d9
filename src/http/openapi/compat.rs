//! The REST API's compatibility promise, checked: everything a client written against
//! the last released OpenAPI document (`docs/openapi.baseline.json`) relies on must still
//! hold in the current one. Additions pass; removals and changes of meaning fail.
//!
//! What breaks a client, and so fails:
//! - a path, an operation, a parameter, a response (status), a response header, a
//!   media type or a component schema removed;
//! - a schema property removed, or retyped (its `type` or `format` changed, or its
//!   `$ref` pointing at another schema);
//! - an enum value removed;
//! - a request made stricter: a parameter, a request body or a request field that was
//!   optional (or absent) now required;
//! - a response made looser: a field that every answer carried no longer required.
//!
//! The direction matters for types. A request schema may accept more types than before
//! (`integer` → `integer | null`), since what clients send is still accepted; a response
//! schema may send fewer, since what clients read still parses. A schema used by both
//! is held to both rules. The checker works on plain JSON, so it judges any two
//! OpenAPI 3 documents, not only this service's.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use serde_json::Value;

/// One broken promise: where, and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Where in the baseline document, e.g. `POST /v1/licenses request body` or
    /// `#/components/schemas/License.properties.id`.
    pub at: String,
    /// What changed, e.g. `property removed`.
    pub change: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.change)
    }
}

/// Who produces the values a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    /// The client sends them (request bodies, parameters).
    Request,
    /// The server sends them (response bodies, headers).
    Response,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every way `current` breaks a client of `baseline`; empty when it breaks none.
pub fn breaking_changes(baseline: &Value, current: &Value) -> Vec<Break> {
    let mut check = Check {
        baseline,
        current,
        breaks: Vec::new(),
        compared: HashSet::new(),
    };
    check.paths();
    check.component_schemas();
    // A schema used both ways is compared twice; a removal there is one break.
    let mut seen = HashSet::new();
    check
        .breaks
        .into_iter()
        .filter(|b| seen.insert(b.to_string()))
        .collect()
}

struct Check<'a> {
    baseline: &'a Value,
    current: &'a Value,
    breaks: Vec<Break>,
    /// Component schemas already compared, per direction (`None`: of unknown use).
    /// Schemas refer to each other (and may to themselves), and many operations share
    /// them.
    compared: HashSet<(String, Option<Direction>)>,
}

impl<'a> Check<'a> {
    fn broke(&mut self, at: impl Into<String>, change: impl Into<String>) {
        self.breaks.push(Break {
            at: at.into(),
            change: change.into(),
        });
    }

    fn paths(&mut self) {
        let baseline: &'a Value = self.baseline;
        let old_paths = entries(&baseline["paths"]);
        for (path, old_item) in old_paths {
            let current: &'a Value = self.current;
            let Some(new_item) = current["paths"].get(path) else {
                self.broke(path.as_str(), "path removed");
                continue;
            };
            for method in METHODS {
                let Some(old_op) = old_item.get(method) else {
                    continue;
                };
                let at = format!("{} {path}", method.to_uppercase());
                match new_item.get(method) {
                    None => self.broke(at, "operation removed"),
                    Some(new_op) => self.operation(&at, old_item, old_op, new_item, new_op),
                }
            }
        }
    }

    fn operation(
        &mut self,
        at: &str,
        old_item: &'a Value,
        old_op: &'a Value,
        new_item: &'a Value,
        new_op: &'a Value,
    ) {
        let old_params = parameters(self.baseline, old_item, old_op);
        let new_params = parameters(self.current, new_item, new_op);
        for &(key, old) in &old_params {
            let (place, name) = key;
            let param_at = format!("{at} {place} parameter {name}");
            let Some(&(_, new)) = new_params.iter().find(|(k, _)| *k == key) else {
                self.broke(param_at, "parameter removed");
                continue;
            };
            if is_true(&new["required"]) && !is_true(&old["required"]) {
                self.broke(param_at.clone(), "optional parameter made required");
            }
            self.schema(
                &param_at,
                &old["schema"],
                &new["schema"],
                Direction::Request,
            );
        }
        for &(key, new) in &new_params {
            let (place, name) = key;
            let known = old_params.iter().any(|(k, _)| *k == key);
            if !known && is_true(&new["required"]) {
                self.broke(
                    format!("{at} {place} parameter {name}"),
                    "required parameter added",
                );
            }
        }
        self.request_body(at, old_op, new_op);
        self.responses(at, old_op, new_op);
    }

    fn request_body(&mut self, at: &str, old_op: &'a Value, new_op: &'a Value) {
        let old = old_op.get("requestBody").map(|b| resolve(self.baseline, b));
        let new = new_op.get("requestBody").map(|b| resolve(self.current, b));
        let at = format!("{at} request body");
        match (old, new) {
            (None, Some(new)) if is_true(&new["required"]) => {
                self.broke(at, "required request body added");
            }
            (Some(_), None) => self.broke(at, "request body removed"),
            (Some(old), Some(new)) => {
                if is_true(&new["required"]) && !is_true(&old["required"]) {
                    self.broke(at.clone(), "optional request body made required");
                }
                self.content(&at, old, new, Direction::Request);
            }
            _ => {}
        }
    }

    fn responses(&mut self, at: &str, old_op: &'a Value, new_op: &'a Value) {
        let old_responses = entries(&old_op["responses"]);
        for (status, old) in old_responses {
            let response_at = format!("{at} response {status}");
            let Some(new) = new_op["responses"].get(status) else {
                self.broke(response_at, "response removed");
                continue;
            };
            let old = resolve(self.baseline, old);
            let new = resolve(self.current, new);
            self.content(&response_at, old, new, Direction::Response);
            let headers = entries(&old["headers"]);
            for (name, old_header) in headers {
                let header_at = format!("{response_at} header {name}");
                match new["headers"].get(name) {
                    None => self.broke(header_at, "response header removed"),
                    Some(new_header) => {
                        let old_header = resolve(self.baseline, old_header);
                        let new_header = resolve(self.current, new_header);
                        self.schema(
                            &header_at,
                            &old_header["schema"],
                            &new_header["schema"],
                            Direction::Response,
                        );
                    }
                }
            }
        }
    }

    /// The media types of a request body or a response.
    fn content(&mut self, at: &str, old: &'a Value, new: &'a Value, direction: Direction) {
        for (media, old_media) in entries(&old["content"]) {
            let media_at = format!("{at} {media}");
            match new["content"].get(media) {
                None => self.broke(media_at, "media type removed"),
                Some(new_media) => self.schema(
                    &media_at,
                    &old_media["schema"],
                    &new_media["schema"],
                    direction,
                ),
            }
        }
    }

    /// Component schemas: none may go, and those no operation reaches (so not
    /// compared on the way) still keep their properties, types and enum values.
    fn component_schemas(&mut self) {
        let baseline: &'a Value = self.baseline;
        let old_schemas = entries(&baseline["components"]["schemas"]);
        for (name, _) in old_schemas {
            if self.current["components"]["schemas"].get(name).is_none() {
                self.broke(format!("#/components/schemas/{name}"), "schema removed");
            } else {
                // Compared already if an operation reached it; else it is of unknown
                // use, held to the rules both directions share.
                self.component(name, None);
            }
        }
    }

    fn schema(&mut self, at: &str, old: &'a Value, new: &'a Value, direction: Direction) {
        self.compare(at, old, new, Some(direction));
    }

    /// Compares two schemas. `direction` is `None` for a schema of unknown use: then
    /// only the rules of both directions apply (removals, retyping, enum values).
    fn compare(&mut self, at: &str, old: &'a Value, new: &'a Value, direction: Option<Direction>) {
        if old.is_null() {
            return;
        }
        if new.is_null() {
            self.broke(at, "schema removed");
            return;
        }
        match (schema_ref(old), schema_ref(new)) {
            (Some(old_name), Some(new_name)) if old_name == new_name => {
                self.component(old_name, direction);
                return;
            }
            (Some(old_name), Some(new_name)) => {
                self.broke(at, format!("retyped: {old_name} → {new_name}"));
                return;
            }
            (Some(old_name), None) => {
                self.broke(at, format!("retyped: {old_name} → an inline schema"));
                return;
            }
            (None, Some(new_name)) => {
                self.broke(at, format!("retyped: an inline schema → {new_name}"));
                return;
            }
            (None, None) => {}
        }

        let old_types = types(old);
        let new_types = types(new);
        if !old_types.is_empty() && old_types != new_types {
            let kept = match direction {
                // Still accepts everything it accepted.
                Some(Direction::Request) => new_types.is_superset(&old_types),
                // Still sends only what clients could read.
                Some(Direction::Response) => {
                    !new_types.is_empty() && new_types.is_subset(&old_types)
                }
                // Either is fine for a schema of unknown use, as long as the
                // non-null types are the same.
                None => without_null(&old_types) == without_null(&new_types),
            };
            if !kept {
                self.broke(at, format!("retyped: type {old_types:?} → {new_types:?}"));
            }
        }
        if let Some(format) = old["format"].as_str()
            && new["format"].as_str() != Some(format)
        {
            let now = new["format"].as_str().unwrap_or("none");
            self.broke(at, format!("retyped: format {format} → {now}"));
        }

        if let Some(values) = old["enum"].as_array() {
            let now = new["enum"].as_array();
            for value in values {
                if now.is_some_and(|now| !now.contains(value)) {
                    self.broke(at, format!("enum value {value} removed"));
                }
            }
        }

        self.properties(at, old, new, direction);
        self.compare(
            &format!("{at}.items"),
            &old["items"],
            &new["items"],
            direction,
        );
        if old["additionalProperties"].is_object() {
            self.compare(
                &format!("{at}.additionalProperties"),
                &old["additionalProperties"],
                &new["additionalProperties"],
                direction,
            );
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            let Some(old_parts) = old[keyword].as_array() else {
                continue;
            };
            let new_parts = new[keyword].as_array();
            for (i, old_part) in old_parts.iter().enumerate() {
                let part_at = format!("{at}.{keyword}[{i}]");
                match new_parts.and_then(|parts| parts.get(i)) {
                    Some(new_part) => self.compare(&part_at, old_part, new_part, direction),
                    None => self.broke(part_at, "schema removed"),
                }
            }
        }
    }

    fn properties(
        &mut self,
        at: &str,
        old: &'a Value,
        new: &'a Value,
        direction: Option<Direction>,
    ) {
        let old_props = entries(&old["properties"]);
        for (name, old_prop) in old_props {
            let prop_at = format!("{at}.{name}");
            match new["properties"].get(name) {
                None => self.broke(prop_at, "property removed"),
                Some(new_prop) => self.compare(&prop_at, old_prop, new_prop, direction),
            }
        }
        let old_required = required(old);
        let new_required = required(new);
        if direction == Some(Direction::Request) {
            for name in new_required.difference(&old_required) {
                self.broke(format!("{at}.{name}"), "required field added to a request");
            }
        }
        if direction == Some(Direction::Response) {
            for name in old_required.difference(&new_required) {
                // A removed property is reported as such above.
                if new["properties"].get(*name).is_some() {
                    self.broke(
                        format!("{at}.{name}"),
                        "response field no longer always present",
                    );
                }
            }
        }
    }

    /// Compares a component schema once per direction.
    fn component(&mut self, name: &str, direction: Option<Direction>) {
        let at = format!("#/components/schemas/{name}");
        let (baseline, current): (&'a Value, &'a Value) = (self.baseline, self.current);
        let old = &baseline["components"]["schemas"][name];
        let new = &current["components"]["schemas"][name];
        if old.is_null() {
            return;
        }
        // Compared for a use already: the rules of unknown use are a subset.
        if direction.is_none() && self.compared.iter().any(|(n, _)| n == name) {
            return;
        }
        if !self.compared.insert((name.to_owned(), direction)) {
            return;
        }
        // A removed component is reported once, by `component_schemas`.
        if !new.is_null() {
            self.compare(&at, old, new, direction);
        }
    }
}

/// The parameters of an operation (path-level ones included, the operation's
/// overriding them), `$ref`s resolved, keyed by (`in`, name).
fn parameters<'a>(
    doc: &'a Value,
    item: &'a Value,
    op: &'a Value,
) -> Vec<((&'a str, &'a str), &'a Value)> {
    let mut out: Vec<((&str, &str), &Value)> = Vec::new();
    let listed = [&item["parameters"], &op["parameters"]];
    for list in listed {
        for param in list.as_array().into_iter().flatten() {
            let param = resolve(doc, param);
            let key = (
                param["in"].as_str().unwrap_or(""),
                param["name"].as_str().unwrap_or(""),
            );
            out.retain(|(k, _)| *k != key);
            out.push((key, param));
        }
    }
    out
}

/// `{"$ref": "#/components/<kind>/<name>"}` resolved within `doc`; anything else as is.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => value,
    }
}

/// The component name of a schema `$ref`.
fn schema_ref(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .map(|r| r.trim_start_matches("#/components/schemas/"))
}

/// `type` as a set (it may be one name or a list).
fn types(schema: &Value) -> BTreeSet<&str> {
    match &schema["type"] {
        Value::String(one) => BTreeSet::from([one.as_str()]),
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

fn without_null<'a>(types: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
    types.iter().copied().filter(|t| *t != "null").collect()
}

fn required(schema: &Value) -> BTreeSet<&str> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The members of an object; none for anything else.
fn entries(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    value.as_object().into_iter().flatten()
}

fn is_true(value: &Value) -> bool {
    value.as_bool() == Some(true)
}

#[cfg(test)]
mod tests;
