//! The REST bodies and the change feed are exactly the proto3 JSON mapping of the API
//! messages: every kind of answer the service gives is collected from a real service
//! and read by the reference parser (Python protobuf's `json_format`, with the classes
//! generated in clients/python), which must write each back unchanged. Timestamps are
//! also checked here directly (RFC 3339, UTC with `Z`, 0/3/6/9 fraction digits), as are
//! 64-bit integers (strings), so that part holds where Python is missing.
//!
//! With `CI=true` a missing python3 or protobuf runtime fails the test; elsewhere the
//! reference parser's part is skipped, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use license_facade::sandbox::NewSandboxLicense;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// REST bodies and feed events as the service wrote them, each with the message it is.
#[derive(Default)]
struct Bodies(Vec<(&'static str, String)>);

impl Bodies {
    /// Sends `request`, expects `status`, keeps the body as `message`; returns it parsed.
    async fn keep(
        &mut self,
        request: reqwest::RequestBuilder,
        status: u16,
        message: &'static str,
    ) -> Value {
        let response = request.send().await.expect("request sent");
        let got = response.status().as_u16();
        let text = response.text().await.expect("a body");
        assert_eq!(got, status, "{message}: {text}");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        self.0.push((message, text));
        value
    }

    async fn get(&mut self, app: &TestApp, path: &str, message: &'static str) -> Value {
        let request = app.client.get(format!("{}{path}", app.http));
        self.keep(request, 200, message).await
    }

    async fn post(
        &mut self,
        app: &TestApp,
        path: &str,
        body: Value,
        status: u16,
        message: &'static str,
    ) -> Value {
        let request = app.client.post(format!("{}{path}", app.http)).json(&body);
        self.keep(request, status, message).await
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn every_rest_answer_and_feed_event_is_exactly_the_proto3_json_the_reference_parser_writes() {
    // Arrange: one service, and something for every kind of answer to show: a license
    // with nodes (proto3 optional) and a last error, licenses that go missing,
    // mismatched and expiring, an orphan, an adoption, audit entries.
    let app = spawn_app().await;
    let mut bodies = Bodies::default();
    bodies.get(&app, "/v1/panels", "ListPanelsResponse").await;
    bodies
        .get(
            &app,
            "/v1/panels/ispmanager-6-pro/quote?periodMonths=12",
            "QuoteLicenseResponse",
        )
        .await;
    let business = bodies
        .post(
            &app,
            "/v1/licenses?wait=20s",
            json!({"server": {"id": "json-1", "ip": "203.0.113.150", "hostname": "json-1.example"},
                   "panel": "ISPmanager 6 Business", "nodes": 3}),
            201,
            "License",
        )
        .await;
    assert_eq!(business["nodes"], 3, "{business}");
    let pro = |n: u32| json!({"server": {"id": format!("json-{n}"), "ip": format!("203.0.113.{}", 150 + n)}, "panel": "ISPmanager 6 Pro"});
    let gone = bodies
        .post(&app, "/v1/licenses?wait=20s", pro(2), 201, "License")
        .await;
    let moved = bodies
        .post(&app, "/v1/licenses?wait=20s", pro(3), 201, "License")
        .await;
    let business_id = id(&business);
    // The first IP change goes through; the second falls in the upstream's cooldown
    // and leaves a last error (and an OPERATION_FAILED event).
    bodies
        .post(
            &app,
            &format!("/v1/licenses/{business_id}/change-ip?wait=20s"),
            json!({"ip": "203.0.113.170"}),
            200,
            "License",
        )
        .await;
    let refused = app
        .post_json(
            &format!("/v1/licenses/{business_id}/change-ip?wait=20s"),
            &json!({"ip": "203.0.113.171"}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let failed = bodies
        .get(&app, &format!("/v1/licenses/{business_id}"), "License")
        .await;
    assert_eq!(failed["lastError"]["code"], "UPSTREAM_REFUSED", "{failed}");
    let page = bodies
        .get(&app, "/v1/licenses?pageSize=2", "ListLicensesResponse")
        .await;
    assert!(
        page["nextPageToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let orphan_id = app
        .sandbox
        .insert_license(NewSandboxLicense::new("203.0.113.180", 55229));
    let upstream = |l: &Value| -> u64 { l["upstreamId"].as_str().unwrap().parse().unwrap() };
    assert!(app.sandbox.remove_license(upstream(&gone)));
    app.upstream_call(&[
        ("func", "soft.edit"),
        ("elid", &upstream(&moved).to_string()),
        ("ip", "203.0.113.181"),
    ])
    .await;
    let report = bodies
        .post(
            &app,
            "/v1/reconcile",
            json!({"expiringWithinDays": 40}),
            200,
            "DriftReport",
        )
        .await;
    for list in ["orphans", "missing", "mismatches", "expiring"] {
        assert!(
            report[list].as_array().is_some_and(|l| !l.is_empty()),
            "{list}: {report}"
        );
    }
    bodies.get(&app, "/v1/drift", "DriftReport").await;
    bodies
        .post(
            &app,
            &format!("/v1/drift/{orphan_id}/adopt"),
            json!({"serverId": "json-adopted"}),
            201,
            "License",
        )
        .await;
    bodies
        .get(&app, "/v1/audit?pageSize=100", "ListAuditEntriesResponse")
        .await;
    bodies.get(&app, "/v1/reports/costs", "CostReport").await;
    let hook = bodies
        .post(
            &app,
            "/v1/webhooks",
            json!({"url": "https://203.0.113.50/licenses", "eventTypes": ["CREATED"]}),
            201,
            "CreateWebhookResponse",
        )
        .await;
    bodies
        .get(&app, "/v1/webhooks", "ListWebhooksResponse")
        .await;
    bodies
        .get(
            &app,
            &format!("/v1/webhooks/{}", hook["webhook"]["id"].as_str().unwrap()),
            "Webhook",
        )
        .await;
    // The last change: the feed is read up to its CREATED event. Accepted, not yet
    // ordered: a license without expiry or upstream id.
    let marker = bodies
        .post(&app, "/v1/licenses", pro(9), 202, "License")
        .await;

    // Act: the change feed over SSE, from the start to the marker's CREATED event.
    let kinds = read_feed(&app, &id(&marker), &mut bodies).await;

    // Assert
    for kind in ["CREATED", "STATE_CHANGED", "IP_CHANGED", "OPERATION_FAILED"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    for (message, text) in &bodies.0 {
        let value: Value = serde_json::from_str(text).unwrap();
        assert_proto3_scalars(message, &value, message);
    }
    reference_parser_reads_and_writes_back(&bodies);
}

/// Reads `GET /v1/events` from the start until the CREATED event of license `until`,
/// keeping every event's data; returns the kinds seen.
async fn read_feed(app: &TestApp, until: &str, bodies: &mut Bodies) -> Vec<String> {
    let response = app
        .client
        .get(format!("{}/v1/events", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the marker's event arrives in time")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut kind = String::new();
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(v.trim().to_owned());
                }
            }
            // Keep-alive comments carry no data.
            let Some(data) = data else { continue };
            let event: Value =
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            assert_eq!(
                event["kind"],
                kind.as_str(),
                "the SSE event name is the kind"
            );
            bodies.0.push(("LicenseEvent", data));
            kinds.push(kind.clone());
            if kind == "CREATED" && event["license"]["id"] == until {
                return kinds;
            }
        }
    }
}

/// The scalars whose JSON form the mapping fixes beyond JSON's own types: timestamps
/// (`...Time` fields) and the 64-bit ids of events and audit entries.
fn assert_proto3_scalars(message: &str, value: &Value, at: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{at}.{key}");
                if key.ends_with("Time") {
                    let text = v.as_str().unwrap_or_else(|| panic!("{here}: {v}"));
                    assert!(is_proto3_timestamp(text), "{here}: {text}");
                }
                let wide_id = key == "id" && matches!(message, "LicenseEvent" | "AuditEntry");
                if wide_id {
                    assert!(v.is_string(), "{here}: an int64 is a string, not {v}");
                }
                let nested = match key.as_str() {
                    "entries" => "AuditEntry",
                    "license" | "licenses" => "License",
                    _ => message,
                };
                assert_proto3_scalars(nested, v, &here);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_proto3_scalars(message, item, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

/// `YYYY-MM-DDThh:mm:ss[.fff|.ffffff|.fffffffff]Z`.
fn is_proto3_timestamp(text: &str) -> bool {
    let Some(rest) = text.strip_suffix('Z') else {
        return false;
    };
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let shape = whole.len() == 19
        && whole.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        });
    let fraction_ok = if rest.contains('.') {
        matches!(fraction.len(), 3 | 6 | 9) && fraction.chars().all(|c| c.is_ascii_digit())
    } else {
        true
    };
    shape && fraction_ok
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// python3 with the protobuf runtime and the generated classes, or why not.
fn python_ready() -> Result<(), String> {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import google.protobuf.json_format, licensefacade.v1.license_service_pb2",
        ])
        .env("PYTHONPATH", repo().join("clients/python/src"))
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        // The last line of the traceback says what is missing.
        let stderr = String::from_utf8_lossy(&probe.stderr);
        Err(stderr.trim().lines().last().unwrap_or_default().to_owned())
    }
}

/// Writes every body to a file and has tests/api/json_mapping.py read and write each
/// back with the reference parser.
fn reference_parser_reads_and_writes_back(bodies: &Bodies) {
    if let Err(why) = python_ready() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI needs python3 with protobuf and grpcio (pip install -r \
             clients/python/requirements-generate.txt): {why}"
        );
        eprintln!(
            "skipped the reference proto3 JSON parser (python3 with protobuf is missing: {why}); \
             CI=true makes this a failure"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, (message, text)) in bodies.0.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i:03}.{message}.json")), text).unwrap();
    }
    let output = run_parser(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the reference parser reads the service's JSON otherwise:\n{stderr}{stdout}"
    );
    eprintln!("{}", stdout.trim());
}

fn run_parser(dir: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("tests/api/json_mapping.py"))
        .arg(dir)
        .env("PYTHONPATH", repo().join("clients/python/src"))
        .output()
        .expect("python3 runs")
}
