//! The cost report: every paid call of a month added up by client and panel from the
//! prices the audit log recorded, on REST (JSON and CSV), gRPC and the console; an
//! admin sees every client, a client its own; the catalog's selling prices give the
//! revenue and the margin.

use license_facade::api::pb::v1 as pb;
use license_facade::domain::{PanelCatalog, PanelCatalogConfig, SellingPriceConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{order_body, rest, spawn_with_clients, test_clients};
use crate::helpers::{TestApp, grpc_client_with, spawn_app_with};

/// Reads the price list once (a quote), so that the calls after find it at hand: a
/// client without a money cap waits only briefly for it.
async fn price_list_at_hand(app: &TestApp) {
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

/// A successful paid call as `client`, its answer.
async fn paid(app: &TestApp, client: &str, path: &str, body: Value) -> Value {
    let r = rest(app, Some(client), Method::POST, path, Some(&body)).await;
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// `GET /v1/reports/costs?month=` as `client`, as JSON.
async fn report(app: &TestApp, client: &str, month: &str) -> Value {
    let r = rest(
        app,
        Some(client),
        Method::GET,
        &format!("/v1/reports/costs?month={month}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Hundredths of a two-decimal amount.
fn cents(amount: &str) -> i64 {
    let (whole, fraction) = amount.split_once('.').expect("two decimals");
    assert_eq!(fraction.len(), 2, "{amount}");
    whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
}

/// What the audit log says the paid calls accepted in `month` cost (hundredths).
async fn audit_total(app: &TestApp, month: &str) -> i64 {
    let audit: Value = rest(app, Some("ops"), Method::GET, "/v1/audit", None)
        .await
        .json()
        .await
        .unwrap();
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ACCEPTED" && e["time"].as_str().unwrap().starts_with(month))
        .filter_map(|e| e["price"]["amount"].as_str().filter(|a| !a.is_empty()))
        .map(cents)
        .sum()
}

/// The rows as (client, panel, row).
fn rows(report: &Value) -> Vec<(String, String, Value)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["client"].as_str().unwrap().to_owned(),
                r["panel"].as_str().unwrap().to_owned(),
                r.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_report_adds_up_every_paid_call_as_the_audit_priced_it_on_rest_csv_and_grpc() {
    // Arrange: `alpha` orders Pro (9.00), renews it for a year (90.00) and changes it
    // to Business (25.00); `beta` orders Pro (9.00) renewing by itself, so its
    // renewal falls in the next month (a month's license ends in the next one).
    let app = spawn_with_clients().await;
    price_list_at_hand(&app).await;
    let pro = paid(
        &app,
        "alpha",
        "/v1/licenses?wait=30s",
        order_body("srv-c1", "203.0.113.61"),
    )
    .await;
    let id = pro["id"].as_str().unwrap();
    paid(
        &app,
        "alpha",
        &format!("/v1/licenses/{id}/renew?wait=30s"),
        json!({"periodMonths": 12}),
    )
    .await;
    paid(
        &app,
        "alpha",
        &format!("/v1/licenses/{id}/change-panel?wait=30s"),
        json!({"panel": "ISPmanager 6 Business"}),
    )
    .await;
    let mut renewing = order_body("srv-c2", "203.0.113.62");
    renewing["autoRenew"] = json!(true);
    paid(&app, "beta", "/v1/licenses?wait=30s", renewing).await;
    let month = pro["createTime"].as_str().unwrap()[..7].to_owned();

    // Act
    let all = report(&app, "ops", &month).await;
    let own = report(&app, "alpha", &month).await;
    let csv = crate::helpers::http_client_with(Some("ops-token"))
        .get(format!("{}/v1/reports/costs?month={month}", app.http))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    let mut ops = grpc_client_with(app.grpc_addr, Some("ops-token")).await;
    let grpc = ops
        .get_cost_report(pb::GetCostReportRequest {
            month: month.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();

    // Assert: the totals are the audit's prices, added up.
    assert_eq!(all["month"], month.as_str());
    assert_eq!(all["currency"], "EUR");
    let totals = &all["totals"];
    assert_eq!(
        cents(totals["cost"].as_str().unwrap()),
        audit_total(&app, &month).await
    );
    assert_eq!(totals["cost"], "133.00", "{all}");
    assert_eq!(totals["paidCalls"], 4);
    assert_eq!(totals["unpricedCalls"], 0);
    // ... by client, panel (what each call bought) and kind.
    let by_row = rows(&all);
    let keys: Vec<(&str, &str)> = by_row
        .iter()
        .map(|(c, p, _)| (c.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("alpha", "ISPmanager 6 Business"),
            ("alpha", "ISPmanager 6 Pro"),
            ("beta", "ISPmanager 6 Pro"),
        ]
    );
    let (business, alpha_pro, beta_pro) = (&by_row[0].2, &by_row[1].2, &by_row[2].2);
    assert_eq!(business["panelChanges"], "25.00");
    assert_eq!(business["liveAtMonthEnd"], 1, "the license is Business now");
    assert_eq!(alpha_pro["orders"], "9.00");
    assert_eq!(alpha_pro["renewals"], "90.00");
    assert_eq!(alpha_pro["paidCalls"], 2);
    assert_eq!(alpha_pro["liveAtMonthEnd"], 0);
    assert_eq!(beta_pro["orders"], "9.00");
    assert_eq!(beta_pro["liveAtMonthEnd"], 1);
    assert_eq!(beta_pro["nextMonthRenewals"], 1, "{beta_pro}");
    assert_eq!(beta_pro["nextMonthCommitted"], "9.00");
    assert_eq!(
        business["nextMonthRenewals"], 0,
        "alpha's license is paid a year ahead and does not renew by itself"
    );
    assert_eq!(totals["nextMonthCommitted"], "9.00");
    // A client sees its own rows only.
    let own_keys: Vec<String> = rows(&own).into_iter().map(|(c, _, _)| c).collect();
    assert_eq!(own_keys, ["alpha", "alpha"]);
    assert_eq!(own["totals"]["cost"], "124.00");
    // The CSV is the same report, read by a standard CSV reader.
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        csv.headers()
    );
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        records.len(),
        by_row.len() + 1,
        "one line per row, then the totals"
    );
    for (record, (client, panel, row)) in records.iter().zip(&by_row) {
        assert_eq!(&record[column("client")], client);
        assert_eq!(&record[column("panel")], panel);
        assert_eq!(&record[column("cost")], row["cost"].as_str().unwrap());
        assert_eq!(&record[column("month")], month);
    }
    let last = records.last().unwrap();
    assert_eq!(&last[column("client")], "");
    assert_eq!(&last[column("cost")], "133.00");
    assert_eq!(&last[column("paid_calls")], "4");
    assert_eq!(&last[column("next_month_committed")], "9.00");
    // gRPC answers the same.
    let grpc_totals = grpc.totals.unwrap();
    assert_eq!(grpc_totals.cost, "133.00");
    assert_eq!(grpc_totals.paid_calls, 4);
    assert_eq!(grpc.rows.len(), 3);
}

#[tokio::test]
async fn a_month_not_as_yyyy_mm_is_invalid_and_a_reader_may_read_its_own_costs() {
    let app = spawn_with_clients().await;

    let bad = rest(
        &app,
        Some("alpha"),
        Method::GET,
        "/v1/reports/costs?month=2026-13",
        None,
    )
    .await;
    let mut alpha = grpc_client_with(app.grpc_addr, Some("alpha-token")).await;
    let bad_grpc = alpha
        .get_cost_report(pb::GetCostReportRequest {
            month: "November".into(),
        })
        .await
        .unwrap_err();
    let reader = report(&app, "reader", "").await;

    assert_eq!(bad.status(), 400);
    assert_eq!(crate::auth::problem_code(bad).await, "INVALID_ARGUMENT");
    assert_eq!(bad_grpc.code(), tonic::Code::InvalidArgument);
    assert_eq!(reader["rows"], json!([]));
    assert_eq!(reader["totals"]["cost"], "0.00");
    assert_eq!(reader["month"].as_str().unwrap().len(), 7);
}

#[tokio::test]
async fn selling_prices_give_revenue_and_margin_and_the_console_charts_them() {
    // Arrange: Pro sells at 15.00 a month; it costs 9.00.
    let app = spawn_app_with(0, |s| {
        s.clients = Some(test_clients());
        s.catalog = PanelCatalog::from_config(PanelCatalogConfig {
            selling_prices: vec![SellingPriceConfig {
                panel: "ISPmanager 6 Pro".into(),
                period_months: 1,
                price: "15.00".into(),
            }],
            selling_currency: Some("EUR".into()),
            ..PanelCatalogConfig::default()
        })
        .unwrap();
    })
    .await;
    price_list_at_hand(&app).await;
    let pro = paid(
        &app,
        "alpha",
        "/v1/licenses?wait=30s",
        order_body("srv-c3", "203.0.113.63"),
    )
    .await;
    let month = pro["createTime"].as_str().unwrap()[..7].to_owned();

    // Act
    let all = report(&app, "ops", &month).await;
    let mut browser = crate::console::Browser::new(&app);
    browser.log_in("ops-token").await;
    let page = browser.get(&format!("/console/costs?month={month}")).await;
    let download = browser
        .get(&format!("/console/costs.csv?month={month}"))
        .await;

    // Assert
    assert_eq!(all["revenueCurrency"], "EUR");
    assert_eq!(all["totals"]["revenue"], "15.00");
    assert_eq!(all["totals"]["margin"], "6.00");
    assert_eq!(page.status, 200);
    for shown in [
        "id=\"total-cost\">9.00 EUR<",
        "id=\"total-revenue\">15.00 EUR<",
        "id=\"total-margin\">6.00 EUR<",
        "<svg class=\"chart\" id=\"cost-chart\"",
        &format!("<title>{month}: cost 9.00 EUR</title>"),
        &format!("<title>{month}: revenue 15.00 EUR</title>"),
        &format!("href=\"/console/costs.csv?month={month}\""),
    ] {
        assert!(page.body.contains(shown), "{shown} missing");
    }
    assert!(!page.body.contains("<script"), "the chart needs no script");
    assert_eq!(download.status, 200);
    assert!(
        download.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("costs-{month}.csv"))
    );
    let mut reader = csv::Reader::from_reader(download.body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let margin = header.iter().position(|h| h == "margin").unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[1][margin], "6.00");
}
