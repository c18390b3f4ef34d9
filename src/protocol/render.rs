//! Rendering a [`Doc`] the way BILLmanager does for `out=xml`, `out=json` and `out=sjson`.
//!
//! JSON is the XML converted 1:1: element text under `"$"`, attributes as `"$name"`,
//! repeated elements as arrays. `json` collapses a single `elem` to an object and omits
//! it when the list is empty; `sjson` always makes `elem` an array.
//!
//! `bjson` (the form Upmind's client reads, billmanager-api.md §3.1) is flatter: every
//! text element is `{"v": text}` (so a new id is `doc.id.v`), the flat fields of a
//! form are repeated under `model` as plain strings, list rows are `elem[]` of such
//! objects, and an error is `error` with `type`, `object` and `msg` as strings.

use serde_json::{Map, Value};

use super::{Doc, Node};

/// The `out` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Xml,
    Json,
    Sjson,
    Bjson,
}

impl Format {
    /// Reads `out`; anything unknown (`devel`, `text`, …) falls back to XML.
    pub(crate) fn from_out(out: Option<&str>) -> Self {
        match out.map(str::trim) {
            Some("json") => Self::Json,
            Some("sjson") => Self::Sjson,
            Some("bjson") => Self::Bjson,
            _ => Self::Xml,
        }
    }

    /// The `Content-Type` BILLmanager sends for this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Xml => "text/xml; charset=UTF-8",
            Self::Json | Self::Sjson | Self::Bjson => "application/json; charset=UTF-8",
        }
    }
}

/// Renders `doc`; `single_elem_as_array` applies to `out=json` only.
pub(crate) fn render(doc: &Doc, format: Format, single_elem_as_array: bool) -> String {
    match format {
        Format::Xml => to_xml(doc),
        Format::Json => to_json(doc, single_elem_as_array, false),
        Format::Sjson => to_json(doc, true, true),
        Format::Bjson => to_bjson(doc),
    }
}

/// Envelope elements that `bjson` leaves out: they describe the request, not the
/// answer.
const ENVELOPE: [&str; 2] = ["tparams", "saved_filters"];

fn to_bjson(doc: &Doc) -> String {
    let mut map = Map::new();
    let mut model = Map::new();
    for child in doc
        .root
        .children
        .iter()
        .filter(|c| !ENVELOPE.contains(&c.name.as_str()))
    {
        if child.name == "error" {
            map.insert("error".into(), bjson_error(child));
            continue;
        }
        if child.children.is_empty() && child.name != "elem" {
            model.insert(child.name.clone(), Value::String(child.text.clone()));
        }
        let value = bjson_node(child);
        match map.get_mut(&child.name) {
            Some(Value::Array(items)) => items.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None if child.name == "elem" => {
                map.insert(child.name.clone(), Value::Array(vec![value]));
            }
            None => {
                map.insert(child.name.clone(), value);
            }
        }
    }
    if doc.list {
        map.entry("elem")
            .or_insert_with(|| Value::Array(Vec::new()));
    } else if !map.contains_key("error") {
        map.insert("model".into(), Value::Object(model));
    }
    let mut top = Map::new();
    top.insert("doc".into(), Value::Object(map));
    Value::Object(top).to_string()
}

/// An element as `bjson` shows it: `{"v": text}` plus its attributes (`"$name"`) and
/// children.
fn bjson_node(node: &Node) -> Value {
    let mut map = Map::new();
    if node.children.is_empty() {
        map.insert("v".into(), Value::String(node.text.clone()));
    }
    for (k, v) in &node.attrs {
        map.insert(format!("${k}"), Value::String(v.clone()));
    }
    for child in &node.children {
        let value = bjson_node(child);
        match map.get_mut(&child.name) {
            Some(Value::Array(items)) => items.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                map.insert(child.name.clone(), value);
            }
        }
    }
    Value::Object(map)
}

fn bjson_error(error: &Node) -> Value {
    let mut map = Map::new();
    for (k, v) in &error.attrs {
        map.insert(k.clone(), Value::String(v.clone()));
    }
    for name in ["msg", "detail"] {
        if let Some(text) = error.child(name).map(|c| c.text.clone()) {
            map.insert(name.into(), Value::String(text));
        }
    }
    Value::Object(map)
}

fn to_xml(doc: &Doc) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_xml(&doc.root, &mut out);
    out.push('\n');
    out
}

fn write_xml(node: &Node, out: &mut String) {
    // Names come from this code, but a tree may carry one from a request (an echoed
    // parameter); an element that cannot be written well-formed is left out.
    if !is_xml_name(&node.name) {
        return;
    }
    out.push('<');
    out.push_str(&node.name);
    for (k, v) in node.attrs.iter().filter(|(k, _)| is_xml_name(k)) {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        push_escaped(out, v, true);
        out.push('"');
    }
    if node.text.is_empty() && node.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    push_escaped(out, &node.text, false);
    for child in &node.children {
        write_xml(child, out);
    }
    out.push_str("</");
    out.push_str(&node.name);
    out.push('>');
}

/// Whether `name` can be an element or attribute name: a conservative ASCII subset
/// of XML 1.0's `Name` (a letter or `_`, then letters, digits, `_`, `-`, `.`; no `:`,
/// which namespaces reserve).
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether XML 1.0 allows `c` in a document at all (its `Char` production): not the
/// C0 controls but tab, newline and carriage return, nor U+FFFE and U+FFFF. No
/// reference can carry the others either (`&#1;` is not well-formed in XML 1.0).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Appends `text` escaped for element content or (`attr`) a double-quoted attribute
/// value. A character XML cannot carry becomes U+FFFD, so whatever a request put in
/// a value, the answer is well-formed; `\r` (and in attributes tab and newline) are
/// written as references, which the reader's normalisation of line ends and
/// attribute values leaves as they were sent.
fn push_escaped(out: &mut String, text: &str, attr: bool) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attr => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c if !is_xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn to_json(doc: &Doc, elem_as_array: bool, empty_elem_array: bool) -> String {
    let mut root = node_to_json(&doc.root, elem_as_array);
    if doc.list
        && empty_elem_array
        && let Value::Object(map) = &mut root
    {
        map.entry("elem")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    let mut top = Map::new();
    top.insert("doc".into(), root);
    Value::Object(top).to_string()
}

fn node_to_json(node: &Node, elem_as_array: bool) -> Value {
    let mut map = Map::new();
    for (k, v) in &node.attrs {
        map.insert(format!("${k}"), Value::String(v.clone()));
    }
    // An empty element has no "$" at all, as with BILLmanager's converter.
    if !node.text.is_empty() {
        map.insert("$".into(), Value::String(node.text.clone()));
    }
    let mut names: Vec<&str> = Vec::new();
    for child in &node.children {
        if !names.contains(&child.name.as_str()) {
            names.push(&child.name);
        }
    }
    for name in names {
        let mut same: Vec<Value> = node
            .children
            .iter()
            .filter(|c| c.name == name)
            .map(|c| node_to_json(c, elem_as_array))
            .collect();
        let value = if same.len() == 1 && !(elem_as_array && name == "elem") {
            same.remove(0)
        } else {
            Value::Array(same)
        };
        map.insert(name.to_owned(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(id: u32) -> Node {
        Node::new("elem").with_child(Node::text("id", id))
    }

    #[test]
    fn xml_escapes_and_self_closes_empty_elements() {
        let doc = Doc::form(vec![
            Node::new("ok"),
            Node::text("licname", "a<b&'c'").with_attr("x", "\"q\""),
        ]);
        let xml = render(&doc, Format::Xml, false);
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <doc><ok/><licname x=\"&quot;q&quot;\">a&lt;b&amp;'c'</licname></doc>\n"
        );
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced_and_line_ends_survive() {
        let doc = Doc::form(vec![
            Node::text("licname", "a\u{1}b\u{1b}c\u{FFFE}d\r\ne").with_attr("x", "1\t2\n3\u{0}"),
        ]);
        let xml = render(&doc, Format::Xml, false);
        assert!(
            xml.contains(
                "<licname x=\"1&#9;2&#10;3\u{FFFD}\">a\u{FFFD}b\u{FFFD}c\u{FFFD}d&#13;\ne</licname>"
            ),
            "{xml}"
        );
        let back = Doc::parse(xml.as_bytes()).unwrap();
        assert_eq!(
            back.root.child("licname").unwrap().attr("x"),
            Some("1\t2\n3\u{FFFD}")
        );
    }

    #[test]
    fn elements_and_attributes_whose_names_are_not_xml_names_are_left_out() {
        for good in ["a", "_x", "addon_55236", "item.id", "p-cnt"] {
            assert!(is_xml_name(good), "{good}");
        }
        for bad in [
            "", "1a", ".a", "-a", "a b", "a<b", "a:b", "a&b", "имя", "a\u{0}",
        ] {
            assert!(!is_xml_name(bad), "{bad:?}");
        }
        let doc = Doc::form(vec![
            Node::text("9lives", "x"),
            Node::text("ok", "y").with_attr("a b", "z"),
        ]);
        assert_eq!(
            render(&doc, Format::Xml, false),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><ok>y</ok></doc>\n"
        );
    }

    #[test]
    fn json_lists_follow_the_xml_conversion_rules() {
        let empty = Doc::list(vec![], 0, 1, 0);
        let one = Doc::list(vec![elem(1)], 1, 1, 1);
        let two = Doc::list(vec![elem(1), elem(2)], 2, 1, 2);
        let v = |d: &Doc, f, a| serde_json::from_str::<Value>(&render(d, f, a)).unwrap();

        assert!(v(&empty, Format::Json, false)["doc"].get("elem").is_none());
        assert_eq!(v(&one, Format::Json, false)["doc"]["elem"]["id"]["$"], "1");
        assert_eq!(
            v(&one, Format::Json, true)["doc"]["elem"][0]["id"]["$"],
            "1"
        );
        assert_eq!(
            v(&two, Format::Json, false)["doc"]["elem"][1]["id"]["$"],
            "2"
        );

        assert_eq!(
            v(&empty, Format::Sjson, false)["doc"]["elem"],
            Value::Array(vec![])
        );
        assert_eq!(
            v(&one, Format::Sjson, false)["doc"]["elem"][0]["id"]["$"],
            "1"
        );
        assert_eq!(v(&one, Format::Sjson, false)["doc"]["p_elems"]["$"], "1");
    }

    #[test]
    fn what_is_rendered_in_any_format_parses_back_the_same() {
        let mut row = Node::new("elem");
        row.add_field("id", 7);
        row.children
            .push(Node::text("pricelist", "ispmanager 6 pro").with_attr("orig", 55228));
        let doc = Doc::list(vec![row], 1, 1, 1);
        let error = Doc::form(vec![
            Node::new("error")
                .with_attr("type", "missed")
                .with_child(Node::text("msg", "Function not found ")),
        ]);

        for format in [Format::Xml, Format::Json, Format::Sjson] {
            let back = Doc::parse(render(&doc, format, false).as_bytes()).unwrap();
            let elems = back.elems();
            assert_eq!(elems.len(), 1, "{format:?}");
            assert_eq!(elems[0].field("id"), Some("7"));
            assert_eq!(elems[0].field("pricelist"), Some("55228"), "orig wins");
            assert_eq!(back.p_elems(), Some(1));
            let e = Doc::parse(render(&error, format, false).as_bytes())
                .unwrap()
                .error()
                .unwrap();
            assert_eq!((e.kind.as_str(), e.object), ("missed", None));
            assert_eq!(e.message, "Function not found");
        }
    }
}
