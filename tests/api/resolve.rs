//! Resolving a NEEDS_ATTENTION license (RETRY, BIND, ABANDON) over REST and gRPC:
//! each outcome, each refusal with the same reason code on both transports, and the
//! purchases that reach the upstream counted in the sandbox.

use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use license_facade::config::Settings;
use license_facade::sandbox::NewSandboxLicense;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{GrpcClient, TestApp, grpc_client_with, http_client_with, reason};
use crate::support::{Stuck, named_clients, plant_status_witnesses, purchases};

/// Quick look-ups, no automatic re-send: a lost order ends with a person at once.
/// Called as an admin (`ops`) or a writer without the admin scope (`alpha`).
fn quick(settings: &mut Settings) {
    settings.clients = Some(named_clients(&[
        ("ops", r#"["admin"]"#, ""),
        ("alpha", r#"["licenses.read", "licenses.write"]"#, ""),
    ]));
    // Nothing is looked up as absent before a request timeout after the last send.
    settings.billmanager.request_timeout = Duration::from_secs(2);
    settings.workflow.settle_interval = Duration::from_millis(50);
    settings.workflow.settle_checks = 2;
    settings.workflow.max_lookup_failures = 3;
    settings.workflow.max_resends = 0;
}

/// The app, called as the admin `ops` by default.
async fn spawn() -> TestApp {
    let mut app = crate::helpers::spawn_app_with(0, quick).await;
    app.client = http_client_with(Some("ops-token"));
    app
}

async fn grpc_as(app: &TestApp, client: &str) -> GrpcClient {
    grpc_client_with(app.grpc_addr, Some(&format!("{client}-token"))).await
}

fn order(n: u32) -> Value {
    json!({"server": {"id": format!("srv-{n}"), "ip": format!("203.0.113.{n}")},
           "panel": "ISPmanager 6 Pro"})
}

impl TestApp {
    /// A license whose order failed with a 5xx (nothing bought upstream), handed to
    /// a person because no automatic re-send is allowed.
    async fn stuck_unbought(&self, n: u32) -> String {
        self.stuck("ops-token", &order(n), Stuck::Unbought).await.id
    }

    /// A license whose order was bought upstream but whose answer was lost while the
    /// upstream list failed: a person must decide. Returns it and the upstream id.
    async fn stuck_bought(&self, n: u32) -> (String, u64) {
        let stuck = self.stuck("ops-token", &order(n), Stuck::Bought).await;
        (stuck.id, stuck.bought.expect("bought upstream"))
    }

    async fn resolve(&self, id: &str, body: Value) -> reqwest::Response {
        self.post_json(&format!("/v1/licenses/{id}/resolve"), &body)
            .await
    }

    /// RETRYs `id` with `reason`, waiting (server side) until the retried work is
    /// done: 200 with the license.
    async fn retried_until_done(&self, id: &str, reason: &str) -> Value {
        let response = self
            .post_json(
                &format!("/v1/licenses/{id}/resolve?wait=20s"),
                &json!({"action": "RETRY", "reason": reason}),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Upstream purchases, deleted licenses included: a duplicate that was cancelled
    /// afterwards was still paid for.
    fn bought(&self) -> u64 {
        purchases(&self.sandbox)
    }

    async fn resolve_entries(&self, id: &str) -> Vec<Value> {
        let page: Value = self
            .get(&format!("/v1/audit?licenseId={id}"))
            .await
            .json()
            .await
            .unwrap();
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "RESOLVE")
            .cloned()
            .collect()
    }
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    (status, response.json().await.unwrap())
}

fn grpc_resolve(
    id: &str,
    action: pb::resolve_license_request::Action,
) -> pb::ResolveLicenseRequest {
    pb::ResolveLicenseRequest {
        id: id.into(),
        action: action as i32,
        reason: "checked upstream".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn retry_sends_a_stuck_order_once_more_and_it_becomes_active() {
    let app = spawn().await;
    let id = app.stuck_unbought(1).await;
    assert_eq!(app.bought(), 0);
    let sent = app.sandbox.call_count("soft.order.param");
    // The list shows a license in every status an order may be in, so the retry's
    // look-up can prove the order absent.
    plant_status_witnesses(&app.sandbox);

    let license = app
        .retried_until_done(&id, "nothing in the panel; order again")
        .await;

    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert!(
        license["licenseKey"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert_eq!(app.sandbox.call_count("soft.order.param"), sent + 1);
    assert_eq!(app.bought(), 1);
    let upstream = app.sandbox.licenses();
    assert!(
        upstream.iter().any(|l| l.licname == id),
        "sent under the same licname"
    );
    let entries = app.resolve_entries(&id).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["client"], "ops");
    let detail = entries[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("RETRY: nothing in the panel; order again"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_retried_or_raced_retry_sends_once() {
    let app = spawn().await;
    let id = app.stuck_unbought(2).await;
    let sent = app.sandbox.call_count("soft.order.param");
    plant_status_witnesses(&app.sandbox);
    let body = json!({"action": "RETRY", "reason": "not bought"});
    let url = format!("{}/v1/licenses/{id}/resolve", app.http);

    // Two operators at once, then the winner's request sent again (which one wins
    // the race is up to the store).
    let first = app
        .client
        .post(&url)
        .header("Idempotency-Key", "resolve-a")
        .json(&body);
    let second = app
        .client
        .post(&url)
        .header("Idempotency-Key", "resolve-b")
        .json(&body);
    let (a, b) = tokio::join!(first.send(), second.send());
    let statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    let winner = if statuses[0] == 202 {
        "resolve-a"
    } else {
        "resolve-b"
    };
    let replay = app
        .client
        .post(&url)
        .header("Idempotency-Key", winner)
        .json(&body)
        .send()
        .await
        .unwrap();
    app.license_until(&id, |l| l["state"] == "ACTIVE").await;
    let again = app.resolve(&id, body.clone()).await;

    let mut sorted = statuses;
    sorted.sort_unstable();
    assert_eq!(sorted, [202, 409], "one retry wins, the other is refused");
    // The winner's request sent again answers as it did: accepted.
    assert_eq!(replay.status().as_u16(), 202, "the replay of the winner");
    let (status, p) = problem(again).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("INVALID_LICENSE_STATE"))
    );
    assert_eq!(app.sandbox.call_count("soft.order.param"), sent + 1);
    assert_eq!(app.bought(), 1, "one purchase, whatever was retried");
    assert_eq!(app.resolve_entries(&id).await.len(), 1);
}

#[tokio::test]
async fn a_retry_on_a_list_that_cannot_prove_the_order_absent_goes_back_to_a_person_unsent() {
    let app = spawn().await;
    let id = app.stuck_unbought(7).await;
    let sent = app.sandbox.call_count("soft.order.param");

    // Nothing is listed, so nothing shows that an order in processing would be.
    let license = app
        .retried_until_done(&id, "nothing in the panel; order again")
        .await;

    assert_eq!(license["state"], "NEEDS_ATTENTION", "{license}");
    assert_eq!(license["lastError"]["code"], "UPSTREAM_OUTCOME_UNKNOWN");
    let message = license["lastError"]["message"].as_str().unwrap();
    assert!(
        message.contains("BIND") && message.contains("ABANDON"),
        "{message}"
    );
    assert_eq!(app.sandbox.call_count("soft.order.param"), sent, "not sent");
    assert_eq!(app.bought(), 0);
}

#[tokio::test]
async fn a_retry_of_an_order_bought_after_all_adopts_it_and_buys_nothing() {
    let app = spawn().await;
    let (id, upstream_id) = app.stuck_bought(3).await;
    let sent = app.sandbox.call_count("soft.order.param");

    // The operator is wrong: the order was bought. The retry looks it up first.
    let license = app
        .retried_until_done(&id, "looks like nothing was bought")
        .await;

    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert_eq!(license["upstreamId"], upstream_id.to_string());
    assert_eq!(app.sandbox.call_count("soft.order.param"), sent);
    assert_eq!(app.bought(), 1);
}

#[tokio::test]
async fn bind_takes_over_the_bought_upstream_license_over_grpc() {
    let app = spawn().await;
    let (id, upstream_id) = app.stuck_bought(4).await;
    let mut grpc = grpc_as(&app, "ops").await;

    let mut request = grpc_resolve(&id, pb::resolve_license_request::Action::Bind);
    request.upstream_id = upstream_id.to_string();
    request.reason = "found it in the panel".into();
    let license = grpc
        .resolve_license(request)
        .await
        .expect("bound")
        .into_inner()
        .license
        .unwrap();

    assert_eq!(license.state(), pb::license::State::Active);
    assert_eq!(license.upstream_id, upstream_id.to_string());
    assert!(!license.license_key.is_empty());
    assert_eq!(app.bought(), 1, "nothing more was bought");
    let entries = app.resolve_entries(&id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["upstreamId"], upstream_id.to_string());
    assert!(entries[0]["detail"].as_str().unwrap().contains(&format!(
        "bound to upstream license {upstream_id}, now ACTIVE"
    )));
    // The feed shows the change.
    let events: Value = app
        .get(&format!("/v1/licenses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["state"], "ACTIVE");
}

#[tokio::test]
async fn a_drift_orphan_resolves_the_license_it_belongs_to() {
    let app = spawn().await;
    let (id, upstream_id) = app.stuck_bought(5).await;
    let report: Value = app
        .post_json("/v1/reconcile", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let orphan = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["upstreamId"].as_str() == Some(upstream_id.to_string().as_str()))
        .cloned()
        .expect("the purchase is an orphan");
    // Adopting it as a new license is refused for the stuck server, naming the call.
    let adopt = app
        .post_json(
            &format!("/v1/drift/{upstream_id}/adopt"),
            &json!({"serverId": "srv-5"}),
        )
        .await;
    let (status, p) = problem(adopt).await;
    assert_eq!(
        (status, p["code"].as_str()),
        (409, Some("SERVER_HAS_LICENSE"))
    );
    assert!(
        p["detail"].as_str().unwrap().contains("ResolveLicense"),
        "{p}"
    );

    let response = app
        .resolve(
            &id,
            json!({"action": "BIND", "reason": "the drift orphan is ours",
                   "upstreamId": orphan["upstreamId"]}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let license: Value = response.json().await.unwrap();
    assert_eq!(license["state"], "ACTIVE");
    let report: Value = app
        .post_json("/v1/reconcile", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["orphanCount"].as_u64().unwrap_or(0), 0, "{report}");
}

#[tokio::test]
async fn abandon_fails_the_license_sends_nothing_and_frees_the_server() {
    let app = spawn().await;
    let id = app.stuck_unbought(6).await;
    let calls = app.sandbox.call_count("soft.order.param");
    let mut grpc = grpc_as(&app, "ops").await;

    let license = grpc
        .resolve_license(grpc_resolve(
            &id,
            pb::resolve_license_request::Action::Abandon,
        ))
        .await
        .expect("abandoned")
        .into_inner()
        .license
        .unwrap();

    assert_eq!(license.state(), pb::license::State::Failed);
    let error = license.last_error.unwrap();
    assert_eq!(error.code, "ABANDONED_BY_OPERATOR");
    assert!(error.message.contains("checked upstream"));
    assert_eq!(app.sandbox.call_count("soft.order.param"), calls);
    // The server and its IP take a new order.
    let fresh = app.order_and_wait(&order(6)).await;
    assert_eq!(fresh["state"], "ACTIVE");
    assert_ne!(fresh["id"], id.as_str());
    assert_eq!(app.bought(), 1);
}

/// One refusal: who asks what, and what both transports answer.
struct Refusal {
    client: &'static str,
    id: String,
    body: Value,
    grpc: pb::ResolveLicenseRequest,
    /// The REST status, the gRPC code and the reason code both carry.
    expect: (u16, Code, &'static str),
    /// The field the first violation names, where one is named.
    field: Option<&'static str>,
    /// What the explanation (REST detail, gRPC message) mentions, if anything.
    mentions: Option<String>,
}

impl Refusal {
    fn new(
        id: &str,
        body: Value,
        grpc: pb::ResolveLicenseRequest,
        expect: (u16, Code, &'static str),
    ) -> Self {
        Self {
            client: "ops",
            id: id.to_owned(),
            body,
            grpc,
            expect,
            field: None,
            mentions: None,
        }
    }

    /// Sends the request on both transports and checks both answers.
    async fn check(self, app: &TestApp) {
        let what = format!("{} {}", self.client, self.body);
        let rest = http_client_with(Some(&format!("{}-token", self.client)))
            .post(format!("{}/v1/licenses/{}/resolve", app.http, self.id))
            .json(&self.body)
            .send()
            .await
            .unwrap();
        let (status, p) = problem(rest).await;
        assert_eq!(
            (status, p["code"].as_str().unwrap()),
            (self.expect.0, self.expect.2),
            "{what}: {p}"
        );
        let refused = grpc_as(app, self.client)
            .await
            .resolve_license(self.grpc)
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), self.expect.1, "{what}: {refused:?}");
        assert_eq!(reason(&refused), self.expect.2, "{what}");
        if let Some(field) = self.field {
            assert_eq!(p["errors"][0]["field"], field, "{what}: {p}");
        }
        if let Some(text) = self.mentions {
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(&text), "{what}: {p}");
            assert!(refused.message().contains(&text), "{what}: {refused:?}");
        }
    }
}

#[tokio::test]
async fn every_refusal_has_the_same_reason_on_both_transports() {
    use pb::resolve_license_request::Action;
    let app = spawn().await;
    let active = app.order_and_wait(&order(10)).await;
    let active_id = active["id"].as_str().unwrap().to_owned();
    let active_upstream: u64 = active["upstreamId"].as_str().unwrap().parse().unwrap();
    let id = app.stuck_unbought(11).await;
    let stuck_ip = "203.0.113.11";
    // An upstream license on another IP; the active license's upstream license moved
    // to the stuck license's IP behind our back (bound to another license here); and
    // one of another tariff on that IP.
    let elsewhere = app
        .sandbox
        .insert_license(NewSandboxLicense::new("192.0.2.50", 55228));
    let active_upstream_id = active_upstream.to_string();
    app.upstream_call(&[
        ("func", "soft.edit"),
        ("elid", &active_upstream_id),
        ("ip", stuck_ip),
    ])
    .await;
    let lite = app
        .sandbox
        .insert_license(NewSandboxLicense::new(stuck_ip, 55227));
    let bind = |up: u64, expect| {
        Refusal::new(
            &id,
            json!({"action": "BIND", "reason": "x", "upstreamId": up.to_string()}),
            pb::ResolveLicenseRequest {
                upstream_id: up.to_string(),
                ..grpc_resolve(&id, Action::Bind)
            },
            expect,
        )
    };
    let mismatch = (409, Code::FailedPrecondition, "UPSTREAM_LICENSE_MISMATCH");
    let invalid = (400, Code::InvalidArgument, "INVALID_ARGUMENT");

    let refusals = [
        // Wrong state.
        Refusal::new(
            &active_id,
            json!({"action": "ABANDON", "reason": "x"}),
            grpc_resolve(&active_id, Action::Abandon),
            (409, Code::FailedPrecondition, "INVALID_LICENSE_STATE"),
        ),
        // No reason.
        Refusal {
            field: Some("reason"),
            ..Refusal::new(
                &id,
                json!({"action": "RETRY", "reason": " "}),
                pb::ResolveLicenseRequest {
                    reason: String::new(),
                    ..grpc_resolve(&id, Action::Retry)
                },
                invalid,
            )
        },
        // No (known) action.
        Refusal::new(
            &id,
            json!({"action": "REDO", "reason": "x"}),
            grpc_resolve(&id, Action::Unspecified),
            invalid,
        ),
        // BIND to an upstream license that does not exist.
        bind(987_654, (404, Code::NotFound, "UPSTREAM_LICENSE_NOT_FOUND")),
        // BIND to one on another IP: the field is named.
        Refusal {
            field: Some("ip"),
            mentions: Some("192.0.2.50".into()),
            ..bind(elsewhere, mismatch)
        },
        // BIND to one bound to another license here: that license is named.
        Refusal {
            mentions: Some(active_id.clone()),
            ..bind(
                active_upstream,
                (409, Code::FailedPrecondition, "UPSTREAM_LICENSE_BOUND"),
            )
        },
        // BIND to one of another tariff on the right IP: the field is named.
        Refusal {
            field: Some("tariffId"),
            ..bind(lite, mismatch)
        },
        // A client without the admin scope.
        Refusal {
            client: "alpha",
            ..Refusal::new(
                &id,
                json!({"action": "ABANDON", "reason": "x"}),
                grpc_resolve(&id, Action::Abandon),
                (403, Code::PermissionDenied, "PERMISSION_DENIED"),
            )
        },
    ];
    for refusal in refusals {
        refusal.check(&app).await;
    }

    // None of it changed the license or bought anything.
    let license: Value = app
        .get(&format!("/v1/licenses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(license["state"], "NEEDS_ATTENTION");
    assert!(app.resolve_entries(&id).await.is_empty());
}
