//! Every change of a license over both APIs, checked against the sandbox's own state.

use license_facade::api::pb::v1 as pb;
use serde_json::{Value, json};

use crate::helpers::{TestApp, reason, spawn_app};
use crate::support::assert_renewed_once;

async fn active_license(app: &TestApp, server: &str, ip: &str, panel: &str) -> Value {
    let license = app
        .order_and_wait(&json!({"server": {"id": server, "ip": ip}, "panel": panel}))
        .await;
    assert_eq!(license["state"], "ACTIVE");
    license
}

fn upstream_id(license: &Value) -> u64 {
    license["upstreamId"].as_str().unwrap().parse().unwrap()
}

/// The sandbox's view agrees with ours.
fn assert_agrees(app: &TestApp, license: &Value) {
    let up = app
        .sandbox
        .license(upstream_id(license))
        .expect("upstream license");
    assert_eq!(up.ip, license["ip"].as_str().unwrap(), "ip");
    assert_eq!(
        u64::from(up.tariff_id),
        license["tariffId"].as_u64().unwrap(),
        "tariff"
    );
    let status = match license["state"].as_str().unwrap() {
        "ACTIVE" => 2,
        "SUSPENDED" => 3,
        "CANCELLED" => 4,
        other => panic!("unexpected state {other}"),
    };
    assert_eq!(up.status, status, "status");
    if status != 4 {
        assert_eq!(
            up.license_key,
            license["licenseKey"].as_str().unwrap(),
            "key"
        );
    }
    let expiry = license["expireTime"].as_str().unwrap();
    assert!(
        expiry.starts_with(&up.expire_date.to_string()),
        "expiry {expiry} vs {}",
        up.expire_date
    );
}

async fn post_wait(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app.post_json(&format!("{path}?wait=20s"), &body).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn one_license_walks_through_every_change_over_rest_and_agrees_with_the_sandbox() {
    let app = spawn_app().await;
    let license = active_license(&app, "walk-1", "203.0.113.80", "ISPmanager 6 Lite").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let base = format!("/v1/licenses/{id}");
    assert_agrees(&app, &license);

    let l = post_wait(
        &app,
        &format!("{base}/change-ip"),
        json!({"ip": "203.0.113.81"}),
    )
    .await;
    assert_eq!(l["ip"], "203.0.113.81");
    assert_agrees(&app, &l);

    let l = post_wait(
        &app,
        &format!("{base}/change-panel"),
        json!({"panel": "ISPmanager 6 Business"}),
    )
    .await;
    assert_eq!(l["tariffId"], 55230);
    assert_eq!(l["id"], license["id"]);
    assert_eq!(l["upstreamId"], license["upstreamId"]);
    assert_agrees(&app, &l);

    let l = post_wait(&app, &format!("{base}/suspend"), json!({})).await;
    assert_eq!(l["state"], "SUSPENDED");
    assert_agrees(&app, &l);

    let l = post_wait(&app, &format!("{base}/resume"), json!({})).await;
    assert_eq!(l["state"], "ACTIVE");
    assert_agrees(&app, &l);

    let l = post_wait(&app, &format!("{base}/renew"), json!({"periodMonths": 12})).await;
    assert_renewed_once(&app.sandbox, upstream_id(&l), 12);
    assert_agrees(&app, &l);

    let old_key = l["licenseKey"].as_str().unwrap().to_owned();
    let l = post_wait(&app, &format!("{base}/reissue-key"), json!({})).await;
    assert_ne!(l["licenseKey"].as_str().unwrap(), old_key);
    assert!(!l["licenseKey"].as_str().unwrap().is_empty());
    assert_agrees(&app, &l);

    let response = app
        .client
        .delete(format!("{}{base}?wait=20s", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let l: Value = response.json().await.unwrap();
    assert_eq!(l["state"], "CANCELLED");
    assert_agrees(&app, &l);
    // Cancelled licenses stay as history.
    let kept: Value = app.get(&base).await.json().await.unwrap();
    assert_eq!(kept["state"], "CANCELLED");
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn every_change_works_over_grpc() {
    let app = spawn_app().await;
    let license = active_license(&app, "walk-g", "203.0.113.90", "ISPmanager 6 Pro").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let mut grpc = app.grpc().await;

    let l = grpc
        .change_license_ip(pb::ChangeLicenseIpRequest {
            id: id.clone(),
            ip: "203.0.113.91".into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(l.ip, "203.0.113.91");
    let l = grpc
        .change_license_panel(pb::ChangeLicensePanelRequest {
            id: id.clone(),
            panel: "ISPmanager 6 Host".into(),
            period_months: 0,
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(l.tariff_id, 55229);
    let l = grpc
        .suspend_license(pb::SuspendLicenseRequest {
            id: id.clone(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(l.state(), pb::license::State::Suspended);
    let l = grpc
        .resume_license(pb::ResumeLicenseRequest {
            id: id.clone(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(l.state(), pb::license::State::Active);
    let l = grpc
        .renew_license(pb::RenewLicenseRequest {
            id: id.clone(),
            period_months: 1,
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    let renewal = assert_renewed_once(&app.sandbox, l.upstream_id.parse().unwrap(), 1);
    let expire_time = l.expire_time.unwrap();
    let expire_time = time::OffsetDateTime::from_unix_timestamp(expire_time.seconds).unwrap();
    assert_eq!(
        expire_time.date(),
        renewal.expire_after,
        "the renewed expiry"
    );
    let old_key = l.license_key.clone();
    let l = grpc
        .reissue_license_key(pb::ReissueLicenseKeyRequest {
            id: id.clone(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_ne!(l.license_key, old_key);
    let l = grpc
        .cancel_license(pb::CancelLicenseRequest {
            id: id.clone(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(l.state(), pb::license::State::Cancelled);
    let up = app.sandbox.license(upstream_id(&license)).unwrap();
    assert_eq!(
        (up.status, up.ip.as_str(), up.tariff_id),
        (4, "203.0.113.91", 55229)
    );
}

#[tokio::test]
async fn preconditions_are_checked_before_the_upstream_on_both_apis() {
    let app = spawn_app().await;
    let license = active_license(&app, "pre-1", "203.0.113.100", "ISPmanager 6 Pro").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let calls_before =
        ["soft.resume", "soft.edit", "service.changepricelist"].map(|f| app.sandbox.call_count(f));

    let resume = app
        .post_json(&format!("/v1/licenses/{id}/resume"), &json!({}))
        .await;
    let same_ip = app
        .post_json(
            &format!("/v1/licenses/{id}/change-ip"),
            &json!({"ip": "203.0.113.100"}),
        )
        .await;
    let same_panel = app
        .post_json(
            &format!("/v1/licenses/{id}/change-panel"),
            &json!({"panel": "ispmanager 6 pro"}),
        )
        .await;
    let to_trial = app
        .post_json(
            &format!("/v1/licenses/{id}/change-panel"),
            &json!({"panel": "ISPmanager 6 Trial"}),
        )
        .await;

    assert_eq!(resume.status(), 409);
    assert_eq!(
        resume.json::<Value>().await.unwrap()["code"],
        "INVALID_LICENSE_STATE"
    );
    assert_eq!(same_ip.status(), 409);
    assert_eq!(same_ip.json::<Value>().await.unwrap()["code"], "SAME_IP");
    assert_eq!(
        same_panel.json::<Value>().await.unwrap()["code"],
        "SAME_PANEL"
    );
    assert_eq!(to_trial.status(), 400);
    let status = app
        .grpc()
        .await
        .resume_license(pb::ResumeLicenseRequest {
            id: id.clone(),
            wait: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&status), "INVALID_LICENSE_STATE");
    let calls_after =
        ["soft.resume", "soft.edit", "service.changepricelist"].map(|f| app.sandbox.call_count(f));
    assert_eq!(calls_before, calls_after, "no upstream call");
}

#[tokio::test]
async fn an_upstream_refusal_comes_back_typed_and_shows_as_the_last_error() {
    let app = spawn_app().await;
    let license = active_license(&app, "cool-1", "203.0.113.110", "ISPmanager 6 Pro").await;
    let id = license["id"].as_str().unwrap().to_owned();
    // The first IP change is allowed; the second falls in the upstream's cooldown.
    post_wait(
        &app,
        &format!("/v1/licenses/{id}/change-ip"),
        json!({"ip": "203.0.113.111"}),
    )
    .await;

    let refused = app
        .post_json(
            &format!("/v1/licenses/{id}/change-ip?wait=20s"),
            &json!({"ip": "203.0.113.112"}),
        )
        .await;

    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "UPSTREAM_REFUSED");
    let license: Value = app
        .get(&format!("/v1/licenses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(license["ip"], "203.0.113.111", "the IP did not change");
    assert_eq!(license["lastError"]["code"], "UPSTREAM_REFUSED");
    let status = app
        .grpc()
        .await
        .change_license_ip(pb::ChangeLicenseIpRequest {
            id,
            ip: "203.0.113.113".into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&status), "UPSTREAM_REFUSED");
}

#[tokio::test]
async fn trials_are_ordered_with_their_tariff_and_cannot_be_renewed_but_convert_to_paid() {
    let app = spawn_app().await;
    let trial = app
        .order_and_wait(&json!({"server": {"id": "trial-1", "ip": "203.0.113.120"}, "panel": "ISPmanager 6 Pro", "trial": true}))
        .await;
    assert_eq!(trial["state"], "ACTIVE");
    assert_eq!(trial["tariffId"], 55239);
    assert_eq!(trial["trial"], true);
    let id = trial["id"].as_str().unwrap().to_owned();

    let renew = app
        .post_json(
            &format!("/v1/licenses/{id}/renew"),
            &json!({"periodMonths": 1}),
        )
        .await;
    assert_eq!(renew.status(), 409);
    assert_eq!(
        renew.json::<Value>().await.unwrap()["code"],
        "TRIAL_NOT_RENEWABLE"
    );
    assert_eq!(app.sandbox.renewals(), vec![], "nothing renewed upstream");

    let paid = post_wait(
        &app,
        &format!("/v1/licenses/{id}/change-panel"),
        json!({"panel": "ISPmanager 6 Pro", "periodMonths": 12}),
    )
    .await;
    assert_eq!(paid["tariffId"], 55228);
    assert_eq!(paid["trial"], false);
    assert_eq!(paid["periodMonths"], 12);
    assert_agrees(&app, &paid);

    // A second trial on the same IP is refused upstream, even once the first license
    // is gone here.
    let cancelled = app
        .client
        .delete(format!(
            "{}/v1/licenses/{}",
            app.http,
            paid["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    app.license_until(paid["id"].as_str().unwrap(), |l| l["state"] == "CANCELLED")
        .await;
    let again = app
        .order_and_wait(&json!({"server": {"id": "trial-2", "ip": "203.0.113.120"}, "panel": "ISPmanager 6 Trial"}))
        .await;
    assert_eq!(again["state"], "FAILED");
}

#[tokio::test]
async fn quotes_come_from_the_upstream_price_list() {
    let app = spawn_app().await;

    let yearly: Value = app
        .get("/v1/panels/ispmanager-6-pro/quote?periodMonths=12")
        .await
        .json()
        .await
        .unwrap();
    let monthly = app
        .grpc()
        .await
        .quote_license(pb::QuoteLicenseRequest {
            panel: "ISPmanager 6 Lite".into(),
            period_months: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let unknown = app.get("/v1/panels/cPanel/quote").await;

    assert_eq!(yearly["price"], "90.00");
    assert_eq!(yearly["currency"], "EUR");
    assert_eq!(yearly["tariffId"], 55228);
    assert_eq!(monthly.price, "6.00");
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn putting_the_desired_state_three_times_leaves_one_upstream_license_with_the_last_panel() {
    let app = spawn_app().await;
    let put = |panel: &'static str| {
        let app = &app;
        async move {
            let response = app
                .client
                .put(format!(
                    "{}/v1/servers/desired-1/license?wait=20s",
                    app.http
                ))
                .json(&json!({"ip": "203.0.113.130", "panel": panel}))
                .send()
                .await
                .unwrap();
            let action = response.headers()["x-ensure-action"]
                .to_str()
                .unwrap()
                .to_owned();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{body}");
            (action, body)
        }
    };

    let (a1, l1) = put("ISPmanager 6 Lite").await;
    let (a2, l2) = put("ISPmanager 6 Lite").await;
    let (a3, l3) = put("ISPmanager 6 Business").await;

    assert_eq!(a1, "ENSURE_ACTION_ORDERED");
    assert_eq!(a2, "ENSURE_ACTION_NONE");
    assert_eq!(a3, "ENSURE_ACTION_CHANGED");
    assert_eq!(l1["id"], l2["id"]);
    assert_eq!(l1["id"], l3["id"]);
    assert_eq!(l3["tariffId"], 55230);
    let upstream = app.upstream_list().await;
    assert_eq!(upstream.len(), 1);
    assert_eq!(upstream[0]["pricelist"]["$orig"], "55230");

    let ensured = app
        .grpc()
        .await
        .ensure_server_license(pb::EnsureServerLicenseRequest {
            server: Some(pb::Server {
                id: "desired-1".into(),
                ip: "203.0.113.131".into(),
                hostname: String::new(),
            }),
            panel: "ISPmanager 6 Business".into(),
            wait: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ensured.action(), pb::EnsureAction::Changed);
    assert_eq!(ensured.license.unwrap().ip, "203.0.113.131");

    let removed = app
        .client
        .delete(format!(
            "{}/v1/servers/desired-1/license?wait=20s",
            app.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    assert_eq!(removed.json::<Value>().await.unwrap()["state"], "CANCELLED");
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn fifteen_concurrent_puts_with_different_panels_converge_on_the_last_accepted_panel() {
    // Arrange
    let app = spawn_app().await;
    let panels = [
        ("ISPmanager 6 Lite", 55227),
        ("ISPmanager 6 Pro", 55228),
        ("ISPmanager 6 Host", 55229),
    ];
    let url = format!("{}/v1/servers/converge-1/license", app.http);
    let put = |i: usize| {
        let (client, url) = (app.client.clone(), url.clone());
        async move {
            let panel = panels[i % panels.len()].0;
            let response = client
                .put(&url)
                .header("idempotency-key", format!("converge-{i}"))
                .json(&json!({"ip": "203.0.113.140", "panel": panel}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };

    // Act
    let answers = futures::future::join_all((0..15).map(put)).await;

    // Assert: every PUT was accepted; the last accepted one names the final panel.
    for (status, body) in &answers {
        assert!(
            *status == 200 || *status == 202,
            "a PUT was refused: {status} {body}"
        );
    }
    let license_id = answers[0].1["id"].as_str().unwrap().to_owned();
    assert!(answers.iter().all(|(_, b)| b["id"] == license_id.as_str()));
    let audit: Value = app
        .get(&format!("/v1/audit?licenseId={license_id}&pageSize=100"))
        .await
        .json()
        .await
        .unwrap();
    let last_accepted = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "ACCEPTED")
        .expect("an accepted entry");
    let key = last_accepted["requestId"].as_str().unwrap();
    let index: usize = key.trim_start_matches("converge-").parse().unwrap();
    let (panel, tariff) = panels[index % panels.len()];
    // The same desired state once more, waiting: it answers when the queue is through.
    let settled = app
        .client
        .put(format!("{url}?wait=30s"))
        .json(&json!({"ip": "203.0.113.140", "panel": panel}))
        .send()
        .await
        .unwrap();
    assert_eq!(settled.headers()["x-ensure-action"], "ENSURE_ACTION_NONE");
    let license: Value = settled.json().await.unwrap();
    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert_eq!(license["tariffId"], tariff, "{license}");
    let upstream = app.upstream_list().await;
    assert_eq!(upstream.len(), 1, "one license: {upstream:?}");
    assert_eq!(upstream[0]["pricelist"]["$orig"], tariff.to_string());
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn concurrent_puts_waiting_on_a_refused_order_answer_the_refusal_and_buy_nothing_more() {
    // Arrange: the upstream refuses every order, a little slowly, so that every PUT
    // below has arrived before the refusal (a PUT that arrives after it is a new
    // desired state, and may order again).
    let app =
        crate::helpers::spawn_app_on_standalone_sandbox(license_facade::sandbox::SandboxConfig {
            latency: std::time::Duration::from_millis(300),
            key_delay: std::time::Duration::ZERO,
            ..license_facade::sandbox::SandboxConfig::default()
        })
        .await;
    app.sandbox.set_faults(vec![
        "soft.order.param:doc-error:1.0"
            .parse::<license_facade::sandbox::Fault>()
            .unwrap(),
    ]);
    let url = format!("{}/v1/servers/refused-1/license?wait=20s", app.http);
    let put = |panel: &'static str| {
        let (client, url) = (app.client.clone(), url.clone());
        async move {
            let response = client
                .put(&url)
                .json(&json!({"ip": "203.0.113.150", "panel": panel}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // Act
    let answers = futures::future::join_all(
        ["ISPmanager 6 Lite", "ISPmanager 6 Pro", "ISPmanager 6 Host"]
            .into_iter()
            .cycle()
            .take(6)
            .map(put),
    )
    .await;

    // Assert: one order was sent; each PUT answers with that order or its refusal,
    // none with a conflict, and none ordered again.
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .filter_map(|(_, b)| b["id"].as_str())
        .collect();
    assert!(ids.len() <= 1, "one license: {answers:?}");
    for (status, body) in &answers {
        assert_ne!(*status, 409, "{body}");
        let refused = *status == 422 && body["code"] == "UPSTREAM_REFUSED";
        assert!(refused || status.is_success(), "{status} {body}");
    }
    assert!(
        answers
            .iter()
            .any(|(s, b)| *s == 422 || b["state"] == "FAILED"),
        "the refusal was reported: {answers:?}"
    );
}
