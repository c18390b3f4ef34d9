//! The BILLmanager protocol, spoken three ways: by the client (it reads answers), and
//! by the sandbox and the downstream `/billmgr` endpoint (they read requests and write
//! answers), so that a shape learnt once is right everywhere: request parameters
//! ([`Params`]) and the order form ([`OrderForm`]), the `doc` envelope as one small element tree, parsed from and
//! rendered to `out=xml|json|sjson|bjson` ([`render`]), the envelope every answer
//! carries ([`decorate`]), and the shapes every function shares — `doc/error`
//! ([`ApiError`]), the nested `doc/doc` of some confirm answers, `doc/elem` lists with
//! their paging fields, raw values in `orig`, saved filters.
//!
//! Nothing here ever copies a raw body into an error: a body may echo request data.

mod envelope;
mod error;
mod order;
mod render;
mod request;
mod vocab;

pub(crate) use envelope::decorate;
pub(crate) use error::ApiError;
pub(crate) use order::OrderForm;
pub(crate) use render::{Format, render};
pub(crate) use request::{Params, parse_urlencoded};
pub(crate) use vocab::{SOFT_ITEMTYPE, period_name, price_node, status, status_name};

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

/// A body that is neither a well-formed XML `<doc>` nor a JSON `{"doc": …}`. The message
/// names what was wrong, never the body's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// One element: XML attributes, text and children. The JSON form maps onto the same
/// tree (`"$"` is the text, `"$attr"` an attribute, an array repeated elements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    /// Text content (trimmed when parsed).
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    /// An empty element `<name/>`.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    fn named(name: &str) -> Self {
        Self::new(name)
    }

    /// A text element `<name>text</name>`.
    pub(crate) fn text(name: impl Into<String>, text: impl ToString) -> Self {
        let mut n = Self::new(name);
        n.text = text.to_string();
        n
    }

    /// Adds an attribute (builder style).
    pub(crate) fn with_attr(mut self, name: &str, value: impl ToString) -> Self {
        self.attrs.push((name.to_owned(), value.to_string()));
        self
    }

    /// Adds a child (builder style).
    pub(crate) fn with_child(mut self, child: Node) -> Self {
        self.children.push(child);
        self
    }

    /// Adds a text child `<name>text</name>`.
    pub(crate) fn add_field(&mut self, name: &str, text: impl ToString) {
        self.children.push(Node::text(name, text));
    }

    /// The attribute `name`, if present.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child called `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`, in document order.
    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Node> + use<'a> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The value of the first child called `name`; `None` when absent or empty. A
    /// formatted column carries its raw value in an `orig` attribute (`$orig` in JSON)
    /// beside the translated text; the raw value wins.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        let child = self.child(name)?;
        child
            .attr("orig")
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .or(Some(child.text.as_str()).filter(|t| !t.is_empty()))
    }

    /// Whether the element has any content: text or children.
    fn has_content(&self) -> bool {
        !self.text.is_empty() || !self.children.is_empty()
    }

    /// An attribute or, failing that, a child's text: the JSON and XML forms of some
    /// answers disagree on which one carries a value.
    pub(crate) fn attr_or_field(&self, name: &str) -> Option<&str> {
        self.attr(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::trim)
            .or_else(|| self.field(name))
    }
}

/// What a `doc/error` says: `type`, `object` (absent in some errors, e.g. a `missed`
/// function) and the message (`msg`, else `detail`), trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorAnswer {
    pub(crate) kind: String,
    pub(crate) object: Option<String>,
    pub(crate) message: String,
}

/// A whole answer: the `<doc>` root, plus whether it is a list (so that `sjson` can
/// emit an empty `elem` array; a parsed answer is never marked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Doc {
    pub(crate) root: Node,
    pub(crate) list: bool,
}

impl Doc {
    /// A form or action answer: `<doc>` with these children.
    pub(crate) fn form(children: Vec<Node>) -> Self {
        let mut root = Node::new("doc");
        root.children = children;
        Self { root, list: false }
    }

    /// `<doc><ok/></doc>`.
    pub(crate) fn ok() -> Self {
        Self::form(vec![Node::new("ok")])
    }

    /// A list answer: one `<elem>` per row, then the paging fields.
    pub(crate) fn list(elems: Vec<Node>, total: usize, page: usize, page_size: usize) -> Self {
        let mut root = Node::new("doc");
        root.children = elems;
        root.add_field("p_elems", total);
        root.add_field("p_num", page);
        root.add_field("p_cnt", page_size);
        Self { root, list: true }
    }

    /// Parses a body in either format: the first non-blank byte decides (`{` JSON, `<`
    /// XML), so an upstream that ignores `out` is still understood.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, Malformed> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let root = match text.as_bytes().first() {
            None => return Err(malformed("empty response body")),
            Some(b'{') => parse_json(text)?,
            Some(b'<') => parse_xml(text)?,
            Some(_) => return Err(malformed("response body is neither XML nor JSON")),
        };
        if root.name != "doc" {
            return Err(malformed("response root is not `doc`"));
        }
        Ok(Self { root, list: false })
    }

    /// `doc/doc`, which some confirm answers (`service.prolong`, `soft.edit` save) use.
    fn nested(&self) -> Option<&Node> {
        self.root.child("doc")
    }

    /// `doc/name`, or `doc/doc/name` when the top level lacks it.
    pub(crate) fn node(&self, name: &str) -> Option<&Node> {
        self.root
            .child(name)
            .or_else(|| self.nested().and_then(|n| n.child(name)))
    }

    /// The text of `doc/name` or `doc/doc/name`; `None` when absent or empty.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.root
            .field(name)
            .or_else(|| self.nested().and_then(|n| n.field(name)))
    }

    /// Every `doc/name` (or, when there is none, every `doc/doc/name`). Absent = empty.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> Vec<&'a Node> {
        let top: Vec<&Node> = self.root.children_named(name).collect();
        if !top.is_empty() {
            return top;
        }
        self.nested()
            .map(|n| n.children_named(name).collect())
            .unwrap_or_default()
    }

    /// The rows of a list answer (`doc/elem`).
    pub(crate) fn elems(&self) -> Vec<&Node> {
        self.all("elem")
    }

    /// `p_elems`: the total row count of a paged list, when the upstream sends it.
    pub(crate) fn p_elems(&self) -> Option<u64> {
        self.field("p_elems").and_then(|v| v.parse().ok())
    }

    /// Whether the answer has the shape of a list: rows, or the paging fields a list
    /// carries even when it is empty.
    pub(crate) fn looks_like_list(&self) -> bool {
        !self.elems().is_empty() || self.node("p_elems").is_some()
    }

    /// Why a list answer may show only part of the account's items: COREmanager lists
    /// are narrowed by the filter set on the list, and every answer carries the
    /// account's saved filters (`saved_filters`), any of which may be the one set.
    /// `None` when the answer shows no filter at all. Every recorded answer carries
    /// `saved_filters` (empty when there are none): an answer without it is of a
    /// shape never seen, which cannot show that nothing narrows it.
    pub(crate) fn filter_note(&self) -> Option<String> {
        let Some(saved) = self.node("saved_filters") else {
            return Some(
                "the list answer carries no `saved_filters`, which every recorded answer does, so it cannot show that no filter narrows it".into(),
            );
        };
        if saved.has_content() {
            let names: Vec<&str> = saved
                .children
                .iter()
                .filter_map(|f| f.attr("name").or(Some(f.text.as_str())))
                .filter(|n| !n.is_empty())
                .collect();
            return Some(format!(
                "the account has saved list filters ({}); one may be narrowing the list",
                if names.is_empty() {
                    "unnamed".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        }
        ["filter", "p_filter", "filterinfo"]
            .iter()
            .find(|name| self.node(name).is_some_and(Node::has_content))
            .map(|name| format!("the list answer carries an active filter (`{name}`)"))
    }

    /// The `doc/error` (or `doc/doc/error`), if the answer is one.
    pub(crate) fn error(&self) -> Option<ErrorAnswer> {
        let error = self.node("error")?;
        let kind = error.attr_or_field("type").unwrap_or("unknown").to_owned();
        let object = error
            .attr_or_field("object")
            .map(str::to_owned)
            .filter(|o| !o.is_empty());
        // `msg` is the documented place, `detail` its recorded twin; a bare text is
        // what legacy answers carry.
        let message = error
            .field("msg")
            .or_else(|| error.field("detail"))
            .or(Some(error.text.as_str()).filter(|t| !t.is_empty()))
            .unwrap_or("no message")
            .to_owned();
        Some(ErrorAnswer {
            kind,
            object,
            message,
        })
    }
}

/// Parses an XML document into a tree. Entities are resolved; comments, processing
/// instructions and the declaration are skipped.
fn parse_xml(body: &str) -> Result<Node, Malformed> {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| malformed(format!("malformed XML at byte {}", reader.error_position())))?;
        match event {
            Event::Start(start) => stack.push(xml_node(&start)?),
            Event::Empty(start) => attach(&mut stack, &mut root, xml_node(&start)?)?,
            Event::End(_) => {
                let mut node = stack.pop().ok_or_else(|| malformed("unbalanced XML"))?;
                node.text = node.text.trim().to_owned();
                attach(&mut stack, &mut root, node)?;
            }
            Event::Text(text) => {
                let text = text
                    .xml10_content()
                    .map_err(|_| malformed("undecodable XML text"))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = data
                    .decode()
                    .map_err(|_| malformed("undecodable XML CDATA"))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => {
                        let name = reference
                            .decode()
                            .map_err(|_| malformed("undecodable XML entity"))?;
                        resolve_predefined_entity(&name)
                            .map(str::to_owned)
                            .ok_or_else(|| malformed("unknown XML entity"))?
                    }
                    Err(_) => return Err(malformed("invalid XML character reference")),
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("truncated XML: unclosed elements"));
    }
    root.ok_or_else(|| malformed("XML without a root element"))
}

fn xml_node(start: &BytesStart<'_>) -> Result<Node, Malformed> {
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|_| malformed("undecodable XML element name"))?
        .to_owned();
    let mut node = Node::named(&name);
    for attr in start.attributes() {
        let attr = attr.map_err(|_| malformed("malformed XML attribute"))?;
        let key = std::str::from_utf8(attr.key.as_ref())
            .map_err(|_| malformed("undecodable XML attribute name"))?
            .to_owned();
        let value = attr
            .unescape_value()
            .map_err(|_| malformed("malformed XML attribute value"))?
            .into_owned();
        node.attrs.push((key, value));
    }
    Ok(node)
}

fn push_text(stack: &mut [Node], text: &str) -> Result<(), Malformed> {
    match stack.last_mut() {
        Some(top) => top.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(malformed("text outside the XML root element")),
    }
    Ok(())
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), Malformed> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(malformed("XML with more than one root element")),
    }
    Ok(())
}

/// Parses `{"doc": {…}}` into the same tree as the XML form.
fn parse_json(body: &str) -> Result<Node, Malformed> {
    let value: Value = serde_json::from_str(body).map_err(|e| {
        malformed(format!(
            "malformed JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let doc = value
        .get("doc")
        .ok_or_else(|| malformed("JSON answer without `doc`"))?;
    // `doc` itself is one element; take the first if it came as an array.
    let doc = match doc {
        Value::Array(items) => items.first().ok_or_else(|| malformed("empty JSON `doc`"))?,
        other => other,
    };
    json_nodes("doc", doc)
        .pop()
        .ok_or_else(|| malformed("empty JSON `doc`"))
}

/// The elements a JSON member `name: value` stands for: an array is one element per
/// item, an object one element, a scalar one text-only element.
fn json_nodes(name: &str, value: &Value) -> Vec<Node> {
    match value {
        Value::Array(items) => items.iter().flat_map(|v| json_nodes(name, v)).collect(),
        Value::Object(members) => {
            let mut node = Node::named(name);
            for (key, member) in members {
                if key == "$" {
                    node.text = json_scalar(member).trim().to_owned();
                } else if let Some(attr) = key.strip_prefix('$') {
                    node.attrs.push((attr.to_owned(), json_scalar(member)));
                } else {
                    node.children.extend(json_nodes(key, member));
                }
            }
            vec![node]
        }
        scalar => {
            let mut node = Node::named(name);
            node.text = json_scalar(scalar).trim().to_owned();
            vec![node]
        }
    }
}

fn json_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        // A one-element array of a scalar or `{"$": …}` reads as that value.
        Value::Array(items) if items.len() == 1 => json_scalar(&items[0]),
        Value::Object(members) => members.get("$").map(json_scalar).unwrap_or_default(),
        Value::Null | Value::Array(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(body: &str) -> Doc {
        Doc::parse(body.as_bytes()).expect("parses")
    }

    fn auth(message: &str) -> ErrorAnswer {
        ErrorAnswer {
            kind: "auth".into(),
            object: Some("badpassword".into()),
            message: message.into(),
        }
    }

    #[test]
    fn xml_attributes_text_and_children_become_a_tree() {
        let d = doc(r#"<?xml version="1.0" encoding="UTF-8"?>
            <doc><price currency="EUR"><period length="1" cost="5.00"/><period length="12">50</period></price>
            <name>a &amp; b &#x41;<![CDATA[<c>]]></name><!-- note --></doc>"#);
        let price = d.node("price").unwrap();
        assert_eq!(price.attr("currency"), Some("EUR"));
        let periods: Vec<_> = price.children_named("period").collect();
        assert_eq!(periods.len(), 2);
        assert_eq!(periods[0].attr("cost"), Some("5.00"));
        assert_eq!(periods[1].text, "50");
        assert_eq!(d.field("name"), Some("a & b A<c>"));
        assert_eq!(d.root.children.len(), 2);
    }

    #[test]
    fn fields_are_found_at_the_top_or_in_a_nested_doc() {
        let d = doc("<doc><ok/><doc><newexpiredate>2025-03-01</newexpiredate></doc></doc>");
        assert_eq!(d.field("newexpiredate"), Some("2025-03-01"));
        assert!(d.node("ok").is_some());
        assert_eq!(d.field("missing"), None);

        let j = doc(r#"{"doc":{"doc":{"newexpiredate":{"$":"2025-03-01"}}}}"#);
        assert_eq!(j.field("newexpiredate"), Some("2025-03-01"));
    }

    #[test]
    fn top_level_fields_win_over_the_nested_doc() {
        let d = doc("<doc><ip>1.1.1.1</ip><doc><ip>2.2.2.2</ip></doc></doc>");
        assert_eq!(d.field("ip"), Some("1.1.1.1"));
    }

    #[test]
    fn json_arrays_objects_and_wrapped_values_read_alike() {
        let d = doc(
            r#"{"doc":{"elem":[{"id":{"$":"1"}},{"id":["2"]},{"id":[{"$":"3"}]},{"id":4}],
                "p_elems":{"$":"4"}}}"#,
        );
        let ids: Vec<_> = d.elems().iter().map(|e| e.field("id").unwrap()).collect();
        assert_eq!(ids, ["1", "2", "3", "4"]);
        assert_eq!(d.p_elems(), Some(4));

        let single = doc(r#"{"doc":{"elem":{"id":{"$":"9"}}}}"#);
        assert_eq!(single.elems().len(), 1);

        let empty = doc(r#"{"doc":{"p_elems":{"$":"0"}}}"#);
        assert!(empty.elems().is_empty());
    }

    #[test]
    fn json_dollar_keys_become_attributes() {
        let d = doc(r#"{"doc":{"auth":{"$id":"SID","$level":16,"$":"SID"}}}"#);
        let auth = d.node("auth").unwrap();
        assert_eq!(auth.attr("id"), Some("SID"));
        assert_eq!(auth.attr("level"), Some("16"));
        assert_eq!(auth.text, "SID");
    }

    #[test]
    fn an_error_element_is_a_refusal_and_auth_is_auth() {
        let xml = doc(
            r#"<doc><error type="missed" object="ip" lang="en"><param name="object" type="msg" msg="IP address">ip</param><msg>Field 'IP address' is required</msg></error></doc>"#,
        );
        assert_eq!(
            xml.error(),
            Some(ErrorAnswer {
                kind: "missed".into(),
                object: Some("ip".into()),
                message: "Field 'IP address' is required".into(),
            })
        );
        let json = doc(
            r#"{"doc":{"error":{"$type":"auth","$object":"badpassword","msg":{"$":"Invalid username or password"}}}}"#,
        );
        assert_eq!(json.error(), Some(auth("Invalid username or password")));
        assert_eq!(doc("<doc><ok/></doc>").error(), None);
    }

    #[test]
    fn recorded_error_shapes_read_as_their_type_and_trimmed_message() {
        let xml = doc(
            r#"<doc lang="ru" func="auth"><error type="auth" object="badpassword" lang="ru" code="1"><param name="object" type="msg">badpassword</param><param name="value"></param><stack><action level="0" user="">auth</action></stack><detail>Invalid username or password </detail><msg>Invalid username or password </msg></error><tparams><out>xml</out><func>auth</func></tparams><saved_filters></saved_filters></doc>"#,
        );
        assert_eq!(xml.error(), Some(auth("Invalid username or password")));
        let sjson = doc(
            r#"{"doc":{"error":{"$type":"auth","$object":"badpassword","$lang":"en","detail":{"$":"Invalid username or password "},"msg":{"$":"Invalid username or password "},"param":[{"$name":"object","$type":"msg","$":"badpassword"},{"$name":"value","$":"remote_addr: [85.140.114.49]"}]}}}"#,
        );
        assert_eq!(sjson.error(), Some(auth("Invalid username or password")));
        let missed = doc(
            r#"{"doc":{"error":{"$type":"missed","msg":{"$":"Не удалось найти функцию 'X'. Возможно, управляющий модуль не загружен."}}}}"#,
        );
        assert!(matches!(
            missed.error(),
            Some(ErrorAnswer { kind, object: None, .. }) if kind == "missed"
        ));
        let detail_only =
            doc(r#"<doc><error type="value"><detail>Bad value </detail></error></doc>"#);
        assert!(matches!(
            detail_only.error(),
            Some(ErrorAnswer { message, .. }) if message == "Bad value"
        ));
    }

    #[test]
    fn a_raw_orig_value_wins_over_the_translated_text() {
        let xml = doc(
            r#"<doc><elem><status_msg orig="db_not_assigned">Notused</status_msg><ip>1.2.3.4</ip></elem></doc>"#,
        );
        assert_eq!(xml.elems()[0].field("status_msg"), Some("db_not_assigned"));
        assert_eq!(xml.elems()[0].field("ip"), Some("1.2.3.4"));
        let json =
            doc(r#"{"doc":{"elem":[{"status_msg":{"$orig":"db_not_assigned","$":"Notused"}}]}}"#);
        assert_eq!(json.elems()[0].field("status_msg"), Some("db_not_assigned"));
    }

    #[test]
    fn broken_bodies_are_malformed() {
        for body in [
            "",
            "   ",
            "<doc><id>1</doc>",
            "<doc><id>1</id>",
            "<html><body>Bad gateway</body></html>",
            "{\"doc\":",
            "{\"result\":1}",
            "OK",
            "<doc/><doc/>",
        ] {
            assert!(Doc::parse(body.as_bytes()).is_err(), "{body:?}");
        }
    }
}
