//! The console's Pool page and the Release action over real HTTP: a license released
//! from its page is parked and shows in the pool with its tariff; an order takes it
//! and the pool counts the reuse and what it saved; the two licenses link to each
//! other; a release not worth keeping says it cancels, and does; the pool is for
//! admins.

use license_facade::config::Settings;
use license_facade::domain::{PoolConfig, PoolRules};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::{Browser, Page};
use crate::helpers::{TestApp, spawn_app_with};
use crate::support::named_clients;

const LITE: &str = "ISPmanager 6 Lite";

/// The app with an admin (`ops`) and a writer (`shop`), the pool's cooldowns and the
/// sandbox's at 0 (a parked license may move at once) and `rules` for every tariff.
async fn app(rules: PoolRules) -> TestApp {
    let clients = named_clients(&[
        ("ops", r#"["admin"]"#, ""),
        ("shop", r#"["licenses.read", "licenses.write"]"#, ""),
    ]);
    spawn_app_with(0, move |s: &mut Settings| {
        s.clients = Some(clients);
        s.pool = PoolConfig {
            ip_change_cooldown_days: 0,
            key_change_cooldown_days: 0,
            default: rules,
            ..PoolConfig::default()
        };
        let sandbox = s.sandbox.as_mut().expect("a sandbox");
        sandbox.ip_change_cooldown_days = 0;
        sandbox.key_change_cooldown_days = 0;
    })
    .await
}

/// A Lite license of the `shop` client on `server`, ordered and waited for.
async fn order(app: &TestApp, server: &str, ip: &str) -> Value {
    let body = json!({"server": {"id": server, "ip": ip}, "panel": LITE});
    let (status, ordered) = app
        .api_as("shop-token")
        .post("/v1/licenses?wait=20s", &body, None)
        .await
        .expect("the order is answered");
    assert_eq!(status, 201, "{ordered}");
    assert_eq!(ordered["state"], "ACTIVE", "{ordered}");
    ordered
}

/// The release confirmation of license `id`, and the answer to confirming it with
/// `csrf` (the page's own token when `None`).
async fn release(browser: &mut Browser, id: &str, csrf: Option<&str>) -> (Page, Page) {
    let path = format!("/console/licenses/{id}/actions/release");
    let confirm = browser.get(&path).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let csrf = csrf.map_or_else(|| confirm.hidden("csrf"), str::to_owned);
    let key = confirm.hidden("request_key");
    let done = browser
        .post(&path, &[("csrf", &csrf), ("request_key", &key)])
        .await;
    (confirm, done)
}

/// The text of the table cell with id `id`, tags and all.
fn cell<'a>(page: &'a Page, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\">");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {}", page.body))
        + marker.len();
    page.body[start..].split("</td>").next().unwrap()
}

#[tokio::test]
async fn a_license_released_from_its_page_is_parked_shown_in_the_pool_and_its_reuse_counted() {
    // Arrange
    let app = app(PoolRules::default()).await;
    let first = order(&app, "pool-web-1", "203.0.113.81").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let tariff = first["tariffId"].as_u64().unwrap();
    let api = app.api_as("ops-token");
    let (_, quote) = api
        .get("/v1/panels/ISPmanager%206%20Lite/quote?periodMonths=1")
        .await
        .unwrap();
    let monthly = format!(
        "{} {}",
        quote["price"].as_str().unwrap(),
        quote["currency"].as_str().unwrap()
    );
    let mut shop = Browser::new(&app);
    shop.log_in("shop-token").await;
    let mut ops = Browser::new(&app);
    ops.log_in("ops-token").await;

    // Act: the empty pool, a refused form, then the release as the shop's person.
    let empty = ops.get("/console/pool").await;
    let page = shop.get(&format!("/console/licenses/{first_id}")).await;
    let (_, forged) = release(&mut shop, &first_id, Some("not-the-token")).await;
    let unchanged = api.license(&first_id).await;
    let (confirm, done) = release(&mut shop, &first_id, None).await;
    // The same confirmation sent again (a double click): the same call.
    let again = shop
        .post(
            &format!("/console/licenses/{first_id}/actions/release"),
            &[
                ("csrf", &confirm.hidden("csrf")),
                ("request_key", &confirm.hidden("request_key")),
            ],
        )
        .await;
    api.license_until(&first_id, &["PARKED"]).await;
    let after = shop
        .get(&format!("/console/licenses/{first_id}?done=release"))
        .await;
    let parked = ops.get("/console/pool").await;

    // Assert: refused without its token, then parked.
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("The pool is empty"), "{}", empty.body);
    assert!(empty.body.contains("It fills when a license is released"));
    assert!(page.body.contains("id=\"action-release\""), "{}", page.body);
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        unchanged["state"], "ACTIVE",
        "the refused form changed nothing"
    );
    assert!(
        confirm.body.contains("id=\"outlook\"") && confirm.body.contains("rules it is parked"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("class=\"primary\" id=\"confirm\""));
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location(),
        format!("/console/licenses/{first_id}?done=release")
    );
    assert_eq!(
        again.status,
        StatusCode::SEE_OTHER,
        "a replay: {}",
        again.body
    );
    assert_eq!(again.location(), done.location());
    assert_eq!(app.sandbox.call_count("soft.suspend"), 1, "parked once");
    assert!(after.body.contains("being parked in the pool"));
    assert!(
        after
            .body
            .contains("class=\"badge pool\" id=\"state\">PARKED")
    );
    assert!(after.body.contains("id=\"state-note\""));
    assert!(after.body.contains("upstream it is bound to 0.0.0.0"));
    assert!(
        !after.body.contains("id=\"action-release\""),
        "a parked license is not released again"
    );
    assert!(parked.body.contains(LITE), "{}", parked.body);
    assert_eq!(cell(&parked, &format!("parked-{tariff}")), "1");
    assert_eq!(cell(&parked, &format!("reusable-{tariff}")), "1");
    assert_eq!(cell(&parked, &format!("cost-{tariff}")), monthly);
    assert_eq!(cell(&parked, &format!("reuses-{tariff}")), "0");
    assert!(
        parked
            .body
            .contains(&format!("href=\"/console/licenses/{first_id}\"")),
        "the parked license is linked"
    );
    assert!(
        parked.body.contains("pool-web-1"),
        "the server it came from"
    );
    assert!(parked.body.contains("<span class=\"badge ok\">yes</span>"));

    // Act: the next order of the tariff takes it, once the park has ended. PARKED
    // shows while the park's last step (the upstream's cooldown dates, then DONE) is
    // still open, and no order takes a license with a step open on it.
    park_ended(&api, &first_id).await;
    let second = order(&app, "pool-web-2", "203.0.113.82").await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let reused = ops.get("/console/pool").await;
    let donor = ops.get(&format!("/console/licenses/{first_id}")).await;
    let taker = ops.get(&format!("/console/licenses/{second_id}")).await;

    // Assert: one reuse, what it saved, and the two licenses linked.
    assert_eq!(second["reusedFrom"], first_id.as_str(), "{second}");
    assert_eq!(cell(&reused, &format!("reuses-{tariff}")), "1");
    assert_eq!(cell(&reused, &format!("saved-{tariff}")), monthly);
    assert_eq!(cell(&reused, &format!("parked-{tariff}")), "0");
    assert!(
        reused.body.contains("id=\"none-parked\""),
        "{}",
        reused.body
    );
    assert!(donor.body.contains("id=\"state\">REUSED"), "{}", donor.body);
    assert!(donor.body.contains(&format!(
        "id=\"reused-by\" href=\"/console/licenses/{second_id}\""
    )));
    assert!(taker.body.contains(&format!(
        "id=\"reused-from\" href=\"/console/licenses/{first_id}\""
    )));
}

#[tokio::test]
async fn a_release_not_worth_keeping_says_it_cancels_and_does() {
    // Arrange: a month's license never has 40 days left.
    let app = app(PoolRules {
        park_min_days_left: 40,
        ..PoolRules::default()
    })
    .await;
    let license = order(&app, "pool-web-3", "203.0.113.83").await;
    let id = license["id"].as_str().unwrap().to_owned();
    let mut ops = Browser::new(&app);
    ops.log_in("ops-token").await;

    // Act
    let (confirm, done) = release(&mut ops, &id, None).await;
    let cancelled = app
        .api_as("ops-token")
        .license_until(&id, &["CANCELLED"])
        .await;
    let pool = ops.get("/console/pool").await;

    // Assert
    assert!(
        confirm.body.contains("it is cancelled") && confirm.body.contains("40"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("class=\"danger\" id=\"confirm\""));
    assert_eq!(
        done.location(),
        format!("/console/licenses/{id}?done=cancel")
    );
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(app.sandbox.call_count("soft.delete"), 1);
    assert!(pool.body.contains("The pool is empty"), "{}", pool.body);
}

#[tokio::test]
async fn the_pool_page_is_for_admins_only() {
    // Arrange
    let app = app(PoolRules::default()).await;
    let mut shop = Browser::new(&app);
    shop.log_in("shop-token").await;
    let mut ops = Browser::new(&app);
    ops.log_in("ops-token").await;

    // Act
    let refused = shop.get("/console/pool").await;
    let shop_nav = shop.get("/console/").await;
    let ops_nav = ops.get("/console/").await;

    // Assert
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!shop_nav.body.contains("href=\"/console/pool\""));
    assert!(ops_nav.body.contains("href=\"/console/pool\""));
}

/// Waits until the park of license `id` has ended: its PARK entry in the audit log is
/// SUCCEEDED, written in the transaction that closes the step.
async fn park_ended(api: &crate::support::Api, id: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, page) = api
            .get(&format!("/v1/audit?licenseId={id}&pageSize=50"))
            .await
            .unwrap();
        let ended = page["entries"].as_array().is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e["action"] == "PARK" && e["outcome"] == "SUCCEEDED")
        });
        if ended {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the park never ended: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
