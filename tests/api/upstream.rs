//! The money rules against upstream answers the service has not seen: each test sets
//! the sandbox switch that produces one answer shape the evidence allows, and counts
//! the orders that reached the upstream. Never more than one purchase per license
//! without a person.

use std::time::Duration;

use license_facade::auth::SANDBOX_TOKEN;
use license_facade::config::Settings;
use license_facade::sandbox::{NewSandboxLicense, OrderIdAt, SandboxConfig, SavedFilter};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_on_sandbox_with};
use crate::support::{Stuck, bought, plant_status_witnesses};

/// Sandbox defaults for these tests: keys at once.
fn sandbox() -> SandboxConfig {
    SandboxConfig {
        key_delay: Duration::ZERO,
        ..SandboxConfig::default()
    }
}

/// Short look-up spacing, a small failure budget and a short request timeout (an
/// absence only counts once the attempt's request could no longer land, one request
/// timeout after it was sent), so that every path ends fast.
fn quick(settings: &mut Settings) {
    settings.billmanager.request_timeout = Duration::from_secs(2);
    settings.workflow.settle_interval = Duration::from_millis(50);
    settings.workflow.settle_checks = 2;
    settings.workflow.max_lookup_failures = 3;
}

/// The app on a sandbox with `config`, with [`quick`] timings.
async fn quick_app(config: SandboxConfig) -> TestApp {
    spawn_app_on_sandbox_with(config, quick).await
}

fn order(n: u32) -> Value {
    json!({
        "server": {"id": format!("srv-{n}"), "ip": format!("203.0.113.{n}")},
        "panel": "ISPmanager 6 Pro",
    })
}

impl TestApp {
    /// Places an order over REST (without waiting) and returns the license id.
    async fn place(&self, n: u32) -> String {
        let response = self.post_json("/v1/licenses", &order(n)).await;
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().expect("an id").to_owned()
    }

    async fn settled(&self, id: &str, state: &str) -> Value {
        self.license_until(id, |l| l["state"] == state).await
    }

    /// Places order `n` while every order's answer is lost after the upstream carried
    /// it out, and returns the license once it is in `state`.
    async fn answer_lost(&self, n: u32, state: &str) -> (String, Value) {
        self.sandbox.set_faults(vec![
            "soft.order.param:drop-after-commit:1.0".parse().unwrap(),
        ]);
        let id = self.place(n).await;
        let license = self.settled(&id, state).await;
        (id, license)
    }

    fn orders_sent(&self) -> u64 {
        self.sandbox.call_count("soft.order.param")
    }

    /// Lets the worker run a while, to show that nothing more is sent.
    async fn idle(&self) {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// An app whose upstream leaves every new license in `status` (5 processing, 1
/// unpaid), and which hands a license to a person `activation_timeout` after its
/// order; returns it with the license of order `n`.
async fn stuck_in_status(status: u32, activation_timeout: Duration, n: u32) -> (TestApp, String) {
    let app = spawn_app_on_sandbox_with(
        SandboxConfig {
            stuck_status: Some(status),
            ..sandbox()
        },
        |s| {
            quick(s);
            s.workflow.activation_timeout = activation_timeout;
        },
    )
    .await;
    let id = app.place(n).await;
    (app, id)
}

fn code(license: &Value) -> &str {
    license["lastError"]["code"].as_str().unwrap_or_default()
}

// ----------------------------------------------------------------- rule 1

#[tokio::test]
async fn an_unknown_outcome_is_sent_again_at_most_once_then_needs_attention() {
    let app = quick_app(sandbox()).await;
    // The list shows a license in each status an order may be in, so it can prove
    // the order absent (rule 3b).
    plant_status_witnesses(&app.sandbox);

    // A 5xx answer: unknown outcome, nothing performed upstream.
    let license = app
        .stuck(SANDBOX_TOKEN, &order(1), Stuck::Unbought)
        .await
        .license;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert_eq!(
        app.orders_sent(),
        2,
        "the first send and one re-send, no more"
    );
}

#[tokio::test]
async fn with_max_resends_0_an_unknown_outcome_is_never_sent_again() {
    let app = spawn_app_on_sandbox_with(sandbox(), |s| {
        quick(s);
        s.workflow.max_resends = 0;
    })
    .await;

    let license = app
        .stuck(SANDBOX_TOKEN, &order(2), Stuck::Unbought)
        .await
        .license;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert_eq!(app.orders_sent(), 1);
}

// ----------------------------------------------------------------- rule 2

#[tokio::test]
async fn an_ok_answer_without_an_id_is_looked_up_not_sent_again() {
    let app = quick_app(SandboxConfig {
        order_id_at: OrderIdAt::Nowhere,
        ..sandbox()
    })
    .await;

    let id = app.place(3).await;
    let license = app.settled(&id, "ACTIVE").await;

    assert_eq!(app.orders_sent(), 1);
    let upstream = app.sandbox.licenses();
    assert_eq!(license["upstreamId"], upstream[0].id.to_string());
}

#[tokio::test]
async fn the_id_at_item_id_is_read() {
    let app = quick_app(SandboxConfig {
        order_id_at: OrderIdAt::ItemId,
        ..sandbox()
    })
    .await;

    let id = app.place(4).await;
    let license = app.settled(&id, "ACTIVE").await;

    assert_eq!(app.orders_sent(), 1);
    assert_eq!(app.sandbox.call_count("soft"), 0, "no look-up was needed");
    assert_eq!(
        license["upstreamId"],
        app.sandbox.licenses()[0].id.to_string()
    );
}

#[tokio::test]
async fn an_ok_answer_without_an_id_whose_license_is_not_listed_needs_attention() {
    // The list hides everything and does not say so; nothing else is known upstream.
    let app = quick_app(SandboxConfig {
        order_id_at: OrderIdAt::Nowhere,
        saved_filter: Some(SavedFilter::HideAll),
        saved_filter_silent: true,
        ..sandbox()
    })
    .await;

    let id = app.place(5).await;
    let license = app.settled(&id, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_ANSWER_UNREADABLE", "{license}");
    assert_eq!(
        app.orders_sent(),
        1,
        "an answer that says ordered is never re-sent"
    );
}

// ----------------------------------------------------------------- rule 3

#[tokio::test]
async fn a_list_narrowed_by_a_saved_filter_is_not_proof_of_absence() {
    // The answer is lost; the new license stays in status 5, which the account's
    // saved filter (shown in `saved_filters`) keeps out of the list.
    let app = quick_app(SandboxConfig {
        saved_filter: Some(SavedFilter::ActiveOnly),
        stuck_status: Some(5),
        ..sandbox()
    })
    .await;

    let (_, license) = app.answer_lost(6, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert!(
        license["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("saved list filters"),
        "{license}"
    );
    assert_eq!(
        app.orders_sent(),
        1,
        "the hidden license was not bought again"
    );
    assert_eq!(app.sandbox.licenses().len(), 1);
}

#[tokio::test]
async fn a_list_that_does_not_show_a_license_known_live_upstream_is_not_complete() {
    let app = quick_app(SandboxConfig {
        saved_filter_silent: true,
        ..sandbox()
    })
    .await;
    let first = app.place(7).await;
    app.settled(&first, "ACTIVE").await;
    // From now on the list hides everything without saying so, and answers are lost.
    app.sandbox.set_saved_filter(Some(SavedFilter::HideAll));

    let (_, license) = app.answer_lost(8, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert!(
        license["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("which is live upstream"),
        "{license}"
    );
    assert_eq!(app.orders_sent(), 2, "one order per license");
}

#[tokio::test]
async fn a_hide_all_filter_that_shows_itself_is_not_proof_of_absence() {
    let app = quick_app(SandboxConfig {
        saved_filter: Some(SavedFilter::HideAll),
        ..sandbox()
    })
    .await;

    let (_, license) = app.answer_lost(50, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert_eq!(app.orders_sent(), 1);
    assert_eq!(app.sandbox.licenses().len(), 1);
}

// ----------------------------------------------------------------- rule 3b

/// The message of a license handed to a person because the list could hide it.
fn unprovable(license: &Value) -> &str {
    let message = license["lastError"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("does not prove it was not placed"),
        "{license}"
    );
    message
}

#[tokio::test]
async fn a_silent_active_only_filter_that_hides_the_new_order_is_not_taken_for_absence() {
    // Keys take an hour of sandbox time: a new license stays in processing (5). The
    // worker reads a processing license often, so the first one is seen active soon
    // after the sandbox's clock is moved past its hour.
    let app = spawn_app_on_sandbox_with(
        SandboxConfig {
            key_delay: Duration::from_secs(3600),
            saved_filter_silent: true,
            ..sandbox()
        },
        |s| {
            quick(s);
            s.workflow.poll_max = Duration::from_millis(200);
        },
    )
    .await;
    let known = app.place(51).await;
    // Bought upstream (the id is shown, as an empty string until then).
    app.license_until(&known, |l| {
        l["upstreamId"].as_str().is_some_and(|id| !id.is_empty())
    })
    .await;
    app.sandbox.advance_clock(time::Duration::hours(2));
    app.settled(&known, "ACTIVE").await;
    // From now on the list shows active licenses only and does not say so: the known
    // active license passes the positive control, the new order is hidden.
    app.sandbox.set_saved_filter(Some(SavedFilter::ActiveOnly));

    let (_, license) = app.answer_lost(52, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert!(
        unprovable(&license).contains("no license in status 5 (processing) or 1 (ordered)"),
        "{license}"
    );
    assert_eq!(app.orders_sent(), 2, "one purchase per license");
    assert_eq!(app.sandbox.licenses().len(), 2);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("license_facade_upstream_anomalies_total{kind=\"unprovable_absence\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_silent_hide_all_filter_on_a_new_account_is_not_taken_for_absence() {
    let app = quick_app(SandboxConfig {
        saved_filter: Some(SavedFilter::HideAll),
        saved_filter_silent: true,
        ..sandbox()
    })
    .await;

    let (_, license) = app.answer_lost(53, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert!(
        unprovable(&license)
            .contains("no license in status 5 (processing) or 2 (active) or 1 (ordered)"),
        "{license}"
    );
    assert_eq!(app.orders_sent(), 1, "the order was not sent again");
    assert_eq!(app.sandbox.licenses().len(), 1);
}

#[tokio::test]
async fn a_silent_filter_hides_the_licenses_that_would_prove_an_absence_too() {
    // Licenses bought elsewhere in each status an order may be in; the silent filter
    // then hides all but the active one: the new order, and with it the licenses in
    // statuses 5 and 1 that would have shown those statuses listed.
    let app = quick_app(SandboxConfig {
        key_delay: Duration::from_secs(3600),
        saved_filter_silent: true,
        ..sandbox()
    })
    .await;
    plant_status_witnesses(&app.sandbox);
    app.sandbox.set_saved_filter(Some(SavedFilter::ActiveOnly));

    let (_, license) = app.answer_lost(54, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert!(
        unprovable(&license).contains("status 5 (processing)"),
        "{license}"
    );
    assert_eq!(app.orders_sent(), 1);
    assert_eq!(bought(&app.sandbox).len(), 1);
}

#[tokio::test]
async fn a_change_not_seen_on_a_license_in_processing_is_not_sent_again() {
    let app = quick_app(sandbox()).await;
    let id = app.place(55).await;
    let license = app.settled(&id, "ACTIVE").await;
    let upstream_id: u64 = license["upstreamId"].as_str().unwrap().parse().unwrap();
    // The renewal's answer is a 5xx (nothing renewed), and the upstream shows the
    // license in processing (5), where a renewal under way need not show yet.
    app.sandbox
        .set_faults(vec!["service.prolong:error5xx:1.0".parse().unwrap()]);
    assert!(app.sandbox.set_status(upstream_id, 5));

    let renewed = app
        .post_json(
            &format!("/v1/licenses/{id}/renew"),
            &json!({"periodMonths": 1}),
        )
        .await;
    assert_eq!(renewed.status(), 202);
    let license = app.settled(&id, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_OUTCOME_UNKNOWN", "{license}");
    assert!(
        license["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("processing (status 5)"),
        "{license}"
    );
    assert_eq!(
        app.sandbox.call_count("service.prolong"),
        1,
        "the renewal was not sent again"
    );
}

// ----------------------------------------------------------------- rule 4

#[tokio::test]
async fn a_lost_answer_is_found_by_licname_when_the_list_shows_no_remoteid() {
    let app = quick_app(sandbox()).await;

    let (id, license) = app.answer_lost(9, "ACTIVE").await;

    assert_eq!(app.orders_sent(), 1);
    let upstream = app.sandbox.licenses();
    assert_eq!(upstream[0].licname, id);
    assert_eq!(license["upstreamId"], upstream[0].id.to_string());
}

#[tokio::test]
async fn without_licname_a_lost_answer_is_found_by_ip_tariff_and_creation_date() {
    let app = quick_app(SandboxConfig {
        list_licname: false,
        ..sandbox()
    })
    .await;

    let (_, license) = app.answer_lost(10, "ACTIVE").await;

    assert_eq!(app.orders_sent(), 1);
    assert_eq!(
        license["upstreamId"],
        app.sandbox.licenses()[0].id.to_string()
    );
}

#[tokio::test]
async fn two_nameless_candidates_on_the_ip_need_a_person() {
    let app = quick_app(SandboxConfig {
        list_licname: false,
        ..sandbox()
    })
    .await;
    // Bought elsewhere today, same IP and tariff: it could be ours.
    app.sandbox
        .insert_license(NewSandboxLicense::new("203.0.113.11", 55228));

    let (_, license) = app.answer_lost(11, "NEEDS_ATTENTION").await;
    app.idle().await;

    assert_eq!(code(&license), "UPSTREAM_AMBIGUOUS", "{license}");
    assert_eq!(app.orders_sent(), 1);
}

// ----------------------------------------------------------------- rule 5

#[tokio::test]
async fn a_refusal_that_left_an_unpaid_item_is_adopted_and_shown_unpaid() {
    let app = quick_app(SandboxConfig {
        balance_cents: 0,
        unpaid_on_short_balance: true,
        ..sandbox()
    })
    .await;

    let id = app.place(12).await;
    let license = app
        .license_until(&id, |l| l["lastError"]["code"] == "UPSTREAM_UNPAID")
        .await;

    assert_eq!(license["state"], "PROVISIONING", "{license}");
    let upstream = app.sandbox.licenses();
    assert_eq!((upstream.len(), upstream[0].status), (1, 1));
    assert_eq!(license["upstreamId"], upstream[0].id.to_string());
    assert_eq!(app.orders_sent(), 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("license_facade_upstream_anomalies_total{kind=\"unpaid\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refusal_is_final_after_one_look_up_finds_nothing() {
    let app = quick_app(SandboxConfig {
        balance_cents: 0,
        ..sandbox()
    })
    .await;

    let id = app.place(13).await;
    let license = app.settled(&id, "FAILED").await;

    assert_eq!(code(&license), "UPSTREAM_REFUSED", "{license}");
    assert_eq!(app.sandbox.call_count("soft"), 1, "one look-up");
    assert_eq!(app.orders_sent(), 1);
}

// ----------------------------------------------------------------- rule 6

#[tokio::test]
async fn a_license_stuck_in_processing_needs_attention_after_the_activation_timeout() {
    let (app, id) = stuck_in_status(5, Duration::from_millis(500), 14).await;

    let license = app.settled(&id, "NEEDS_ATTENTION").await;

    assert_eq!(code(&license), "ACTIVATION_TIMEOUT", "{license}");
    assert_eq!(app.orders_sent(), 1);
}

#[tokio::test]
async fn an_unpaid_license_shows_upstream_unpaid_until_the_activation_timeout() {
    let (app, id) = stuck_in_status(1, Duration::from_millis(800), 15).await;

    let unpaid = app
        .license_until(&id, |l| l["lastError"]["code"] == "UPSTREAM_UNPAID")
        .await;
    let ended = app.settled(&id, "NEEDS_ATTENTION").await;

    assert_eq!(unpaid["state"], "PROVISIONING");
    assert_eq!(code(&ended), "ACTIVATION_TIMEOUT", "{ended}");
    assert_eq!(app.sandbox.balance(), 1_000_000, "nothing was debited");
    assert_eq!(app.orders_sent(), 1);
}

// ----------------------------------------------------------------- rule 7

#[tokio::test]
async fn wrong_credentials_make_one_log_in_however_many_licenses_wait() {
    let app = spawn_app_on_sandbox_with(
        SandboxConfig {
            password: "the-right-one".into(),
            ..sandbox()
        },
        |s| {
            quick(s);
            s.billmanager.password = secrecy::SecretString::from("a-wrong-one");
        },
    )
    .await;

    let mut ids = Vec::new();
    for n in 20..30 {
        ids.push(app.place(n).await);
    }
    // Every license has been tried at least once (and held back since).
    for id in &ids {
        app.license_until(id, |l| l["lastError"]["code"].is_string())
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ready = app.get("/readyz").await;
    let status = ready.status();
    let body: Value = ready.json().await.unwrap();

    assert_eq!(
        app.sandbox.call_count("auth"),
        1,
        "one log-in was tried, and only one"
    );
    assert_eq!(app.orders_sent(), 0);
    assert_eq!(status, 503);
    assert!(
        body["upstream_auth_refused"]
            .as_str()
            .is_some_and(|why| why.contains("refused the credentials")),
        "{body}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("license_facade_upstream_auth_refused 1"),
        "{metrics}"
    );
}

#[tokio::test]
#[ignore = "slow tier: cargo test -- --ignored"]
async fn a_minute_of_pending_work_with_a_wrong_password_makes_at_most_3_log_ins() {
    let app = spawn_app_on_sandbox_with(
        SandboxConfig {
            password: "the-right-one".into(),
            ..sandbox()
        },
        |s| {
            quick(s);
            s.billmanager.password = secrecy::SecretString::from("a-wrong-one");
        },
    )
    .await;
    for n in 40..50 {
        app.place(n).await;
    }

    tokio::time::sleep(Duration::from_secs(61)).await;

    let log_ins = app.sandbox.call_count("auth");
    assert!((1..=3).contains(&log_ins), "log-ins in a minute: {log_ins}");
    assert_eq!(app.orders_sent(), 0);
}
