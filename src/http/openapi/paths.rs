//! The operations of the REST API: one entry per route of `http::router`.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    Content, Header, Paths, PathsBuilder, Ref, RefOr, Required, Response, Schema,
};

use super::proto::Protos;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health, metrics, the spec).
    Open,
    /// `licenses.read`.
    Read,
    /// `licenses.write`.
    Write,
    /// `admin`.
    Admin,
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// JSON of a component schema.
    Json(&'static str),
    /// A `text/event-stream` of `LicenseEvent`s.
    Events,
    /// A free-form JSON object (health).
    Status,
    /// Text (metrics, docs page, the spec).
    Text(&'static str),
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// HTTP method.
    pub method: &'static str,
    /// Route template, as in the router.
    pub path: &'static str,
    /// `operationId`; also the RPC whose proto comment describes it, when there is one.
    pub id: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Query parameters (name, schema kind, description).
    pub query: &'static [(&'static str, Param, &'static str)],
    /// The request body's component schema; `(name, required)`.
    pub body: Option<(&'static str, bool)>,
    /// Success statuses with their meaning.
    pub ok: &'static [(u16, &'static str)],
    /// What a success carries.
    pub answer: Answer,
    /// Error statuses it may answer (problem+json), besides those of its access.
    pub errors: &'static [u16],
}

/// The schema of a query parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param {
    /// Free text.
    Text,
    /// A whole number, 0 or more.
    Int,
    /// A page size: 0 (the default, 100) to 1000.
    PageSize,
    /// 1 or 12 months.
    Months,
    /// A duration such as `30s` or `500ms`.
    Wait,
    /// A license state name.
    State,
}

const WAIT: (&str, Param, &str) = (
    "wait",
    Param::Wait,
    "Wait up to this long (e.g. `30s`, at most `60s`) for the upstream to finish.",
);
const PAGE: [(&str, Param, &str); 2] = [
    ("pageSize", Param::PageSize, "At most this many items (default 100, at most 1000)."),
    ("pageToken", Param::Text, "`nextPageToken` of the previous page."),
];
const CHANGED: &[(u16, &str)] = &[
    (200, "Done (with `?wait=`), or nothing needed doing."),
    (202, "Accepted; the change runs in the background. `Location` names the license."),
];
const CHANGE_ERRORS: &[u16] = &[400, 404, 409, 413, 415, 422, 503];

/// Every operation, in the router's order.
pub fn operations() -> Vec<Op> {
    let op = |method, path, id, summary, access| Op {
        method,
        path,
        id,
        summary,
        access,
        query: &[],
        body: None,
        ok: &[(200, "OK")],
        answer: Answer::Json("License"),
        errors: &[],
    };
    let change = |path, id, summary, body| Op {
        query: &[WAIT],
        body,
        ok: CHANGED,
        errors: CHANGE_ERRORS,
        ..op("post", path, id, summary, Access::Write)
    };
    vec![
        Op {
            answer: Answer::Json("ListPanelsResponse"),
            ..op("get", "/v1/panels", "ListPanels", "List the orderable panels", Access::Read)
        },
        Op {
            query: &[("periodMonths", Param::Months, "1 or 12 (default 1); ignored for trials.")],
            answer: Answer::Json("QuoteLicenseResponse"),
            errors: &[400, 404, 503],
            ..op("get", "/v1/panels/{panel}/quote", "QuoteLicense", "Price of a panel", Access::Read)
        },
        Op {
            query: &[
                ("serverId", Param::Text, "Only this server's license."),
                ("ip", Param::Text, "Only licenses bound to this address."),
                ("panel", Param::Text, "Only this panel (name or alias)."),
                ("state", Param::State, "Only licenses in this state."),
                PAGE[0],
                PAGE[1],
            ],
            answer: Answer::Json("ListLicensesResponse"),
            errors: &[400],
            ..op("get", "/v1/licenses", "ListLicenses", "List licenses", Access::Read)
        },
        Op {
            query: &[WAIT],
            body: Some(("OrderLicenseRequest", true)),
            ok: &[
                (200, "The server already had this license; nothing was bought."),
                (201, "Ordered and ACTIVE within `?wait=`."),
                (202, "Accepted; the order runs in the background. `Location` names the license."),
            ],
            errors: CHANGE_ERRORS,
            ..op("post", "/v1/licenses", "OrderLicense", "Order a license for a server", Access::Write)
        },
        Op {
            errors: &[400, 404],
            ..op("get", "/v1/licenses/{id}", "GetLicense", "Read a license", Access::Read)
        },
        Op {
            query: &[WAIT],
            ok: CHANGED,
            errors: CHANGE_ERRORS,
            ..op("delete", "/v1/licenses/{id}", "CancelLicense", "Cancel a license", Access::Write)
        },
        change("/v1/licenses/{id}/renew", "RenewLicense", "Renew a license", Some(("RenewLicenseBody", true))),
        change("/v1/licenses/{id}/change-ip", "ChangeLicenseIp", "Move a license to another IP", Some(("ChangeLicenseIpBody", true))),
        change("/v1/licenses/{id}/change-panel", "ChangeLicensePanel", "Switch a license's panel", Some(("ChangeLicensePanelBody", true))),
        change("/v1/licenses/{id}/suspend", "SuspendLicense", "Suspend a license", None),
        change("/v1/licenses/{id}/resume", "ResumeLicense", "Resume a license", None),
        change("/v1/licenses/{id}/reissue-key", "ReissueLicenseKey", "Issue a new key", None),
        Op {
            errors: &[400, 404],
            ..op("get", "/v1/servers/{serverId}/license", "GetServerLicense", "Read a server's license", Access::Read)
        },
        Op {
            query: &[WAIT],
            body: Some(("EnsureServerLicenseBody", true)),
            ok: &[
                (200, "The license already matched, or was converged within `?wait=`. `X-Ensure-Action` says what was done."),
                (202, "An order or a change was queued. `X-Ensure-Action` says which."),
            ],
            errors: CHANGE_ERRORS,
            ..op("put", "/v1/servers/{serverId}/license", "EnsureServerLicense", "Converge a server's license", Access::Write)
        },
        Op {
            query: &[WAIT],
            ok: CHANGED,
            errors: CHANGE_ERRORS,
            ..op("delete", "/v1/servers/{serverId}/license", "CancelServerLicense", "Cancel a server's license", Access::Write)
        },
        Op {
            query: &[("afterEventId", Param::Int, "Resume after this event id (or send `Last-Event-ID`).")],
            answer: Answer::Events,
            errors: &[400],
            ..op("get", "/v1/events", "WatchLicenses", "Stream license events (SSE)", Access::Read)
        },
        Op {
            body: Some(("ReconcileRequest", false)),
            answer: Answer::Json("DriftReport"),
            errors: &[400, 413, 503],
            ..op("post", "/v1/reconcile", "Reconcile", "Compare upstream and store now", Access::Admin)
        },
        Op {
            answer: Answer::Json("DriftReport"),
            errors: &[404],
            ..op("get", "/v1/drift", "ListDrift", "The latest drift report", Access::Admin)
        },
        Op {
            body: Some(("AdoptLicenseRequest", true)),
            ok: &[(201, "Adopted; `Location` names the new license.")],
            errors: &[400, 404, 409, 413, 415, 422, 503],
            ..op("post", "/v1/drift/{upstreamId}/adopt", "AdoptLicense", "Adopt an orphan", Access::Admin)
        },
        Op {
            query: &[("licenseId", Param::Text, "Only this license's entries."), PAGE[0], PAGE[1]],
            answer: Answer::Json("ListAuditEntriesResponse"),
            errors: &[400],
            ..op("get", "/v1/audit", "ListAuditEntries", "Read the audit log", Access::Admin)
        },
        Op {
            answer: Answer::Status,
            ..op("get", "/healthz", "Live", "Liveness: 200 while the process runs", Access::Open)
        },
        Op {
            ok: &[(200, "Ready."), (503, "Not ready; the body says what failed.")],
            answer: Answer::Status,
            ..op("get", "/readyz", "Ready", "Readiness: store, upstream, circuit breaker, draining", Access::Open)
        },
        Op {
            answer: Answer::Text("text/plain"),
            ..op("get", "/metrics", "Metrics", "Prometheus metrics (text exposition format)", Access::Open)
        },
        Op {
            answer: Answer::Text("application/json"),
            ..op("get", "/openapi.json", "OpenApi", "This document", Access::Open)
        },
        Op {
            answer: Answer::Text("text/html"),
            ..op("get", "/docs", "Docs", "The API reference page", Access::Open)
        },
    ]
}

/// Error responses shared by the operations, by status.
pub fn shared_responses() -> Vec<(String, RefOr<Response>)> {
    [
        (400, "The request is invalid; `errors` lists the fields."),
        (401, "No valid bearer token."),
        (403, "The token lacks the scope, or the license belongs to another client."),
        (404, "No such resource."),
        (409, "A conflict: the server has another license, or the same request is still running."),
        (413, "The body is too large."),
        (415, "The body is not `application/json`."),
        (422, "Refused: the upstream refused, a spend cap, or an idempotency key reused with other parameters."),
        (429, "Over the client's rate or spend cap; `Retry-After` says when to come back."),
        (503, "The upstream or the store is unavailable; retry after `Retry-After`."),
    ]
    .into_iter()
    .map(|(status, description)| {
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/problem+json", problem_content());
        if matches!(status, 409 | 429 | 503) {
            response = response.header("Retry-After", Header::new(integer()));
        }
        (error_name(status), RefOr::T(response.build()))
    })
    .collect()
}

fn error_name(status: u16) -> String {
    format!("Error{status}")
}

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

fn integer() -> Schema {
    ObjectBuilder::new().schema_type(Type::Integer).build().into()
}

fn text() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).build().into()
}

/// Every operation as OpenAPI paths.
pub fn paths(protos: &Protos) -> Paths {
    let mut paths = PathsBuilder::new().build();
    for op in operations() {
        let method = match op.method {
            "get" => HttpMethod::Get,
            "post" => HttpMethod::Post,
            "put" => HttpMethod::Put,
            "delete" => HttpMethod::Delete,
            other => unreachable!("no {other} routes"),
        };
        let item = PathItem::new(method, operation(op, protos));
        let mut one = PathsBuilder::new().path(op.path, item).build();
        // Several methods on one path: merge their operations.
        if let Some(existing) = paths.paths.get_mut(op.path) {
            if let Some(added) = one.paths.remove(op.path) {
                existing.merge_operations(added);
            }
        } else {
            paths.merge(one);
        }
    }
    paths
}

fn operation(op: Op, protos: &Protos) -> utoipa::openapi::path::Operation {
    let description = protos.methods.get(op.id).cloned();
    let mut builder = OperationBuilder::new()
        .operation_id(Some(op.id))
        .summary(Some(op.summary))
        .description(description)
        .tag(if op.access == Access::Open { "operations" } else { "licenses" });
    for name in path_params(op.path) {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(path_param_description(name)))
                .schema(Some(path_param_schema(name))),
        );
    }
    for (name, kind, description) in op.query {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(param_schema(*kind))),
        );
    }
    if op.access == Access::Write {
        let mut key = header_param(
            "Idempotency-Key",
            "Makes the call safe to repeat: a replay answers the first result (kept 72 h, per \
             client). 1 to 255 printable ASCII characters without spaces.",
        );
        key.schema = Some(
            Schema::from(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[!-~]{1,255}$"))
                    .build(),
            )
            .into(),
        );
        builder = builder.parameter(key);
    }
    if op.id == "WatchLicenses" {
        builder = builder.parameter(header_param("Last-Event-ID", "Resume after this event id."));
    }
    if let Some((schema, required)) = op.body {
        let required = if required { Required::True } else { Required::False };
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(required))
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name(schema))),
                )
                .build(),
        ));
    }
    for (status, description) in op.ok {
        builder = builder.response(status.to_string(), success(op, description));
    }
    let mut errors: Vec<u16> = op.errors.to_vec();
    if op.access != Access::Open {
        builder = builder.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        errors.extend([401, 403, 429]);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        builder = builder.response(
            status.to_string(),
            RefOr::<Response>::Ref(Ref::new(format!(
                "#/components/responses/{}",
                error_name(status)
            ))),
        );
    }
    builder.build()
}

fn success(op: Op, description: &str) -> Response {
    let response = ResponseBuilder::new().description(description);
    let response = match op.answer {
        Answer::Json(schema) => response.content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        ),
        Answer::Events => response.content(
            "text/event-stream",
            Content::builder()
                .schema(Some(text()))
                .description(Some(
                    "Server-Sent Events: `id` is the event id, `event` the kind, `data` a \
                     `LicenseEvent` as JSON. An `error` event carries a code and ends the \
                     stream.",
                ))
                .build(),
        ),
        Answer::Status => response.content(
            "application/json",
            Content::new(Some(Schema::from(
                ObjectBuilder::new().schema_type(Type::Object).build(),
            ))),
        ),
        Answer::Text(media) => response.content(media, Content::new(Some(text()))),
    };
    let mut response = response;
    if op.access == Access::Write || op.id == "AdoptLicense" {
        response = response.header(
            "Location",
            described_header(Some("The license: `/v1/licenses/{id}`.")),
        );
    }
    if op.access == Access::Write {
        response = response.header(
            "Idempotent-Replayed",
            described_header(Some("`true` when this is the answer of an earlier call with the same `Idempotency-Key`.")),
        );
    }
    if op.id == "EnsureServerLicense" {
        response = response.header(
            "X-Ensure-Action",
            described_header(Some("What was done: an `EnsureAction` name.")),
        );
    }
    response.build()
}

fn header_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(text()))
        .build()
}

fn param_schema(kind: Param) -> Schema {
    match kind {
        Param::Text => text(),
        Param::Int => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .build()
            .into(),
        Param::PageSize => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(1000))
            .build()
            .into(),
        Param::Months => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some([1, 12]))
            .build()
            .into(),
        Param::Wait => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]+(ms|s)$"))
            .build()
            .into(),
        Param::State => ObjectBuilder::new()
            .schema_type(Type::String)
            // Empty: no filter.
            .enum_values(Some(
                std::iter::once("").chain(crate::domain::LicenseState::ALL.map(|s| s.as_str())),
            ))
            .build()
            .into(),
    }
}

fn path_param_description(name: &str) -> &'static str {
    match name {
        "id" => "The license id (a UUID).",
        "serverId" => "The caller's server id: 1 to 128 printable characters.",
        "upstreamId" => "The upstream (BILLmanager) license id of an orphan.",
        _ => "The panel's name or alias.",
    }
}

fn path_param_schema(name: &str) -> Schema {
    let builder = ObjectBuilder::new().schema_type(Type::String);
    match name {
        "id" => builder.format(Some(SchemaFormat::Custom("uuid".into()))),
        // The documented subset is printable ASCII; other printable text is accepted too.
        "serverId" => builder.pattern(Some("^[!-~](?:[ -~]{0,126}[!-~])?$")),
        "upstreamId" => builder.pattern(Some("^[1-9][0-9]{0,18}$")),
        _ => builder.min_length(Some(1)),
    }
    .build()
    .into()
}

/// The `{name}` segments of a route template.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn described_header(description: Option<&str>) -> Header {
    let mut header = Header::new(text());
    header.description = description.map(str::to_owned);
    header
}
