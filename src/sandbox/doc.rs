//! The answer of a BILLmanager function as a format-neutral element tree (what
//! BILLmanager builds internally before rendering `out=xml|json|sjson`), and the
//! upstream error (`doc/error`).

/// An XML-like element: name, attributes, optional text and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) text: String,
    pub(crate) children: Vec<Node>,
}

impl Node {
    /// An empty element `<name/>`.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attrs: Vec::new(),
            text: String::new(),
            children: Vec::new(),
        }
    }

    /// A text element `<name>text</name>`.
    pub(crate) fn text(name: impl Into<String>, text: impl ToString) -> Self {
        let mut n = Self::new(name);
        n.text = text.to_string();
        n
    }

    /// Adds an attribute (builder style).
    pub(crate) fn attr(mut self, name: &str, value: impl ToString) -> Self {
        self.attrs.push((name.to_owned(), value.to_string()));
        self
    }

    /// Adds a child (builder style).
    pub(crate) fn child(mut self, child: Node) -> Self {
        self.children.push(child);
        self
    }

    /// Adds a text child `<name>text</name>`.
    pub(crate) fn field(&mut self, name: &str, text: impl ToString) {
        self.children.push(Node::text(name, text));
    }
}

/// A whole answer: the `<doc>` root, plus whether it is a list (so that `sjson` can
/// emit an empty `elem` array).
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
        root.field("p_elems", total);
        root.field("p_num", page);
        root.field("p_cnt", page_size);
        Self { root, list: true }
    }
}

/// An upstream error, rendered as `doc/error` with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// `type` attribute: `auth`, `missed`, `value`, `exists`, `api_error`, …
    pub(crate) kind: String,
    /// `object` attribute: the field or object concerned.
    pub(crate) object: String,
    /// The offending value, sent as `<param name="value">`.
    pub(crate) value: Option<String>,
    /// Human-readable text (`<msg>`).
    pub(crate) msg: String,
}

impl ApiError {
    /// An error of any type.
    pub(crate) fn new(kind: &str, object: &str, msg: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            object: object.to_owned(),
            value: None,
            msg: msg.into(),
        }
    }

    /// Attaches the offending value.
    pub(crate) fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Bad, missing or expired credentials; the recorded message ends in a space, and
    /// the recorded `value` param (the caller's address there) is kept, empty.
    pub(crate) fn auth() -> Self {
        Self::new("auth", "badpassword", "Invalid username or password ").with_value("")
    }

    /// A required parameter is missing.
    pub(crate) fn missed(param: &str) -> Self {
        Self::new(
            "missed",
            param,
            format!("Field '{}' is required", field_label(param)),
        )
    }

    /// A parameter has an invalid value.
    pub(crate) fn value(param: &str, value: &str, msg: impl Into<String>) -> Self {
        Self::new("value", param, msg).with_value(value)
    }

    /// The function does not exist: a `missed` error without an `object`, as
    /// recorded.
    pub(crate) fn unknown_func(func: &str) -> Self {
        Self::new(
            "missed",
            "",
            format!(
                "Could not find function '{func}'. Perhaps the processing module is not loaded"
            ),
        )
    }

    /// The answer BILLmanager gives, shaped like the recorded ones:
    /// `<doc><error type object lang code><param name="object">…</param>
    /// <param name="value">…</param><stack>…</stack><detail>…</detail><msg>…</msg>
    /// </error></doc>`; without an object, neither the attribute nor its `param`.
    pub(crate) fn to_doc(&self, func: &str) -> Doc {
        let mut error = Node::new("error").attr("type", &self.kind);
        if !self.object.is_empty() {
            error = error.attr("object", &self.object);
        }
        error = error.attr("lang", "en").attr("code", 1);
        if !self.object.is_empty() {
            error = error.child(
                Node::text("param", &self.object)
                    .attr("name", "object")
                    .attr("type", "msg")
                    .attr("msg", field_label(&self.object)),
            );
        }
        if let Some(value) = &self.value {
            error = error.child(Node::text("param", value).attr("name", "value"));
        }
        let stack =
            Node::new("stack").child(Node::text("action", func).attr("level", 0).attr("user", ""));
        Doc::form(vec![
            error
                .child(stack)
                .child(Node::text("detail", &self.msg))
                .child(Node::text("msg", &self.msg)),
        ])
    }
}

/// The label BILLmanager shows for a form field (used in error messages).
fn field_label(param: &str) -> &str {
    match param {
        "ip" => "IP address",
        "pricelist" => "Tariff plan",
        "period" => "Period",
        "elid" => "Id",
        "licname" => "License name",
        "balance" => "Balance",
        "username" => "Username",
        "password" => "Password",
        other => other,
    }
}
