//! The routes of the REST API as data: one entry per handler in `http::router`, with
//! what each takes and answers. [`super::paths`] turns them into OpenAPI paths.

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
    /// JSON of a component schema, or CSV for `Accept: text/csv`.
    JsonOrCsv(&'static str),
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
    (
        "pageSize",
        Param::PageSize,
        "At most this many items (default 100, at most 1000).",
    ),
    (
        "pageToken",
        Param::Text,
        "`nextPageToken` of the previous page.",
    ),
];
const CHANGED: &[(u16, &str)] = &[
    (200, "Done (with `?wait=`), or nothing needed doing."),
    (
        202,
        "Accepted; the change runs in the background. `Location` names the license.",
    ),
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
            ..op(
                "get",
                "/v1/panels",
                "ListPanels",
                "List the orderable panels",
                Access::Read,
            )
        },
        Op {
            query: &[
                (
                    "periodMonths",
                    Param::Months,
                    "1 or 12 (default 1); ignored for trials.",
                ),
                (
                    "nodes",
                    Param::Int,
                    "Nodes (1 to 100) for a panel sold per node (Business), priced with it.",
                ),
            ],
            answer: Answer::Json("QuoteLicenseResponse"),
            errors: &[400, 404, 503],
            ..op(
                "get",
                "/v1/panels/{panel}/quote",
                "QuoteLicense",
                "Price of a panel",
                Access::Read,
            )
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
            ..op(
                "get",
                "/v1/licenses",
                "ListLicenses",
                "List licenses",
                Access::Read,
            )
        },
        Op {
            query: &[WAIT],
            body: Some(("OrderLicenseRequest", true)),
            ok: &[
                (
                    200,
                    "The server already had this license; nothing was bought. Or, with \
                     `?wait=`, the order ended within the wait without a license: `FAILED` \
                     (the upstream refused; `lastError` says why) or `NEEDS_ATTENTION`.",
                ),
                (
                    201,
                    "With `?wait=`: ordered, and `ACTIVE` with its key within the wait; the \
                     body is the active license. `Location` names it.",
                ),
                (
                    202,
                    "Accepted; the order runs in the background (without `?wait=`, or still \
                     running when the wait ran out). `Location` names the license.",
                ),
            ],
            errors: CHANGE_ERRORS,
            ..op(
                "post",
                "/v1/licenses",
                "OrderLicense",
                "Order a license for a server",
                Access::Write,
            )
        },
        Op {
            errors: &[400, 404],
            ..op(
                "get",
                "/v1/licenses/{id}",
                "GetLicense",
                "Read a license",
                Access::Read,
            )
        },
        Op {
            query: &[WAIT],
            ok: CHANGED,
            errors: CHANGE_ERRORS,
            ..op(
                "delete",
                "/v1/licenses/{id}",
                "CancelLicense",
                "Cancel a license",
                Access::Write,
            )
        },
        change(
            "/v1/licenses/{id}/renew",
            "RenewLicense",
            "Renew a license",
            Some(("RenewLicenseBody", true)),
        ),
        change(
            "/v1/licenses/{id}/change-ip",
            "ChangeLicenseIp",
            "Move a license to another IP",
            Some(("ChangeLicenseIpBody", true)),
        ),
        change(
            "/v1/licenses/{id}/change-panel",
            "ChangeLicensePanel",
            "Switch a license's panel",
            Some(("ChangeLicensePanelBody", true)),
        ),
        change(
            "/v1/licenses/{id}/suspend",
            "SuspendLicense",
            "Suspend a license",
            None,
        ),
        change(
            "/v1/licenses/{id}/resume",
            "ResumeLicense",
            "Resume a license",
            None,
        ),
        change(
            "/v1/licenses/{id}/reissue-key",
            "ReissueLicenseKey",
            "Issue a new key",
            None,
        ),
        Op {
            query: &[WAIT],
            body: Some(("ResolveLicenseBody", true)),
            ok: &[
                (
                    200,
                    "Bound or abandoned (or, with `?wait=`, retried and done).",
                ),
                (
                    202,
                    "Retry accepted; the work runs in the background. `Location` names the license.",
                ),
            ],
            errors: &[400, 404, 409, 413, 415, 422, 503],
            ..op(
                "post",
                "/v1/licenses/{id}/resolve",
                "ResolveLicense",
                "Resolve a license that needs attention",
                Access::Admin,
            )
        },
        Op {
            query: &[WAIT],
            ok: CHANGED,
            answer: Answer::Json("ReleaseLicenseResponse"),
            errors: CHANGE_ERRORS,
            ..op(
                "post",
                "/v1/licenses/{id}/release",
                "ReleaseLicense",
                "Release a license to the pool (parked, or cancelled by the pool's rules)",
                Access::Write,
            )
        },
        Op {
            answer: Answer::Json("GetPoolResponse"),
            ..op(
                "get",
                "/v1/pool",
                "GetPool",
                "What the license pool holds, costs and saved",
                Access::Admin,
            )
        },
        Op {
            query: &[(
                "client",
                Param::Text,
                "Admin only: the client whose server it is. Needed when several clients use the server id (else 409 `SERVER_ID_AMBIGUOUS`).",
            )],
            errors: &[400, 404, 409],
            ..op(
                "get",
                "/v1/servers/{serverId}/license",
                "GetServerLicense",
                "Read a server's license",
                Access::Read,
            )
        },
        Op {
            query: &[WAIT],
            body: Some(("EnsureServerLicenseBody", true)),
            ok: &[
                (
                    200,
                    "The license already matched, or was converged within `?wait=`. `X-Ensure-Action` says what was done.",
                ),
                (
                    202,
                    "An order or a change was queued. `X-Ensure-Action` says which.",
                ),
            ],
            errors: CHANGE_ERRORS,
            ..op(
                "put",
                "/v1/servers/{serverId}/license",
                "EnsureServerLicense",
                "Converge a server's license",
                Access::Write,
            )
        },
        Op {
            query: &[
                WAIT,
                (
                    "policy",
                    Param::Text,
                    "`cancel` (the default) or `park`: release to the pool by its rules; `X-Release-Outcome` (PARKED or CANCELLED) and `X-Release-Reason` say where it went.",
                ),
            ],
            ok: CHANGED,
            errors: CHANGE_ERRORS,
            ..op(
                "delete",
                "/v1/servers/{serverId}/license",
                "CancelServerLicense",
                "Cancel a server's license",
                Access::Write,
            )
        },
        Op {
            query: &[(
                "afterEventId",
                Param::Int,
                "Resume after this event id (or send `Last-Event-ID`).",
            )],
            answer: Answer::Events,
            errors: &[400, 429],
            ..op(
                "get",
                "/v1/events",
                "WatchLicenses",
                "Stream license events (SSE)",
                Access::Read,
            )
        },
        Op {
            body: Some(("ReconcileRequest", false)),
            answer: Answer::Json("DriftReport"),
            errors: &[400, 413, 503],
            ..op(
                "post",
                "/v1/reconcile",
                "Reconcile",
                "Compare upstream and store now",
                Access::Admin,
            )
        },
        Op {
            answer: Answer::Json("DriftReport"),
            errors: &[404],
            ..op(
                "get",
                "/v1/drift",
                "ListDrift",
                "The latest drift report",
                Access::Admin,
            )
        },
        Op {
            body: Some(("AdoptLicenseRequest", true)),
            ok: &[(201, "Adopted; `Location` names the new license.")],
            errors: &[400, 404, 409, 413, 415, 422, 503],
            ..op(
                "post",
                "/v1/drift/{upstreamId}/adopt",
                "AdoptLicense",
                "Adopt an orphan",
                Access::Admin,
            )
        },
        Op {
            query: &[
                ("licenseId", Param::Text, "Only this license's entries."),
                PAGE[0],
                PAGE[1],
            ],
            answer: Answer::Json("ListAuditEntriesResponse"),
            errors: &[400],
            ..op(
                "get",
                "/v1/audit",
                "ListAuditEntries",
                "Read the audit log",
                Access::Admin,
            )
        },
        Op {
            query: &[(
                "month",
                Param::Text,
                "The month as YYYY-MM (UTC); the current month when left out.",
            )],
            answer: Answer::JsonOrCsv("CostReport"),
            errors: &[400],
            ..op(
                "get",
                "/v1/reports/costs",
                "GetCostReport",
                "A month's cost report",
                Access::Read,
            )
        },
        Op {
            answer: Answer::Json("ListWebhooksResponse"),
            ..op(
                "get",
                "/v1/webhooks",
                "ListWebhooks",
                "List webhook subscriptions",
                Access::Read,
            )
        },
        Op {
            body: Some(("CreateWebhookRequest", true)),
            ok: &[(
                201,
                "Subscribed; `Location` names the subscription. The secret is shown only here.",
            )],
            answer: Answer::Json("CreateWebhookResponse"),
            errors: &[400, 413, 415],
            ..op(
                "post",
                "/v1/webhooks",
                "CreateWebhook",
                "Subscribe a URL to the change feed",
                Access::Write,
            )
        },
        Op {
            answer: Answer::Json("Webhook"),
            errors: &[404],
            ..op(
                "get",
                "/v1/webhooks/{id}",
                "GetWebhook",
                "One webhook subscription",
                Access::Read,
            )
        },
        Op {
            answer: Answer::Json("DeleteWebhookResponse"),
            errors: &[404],
            ..op(
                "delete",
                "/v1/webhooks/{id}",
                "DeleteWebhook",
                "Delete a webhook subscription",
                Access::Write,
            )
        },
        Op {
            answer: Answer::Json("Webhook"),
            errors: &[404],
            ..op(
                "post",
                "/v1/webhooks/{id}/resume",
                "ResumeWebhook",
                "Resume a failing webhook subscription",
                Access::Write,
            )
        },
        Op {
            answer: Answer::Status,
            ..op(
                "get",
                "/healthz",
                "Live",
                "Liveness: 200 while the process runs",
                Access::Open,
            )
        },
        Op {
            ok: &[
                (200, "Ready."),
                (503, "Not ready; the body says what failed."),
            ],
            answer: Answer::Status,
            ..op(
                "get",
                "/readyz",
                "Ready",
                "Readiness: store, upstream, circuit breaker, draining",
                Access::Open,
            )
        },
        Op {
            answer: Answer::Text("text/plain"),
            ..op(
                "get",
                "/metrics",
                "Metrics",
                "Prometheus metrics (text exposition format)",
                Access::Open,
            )
        },
        Op {
            answer: Answer::Text("application/json"),
            ..op(
                "get",
                "/openapi.json",
                "OpenApi",
                "This document",
                Access::Open,
            )
        },
        Op {
            answer: Answer::Text("text/html"),
            ..op(
                "get",
                "/docs",
                "Docs",
                "The API reference page",
                Access::Open,
            )
        },
    ]
}
