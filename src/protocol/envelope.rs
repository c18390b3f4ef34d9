//! What every recorded answer carries besides its content (billmanager-api.md §10.1):
//! attributes on `doc`, a `tparams` echo of the request without secrets (and without
//! parameters whose names cannot be XML element names), and the account's
//! `saved_filters`.

use super::render::is_xml_name;
use super::{Doc, Node, Params};

/// Parameters never echoed in `tparams`.
const SECRET_PARAMS: [&str; 4] = ["authinfo", "password", "auth", "key"];

/// Adds the envelope to `doc`: `host` is the panel's base URL, `saved_filters` the
/// account's saved filters (an empty `saved_filters` element when there are none).
pub(crate) fn decorate(doc: &mut Doc, params: &Params, host: &str, saved_filters: Node) {
    let func = params.get("func").unwrap_or_default();
    let lang = params.get("lang").unwrap_or("en");
    let branddir = format!("{host}/manimg/orion/");
    for (name, value) in [
        ("lang", lang),
        ("func", func),
        ("binary", "/billmgr"),
        ("host", host),
        ("themename", "orion"),
        ("theme", "orion"),
        ("stylesheet", func),
        ("features", "a0c6f79b4a7c43dbcd05f09e8e1800e7"),
        ("notify", ""),
        ("branddir", branddir.as_str()),
    ] {
        doc.root.attrs.push((name.to_owned(), value.to_owned()));
    }
    let mut tparams = Node::new("tparams");
    for (name, value) in &params.0 {
        // A parameter whose name cannot be an element name is not echoed, in any
        // format: the echo is the same whatever `out` is.
        if is_xml_name(name) && !SECRET_PARAMS.contains(&name.as_str()) {
            tparams.add_field(name, value);
        }
    }
    doc.root.children.push(tparams);
    doc.root.children.push(saved_filters);
}
