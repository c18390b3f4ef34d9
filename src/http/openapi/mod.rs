//! The OpenAPI 3.1 description of the REST API (`GET /openapi.json`,
//! `license-facade print-openapi`) and an API reference page that works offline
//! (`GET /docs`).
//!
//! Bodies are described by schemas derived from the proto descriptors ([`proto`]);
//! operation descriptions are the proto comments of the matching RPCs. The routes are
//! listed in [`routes`], one entry per handler in `http::router`; a test checks
//! that each listed route is served and that the spec matches the committed snapshot
//! `docs/openapi.json`. [`compat`] holds the spec to the last released one,
//! `docs/openapi.baseline.json`: additions only.

pub mod compat;
mod paths;
mod proto;
mod routes;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Schema};

pub use routes::{Access, Answer, Op, Param, operations};

/// The messages the REST answers are made of; everything they refer to comes along.
const RESPONSE_ROOTS: &[&str] = &[
    "ListPanelsResponse",
    "QuoteLicenseResponse",
    "License",
    "ListLicensesResponse",
    "LicenseEvent",
    "DriftReport",
    "ListAuditEntriesResponse",
    "CostReport",
    "ListWebhooksResponse",
    "CreateWebhookResponse",
    "Webhook",
    "DeleteWebhookResponse",
    "ReleaseLicenseResponse",
    "GetPoolResponse",
];

/// The messages REST request bodies are; in proto3 JSON every field of a request may be
/// left out, so their schemas require none (the service says what it needs).
const REQUEST_ROOTS: &[&str] = &[
    "OrderLicenseRequest",
    "ReconcileRequest",
    "AdoptLicenseRequest",
    "CreateWebhookRequest",
];

/// The whole document.
pub fn spec() -> OpenApi {
    let protos = proto::Protos::load();
    let mut components = ComponentsBuilder::new()
        .schemas_from_iter(protos.schemas(REQUEST_ROOTS, RESPONSE_ROOTS))
        .schemas_from_iter(hand_written_schemas())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A client token from the clients file (`serve --sandbox` without one \
                         accepts `sandbox-token`).",
                    ))
                    .build(),
            ),
        );
    for (name, response) in paths::shared_responses() {
        components = components.response(name, response);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("license-facade")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .paths(paths::paths(&protos))
        .components(Some(components.build()))
        .build()
}

const DESCRIPTION: &str = "Orders and manages ISPmanager licenses on BILLmanager, exactly once. \
The same API is served over gRPC (`licensefacade.v1.LicenseService`); REST bodies are the proto3 \
JSON mapping of its messages. Mutating calls take an `Idempotency-Key` header: a replay answers \
the first result. Errors are RFC 9457 `application/problem+json` with a stable `code`.";

/// The spec as pretty JSON, built once.
pub fn spec_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = serde_json::to_string_pretty(&spec()).expect("the spec serializes");
        text.push('\n');
        text
    })
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], spec_json()).into_response()
}

/// `GET /docs`: a reference page rendered in the browser from `/openapi.json`; it
/// loads nothing from elsewhere.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// Schemas of bodies that are not API messages: the problem document and the REST
/// bodies of calls whose id travels in the path.
fn hand_written_schemas() -> Vec<(String, RefOr<Schema>)> {
    let period = json!({
        "type": "integer", "format": "int32", "enum": [0, 1, 12],
        "description": "1 or 12 months; 0 or absent: the license's current period (1 for a new order)."
    });
    let schemas = [
        (
            "Problem",
            json!({
                "type": "object",
                "description": "An RFC 9457 problem document.",
                "required": ["type", "title", "status", "detail", "code"],
                "properties": {
                    "type": {"type": "string", "description": "`urn:license-facade:problem:<code in lower case>`."},
                    "title": {"type": "string", "description": "The HTTP status text."},
                    "status": {"type": "integer", "description": "The HTTP status code."},
                    "detail": {"type": "string", "description": "What went wrong, for people."},
                    "code": {"type": "string", "description": "Stable UPPER_SNAKE reason, e.g. INVALID_ARGUMENT, NOT_FOUND, IDEMPOTENCY_KEY_REUSED."},
                    "errors": {
                        "type": "array",
                        "description": "Field violations (400), or the field that differs (409 UPSTREAM_LICENSE_MISMATCH).",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {
                                "field": {"type": "string"},
                                "message": {"type": "string"}
                            }
                        }
                    },
                    "licenseId": {"type": "string", "description": "The server's existing license (SERVER_HAS_LICENSE)."}
                }
            }),
        ),
        (
            "RenewLicenseBody",
            json!({
                "type": "object", "additionalProperties": false,
                "description": "Body of `POST /v1/licenses/{id}/renew` (RenewLicenseRequest without the id).",
                "properties": {"periodMonths": period}
            }),
        ),
        (
            "ChangeLicenseIpBody",
            json!({
                "type": "object", "additionalProperties": false, "required": ["ip"],
                "description": "Body of `POST /v1/licenses/{id}/change-ip`.",
                "properties": {"ip": {"type": "string", "description": "The new unicast IPv4 or IPv6 address, under the same rules as an order's server.ip."}}
            }),
        ),
        (
            "ChangeLicensePanelBody",
            json!({
                "type": "object", "additionalProperties": false, "required": ["panel"],
                "description": "Body of `POST /v1/licenses/{id}/change-panel`.",
                "properties": {
                    "panel": {"type": "string", "description": "The panel to switch to (name or alias)."},
                    "periodMonths": period
                }
            }),
        ),
        (
            "ResolveLicenseBody",
            json!({
                "type": "object", "additionalProperties": false, "required": ["action", "reason"],
                "description": "Body of `POST /v1/licenses/{id}/resolve` (ResolveLicenseRequest without the id).",
                "properties": {
                    "action": {"type": "string", "enum": ["RETRY", "BIND", "ABANDON"], "description": "RETRY: nothing was bought, send the stuck order or change once more. BIND: the purchase happened, take the upstream license `upstreamId`. ABANDON: FAILED here, nothing is sent."},
                    "reason": {"type": "string", "minLength": 1, "maxLength": 1000, "description": "Why, for the audit log."},
                    "upstreamId": {"type": "string", "pattern": "^[0-9]+$", "description": "BIND only: the BILLmanager license id (e.g. an orphan of the drift report); it must match the license's IP and tariff."}
                }
            }),
        ),
        (
            "EnsureServerLicenseBody",
            json!({
                "type": "object", "additionalProperties": false, "required": ["ip", "panel"],
                "description": "Body of `PUT /v1/servers/{serverId}/license`: the license the server must have.",
                "properties": {
                    "ip": {"type": "string", "description": "The address the license must be bound to."},
                    "panel": {"type": "string", "description": "The panel (name or alias)."},
                    "hostname": {"type": "string", "description": "Host name, for people reading lists."},
                    "periodMonths": period,
                    "autoRenew": {"type": "boolean", "description": "Whether the upstream renews it by itself (new orders)."},
                    "nodes": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "description": "Node count (Business)."}
                }
            }),
        ),
    ];
    schemas
        .into_iter()
        .map(|(name, value)| {
            let schema: RefOr<Schema> =
                serde_json::from_value(value).expect("a valid hand-written schema");
            (name.to_owned(), schema)
        })
        .collect()
}

#[cfg(test)]
mod tests;
