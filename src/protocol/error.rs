//! The `doc/error` answer, shaped like the recorded ones (billmanager-api.md §10.1):
//! written by the sandbox and by the downstream endpoint alike.

use super::{Doc, Node};

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

    /// No item `id` (of this account): an error of type `kind` about `elid`, with the
    /// id as its value.
    pub(crate) fn not_found(kind: &str, id: &str) -> Self {
        Self::new(kind, "elid", format!("License {id} not found")).with_value(id)
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
        Doc::form(vec![self.to_node(func)])
    }

    /// The `<error>` element of [`to_doc`](Self::to_doc), for an answer that carries
    /// more beside it.
    pub(crate) fn to_node(&self, func: &str) -> Node {
        let mut error = Node::new("error").with_attr("type", &self.kind);
        if !self.object.is_empty() {
            error = error.with_attr("object", &self.object);
        }
        error = error.with_attr("lang", "en").with_attr("code", 1);
        if !self.object.is_empty() {
            error = error.with_child(
                Node::text("param", &self.object)
                    .with_attr("name", "object")
                    .with_attr("type", "msg")
                    .with_attr("msg", field_label(&self.object)),
            );
        }
        if let Some(value) = &self.value {
            error = error.with_child(Node::text("param", value).with_attr("name", "value"));
        }
        let stack = Node::new("stack").with_child(
            Node::text("action", func)
                .with_attr("level", 0)
                .with_attr("user", ""),
        );
        error
            .with_child(stack)
            .with_child(Node::text("detail", &self.msg))
            .with_child(Node::text("msg", &self.msg))
    }
}

/// The label BILLmanager shows for a form field (used in error messages).
pub(crate) fn field_label(param: &str) -> &str {
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

#[cfg(test)]
mod tests {
    use super::ApiError;
    use crate::protocol::{Format, render};

    #[test]
    fn json_errors_carry_type_object_and_msg() {
        let doc = ApiError::auth().to_doc("auth");
        let v: serde_json::Value =
            serde_json::from_str(&render(&doc, Format::Json, false)).unwrap();
        assert_eq!(v["doc"]["error"]["$type"], "auth");
        assert_eq!(v["doc"]["error"]["$object"], "badpassword");
        assert_eq!(
            v["doc"]["error"]["msg"]["$"],
            "Invalid username or password "
        );
    }
}
