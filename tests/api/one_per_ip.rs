//! One live license per IP, whoever orders it: a panel license is bound to its IP, so
//! a second live license on one IP is money paid for nothing. Whatever an order or an
//! IP change will occupy is reserved from its acceptance, so a step in flight holds its
//! IP against every other one, whichever comes first.

use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::auth::{order_body, problem_code, rest, spawn_with_clients};
use crate::helpers::{TestApp, grpc_client_with, reason};
use crate::support::DEADLINE;

#[tokio::test]
async fn server_ids_that_differ_by_case_order_once_per_ip_and_invisible_characters_are_refused() {
    let app = spawn_with_clients().await;
    let ip = "203.0.113.201";
    let first = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("dupip-1", ip)),
    )
    .await;
    assert!(first.status().is_success(), "{}", first.status());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["state"], "ACTIVE");

    let upper = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("DUPIP-1", ip)),
    )
    .await;
    assert_eq!(upper.status(), 409);
    let problem: Value = upper.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    assert_eq!(
        problem["licenseId"], first["id"],
        "the caller's own license is named"
    );

    let invisible = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("dupip-1\u{200B}", ip)),
    )
    .await;
    assert_eq!(invisible.status(), 400);

    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        1,
        "one purchase"
    );
}

#[tokio::test]
async fn another_client_cannot_order_for_an_ip_that_has_a_license_and_is_not_told_whose() {
    let app = spawn_with_clients().await;
    let ip = "203.0.113.202";
    // Waited for, so its one purchase is made before the count below.
    let first = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("a-1", ip)),
    )
    .await;
    assert!(first.status().is_success(), "{}", first.status());

    let second = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("b-1", ip)),
    )
    .await;
    assert_eq!(second.status(), 409);
    let problem: Value = second.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    assert!(
        problem.get("licenseId").is_none_or(Value::is_null),
        "{problem}"
    );

    // The same over gRPC.
    let mut grpc = grpc_client_with(app.grpc_addr, Some("beta-token")).await;
    let status = grpc
        .order_license(pb::OrderLicenseRequest {
            server: Some(pb::Server {
                id: "b-2".into(),
                ip: ip.into(),
                hostname: String::new(),
            }),
            panel: "ISPmanager 6 Lite".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "IP_HAS_LICENSE");
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        1,
        "one purchase"
    );
}

#[tokio::test]
async fn a_license_cannot_move_onto_an_ip_that_has_another_live_license() {
    let app = spawn_with_clients().await;
    let taken = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("m-1", "203.0.113.203")),
    )
    .await;
    assert_eq!(taken.status(), 202);
    let mover: Value = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("m-2", "203.0.113.204")),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(mover["state"], "ACTIVE");

    let moved = rest(
        &app,
        Some("beta"),
        Method::POST,
        &format!("/v1/licenses/{}/change-ip", mover["id"].as_str().unwrap()),
        Some(&json!({"ip": "203.0.113.203"})),
    )
    .await;

    assert_eq!(moved.status(), 409);
    assert_eq!(problem_code(moved).await, "IP_HAS_LICENSE");
    let upstream_ips: Vec<String> = app.sandbox.licenses().into_iter().map(|l| l.ip).collect();
    assert!(
        upstream_ips.contains(&"203.0.113.204".to_owned()),
        "the license stayed on its IP upstream: {upstream_ips:?}"
    );
}

/// Waits until `field` of license `id`, as `client` reads it, is `value`.
async fn license_once(app: &TestApp, client: &str, id: &str, field: &str, value: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let license: Value = rest(
            app,
            Some(client),
            Method::GET,
            &format!("/v1/licenses/{id}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        if license[field] == value {
            return license;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{field} never became {value}: {license}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the sandbox has received more than `seen` requests of `func`: the
/// request is upstream, held there by a `delay` fault.
async fn arrived(app: &TestApp, func: &str, seen: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while app.sandbox.call_count(func) <= seen {
        assert!(tokio::time::Instant::now() < deadline, "{func} never sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An ACTIVE license of `client` for `server` on `ip`, and its upstream id.
async fn active(app: &TestApp, client: &str, server: &str, ip: &str) -> (String, u64) {
    let ordered = rest(
        app,
        Some(client),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body(server, ip)),
    )
    .await;
    assert!(ordered.status().is_success(), "{}", ordered.status());
    let ordered: Value = ordered.json().await.unwrap();
    assert_eq!(ordered["state"], "ACTIVE", "{ordered}");
    let upstream = app.sandbox.licenses().into_iter().find(|l| l.ip == ip);
    (
        ordered["id"].as_str().unwrap().to_owned(),
        upstream.expect("bought upstream").id,
    )
}

/// Every upstream license ever bound to `ip`, deleted ones too.
fn upstream_on(app: &TestApp, ip: &str) -> Vec<u64> {
    app.sandbox
        .licenses()
        .into_iter()
        .filter(|l| l.ip == ip)
        .map(|l| l.id)
        .collect()
}

#[tokio::test]
async fn an_order_for_the_ip_a_change_is_moving_to_is_refused_while_the_change_is_in_flight() {
    let app = spawn_with_clients().await;
    let (from, to) = ("203.0.113.211", "203.0.113.212");
    let (mover, upstream_id) = active(&app, "alpha", "move-1", from).await;
    // The upstream takes its time over the change: the order comes while it is held.
    app.sandbox
        .set_faults(vec!["soft.edit:delay-3000ms:1".parse().unwrap()]);
    let edits = app.sandbox.call_count("soft.edit");
    let change = rest(
        &app,
        Some("alpha"),
        Method::POST,
        &format!("/v1/licenses/{mover}/change-ip"),
        Some(&json!({"ip": to})),
    )
    .await;
    assert_eq!(change.status(), 202);
    arrived(&app, "soft.edit", edits).await;

    let order = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("take-1", to)),
    )
    .await;
    let mut grpc = grpc_client_with(app.grpc_addr, Some("beta-token")).await;
    let status = grpc
        .order_license(pb::OrderLicenseRequest {
            server: Some(pb::Server {
                id: "take-2".into(),
                ip: to.into(),
                hostname: String::new(),
            }),
            panel: "ISPmanager 6 Pro".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    app.sandbox.set_faults(vec![]);

    assert_eq!(order.status(), 409);
    let problem: Value = order.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("a change of a license to it is in flight"),
        "{problem}"
    );
    assert!(
        problem.get("licenseId").is_none_or(Value::is_null),
        "not alpha's to see: {problem}"
    );
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "IP_HAS_LICENSE");
    assert_eq!(
        status.message(),
        detail,
        "the same words on both transports"
    );
    // Everything settles: the license is on its new IP, the only one ever bought there.
    let moved = license_once(&app, "alpha", &mover, "ip", to).await;
    assert_eq!(moved["state"], "ACTIVE");
    assert_eq!(upstream_on(&app, to), [upstream_id]);
    assert_eq!(app.sandbox.license(upstream_id).unwrap().ip, to);
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        1,
        "alpha's order alone"
    );
}

#[tokio::test]
async fn an_ip_change_to_the_ip_of_an_order_in_flight_is_refused() {
    let app = spawn_with_clients().await;
    let (from, to) = ("203.0.113.221", "203.0.113.222");
    let (mover, upstream_id) = active(&app, "alpha", "move-2", from).await;
    app.sandbox
        .set_faults(vec!["soft.order.param:delay-3000ms:1".parse().unwrap()]);
    let orders = app.sandbox.call_count("soft.order.param");
    let order = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses",
        Some(&order_body("take-3", to)),
    )
    .await;
    assert_eq!(order.status(), 202);
    let ordered: Value = order.json().await.unwrap();
    arrived(&app, "soft.order.param", orders).await;

    let change = rest(
        &app,
        Some("alpha"),
        Method::POST,
        &format!("/v1/licenses/{mover}/change-ip"),
        Some(&json!({"ip": to})),
    )
    .await;
    let mut grpc = grpc_client_with(app.grpc_addr, Some("alpha-token")).await;
    let status = grpc
        .change_license_ip(pb::ChangeLicenseIpRequest {
            id: mover.clone(),
            ip: to.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    app.sandbox.set_faults(vec![]);

    assert_eq!(change.status(), 409);
    let problem: Value = change.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("an order for it is in flight"), "{problem}");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "IP_HAS_LICENSE");
    assert_eq!(status.message(), detail);
    let id = ordered["id"].as_str().unwrap();
    license_once(&app, "beta", id, "state", "ACTIVE").await;
    let bought = upstream_on(&app, to);
    assert_eq!(bought.len(), 1, "beta's order alone: {bought:?}");
    assert_ne!(bought[0], upstream_id);
    assert_eq!(app.sandbox.license(upstream_id).unwrap().ip, from);
    assert_eq!(
        app.sandbox.carried_out("soft.edit"),
        0,
        "no change was sent"
    );
}

#[tokio::test]
async fn a_change_to_the_ip_another_change_is_moving_to_is_refused_while_that_one_is_in_flight() {
    let app = spawn_with_clients().await;
    let (first_ip, second_ip, to) = ("203.0.113.231", "203.0.113.232", "203.0.113.233");
    let (first, first_upstream) = active(&app, "alpha", "move-3", first_ip).await;
    let (second, second_upstream) = active(&app, "beta", "move-4", second_ip).await;
    app.sandbox
        .set_faults(vec!["soft.edit:delay-3000ms:1".parse().unwrap()]);
    let edits = app.sandbox.call_count("soft.edit");
    let change = rest(
        &app,
        Some("alpha"),
        Method::POST,
        &format!("/v1/licenses/{first}/change-ip"),
        Some(&json!({"ip": to})),
    )
    .await;
    assert_eq!(change.status(), 202);
    arrived(&app, "soft.edit", edits).await;

    let other = rest(
        &app,
        Some("beta"),
        Method::POST,
        &format!("/v1/licenses/{second}/change-ip"),
        Some(&json!({"ip": to})),
    )
    .await;
    let mut grpc = grpc_client_with(app.grpc_addr, Some("beta-token")).await;
    let status = grpc
        .change_license_ip(pb::ChangeLicenseIpRequest {
            id: second.clone(),
            ip: to.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    app.sandbox.set_faults(vec![]);

    assert_eq!(other.status(), 409);
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["code"], "IP_HAS_LICENSE");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("a change of a license to it is in flight"),
        "{problem}"
    );
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "IP_HAS_LICENSE");
    assert_eq!(status.message(), detail);
    license_once(&app, "alpha", &first, "ip", to).await;
    assert_eq!(upstream_on(&app, to), [first_upstream]);
    assert_eq!(app.sandbox.license(second_upstream).unwrap().ip, second_ip);
    let second_now: Value = rest(
        &app,
        Some("beta"),
        Method::GET,
        &format!("/v1/licenses/{second}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (&second_now["state"], &second_now["ip"]),
        (&json!("ACTIVE"), &json!(second_ip))
    );
}

/// The IPv6 spellings of 203.0.113.205: the ones that *are* that address (folded to
/// it, so the IP already has a license) and the translated and tunnel forms (refused
/// as no server's own address, naming the IPv4).
const SPELLINGS: [(&str, u16); 8] = [
    ("::ffff:203.0.113.205", 409),
    ("::203.0.113.205", 409),
    ("::cb00:71cd", 409),
    ("64:ff9b::203.0.113.205", 400),
    ("64:ff9b:1::cb00:71cd", 400),
    ("64:ff9b:1:cb00:71:cd00::", 400),
    ("2002:cb00:71cd::1", 400),
    ("::ffff:0:203.0.113.205", 400),
];

#[tokio::test]
async fn no_ipv6_spelling_of_a_licensed_ipv4_buys_a_second_license() {
    let app = spawn_with_clients().await;
    let licensed = "203.0.113.205";
    let first = rest(
        &app,
        Some("alpha"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("spell-0", licensed)),
    )
    .await;
    assert!(first.status().is_success(), "{}", first.status());
    let mover: Value = rest(
        &app,
        Some("beta"),
        Method::POST,
        "/v1/licenses?wait=30s",
        Some(&order_body("spell-mover", "203.0.113.206")),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(mover["state"], "ACTIVE");
    let mover = mover["id"].as_str().unwrap().to_owned();

    for (n, (spelled, status)) in SPELLINGS.into_iter().enumerate() {
        let ordered = rest(
            &app,
            Some("beta"),
            Method::POST,
            "/v1/licenses",
            Some(&order_body(&format!("spell-{}", n + 1), spelled)),
        )
        .await;
        assert_eq!(ordered.status(), status, "order for {spelled}");
        let problem: Value = ordered.json().await.unwrap();
        if status == 409 {
            assert_eq!(problem["code"], "IP_HAS_LICENSE", "{spelled}: {problem}");
        } else {
            assert_eq!(problem["errors"][0]["field"], "server.ip", "{problem}");
            let why = problem["errors"][0]["message"].as_str().unwrap();
            assert!(why.contains("give the server's own"), "{spelled}: {why}");
        }

        let moved = rest(
            &app,
            Some("beta"),
            Method::POST,
            &format!("/v1/licenses/{mover}/change-ip"),
            Some(&json!({ "ip": spelled })),
        )
        .await;
        assert_eq!(moved.status(), status, "move to {spelled}");
        let problem: Value = moved.json().await.unwrap();
        if status == 400 {
            assert_eq!(problem["errors"][0]["field"], "ip", "{problem}");
        }
    }

    // The same over gRPC, one folded and one refused spelling.
    let mut grpc = grpc_client_with(app.grpc_addr, Some("beta-token")).await;
    for (spelled, code) in [
        ("::203.0.113.205", Code::FailedPrecondition),
        ("64:ff9b::203.0.113.205", Code::InvalidArgument),
    ] {
        let status = grpc
            .order_license(pb::OrderLicenseRequest {
                server: Some(pb::Server {
                    id: "spell-grpc".into(),
                    ip: spelled.into(),
                    hostname: String::new(),
                }),
                panel: "ISPmanager 6 Pro".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{spelled}");
    }

    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        2,
        "the first license and the mover, nothing more"
    );
    assert_eq!(
        app.sandbox
            .licenses()
            .iter()
            .filter(|l| l.ip.contains("203.0.113.205") || l.ip.contains("cb00:71cd"))
            .count(),
        1,
        "one license for the address"
    );
}

#[tokio::test]
async fn loopback_in_any_embedded_form_is_refused() {
    let app = spawn_with_clients().await;
    for spelled in [
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b:1::7f00:1",
        "64:ff9b:1:7f00:0:100::",
        "2002:7f00:1::1",
        "::ffff:0:127.0.0.1",
    ] {
        let ordered = rest(
            &app,
            Some("alpha"),
            Method::POST,
            "/v1/licenses",
            Some(&order_body("loop-1", spelled)),
        )
        .await;
        assert_eq!(ordered.status(), 400, "{spelled}");
        let problem: Value = ordered.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "server.ip", "{problem}");
    }
    assert_eq!(app.sandbox.call_count("soft.order.param"), 0);
}
