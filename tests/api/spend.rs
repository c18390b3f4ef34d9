//! The spend guard covers every paid call: renewals and panel changes count against a
//! client's caps like orders, and a renewal cannot pay a license beyond
//! `max_prepaid_months` (24 by default).

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{order_body, problem_code, rest, spawn_with_clients};

async fn active_license(
    app: &crate::helpers::TestApp,
    client: &str,
    server: &str,
    ip: &str,
) -> String {
    let ordered: Value = rest(
        app,
        Some(client),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body(server, ip)),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ordered["state"], "ACTIVE", "{ordered}");
    ordered["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn renewals_and_panel_changes_count_against_the_cap_and_nothing_is_bought_past_it() {
    // Arrange: `capped` may make two paid calls an hour; the order is the first.
    let app = spawn_with_clients().await;
    let id = active_license(&app, "capped", "srv-s1", "203.0.113.221").await;
    let renew = |months: i32| {
        let app = &app;
        let path = format!("/v1/licenses/{id}/renew?wait=30s");
        async move {
            rest(
                app,
                Some("capped"),
                Method::POST,
                &path,
                Some(&json!({"periodMonths": months})),
            )
            .await
        }
    };

    // Act
    let second = renew(1).await;
    let third = renew(1).await;
    let upgrade = rest(
        &app,
        Some("capped"),
        Method::POST,
        &format!("/v1/licenses/{id}/change-panel"),
        Some(&json!({"panel": "ISPmanager 6 Business"})),
    )
    .await;

    // Assert
    assert!(second.status().is_success(), "{}", second.status());
    assert_eq!(third.status(), 429);
    assert_eq!(problem_code(third).await, "SPEND_CAP_REACHED");
    assert_eq!(upgrade.status(), 429);
    assert_eq!(problem_code(upgrade).await, "SPEND_CAP_REACHED");
    assert_eq!(
        app.sandbox.call_count("service.prolong"),
        1,
        "one renewal bought"
    );
    assert_eq!(app.sandbox.call_count("service.changepricelist"), 0);
}

#[tokio::test]
async fn a_license_cannot_be_prepaid_beyond_twenty_four_months() {
    let app = spawn_with_clients().await;
    let id = active_license(&app, "alpha", "srv-s2", "203.0.113.222").await;
    let renew = || {
        let app = &app;
        let path = format!("/v1/licenses/{id}/renew?wait=30s");
        async move {
            rest(
                app,
                Some("alpha"),
                Method::POST,
                &path,
                Some(&json!({"periodMonths": 12})),
            )
            .await
        }
    };

    // One month ordered plus twelve fits; another twelve would reach 25 months.
    let first = renew().await;
    let second = renew().await;

    assert!(first.status().is_success(), "{}", first.status());
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(problem_code(second).await, "SPEND_CAP_REACHED");
    assert_eq!(
        app.sandbox.call_count("service.prolong"),
        1,
        "one renewal bought"
    );
}

#[tokio::test]
async fn a_money_cap_counts_what_orders_and_renewals_cost_and_nothing_is_bought_past_it() {
    // Arrange: `budget` may spend 20.00 a day; Pro costs 9.00 a month in the sandbox.
    let app = spawn_with_clients().await;
    let first = active_license(&app, "budget", "srv-m1", "203.0.113.231").await;
    active_license(&app, "budget", "srv-m2", "203.0.113.232").await;

    // Act: a renewal would bring the day to 27.00.
    let renewal = rest(
        &app,
        Some("budget"),
        Method::POST,
        &format!("/v1/licenses/{first}/renew"),
        Some(&json!({"periodMonths": 1})),
    )
    .await;
    let order = rest(
        &app,
        Some("budget"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("srv-m3", "203.0.113.233")),
    )
    .await;

    // Assert
    assert_eq!(renewal.status(), 429);
    let problem: Value = renewal.json().await.unwrap();
    assert_eq!(problem["code"], "SPEND_CAP_REACHED");
    assert!(
        problem["detail"].as_str().unwrap().contains("18.00"),
        "{problem}"
    );
    assert_eq!(order.status(), 429);
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        2,
        "two orders bought"
    );
    assert_eq!(
        app.sandbox.call_count("service.prolong"),
        0,
        "no renewal bought"
    );
}

#[tokio::test]
async fn with_a_money_cap_a_call_whose_price_is_unknown_is_refused() {
    let app = spawn_with_clients().await;
    app.sandbox
        .set_faults(vec!["pricelist.export:error5xx:1.0".parse().unwrap()]);

    let order = rest(
        &app,
        Some("budget"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("srv-m4", "203.0.113.234")),
    )
    .await;
    let uncapped = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("srv-m5", "203.0.113.235")),
    )
    .await;

    assert_eq!(order.status(), 503);
    assert_eq!(problem_code(order).await, "PRICE_UNKNOWN");
    assert_eq!(
        uncapped.status(),
        202,
        "a client without a money cap needs no price"
    );
}
