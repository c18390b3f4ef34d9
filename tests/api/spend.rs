//! The spend guard covers every paid call: renewals and panel changes count against a
//! client's caps like orders; every paid call is priced (Business nodes included) and
//! the price recorded, with or without a cap; and no order, renewal or trial
//! conversion pays a license beyond `max_prepaid_months` (24 by default).

use futures::StreamExt;
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
    assert!(
        app.sandbox
            .licenses()
            .iter()
            .all(|l| l.ip != "203.0.113.234"),
        "the refused order is never sent"
    );
    // The uncapped order's price is recorded as unknown, with why, not as 0.
    let recorded = accepted_prices(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (action, price) = &recorded[0];
    assert_eq!(action, "ORDER");
    assert_eq!(price["amount"], "", "{price}");
    assert!(
        price["unknownReason"]
            .as_str()
            .unwrap()
            .contains("price list is unavailable"),
        "{price}"
    );
}

/// An order body for `panel` with `extra` fields (nodes, periodMonths, trial).
fn order_of(server: &str, ip: &str, panel: &str, extra: Value) -> Value {
    let mut body = json!({"server": {"id": server, "ip": ip}, "panel": panel});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The ACCEPTED audit entries of paid calls, oldest first, as (action, price).
async fn accepted_prices(app: &crate::helpers::TestApp) -> Vec<(String, Value)> {
    let audit: Value = rest(app, Some("ops"), Method::GET, "/v1/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let mut entries: Vec<(String, Value)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ACCEPTED")
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["price"].clone()))
        .collect();
    entries.reverse();
    entries
}

/// Reads the price list once (a quote), so that the calls after find it at hand: a
/// client without a money cap waits only briefly for it.
async fn price_list_at_hand(app: &crate::helpers::TestApp) {
    let quote = rest(
        app,
        Some("alpha"),
        Method::GET,
        "/v1/panels/ISPmanager%206%20Pro/quote",
        None,
    )
    .await;
    assert_eq!(quote.status(), 200);
}

#[tokio::test]
async fn a_money_cap_prices_business_nodes_and_nothing_is_bought_past_it() {
    // Arrange: `frugal` may spend 50.00 a day. In the sandbox Business costs 25.00 a
    // month and each node 5.00 more.
    let app = spawn_with_clients().await;
    let business = |server: &str, ip: &str, nodes: u32| {
        order_of(server, ip, "ISPmanager 6 Business", json!({"nodes": nodes}))
    };

    // Act: 1 node (30.00) fits; 100 nodes (525.00) do not; nor do 2 nodes (35.00)
    // with 30.00 spent.
    let first = rest(
        &app,
        Some("frugal"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&business("srv-b1", "203.0.113.241", 1)),
    )
    .await;
    let hundred = rest(
        &app,
        Some("frugal"),
        Method::POST,
        "/v1/licenses",
        Some(&business("srv-b2", "203.0.113.242", 100)),
    )
    .await;
    let two = rest(
        &app,
        Some("frugal"),
        Method::POST,
        "/v1/licenses",
        Some(&business("srv-b3", "203.0.113.243", 2)),
    )
    .await;

    // Assert
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["state"], "ACTIVE", "{first}");
    assert_eq!(hundred.status(), 429);
    let problem: Value = hundred.json().await.unwrap();
    assert_eq!(problem["code"], "SPEND_CAP_REACHED");
    assert!(
        problem["detail"].as_str().unwrap().contains("525.00"),
        "{problem}"
    );
    assert_eq!(two.status(), 429);
    let problem: Value = two.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("35.00"),
        "{problem}"
    );
    assert_eq!(
        app.sandbox.carried_out("soft.order.param"),
        1,
        "one order bought"
    );
    let bought = app.sandbox.licenses();
    assert_eq!(bought.len(), 1);
    assert_eq!(bought[0].addons.get(&55236), Some(&1));
    assert_eq!(
        accepted_prices(&app).await,
        [(
            "ORDER".to_owned(),
            json!({"amount": "30.00", "currency": "EUR", "unknownReason": ""})
        )]
    );
}

#[tokio::test]
async fn every_paid_call_is_priced_and_recorded_without_a_cap() {
    // Arrange: `alpha` has no cap at all.
    let app = spawn_with_clients().await;
    price_list_at_hand(&app).await;
    let call = |path: String, body: Value| {
        let app = &app;
        async move {
            let r = rest(app, Some("alpha"), Method::POST, &path, Some(&body)).await;
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };

    // Act: an order (Pro, 9.00), a yearly renewal (90.00), a change to Business
    // (25.00), a Business order with 100 nodes (525.00), a trial (0.00) and its
    // conversion to Pro for a year (90.00).
    let pro = call(
        "/v1/licenses?wait=30s".into(),
        order_body("srv-p1", "203.0.113.251"),
    )
    .await;
    let id = pro["id"].as_str().unwrap().to_owned();
    call(
        format!("/v1/licenses/{id}/renew?wait=30s"),
        json!({"periodMonths": 12}),
    )
    .await;
    call(
        format!("/v1/licenses/{id}/change-panel?wait=30s"),
        json!({"panel": "ISPmanager 6 Business"}),
    )
    .await;
    call(
        "/v1/licenses?wait=30s".into(),
        order_of(
            "srv-p2",
            "203.0.113.252",
            "ISPmanager 6 Business",
            json!({"nodes": 100}),
        ),
    )
    .await;
    let trial = call(
        "/v1/licenses?wait=30s".into(),
        order_of("srv-p3", "203.0.113.253", "ISPmanager 6 Trial", json!({})),
    )
    .await;
    let trial_id = trial["id"].as_str().unwrap().to_owned();
    call(
        format!("/v1/licenses/{trial_id}/change-panel?wait=30s"),
        json!({"panel": "ISPmanager 6 Pro", "periodMonths": 12}),
    )
    .await;

    // Assert: the audit log (REST and gRPC) ...
    let eur = |amount: &str| json!({"amount": amount, "currency": "EUR", "unknownReason": ""});
    let expected = [
        ("ORDER", "9.00"),
        ("RENEW", "90.00"),
        ("CHANGE_PANEL", "25.00"),
        ("ORDER", "525.00"),
        ("ORDER", "0.00"),
        ("CHANGE_PANEL", "90.00"),
    ];
    assert_eq!(
        accepted_prices(&app).await,
        expected
            .iter()
            .map(|(action, amount)| ((*action).to_owned(), eur(amount)))
            .collect::<Vec<_>>()
    );
    let mut ops = crate::helpers::grpc_client_with(app.grpc_addr, Some("ops-token")).await;
    let listed = ops
        .list_audit_entries(license_facade::api::pb::v1::ListAuditEntriesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let grpc_prices: Vec<(String, String)> = listed
        .entries
        .iter()
        .rev()
        .filter_map(|e| {
            e.price
                .as_ref()
                .map(|p| (e.action.clone(), format!("{} {}", p.amount, p.currency)))
        })
        .collect();
    assert_eq!(
        grpc_prices,
        expected
            .iter()
            .map(|(action, amount)| ((*action).to_owned(), format!("{amount} EUR")))
            .collect::<Vec<_>>()
    );
    // ... and the change feed's events of the calls carry the same prices.
    let mut alpha = crate::helpers::grpc_client_with(app.grpc_addr, Some("alpha-token")).await;
    let mut feed = alpha
        .watch_licenses(license_facade::api::pb::v1::WatchLicensesRequest { after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut priced = Vec::new();
    while priced.len() < expected.len() {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), feed.next())
            .await
            .expect("the events of the paid calls arrive")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        if let Some(price) = &event.price {
            priced.push((event.kind().as_str_name().to_owned(), price.amount.clone()));
        }
    }
    assert_eq!(
        priced,
        [
            ("CREATED", "9.00"),
            ("RENEWED", "90.00"),
            ("PANEL_CHANGED", "25.00"),
            ("CREATED", "525.00"),
            ("CREATED", "0.00"),
            ("PANEL_CHANGED", "90.00"),
        ]
        .map(|(k, a)| (k.to_owned(), a.to_owned()))
    );
}

#[tokio::test]
async fn the_prepaid_limit_applies_to_orders_and_trial_conversions() {
    // Arrange: `shortterm` may have a license paid at most 6 months ahead.
    let app = spawn_with_clients().await;
    let post = |path: String, body: Value| {
        let app = &app;
        async move { rest(app, Some("shortterm"), Method::POST, &path, Some(&body)).await }
    };
    let trial: Value = post(
        "/v1/licenses?wait=30s".into(),
        order_of("srv-t1", "203.0.113.244", "ISPmanager 6 Trial", json!({})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(trial["state"], "ACTIVE", "{trial}");
    let trial_id = trial["id"].as_str().unwrap();

    // Act
    let yearly_order = post(
        "/v1/licenses".into(),
        order_of(
            "srv-t2",
            "203.0.113.245",
            "ISPmanager 6 Pro",
            json!({"periodMonths": 12}),
        ),
    )
    .await;
    let yearly_conversion = post(
        format!("/v1/licenses/{trial_id}/change-panel"),
        json!({"panel": "ISPmanager 6 Pro", "periodMonths": 12}),
    )
    .await;
    let monthly_order = post(
        "/v1/licenses?wait=30s".into(),
        order_of(
            "srv-t3",
            "203.0.113.246",
            "ISPmanager 6 Pro",
            json!({"periodMonths": 1}),
        ),
    )
    .await;
    let monthly_conversion = post(
        format!("/v1/licenses/{trial_id}/change-panel?wait=30s"),
        json!({"panel": "ISPmanager 6 Pro", "periodMonths": 1}),
    )
    .await;

    // Assert: the 12-month calls are refused for good (no Retry-After: waiting does
    // not make a year fit in six months), the monthly ones are bought.
    for refused in [yearly_order, yearly_conversion] {
        assert_eq!(refused.status(), 429);
        assert!(!refused.headers().contains_key("retry-after"));
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["code"], "SPEND_CAP_REACHED");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("at most 6 months"),
            "{problem}"
        );
    }
    assert_eq!(monthly_order.status(), 201);
    assert_eq!(monthly_conversion.status(), 200);
    assert_eq!(
        app.sandbox.carried_out("soft.order.param"),
        2,
        "the trial and the monthly order"
    );
    assert_eq!(
        app.sandbox.carried_out("service.changepricelist"),
        1,
        "the monthly conversion"
    );
    assert!(
        app.sandbox
            .licenses()
            .iter()
            .all(|l| l.ip != "203.0.113.245"),
        "nothing bought for the refused order"
    );
}

#[tokio::test]
async fn a_business_quote_prices_its_nodes_as_an_order_would() {
    let app = spawn_with_clients().await;

    let monthly: Value = rest(
        &app,
        Some("alpha"),
        Method::GET,
        "/v1/panels/ISPmanager%206%20Business/quote?nodes=100",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let yearly = crate::helpers::grpc_client_with(app.grpc_addr, Some("alpha-token"))
        .await
        .quote_license(license_facade::api::pb::v1::QuoteLicenseRequest {
            panel: "ISPmanager 6 Business".into(),
            period_months: 12,
            nodes: Some(2),
        })
        .await
        .unwrap()
        .into_inner();
    let not_per_node = rest(
        &app,
        Some("alpha"),
        Method::GET,
        "/v1/panels/ISPmanager%206%20Pro/quote?nodes=2",
        None,
    )
    .await;

    assert_eq!(monthly["price"], "525.00", "{monthly}");
    assert_eq!(yearly.price, "350.00");
    assert_eq!(not_per_node.status(), 400);
}
