//! One live license per IP, whoever orders it: a panel license is bound to its IP, so
//! a second live license on one IP is money paid for nothing.

use license_facade::api::pb::v1 as pb;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::auth::{order_body, problem_code, rest, spawn_with_clients};
use crate::helpers::{grpc_client_with, reason};

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
