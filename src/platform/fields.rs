//! Reading the loosely-typed fields of platform answers: a field may be a string, a
//! number, an object with a `name` or `ip`, or a list of those, depending on the
//! platform version (the shapes are inferred, platforms.md §2–3).

use std::net::Ipv4Addr;

use serde_json::Value;

/// A text field: a string, a number, or an object's `name`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => o.get("name").map(text).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The IPv4 addresses of a field: a list of strings or of objects with `ip` (or
/// `name`, or `addr`), or a single string. Anything that is not an IPv4 address
/// (an IPv6 address, a range) is skipped.
pub fn ipv4_list(v: &Value) -> Vec<Ipv4Addr> {
    let one = |v: &Value| -> Option<Ipv4Addr> {
        let text = match v {
            Value::String(s) => s.as_str(),
            Value::Object(o) => ["ip", "addr", "name"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))?,
            _ => return None,
        };
        text.trim().parse().ok()
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// The tags of a field: a list of strings or of objects with `name`, or a
/// comma-separated string.
pub fn tags(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).filter(|t| !t.is_empty()).collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_are_read_from_every_known_shape() {
        let want = vec![
            Ipv4Addr::new(203, 0, 113, 5),
            Ipv4Addr::new(198, 51, 100, 7),
        ];
        assert_eq!(
            ipv4_list(&json!([{"id": 1, "ip": "203.0.113.5"}, {"ip": "198.51.100.7"}])),
            want
        );
        assert_eq!(
            ipv4_list(&json!(["203.0.113.5", "2001:db8::1", "198.51.100.7"])),
            want
        );
        assert_eq!(ipv4_list(&json!("203.0.113.5")), want[..1]);
        assert!(ipv4_list(&json!(null)).is_empty());
    }

    #[test]
    fn tags_and_texts_accept_strings_objects_and_lists() {
        assert_eq!(tags(&json!(["a", {"name": "b"}])), ["a", "b"]);
        assert_eq!(tags(&json!("a, b")), ["a", "b"]);
        assert_eq!(
            text(&json!({"id": 3, "name": "AlmaLinux 9"})),
            "AlmaLinux 9"
        );
        assert_eq!(text(&json!(7)), "7");
    }
}
