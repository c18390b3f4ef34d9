//! The console's sessions and log-in over real HTTP: a log-out revokes the session
//! (on this service, and on a replica sharing its PostgreSQL store), wrong tokens back
//! off per address; and what an operator reads and chooses on a stuck license: how far
//! its order got upstream, a resolution form that chooses nothing in advance, and the
//! downstream item ids shown and searched.

use std::collections::HashMap;
use std::net::IpAddr;

use license_facade::auth::{Clients, SANDBOX_BILLMGR_USER, SANDBOX_TOKEN};
use license_facade::config::{ServeArgs, Settings};
use license_facade::console::LOGIN_FREE_FAILURES;
use license_facade::startup::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::{Browser, Page};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::support::{Stuck, TestDb, start_sandbox};

/// A browser of the console at `base`, connecting from `from` when given (the loopback
/// network answers on every 127.x address, so a test can be another client address).
fn browser_at(base: &str, from: Option<IpAddr>) -> Browser {
    Browser {
        base: base.to_owned(),
        http: crate::support::http_client()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(from)
            .build()
            .unwrap(),
        cookies: HashMap::new(),
    }
}

/// A browser that presents `session`'s cookie, as whoever kept a copy of it would.
fn with_cookie_of(base: &str, session: &Browser) -> Browser {
    let mut copy = browser_at(base, None);
    copy.cookies = session.cookies.clone();
    copy
}

fn is_login_redirect(page: &Page) -> bool {
    page.status == StatusCode::SEE_OTHER && page.location() == "/console/login"
}

/// An app whose workflow hands a lost order to a person within seconds: quick
/// look-ups, no automatic re-send (nothing is looked up as absent before a request
/// timeout after the last send).
async fn spawn_app_that_gives_up_soon() -> TestApp {
    spawn_app_with(0, |s| {
        s.billmanager.request_timeout = std::time::Duration::from_secs(2);
        s.workflow.settle_interval = std::time::Duration::from_millis(50);
        s.workflow.settle_checks = 2;
        s.workflow.max_lookup_failures = 2;
        s.workflow.max_resends = 0;
    })
    .await
}

#[tokio::test]
async fn a_log_out_revokes_the_session_so_its_cookie_and_csrf_token_open_nothing() {
    // Arrange: one session that logs out, with a copy of its cookie kept, and another
    // session of the same client that does not.
    let app = spawn_app().await;
    let license = app
        .order_and_wait(
            &json!({"server": {"id": "srv-logout", "ip": "203.0.113.70"},
                                "panel": "ISPmanager 6 Lite"}),
        )
        .await;
    let id = license["id"].as_str().unwrap();
    let cancel = format!("/console/licenses/{id}/actions/cancel");
    let mut leaving = browser_at(&app.http, None);
    let mut staying = browser_at(&app.http, None);
    leaving.log_in(SANDBOX_TOKEN).await;
    staying.log_in(SANDBOX_TOKEN).await;
    let confirm = leaving.get(&cancel).await;
    let (csrf, key) = (confirm.hidden("csrf"), confirm.hidden("request_key"));
    let mut kept = with_cookie_of(&app.http, &leaving);

    // Act
    let logout = leaving.post("/console/logout", &[("csrf", &csrf)]).await;
    let overview = kept.get("/console/").await;
    let page = kept.get(&format!("/console/licenses/{id}")).await;
    let cancelled = kept
        .post(&cancel, &[("csrf", &csrf), ("request_key", &key)])
        .await;
    let logout_again = kept.post("/console/logout", &[("csrf", &csrf)]).await;
    let other = staying.get("/console/").await;

    // Assert
    assert!(is_login_redirect(&logout), "{}", logout.status);
    for (what, p) in [
        ("the overview", &overview),
        ("the license page", &page),
        ("the cancel form", &cancelled),
        ("a second log-out", &logout_again),
    ] {
        assert!(
            is_login_redirect(p),
            "{what} with the old cookie: {} {}",
            p.status,
            p.location()
        );
    }
    assert!(
        overview
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("lf_console=;")),
        "the refused cookie is cleared"
    );
    assert_eq!(
        app.sandbox.call_count("soft.delete"),
        0,
        "nothing cancelled"
    );
    let now: Value = app
        .get(&format!("/v1/licenses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["state"], "ACTIVE");
    assert_eq!(other.status, StatusCode::OK, "other sessions go on");
}

/// A replica of a service on `database`, with `sandbox_url` as its upstream and the
/// console key `key`, as replicas behind one address are configured; its base URL.
async fn replica(database: &str, sandbox_url: &str, key: &[u8]) -> String {
    let mut settings = Settings::from_args(ServeArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: Some(database.to_owned()),
        database_max_connections: Some(12),
        billmanager_allow_http: true,
        billmanager_url: Some(sandbox_url.to_owned()),
        billmanager_user: Some("demo".into()),
        billmanager_password: Some("demo".into()),
        ..ServeArgs::default()
    })
    .expect("valid settings");
    settings.clients = Some(Clients::sandbox());
    settings.console.session_key = Some(secrecy::SecretBox::new(Box::new(key.to_vec())));
    settings.probe_interval = std::time::Duration::from_secs(3600);
    let app = Application::build(settings).await.expect("the app builds");
    let base = format!("http://{}", app.http_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}

#[tokio::test]
async fn a_log_out_on_one_replica_ends_the_session_on_the_other() {
    // Arrange: two replicas on one PostgreSQL database with one console key.
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(license_facade::sandbox::SandboxConfig::default()).await;
    let key = [42u8; 32];
    let one = replica(&db.url, &sandbox.url, &key).await;
    let two = replica(&db.url, &sandbox.url, &key).await;
    let mut person = browser_at(&one, None);
    person.log_in(SANDBOX_TOKEN).await;
    let csrf = person.csrf().await;
    let mut on_two = with_cookie_of(&two, &person);

    // Act
    let before = on_two.get("/console/").await;
    let logout = person.post("/console/logout", &[("csrf", &csrf)]).await;
    let after = on_two.get("/console/").await;
    let form = on_two
        .post("/console/drift/reconcile", &[("csrf", &csrf)])
        .await;

    // Assert
    assert_eq!(before.status, StatusCode::OK, "the session opens on both");
    assert!(is_login_redirect(&logout));
    assert!(
        is_login_redirect(&after),
        "{} {}",
        after.status,
        after.location()
    );
    assert!(is_login_redirect(&form), "the form is refused too");
}

#[tokio::test]
async fn wrong_tokens_from_one_address_back_off_while_another_address_logs_in() {
    // Arrange
    let app = spawn_app().await;
    let mut guesser = browser_at(&app.http, None);
    let mut operator = browser_at(&app.http, Some("127.0.0.2".parse().unwrap()));

    // Act: as fast as it can, more wrong tokens than are free, then the right one.
    let mut answers = Vec::new();
    for n in 0..LOGIN_FREE_FAILURES + 5 {
        answers.push(guesser.log_in(&format!("guess-{n}")).await);
    }
    let right_from_guesser = guesser.log_in(SANDBOX_TOKEN).await;
    let right_from_operator = operator.log_in(SANDBOX_TOKEN).await;

    // Assert
    let free = LOGIN_FREE_FAILURES as usize;
    for checked in &answers[..free] {
        assert_eq!(checked.status, StatusCode::UNAUTHORIZED);
        assert!(checked.body.contains("That token is not valid"));
    }
    for refused in answers[free..].iter().chain([&right_from_guesser]) {
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused
                .body
                .contains("Too many wrong tokens were sent from your address"),
            "a clear message: {}",
            refused.body
        );
        let retry_after: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
    }
    assert!(!guesser.cookies.contains_key("lf_console"), "no session");
    assert_eq!(right_from_operator.status, StatusCode::SEE_OTHER);
    assert_eq!(right_from_operator.location(), "/console/");
    assert!(operator.cookies.contains_key("lf_console"));
    assert_eq!(operator.get("/console/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stuck_order_that_reached_the_upstream_says_when_it_was_sent_not_that_it_was_not_ordered()
{
    // Arrange: an order bought upstream whose answer was lost, handed to a person.
    let app = spawn_app_that_gives_up_soon().await;
    let day_before = time::OffsetDateTime::now_utc().date();
    let body = json!({"server": {"id": "srv-sent", "ip": "203.0.113.71"},
                      "panel": "ISPmanager 6 Pro"});
    let stuck = app.stuck(SANDBOX_TOKEN, &body, Stuck::Bought).await;
    let day_after = time::OffsetDateTime::now_utc().date();
    let mut browser = browser_at(&app.http, None);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let page = browser
        .get(&format!("/console/licenses/{}", stuck.id))
        .await;

    // Assert
    assert_eq!(page.status, StatusCode::OK);
    let shown = between(&page.body, "<dt>Upstream id</dt>", "</dd>");
    assert!(!shown.contains("not ordered yet"), "{shown}");
    assert!(shown.contains("the order reached BILLmanager"), "{shown}");
    assert!(shown.contains("outcome is unknown"), "{shown}");
    assert!(
        [day_before, day_after]
            .iter()
            .any(|d| shown.contains(&format!("sent at {d} "))),
        "the send time is shown: {shown}"
    );
}

#[tokio::test]
async fn the_resolve_form_chooses_no_resolution_and_a_form_without_one_is_refused() {
    // Arrange
    let app = spawn_app_that_gives_up_soon().await;
    let body = json!({"server": {"id": "srv-choose", "ip": "203.0.113.72"},
                      "panel": "ISPmanager 6 Pro"});
    let stuck = app.stuck(SANDBOX_TOKEN, &body, Stuck::Unbought).await;
    let sent = app.sandbox.call_count("soft.order.param");
    let mut browser = browser_at(&app.http, None);
    browser.log_in(SANDBOX_TOKEN).await;
    let path = format!("/console/licenses/{}/actions/resolve", stuck.id);

    // Act
    let form = browser.get(&path).await;
    let reviewed = browser.get(&format!("{path}?mode=&reason=looked")).await;
    let confirm = browser
        .get(&format!("{path}?mode=RETRY&reason=looked"))
        .await;
    let (csrf, key) = (confirm.hidden("csrf"), confirm.hidden("request_key"));
    let posted = browser
        .post(
            &path,
            &[("csrf", &csrf), ("request_key", &key), ("reason", "looked")],
        )
        .await;

    // Assert
    let select = between(&form.body, "<select id=\"mode\"", "</select>");
    assert!(
        select.contains("<option value=\"\" selected disabled>Choose a resolution</option>"),
        "{select}"
    );
    assert_eq!(select.matches(" selected").count(), 1, "{select}");
    assert!(reviewed.body.contains("No resolution was chosen"));
    assert!(
        !reviewed.body.contains("id=\"confirm\""),
        "nothing to confirm"
    );
    assert_eq!(posted.status, StatusCode::BAD_REQUEST);
    assert!(
        posted
            .body
            .contains("No resolution was chosen: choose RETRY, BIND or ABANDON"),
        "{}",
        posted.body
    );
    let license = app.license_until(&stuck.id, |_| true).await;
    assert_eq!(license["state"], "NEEDS_ATTENTION");
    assert_eq!(app.sandbox.call_count("soft.order.param"), sent);
}

/// The `/billmgr` item id of each license, by IP, as the downstream API lists them.
async fn item_ids_by_ip(app: &TestApp) -> HashMap<String, String> {
    let text = |v: &Value| match v {
        Value::Object(o) => o["$"].as_str().unwrap_or_default().to_owned(),
        other => other
            .as_str()
            .map_or_else(|| other.to_string(), str::to_owned),
    };
    let listed: Value = crate::support::http_client()
        .build()
        .unwrap()
        .get(format!(
            "{}/billmgr?authinfo={SANDBOX_BILLMGR_USER}:{SANDBOX_TOKEN}&out=json&func=soft",
            app.http
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["doc"]["elem"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {listed}"))
        .iter()
        .map(|e| (text(&e["ip"]), text(&e["id"])))
        .collect()
}

#[tokio::test]
async fn item_ids_are_shown_in_the_list_and_on_the_page_and_find_their_license() {
    // Arrange
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (server, ip) in [
        ("srv-item-a", "203.0.113.73"),
        ("srv-item-b", "203.0.113.74"),
    ] {
        let license = app
            .order_and_wait(&json!({"server": {"id": server, "ip": ip},
                                    "panel": "ISPmanager 6 Lite"}))
            .await;
        ids.push(license["id"].as_str().unwrap().to_owned());
    }
    let items = item_ids_by_ip(&app).await;
    let (item_a, item_b) = (&items["203.0.113.73"], &items["203.0.113.74"]);
    let mut browser = browser_at(&app.http, None);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let list = browser.get("/console/licenses").await;
    let page = browser.get(&format!("/console/licenses/{}", ids[1])).await;
    let found = browser
        .get(&format!("/console/licenses?item={item_b}"))
        .await;
    let hashed = browser
        .get(&format!("/console/licenses?item=%23{item_a}"))
        .await;
    let missing = browser.get("/console/licenses?item=999999").await;
    let filtered_out = browser
        .get(&format!("/console/licenses?item={item_b}&ip=203.0.113.73"))
        .await;
    let bad = browser.get("/console/licenses?item=abc").await;

    // Assert
    for item in [item_a, item_b] {
        assert!(
            list.body
                .contains(&format!("<td class=\"num mono\">{item}</td>")),
            "item {item} listed"
        );
    }
    assert!(
        between(&page.body, "<dd class=\"mono\" id=\"item-id\">", "</dd>")
            .starts_with(&format!("{item_b} ")),
        "the page shows its item id"
    );
    let rows = |p: &Page| p.body.matches("<tr>").count().saturating_sub(1);
    assert_eq!(rows(&found), 1);
    assert!(found.body.contains("srv-item-b<"));
    assert!(
        found
            .body
            .contains(&format!("name=\"item\" value=\"{item_b}\"")),
        "the filter is shown back"
    );
    assert_eq!(rows(&hashed), 1);
    assert!(hashed.body.contains("srv-item-a<"));
    assert!(missing.body.contains("No license matches"));
    assert!(filtered_out.body.contains("No license matches"));
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("the item id must be a whole number"));
}

/// The text between `start` and the next `end` in `text`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let len = text[from..].find(end).expect("the end marker");
    &text[from..from + len]
}
