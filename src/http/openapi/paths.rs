//! The OpenAPI paths built from the route table ([`super::routes`]).

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
use super::routes::{Access, Answer, Op, Param, operations};

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
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .build()
        .into()
}

fn text() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .build()
        .into()
}

/// Whether the operation takes an `Idempotency-Key`: every write, and the admin's
/// resolution of a license.
fn takes_request_id(op: Op) -> bool {
    op.access == Access::Write || op.id == "ResolveLicense"
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
        .tag(if op.access == Access::Open {
            "operations"
        } else {
            "licenses"
        });
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
    if takes_request_id(op) {
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
        let required = if required {
            Required::True
        } else {
            Required::False
        };
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
        Answer::JsonOrCsv(schema) => response
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(schema))),
            )
            .content(
                "text/csv",
                Content::builder()
                    .schema(Some(text()))
                    .description(Some(
                        "RFC 4180 CSV: a header line, one line per row, the totals last (client \
                         and panel empty); the same fields in snake_case.",
                    ))
                    .build(),
            ),
    };
    let mut response = response;
    if takes_request_id(op) || op.id == "AdoptLicense" {
        response = response.header(
            "Location",
            described_header(Some("The license: `/v1/licenses/{id}`.")),
        );
    }
    if takes_request_id(op) {
        response = response.header(
            "Idempotent-Replayed",
            described_header(Some("`true` when this is the answer of an earlier call with the same `Idempotency-Key`.")),
        );
    }
    if matches!(op.answer, Answer::Json("License")) {
        for (name, link) in license_links() {
            response = response.link(name, link);
        }
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

/// Where a license answer leads: the calls that take its id or its server id.
fn license_links() -> Vec<(String, utoipa::openapi::link::Link)> {
    use utoipa::openapi::link::LinkBuilder;
    let by_id = [
        "GetLicense",
        "CancelLicense",
        "RenewLicense",
        "ChangeLicenseIp",
        "ChangeLicensePanel",
        "SuspendLicense",
        "ResumeLicense",
        "ReissueLicenseKey",
    ];
    let mut links: Vec<_> = by_id
        .into_iter()
        .map(|id| {
            let link = LinkBuilder::new()
                .operation_id(id)
                .parameter("id", "$response.body#/id")
                .build();
            (id.to_owned(), link)
        })
        .collect();
    for id in ["GetServerLicense", "CancelServerLicense"] {
        let link = LinkBuilder::new()
            .operation_id(id)
            .parameter("serverId", "$response.body#/serverId")
            .build();
        links.push((id.to_owned(), link));
    }
    links
}

fn described_header(description: Option<&str>) -> Header {
    let mut header = Header::new(text());
    header.description = description.map(str::to_owned);
    header
}
