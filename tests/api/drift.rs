//! The reconciler over both APIs: licenses bought, deleted or changed in the sandbox
//! behind the service's back show up in the drift report; adopting an orphan makes it
//! a license here; a listing costs upstream calls per page, not per license.

use license_facade::api::pb::v1 as pb;
use license_facade::config::{ServeArgs, Settings};
use license_facade::reconcile_cmd::{self, ReconcileArgs};
use license_facade::sandbox::{NewSandboxLicense, Sandbox, SandboxConfig, SavedFilter};
use license_facade::startup::Application;
use serde_json::{Value, json};

use crate::helpers::{TestApp, reason, spawn_app, spawn_app_on_standalone_sandbox};

async fn active_license(app: &TestApp, server: &str, ip: &str, body: Value) -> Value {
    let mut order = json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Pro"});
    if let (Some(order), Some(extra)) = (order.as_object_mut(), body.as_object()) {
        order.extend(extra.clone());
    }
    let license = app.order_and_wait(&order).await;
    assert_eq!(license["state"], "ACTIVE", "{license}");
    license
}

fn upstream_id(license: &Value) -> u64 {
    license["upstreamId"].as_str().unwrap().parse().unwrap()
}

async fn reconcile(app: &TestApp, body: Option<Value>) -> Value {
    let response = match body {
        Some(body) => app.post_json("/v1/reconcile", &body).await,
        None => app
            .client
            .post(format!("{}/v1/reconcile", app.http))
            .send()
            .await
            .unwrap(),
    };
    let status = response.status();
    let report: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{report}");
    report
}

fn list<'a>(report: &'a Value, key: &str) -> &'a [Value] {
    report[key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_orphan_bought_behind_the_back_is_reported_with_ip_and_tariff_on_both_apis() {
    // Arrange
    let app = spawn_app().await;
    let ours = active_license(&app, "srv-1", "203.0.113.10", json!({})).await;
    let mut bought = NewSandboxLicense::new("203.0.113.77", 55229);
    // The documented `soft` columns have no `remoteid`: the name is what shows.
    bought.licname = "someone-else".into();
    let orphan_id = app.sandbox.insert_license(bought);

    // Act
    let report = reconcile(&app, None).await;

    // Assert
    assert_eq!(count(&report, "orphanCount"), 1, "{report}");
    let orphan = &list(&report, "orphans")[0];
    assert_eq!(orphan["upstreamId"], orphan_id.to_string());
    assert_eq!(orphan["ip"], "203.0.113.77");
    assert_eq!(orphan["tariffId"], 55229);
    assert_eq!(orphan["panel"], "ISPmanager 6 Host");
    assert_eq!(orphan["licname"], "someone-else");
    assert_eq!(orphan["upstreamStatus"], 2);
    assert!(orphan["expireTime"].is_string(), "{orphan}");
    assert_eq!(count(&report, "upstreamSeen"), 2);
    assert_eq!(count(&report, "localChecked"), 1);
    assert_eq!(count(&report, "missingCount"), 0, "{report}");
    assert_eq!(count(&report, "mismatchCount"), 0, "{report}");
    assert_ne!(orphan["upstreamId"], ours["upstreamId"]);

    let latest: Value = app.get("/v1/drift").await.json().await.unwrap();
    assert_eq!(latest, report);

    let mut grpc = app.grpc().await;
    let listed = grpc
        .list_drift(pb::ListDriftRequest {})
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(listed.orphans[0].upstream_id, orphan_id.to_string());
    assert_eq!(listed.orphans[0].ip, "203.0.113.77");
    assert_eq!(listed.orphans[0].tariff_id, 55229);
    let fresh = grpc
        .reconcile(pb::ReconcileRequest::default())
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(fresh.orphan_count, 1);
    let seconds = |r: &pb::DriftReport| r.generate_time.as_ref().unwrap().seconds;
    assert!(seconds(&fresh) >= seconds(&listed));
}

#[tokio::test]
async fn licenses_removed_or_deleted_in_the_sandbox_are_reported_missing() {
    // Arrange
    let app = spawn_app().await;
    let gone = active_license(&app, "srv-gone", "203.0.113.20", json!({})).await;
    let deleted = active_license(&app, "srv-deleted", "203.0.113.21", json!({})).await;
    let fine = active_license(&app, "srv-fine", "203.0.113.22", json!({})).await;
    assert!(app.sandbox.remove_license(upstream_id(&gone)));
    let elid = upstream_id(&deleted).to_string();
    app.upstream_call(&[("func", "soft.delete"), ("elid", &elid)])
        .await;
    let planted_deleted = NewSandboxLicense {
        status: 4,
        ..NewSandboxLicense::new("203.0.113.23", 55228)
    };
    app.sandbox.insert_license(planted_deleted);

    // Act
    let report = reconcile(&app, None).await;

    // Assert
    let missing: Vec<(&str, &str)> = list(&report, "missing")
        .iter()
        .map(|m| {
            (
                m["license"]["serverId"].as_str().unwrap(),
                m["reason"].as_str().unwrap(),
            )
        })
        .collect();
    // Listed in id order, which is the order of creation.
    assert_eq!(
        missing,
        [
            ("srv-gone", "MISSING_REASON_ABSENT"),
            ("srv-deleted", "MISSING_REASON_DELETED"),
        ],
        "{report}"
    );
    assert_eq!(
        count(&report, "orphanCount"),
        0,
        "a deleted upstream license is no orphan"
    );
    assert_eq!(count(&report, "mismatchCount"), 0, "{report}");
    let fine_now: Value = app
        .get(&format!("/v1/licenses/{}", fine["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        fine_now["state"], "ACTIVE",
        "the reconciler changes nothing"
    );
}

#[tokio::test]
async fn a_list_that_silently_hides_a_live_license_makes_no_report_instead_of_calling_it_missing() {
    // Arrange: the account's saved filter (which does not show itself) is set to
    // hide everything once the license is active.
    let app = spawn_app_on_standalone_sandbox(SandboxConfig {
        key_delay: std::time::Duration::ZERO,
        saved_filter_silent: true,
        ..SandboxConfig::default()
    })
    .await;
    let hidden = active_license(&app, "srv-hidden", "203.0.113.24", json!({})).await;
    app.sandbox.set_saved_filter(Some(SavedFilter::HideAll));

    // Act
    let response = app
        .client
        .post(format!("{}/v1/reconcile", app.http))
        .send()
        .await
        .unwrap();

    // Assert: no report calls the paid license gone; the reason names it.
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "UPSTREAM_UNAVAILABLE", "{problem}");
    let leaves_out = format!("leaves out license {}", upstream_id(&hidden));
    assert!(
        problem["detail"].as_str().unwrap().contains(&leaves_out),
        "{problem}"
    );
    assert_eq!(
        app.get("/v1/drift").await.status(),
        404,
        "no report was kept"
    );
}

#[tokio::test]
async fn an_ip_changed_behind_the_back_is_a_mismatch() {
    // Arrange
    let app = spawn_app().await;
    let license = active_license(&app, "srv-ip", "203.0.113.30", json!({})).await;
    let elid = upstream_id(&license).to_string();
    app.upstream_call(&[
        ("func", "soft.edit"),
        ("elid", &elid),
        ("ip", "203.0.113.31"),
    ])
    .await;

    // Act
    let report = reconcile(&app, None).await;

    // Assert
    assert_eq!(count(&report, "mismatchCount"), 1, "{report}");
    let mismatch = &list(&report, "mismatches")[0];
    assert_eq!(mismatch["field"], "MISMATCH_FIELD_IP");
    assert_eq!(mismatch["ours"], "203.0.113.30");
    assert_eq!(mismatch["upstream"], "203.0.113.31");
    assert_eq!(mismatch["license"]["id"], license["id"]);
}

#[tokio::test]
async fn licenses_expiring_without_auto_renew_are_listed_within_the_horizon() {
    // Arrange: both expire in about a month; one renews by itself.
    let app = spawn_app().await;
    let manual = active_license(&app, "srv-manual", "203.0.113.40", json!({})).await;
    active_license(&app, "srv-auto", "203.0.113.41", json!({"autoRenew": true})).await;

    // Act
    let default_horizon = reconcile(&app, None).await;
    let wide = reconcile(&app, Some(json!({"expiringWithinDays": 40}))).await;

    // Assert
    assert_eq!(count(&default_horizon, "expiringWithinDays"), 14);
    assert_eq!(
        count(&default_horizon, "expiringCount"),
        0,
        "{default_horizon}"
    );
    assert_eq!(count(&wide, "expiringWithinDays"), 40);
    assert_eq!(count(&wide, "expiringCount"), 1, "{wide}");
    let expiring = &list(&wide, "expiring")[0];
    assert_eq!(expiring["license"]["id"], manual["id"]);
    let days = expiring["daysLeft"].as_i64().unwrap();
    assert!((27..=32).contains(&days), "{days}");
}

#[tokio::test]
async fn an_out_of_range_horizon_is_refused_on_both_apis() {
    let app = spawn_app().await;
    let response = app
        .post_json("/v1/reconcile", &json!({"expiringWithinDays": 100000}))
        .await;
    assert_eq!(response.status(), 400);
    let status = app
        .grpc()
        .await
        .reconcile(pb::ReconcileRequest {
            expiring_within_days: Some(100_000),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(app.sandbox.call_count("soft"), 0, "refused before listing");
}

#[tokio::test]
async fn the_drift_report_is_not_found_before_the_first_run() {
    let app = spawn_app().await;
    let response = app.get("/v1/drift").await;
    assert_eq!(response.status(), 404);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "DRIFT_REPORT_NOT_FOUND");
    let status = app
        .grpc()
        .await
        .list_drift(pb::ListDriftRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(reason(&status), "DRIFT_REPORT_NOT_FOUND");
}

#[tokio::test]
async fn adopting_an_orphan_makes_it_a_license_here_and_clears_the_drift() {
    // Arrange
    let app = spawn_app().await;
    let orphan_id = app
        .sandbox
        .insert_license(NewSandboxLicense::new("203.0.113.50", 55227));
    let before = reconcile(&app, None).await;
    assert_eq!(count(&before, "orphanCount"), 1);
    let upstream = app.sandbox.license(orphan_id).unwrap();

    // Act
    let response = app
        .post_json(
            &format!("/v1/drift/{orphan_id}/adopt"),
            &json!({"serverId": "srv-adopted"}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let license: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/licenses/{}", license["id"].as_str().unwrap())
    );
    assert_eq!(license["state"], "ACTIVE");
    assert_eq!(license["serverId"], "srv-adopted");
    assert_eq!(license["ip"], "203.0.113.50");
    assert_eq!(license["panel"], "ISPmanager 6 Lite");
    assert_eq!(license["tariffId"], 55227);
    assert_eq!(license["upstreamId"], orphan_id.to_string());
    assert_eq!(license["licenseKey"], upstream.license_key);
    assert!(
        license["expireTime"]
            .as_str()
            .unwrap()
            .starts_with(&upstream.expire_date.to_string())
    );
    let by_server: Value = app
        .get("/v1/servers/srv-adopted/license")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_server["id"], license["id"]);

    let after = reconcile(&app, None).await;
    assert_eq!(count(&after, "orphanCount"), 0, "{after}");
    assert_eq!(count(&after, "missingCount"), 0, "{after}");
    assert_eq!(count(&after, "mismatchCount"), 0, "{after}");
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        0,
        "adopt buys nothing"
    );

    let again = app
        .post_json(
            &format!("/v1/drift/{orphan_id}/adopt"),
            &json!({"serverId": "srv-other"}),
        )
        .await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["code"], "UPSTREAM_LICENSE_KNOWN");
}

#[tokio::test]
async fn adoption_is_refused_when_it_cannot_be_right() {
    let app = spawn_app().await;
    let taken = active_license(&app, "srv-taken", "203.0.113.60", json!({})).await;
    let orphan = app
        .sandbox
        .insert_license(NewSandboxLicense::new("203.0.113.61", 55228));
    let foreign = app
        .sandbox
        .insert_license(NewSandboxLicense::new("203.0.113.62", 99_999));
    let deleted = app.sandbox.insert_license(NewSandboxLicense {
        status: 4,
        ..NewSandboxLicense::new("203.0.113.63", 55228)
    });
    let adopt = |id: String, server: &'static str| {
        let app = &app;
        async move {
            let response = app
                .post_json(
                    &format!("/v1/drift/{id}/adopt"),
                    &json!({"serverId": server}),
                )
                .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };

    assert_eq!(
        adopt(orphan.to_string(), "srv-taken").await,
        (409, "SERVER_HAS_LICENSE".into())
    );
    assert_eq!(
        adopt(foreign.to_string(), "srv-x").await,
        (400, "INVALID_ARGUMENT".into())
    );
    assert_eq!(
        adopt(deleted.to_string(), "srv-x").await,
        (409, "UPSTREAM_LICENSE_DELETED".into())
    );
    assert_eq!(
        adopt("424242".into(), "srv-x").await,
        (404, "UPSTREAM_LICENSE_NOT_FOUND".into())
    );
    assert_eq!(
        adopt("not-a-number".into(), "srv-x").await,
        (400, "INVALID_ARGUMENT".into())
    );
    assert_eq!(
        adopt(upstream_id(&taken).to_string(), "srv-x").await,
        (409, "UPSTREAM_LICENSE_KNOWN".into())
    );

    // gRPC: the same use case, the same codes.
    let mut grpc = app.grpc().await;
    let adopted = grpc
        .adopt_license(pb::AdoptLicenseRequest {
            upstream_id: orphan.to_string(),
            server_id: "srv-grpc".into(),
            hostname: "grpc.example.com".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(adopted.hostname, "grpc.example.com");
    assert_eq!(adopted.state, pb::license::State::Active as i32);
    let twice = grpc
        .adopt_license(pb::AdoptLicenseRequest {
            upstream_id: orphan.to_string(),
            server_id: "srv-grpc-2".into(),
            hostname: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&twice), "UPSTREAM_LICENSE_KNOWN");
}

#[tokio::test]
async fn a_reconciliation_costs_one_upstream_call_per_page_not_per_license() {
    // Arrange: 2,500 licenses at the default page size of 1,000.
    let app = spawn_app().await;
    app.sandbox.bulk_seed(2_500, 55228);
    let (lists, edits) = (
        app.sandbox.call_count("soft"),
        app.sandbox.call_count("soft.edit"),
    );

    // Act
    let report = reconcile(&app, None).await;

    // Assert
    assert_eq!(app.sandbox.call_count("soft") - lists, 3);
    assert_eq!(app.sandbox.call_count("soft.edit") - edits, 0);
    assert_eq!(count(&report, "upstreamSeen"), 2_500);
    assert_eq!(count(&report, "orphanCount"), 2_500);
    assert_eq!(list(&report, "orphans").len(), 1_000, "lists are capped");
    assert_eq!(report["truncated"], true);
}

/// A replica of the application on `database_url`, against a standalone sandbox.
async fn replica(sandbox_url: &str, database_url: &str) -> String {
    let app = Application::build(settings(sandbox_url, database_url))
        .await
        .unwrap();
    let http = format!("http://{}", app.http_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    http
}

fn settings(sandbox_url: &str, database_url: &str) -> Settings {
    let settings = Settings::from_args(ServeArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: Some(database_url.into()),
        billmanager_url: Some(sandbox_url.into()),
        billmanager_user: Some("demo".into()),
        billmanager_password: Some("demo".into()),
        ..ServeArgs::default()
    })
    .unwrap();
    Settings {
        clients: Some(license_facade::auth::Clients::sandbox()),
        ..settings
    }
}

#[tokio::test]
async fn the_latest_report_is_served_by_every_replica_and_the_cli_writes_it_too() {
    // Arrange: two replicas on one database, one orphan upstream.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), SandboxConfig::default())
        .await
        .unwrap();
    let handle = sandbox.handle();
    let sandbox_url = sandbox.url();
    tokio::spawn(sandbox.run(std::future::pending()));
    handle.insert_license(NewSandboxLicense::new("203.0.113.70", 55228));
    let dir = tempfile::tempdir().unwrap();
    let (pg, database_url) = match crate::support::TestDb::for_store("lf_api").await {
        Some(db) => {
            let url = db.url.clone();
            (Some(db), url)
        }
        None => (
            None,
            format!("sqlite:{}", dir.path().join("lf.db").display()),
        ),
    };
    let a = replica(&sandbox_url, &database_url).await;
    let b = if pg.is_some() {
        replica(&sandbox_url, &database_url).await
    } else {
        // A SQLite file is served by one process; a second one is refused, clearly.
        let refused = Application::build(settings(&sandbox_url, &database_url))
            .await
            .err()
            .expect("a second serve on one SQLite file is refused");
        assert!(
            format!("{refused:#}").contains("another license-facade process is serving"),
            "{refused:#}"
        );
        a.clone()
    };
    let client = crate::helpers::http_client();

    // Act
    let made: Value = client
        .post(format!("{a}/v1/reconcile"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Value = client
        .get(format!("{b}/v1/drift"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Assert
    assert_eq!(made["orphanCount"], 1, "{made}");
    assert_eq!(seen, made);

    // The command line: same settings as `serve`, exit 0 with drift in the JSON, 2
    // when asked to fail on drift; its report becomes the latest one.
    let args = |fail_on_drift| ReconcileArgs {
        expiring_within_days: None,
        fail_on_drift,
        serve: ServeArgs {
            database_url: Some(database_url.clone()),
            billmanager_url: Some(sandbox_url.clone()),
            billmanager_user: Some("demo".into()),
            billmanager_password: Some("demo".into()),
            ..ServeArgs::default()
        },
    };
    assert_eq!(reconcile_cmd::run(args(false)).await.unwrap(), 0);
    assert_eq!(reconcile_cmd::run(args(true)).await.unwrap(), 2);
    let newest: Value = client
        .get(format!("{b}/v1/drift"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let time = |report: &Value| {
        let text = report["generateTime"].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert!(time(&newest) > time(&made), "{newest}");
}
