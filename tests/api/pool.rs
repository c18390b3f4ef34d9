//! The license pool over both APIs: a released license is parked upstream and taken
//! by the next order of its tariff instead of buying; two orders never take one
//! parked license; a pool whose cooldowns have not passed buys; a refused move gives
//! the license back without buying; a release not worth parking cancels.

use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use license_facade::auth::SANDBOX_TOKEN;
use license_facade::config::Settings;
use license_facade::domain::{PoolConfig, PoolRules};
use serde_json::{Value, json};

use crate::helpers::{TestApp, grpc_client, spawn_app_with};

const PRO: &str = "ISPmanager 6 Pro";

/// The app on its sandbox with the pool's cooldowns at `pool_days` and the
/// sandbox's at `sandbox_days`, and `rules` for every tariff. The sandbox's cooldown
/// of a license in use (a move between two real addresses) is off: the tests move
/// licenses back and forth.
async fn app(pool_days: u32, sandbox_days: u32, rules: PoolRules) -> TestApp {
    spawn_app_with(0, |s: &mut Settings| {
        s.pool = PoolConfig {
            ip_change_cooldown_days: pool_days,
            key_change_cooldown_days: pool_days,
            default: rules,
            sweep_interval_secs: 1,
            ..PoolConfig::default()
        };
        let sandbox = s.sandbox.as_mut().expect("a sandbox");
        sandbox.ip_change_cooldown_days = sandbox_days;
        sandbox.key_change_cooldown_days = sandbox_days;
        sandbox.ip_change_cooldown = Duration::ZERO;
    })
    .await
}

async fn order(app: &TestApp, server: &str, ip: &str) -> Value {
    let (status, body) = post(
        app,
        "/v1/licenses?wait=20s",
        json!({"server": {"id": server, "ip": ip}, "panel": PRO}),
    )
    .await;
    assert!(status == 201 || status == 202, "{status} {body}");
    body
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.http))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app
        .client
        .get(format!("{}{path}", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn release(app: &TestApp, id: &str) -> Value {
    let (status, body) = post(
        app,
        &format!("/v1/licenses/{id}/release?wait=20s"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn orders_sent(app: &TestApp) -> u64 {
    app.sandbox.carried_out("soft.order.param")
}

#[tokio::test]
async fn a_released_license_is_parked_and_the_next_order_takes_it_instead_of_buying() {
    let app = app(0, 0, PoolRules::default()).await;
    let first = order(&app, "pool-a", "203.0.113.61").await;
    assert_eq!(first["state"], "ACTIVE", "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    let upstream_id: u64 = first["upstreamId"].as_str().unwrap().parse().unwrap();

    let released = release(&app, &first_id).await;
    assert_eq!(released["outcome"], "RELEASE_OUTCOME_PARKED", "{released}");
    assert_eq!(released["license"]["state"], "PARKED", "{released}");
    let parked = app.sandbox.license(upstream_id).unwrap();
    assert_eq!((parked.status, parked.ip.as_str()), (3, "0.0.0.0"));
    // The server and its IP are free: the pool holds no server.
    let listed = get(&app, "/v1/licenses?state=PARKED").await;
    assert_eq!(listed["licenses"].as_array().unwrap().len(), 1, "{listed}");

    let orders_before = orders_sent(&app);
    let edits_before = app.sandbox.carried_out("soft.edit");
    let resumes_before = app.sandbox.carried_out("soft.resume");
    let second = order(&app, "pool-b", "203.0.113.62").await;
    assert_eq!(second["state"], "ACTIVE", "{second}");
    assert_eq!(second["reusedFrom"], first_id.as_str(), "{second}");
    assert_eq!(second["upstreamId"], upstream_id.to_string(), "{second}");
    assert_eq!(orders_sent(&app), orders_before, "nothing was bought");
    assert_eq!(app.sandbox.carried_out("soft.edit") - edits_before, 1);
    assert_eq!(app.sandbox.carried_out("soft.resume") - resumes_before, 1);
    let moved = app.sandbox.license(upstream_id).unwrap();
    assert_eq!(moved.ip, "203.0.113.62");
    assert_eq!(moved.status, 2);
    assert_eq!(moved.licname, second["id"].as_str().unwrap(), "named ours");
    assert_eq!(
        second["licenseKey"].as_str(),
        Some(moved.license_key.as_str())
    );

    let donor = get(&app, &format!("/v1/licenses/{first_id}")).await;
    assert_eq!(donor["state"], "REUSED", "{donor}");
    assert_eq!(donor["reusedBy"], second["id"], "{donor}");
    // A REUSED license cannot be changed: its upstream license is the other one's.
    let (status, body) = post(&app, &format!("/v1/licenses/{first_id}/suspend"), json!({})).await;
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("INVALID_LICENSE_STATE")),
        "{body}"
    );

    // The audit log says what happened: a reuse, no priced order.
    let audit = get(
        &app,
        &format!("/v1/audit?licenseId={}", second["id"].as_str().unwrap()),
    )
    .await;
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["price"].clone()))
        .collect();
    assert!(
        actions.iter().all(|(a, p)| a == "REUSE" && p.is_null()),
        "{audit}"
    );

    // The pool view counts the reuse and shows an empty pool.
    let pool = get(&app, "/v1/pool").await;
    let tariff = &pool["tariffs"][0];
    assert_eq!(tariff["tariffId"], 55228, "{pool}");
    assert_eq!(tariff["reuses"], 1, "{pool}");
    assert_eq!(tariff["parked"].as_u64().unwrap_or(0), 0, "{pool}");
    assert!(!tariff["saved"].as_str().unwrap_or("").is_empty(), "{pool}");
}

/// An order that takes a parked license is queued, not run at once: the call that
/// waits for it must not keep the runner its REUSE step needs (with one runner, it
/// would wait out its whole `wait` for a step that cannot start).
#[tokio::test]
async fn a_waiting_order_that_reuses_a_parked_license_leaves_the_only_runner_to_its_step() {
    let app = spawn_app_with(0, |s: &mut Settings| {
        s.workflow.concurrency = 1;
        s.pool = PoolConfig {
            ip_change_cooldown_days: 0,
            key_change_cooldown_days: 0,
            default: PoolRules::default(),
            ..PoolConfig::default()
        };
        let sandbox = s.sandbox.as_mut().expect("a sandbox");
        sandbox.ip_change_cooldown_days = 0;
        sandbox.key_change_cooldown_days = 0;
        sandbox.ip_change_cooldown = Duration::ZERO;
    })
    .await;
    let first = order(&app, "pool-one-a", "203.0.113.71").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let released = release(&app, &first_id).await;
    assert_eq!(released["license"]["state"], "PARKED", "{released}");

    let started = std::time::Instant::now();
    let second = order(&app, "pool-one-b", "203.0.113.72").await;
    assert_eq!(second["state"], "ACTIVE", "{second}");
    assert_eq!(second["reusedFrom"], first_id.as_str(), "{second}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered when its step ended, not at the end of its wait"
    );
}

#[tokio::test]
async fn two_concurrent_orders_never_take_one_parked_license() {
    let app = app(0, 0, PoolRules::default()).await;
    let first = order(&app, "pool-c", "203.0.113.63").await;
    release(&app, first["id"].as_str().unwrap()).await;
    let orders_before = orders_sent(&app);
    let (a, b) = tokio::join!(
        order(&app, "pool-d", "203.0.113.64"),
        order(&app, "pool-e", "203.0.113.65")
    );
    for l in [&a, &b] {
        assert_eq!(l["state"], "ACTIVE", "{l}");
    }
    let reused = [&a, &b]
        .iter()
        .filter(|l| l["reusedFrom"].as_str().is_some_and(|s| !s.is_empty()))
        .count();
    assert_eq!(reused, 1, "one reuse: {a} {b}");
    assert_eq!(orders_sent(&app) - orders_before, 1, "one purchase");
    assert_ne!(a["upstreamId"], b["upstreamId"]);
}

#[tokio::test]
async fn an_order_buys_while_the_cooldowns_have_not_passed() {
    // The pool knows the upstream's cooldown (30 days): a license parked today waits.
    let app = app(30, 30, PoolRules::default()).await;
    let first = order(&app, "pool-f", "203.0.113.66").await;
    release(&app, first["id"].as_str().unwrap()).await;
    let orders_before = orders_sent(&app);
    let second = order(&app, "pool-g", "203.0.113.67").await;
    assert_eq!(second["state"], "ACTIVE", "{second}");
    assert!(
        second["reusedFrom"].as_str().unwrap_or("").is_empty(),
        "{second}"
    );
    assert_eq!(orders_sent(&app) - orders_before, 1, "bought");
    let pool = get(&app, "/v1/pool").await;
    assert_eq!(pool["tariffs"][0]["parked"], 1, "{pool}");
    assert_eq!(
        pool["tariffs"][0]["reusable"].as_u64().unwrap_or(0),
        0,
        "{pool}"
    );
    assert!(pool["entries"][0]["reusableTime"].is_string(), "{pool}");
}

#[tokio::test]
async fn a_move_the_upstream_refuses_buys_nothing_and_gives_the_license_back() {
    // The pool believes the cooldowns passed; the upstream's clock says no.
    let app = app(0, 30, PoolRules::default()).await;
    let first = order(&app, "pool-h", "203.0.113.68").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    release(&app, &first_id).await;
    let orders_before = orders_sent(&app);
    let (status, second) = post(
        &app,
        "/v1/licenses?wait=20s",
        json!({"server": {"id": "pool-i", "ip": "203.0.113.69"}, "panel": PRO}),
    )
    .await;
    assert_eq!(status, 200, "answered once it ended: {second}");
    assert_eq!(second["state"], "FAILED", "{second}");
    assert_eq!(second["lastError"]["code"], "REUSE_REFUSED", "{second}");
    assert_eq!(orders_sent(&app), orders_before, "nothing was bought");
    // Given back right after the refusal is saved (the waiting order may be answered
    // in between): a second write, which the pool's sweep repeats after a crash.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let donor = get(&app, &format!("/v1/licenses/{first_id}")).await;
        if donor["state"] == "PARKED" {
            break;
        }
        assert_eq!(donor["state"], "REUSED", "{donor}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back in the pool: {donor}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let taken = get(&app, "/v1/servers/pool-i/license").await;
    assert_eq!(taken["state"], "FAILED", "{taken}");
    assert_eq!(taken["lastError"]["code"], "REUSE_REFUSED", "{taken}");
}

#[tokio::test]
async fn a_release_cancels_what_is_not_worth_parking_and_grpc_ends_a_server_by_policy() {
    // A month's license never has 40 days left: released, it is cancelled.
    let app = app(
        0,
        0,
        PoolRules {
            park_min_days_left: 40,
            ..PoolRules::default()
        },
    )
    .await;
    let first = order(&app, "pool-j", "203.0.113.70").await;
    let released = release(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(
        released["outcome"], "RELEASE_OUTCOME_CANCELLED",
        "{released}"
    );
    assert!(
        released["reason"].as_str().unwrap().contains("40"),
        "{released}"
    );
    assert_eq!(released["license"]["state"], "CANCELLED", "{released}");

    // gRPC: CancelServerLicense with the PARK policy releases by the same rules.
    let mut grpc = grpc_client(app.grpc_addr).await;
    order(&app, "pool-k", "203.0.113.71").await;
    let answer = grpc
        .cancel_server_license(pb::CancelServerLicenseRequest {
            server_id: "pool-k".into(),
            wait: true,
            request_id: String::new(),
            policy: pb::ReleasePolicy::Park as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.outcome, pb::ReleaseOutcome::Cancelled as i32);
    assert!(answer.reason.contains("40"), "{}", answer.reason);
}

#[tokio::test]
async fn grpc_releases_and_shows_the_pool() {
    let app = app(0, 0, PoolRules::default()).await;
    let first = order(&app, "pool-l", "203.0.113.72").await;
    let mut grpc = grpc_client(app.grpc_addr).await;
    let released = grpc
        .release_license(pb::ReleaseLicenseRequest {
            id: first["id"].as_str().unwrap().into(),
            wait: true,
            request_id: "release-pool-l".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.outcome, pb::ReleaseOutcome::Parked as i32);
    let license = released.license.unwrap();
    assert_eq!(license.state, pb::license::State::Parked as i32);
    // Replayed with its request id: the same answer, nothing sent again.
    let edits = app.sandbox.carried_out("soft.edit");
    let again = grpc
        .release_license(pb::ReleaseLicenseRequest {
            id: license.id.clone(),
            wait: true,
            request_id: "release-pool-l".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcome, pb::ReleaseOutcome::Parked as i32);
    assert_eq!(app.sandbox.carried_out("soft.edit"), edits);
    let pool = grpc
        .get_pool(pb::GetPoolRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pool.tariffs.len(), 1);
    assert_eq!(pool.tariffs[0].parked, 1);
    assert_eq!(pool.tariffs[0].reusable, 1);
    assert!(!pool.tariffs[0].monthly_cost.is_empty());
    assert_eq!(pool.entries[0].license.as_ref().unwrap().id, license.id);
    // The drift report does not take a parked license for an orphan or a mismatch.
    let drift = grpc
        .reconcile(pb::ReconcileRequest::default())
        .await
        .unwrap()
        .into_inner();
    let report = drift.report.unwrap();
    assert!(report.orphans.is_empty(), "{report:?}");
    assert!(report.mismatches.is_empty(), "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");
}

#[tokio::test]
async fn the_sweep_cancels_a_parked_license_before_its_next_paid_period() {
    // Cancelled 40 days before its end: a month's license is due as soon as parked.
    let app = app(
        0,
        0,
        PoolRules {
            cancel_days_before_expiry: 40,
            park_min_days_left: 0,
            ..PoolRules::default()
        },
    )
    .await;
    let first = order(&app, "pool-m", "203.0.113.73").await;
    let id = first["id"].as_str().unwrap().to_owned();
    let upstream_id: u64 = first["upstreamId"].as_str().unwrap().parse().unwrap();
    let released = release(&app, &id).await;
    assert_eq!(released["outcome"], "RELEASE_OUTCOME_PARKED", "{released}");
    // The sweep runs every second here; the cancellation is its own CANCEL step.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let license = get(&app, &format!("/v1/licenses/{id}")).await;
        if license["state"] == "CANCELLED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never cancelled: {license}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.sandbox.license(upstream_id).unwrap().status,
        4,
        "deleted upstream"
    );
    // The license shows CANCELLED from the commit of the confirmation; the step's
    // SUCCEEDED entry comes with the commit that closes it, just after.
    app.api_as(SANDBOX_TOKEN)
        .license_after_audit(&id, "CANCEL", "SUCCEEDED")
        .await;
}

#[tokio::test]
async fn a_reuse_asks_for_a_new_key_when_the_rules_say_so() {
    let app = app(
        0,
        0,
        PoolRules {
            new_key_on_reuse: true,
            ..PoolRules::default()
        },
    )
    .await;
    let first = order(&app, "pool-n", "203.0.113.74").await;
    let old_key = first["licenseKey"].as_str().unwrap().to_owned();
    assert!(!old_key.is_empty(), "{first}");
    release(&app, first["id"].as_str().unwrap()).await;
    let orders_before = orders_sent(&app);
    let second = order(&app, "pool-o", "203.0.113.75").await;
    assert_eq!(second["state"], "ACTIVE", "{second}");
    assert_eq!(second["reusedFrom"], first["id"], "{second}");
    let new_key = second["licenseKey"].as_str().unwrap();
    assert!(!new_key.is_empty() && new_key != old_key, "{second}");
    let upstream: u64 = second["upstreamId"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.sandbox.license(upstream).unwrap().license_key, new_key);
    assert_eq!(orders_sent(&app), orders_before, "nothing was bought");
}

#[tokio::test]
async fn a_reuse_and_an_ip_change_racing_for_one_ip_leave_one_license_there() {
    let app = app(0, 0, PoolRules::default()).await;
    // Ordered before the release, so that it does not take the parked license.
    let other = order(&app, "pool-q", "203.0.113.77").await;
    let parked = order(&app, "pool-p", "203.0.113.76").await;
    release(&app, parked["id"].as_str().unwrap()).await;
    let contested = "203.0.113.78";
    for round in 0..5 {
        let orders_before = orders_sent(&app);
        let server = format!("pool-r{round}");
        let move_path = format!(
            "/v1/licenses/{}/change-ip?wait=20s",
            other["id"].as_str().unwrap()
        );
        let (ordered, moved) = tokio::join!(
            post(
                &app,
                "/v1/licenses?wait=20s",
                json!({"server": {"id": server, "ip": contested}, "panel": PRO}),
            ),
            post(&app, &move_path, json!({"ip": contested}))
        );
        let won = [&ordered, &moved]
            .iter()
            .filter(|(status, _)| (200..300).contains(status))
            .count();
        assert_eq!(won, 1, "exactly one takes the IP: {ordered:?} {moved:?}");
        let live: Vec<_> = app
            .sandbox
            .licenses()
            .into_iter()
            .filter(|l| l.ip == contested && matches!(l.status, 1 | 2 | 3 | 5))
            .collect();
        assert_eq!(live.len(), 1, "one license on the IP: {live:?}");
        assert_eq!(
            orders_sent(&app),
            orders_before,
            "nothing was bought (round {round}): {ordered:?} {moved:?}"
        );
        // Free the IP for the next round: give it back to the pool or move back.
        if (200..300).contains(&ordered.0) {
            release(&app, ordered.1["id"].as_str().unwrap()).await;
        } else {
            let back = json!({"ip": format!("203.0.113.{}", 90 + round)});
            let (status, body) = post(&app, &move_path, back).await;
            assert_eq!(status, 200, "{body}");
        }
    }
}
