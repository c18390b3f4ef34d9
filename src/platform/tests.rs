//! The adapters against the simulator on a free port: paging, the completeness verdict
//! under each fault, log-in, re-login and tokens, both platforms' shapes.

use std::net::Ipv4Addr;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::sim::{PlatformSim, PlatformSimConfig, PlatformSimHandle, SimFaults};
use super::{Completeness, Credentials, Platform, PlatformConfig, PlatformKind};

struct Running {
    url: String,
    handle: PlatformSimHandle,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(config: PlatformSimConfig) -> Running {
    let sim = PlatformSim::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (url, handle) = (sim.url(), sim.handle());
    let stop = CancellationToken::new();
    tokio::spawn(sim.run(stop.clone().cancelled_owned()));
    Running {
        url,
        handle,
        _stop: stop.drop_guard(),
    }
}

fn password() -> Credentials {
    Credentials::Password {
        email: "admin@example.com".into(),
        password: SecretString::from("demo"),
    }
}

fn adapter(url: &str, kind: PlatformKind, credentials: Credentials, page_size: usize) -> Platform {
    let mut config = PlatformConfig::new(kind, url, credentials);
    config.page_size = page_size;
    config.busy_backoff = Duration::from_millis(1);
    Platform::new(config).unwrap()
}

fn seed(sim: &Running, n: usize) {
    sim.handle.seed_hosts(n, |i| format!("panel=pro host {i}"));
}

#[tokio::test]
async fn hosts_are_read_page_by_page_into_a_complete_listing() {
    let sim = start(PlatformSimConfig::default()).await;
    seed(&sim, 25);
    let listing = adapter(&sim.url, PlatformKind::VmManager6, password(), 10)
        .list_servers()
        .await;
    assert_eq!(listing.completeness, Completeness::Complete);
    assert_eq!(listing.servers.len(), 25);
    assert_eq!(sim.handle.calls("GET /vm/v3/host"), 3);
    let first = &listing.servers[0];
    assert_eq!(first.comment, "panel=pro host 0");
    assert_eq!(first.state, "active");
    assert_eq!(first.ipv4, [Ipv4Addr::new(203, 0, 113, 10)]);
    assert_eq!(first.os, "AlmaLinux 9");
    // One log-in, then the session's token.
    assert_eq!(sim.handle.calls("POST /auth/v4/public/token"), 1);
}

#[tokio::test]
async fn the_api_prefix_and_a_where_filter_are_honoured() {
    let sim = start(PlatformSimConfig::default()).await;
    seed(&sim, 5);
    let mut config = PlatformConfig::new(
        PlatformKind::VmManager6,
        &format!("{}/api", sim.url),
        password(),
    );
    config.filter = Some("((id GT 1) AND (id LT 4))".into());
    let listing = Platform::new(config).unwrap().list_servers().await;
    assert!(listing.is_complete());
    let ids: Vec<u64> = listing.servers.iter().map(|s| s.id).collect();
    assert_eq!(ids, [2, 3]);
}

#[tokio::test]
async fn a_list_cut_short_is_incomplete_after_every_retry() {
    let sim = start(PlatformSimConfig {
        faults: SimFaults {
            cut_list: 2,
            ..SimFaults::default()
        },
        ..PlatformSimConfig::default()
    })
    .await;
    seed(&sim, 12);
    let listing = adapter(&sim.url, PlatformKind::VmManager6, password(), 5)
        .list_servers()
        .await;
    let Completeness::Incomplete(why) = &listing.completeness else {
        panic!("a cut list must not be complete");
    };
    assert!(why.contains("10 distinct element(s) of 12"), "{why}");
    assert_eq!(listing.servers.len(), 10);
}

#[tokio::test]
async fn a_page_error_or_a_503_after_the_first_page_makes_the_run_start_over() {
    let sim = start(PlatformSimConfig::default()).await;
    seed(&sim, 9);
    // One 503 on the second page: the first run is interrupted, the second complete.
    sim.handle.set_faults(SimFaults {
        busy_page_at: Some((5, 1)),
        ..SimFaults::default()
    });
    let platform = adapter(&sim.url, PlatformKind::VmManager6, password(), 5);
    let listing = platform.list_servers().await;
    assert!(listing.is_complete(), "{:?}", listing.completeness);
    assert_eq!(sim.handle.calls("GET /vm/v3/host"), 5);
    // A page that keeps failing: incomplete, with what was read.
    sim.handle.set_faults(SimFaults {
        fail_page_at: Some(5),
        ..SimFaults::default()
    });
    let listing = platform.list_servers().await;
    assert!(!listing.is_complete());
    assert_eq!(listing.servers.len(), 5);
}

#[tokio::test]
async fn a_busy_platform_is_waited_for_and_a_persistently_busy_one_fails_the_listing() {
    let sim = start(PlatformSimConfig::default()).await;
    seed(&sim, 3);
    let platform = adapter(&sim.url, PlatformKind::VmManager6, password(), 10);
    sim.handle.set_faults(SimFaults {
        busy_next: 3,
        ..SimFaults::default()
    });
    assert!(platform.list_servers().await.is_complete());
    sim.handle.set_faults(SimFaults {
        busy_rate: 1.0,
        ..SimFaults::default()
    });
    let listing = platform.list_servers().await;
    let Completeness::Incomplete(why) = listing.completeness else {
        panic!("a busy platform's listing must not be complete");
    };
    assert!(why.contains("503"), "{why}");
    assert!(listing.servers.is_empty());
}

#[tokio::test]
async fn an_expired_session_is_renewed_and_the_listing_started_over() {
    let sim = start(PlatformSimConfig {
        session_max_calls: Some(4),
        expired_status: 403,
        ..PlatformSimConfig::default()
    })
    .await;
    seed(&sim, 9);
    let platform = adapter(&sim.url, PlatformKind::VmManager6, password(), 4);
    assert!(platform.list_servers().await.is_complete());
    // The session expires on the second page of this listing.
    let listing = platform.list_servers().await;
    assert!(listing.is_complete(), "{:?}", listing.completeness);
    assert_eq!(sim.handle.calls("POST /auth/v4/public/token"), 2);
    assert_eq!(sim.handle.calls("expired"), 1);
    // A session that expires on every second call never yields a complete listing.
    let sim = start(PlatformSimConfig {
        session_max_calls: Some(1),
        ..PlatformSimConfig::default()
    })
    .await;
    seed(&sim, 9);
    let platform = adapter(&sim.url, PlatformKind::VmManager6, password(), 4);
    assert!(!platform.list_servers().await.is_complete());
}

#[tokio::test]
async fn an_api_token_is_sent_as_is_and_a_refused_one_is_not_retried() {
    let sim = start(PlatformSimConfig {
        api_tokens: vec!["long-lived".into()],
        ..PlatformSimConfig::default()
    })
    .await;
    seed(&sim, 2);
    let token = |t: &str| Credentials::ApiToken(SecretString::from(t.to_owned()));
    let good = adapter(&sim.url, PlatformKind::VmManager6, token("long-lived"), 10);
    assert!(good.list_servers().await.is_complete());
    assert_eq!(sim.handle.calls("POST /auth/v4/public/token"), 0);
    let bad = adapter(&sim.url, PlatformKind::VmManager6, token("revoked"), 10);
    let listing = bad.list_servers().await;
    assert!(matches!(&listing.completeness, Completeness::Incomplete(w) if w.contains("refused")));
    assert_eq!(listing.requests, 1);
}

#[tokio::test]
async fn wrong_credentials_fail_the_listing() {
    let sim = start(PlatformSimConfig::default()).await;
    let credentials = Credentials::Password {
        email: "admin@example.com".into(),
        password: SecretString::from("wrong"),
    };
    let listing = adapter(&sim.url, PlatformKind::VmManager6, credentials, 10)
        .list_servers()
        .await;
    assert!(!listing.is_complete());
}

#[tokio::test]
async fn an_answer_without_a_total_cannot_be_judged_complete() {
    let sim = start(PlatformSimConfig::default()).await;
    seed(&sim, 2);
    let mut config = PlatformConfig::new(PlatformKind::VmManager6, &sim.url, password());
    config.paging.total_field = "total".into();
    let listing = Platform::new(config).unwrap().list_servers().await;
    assert!(matches!(&listing.completeness, Completeness::Incomplete(w) if w.contains("total")));
}

#[tokio::test]
async fn dcimanager_servers_are_read_with_the_configured_address_field() {
    let sim = start(PlatformSimConfig {
        dci_ip_field: "ipv4".into(),
        ..PlatformSimConfig::default()
    })
    .await;
    let ip = Ipv4Addr::new(198, 51, 100, 4);
    sim.handle
        .add_dci_server("rack1-u4", &[ip], "panel=ispmanager-6-host");
    let mut config = PlatformConfig::new(
        PlatformKind::DciManager6,
        &format!("{}/api", sim.url),
        password(),
    );
    config.dci_ip_field = "ipv4".into();
    let listing = Platform::new(config).unwrap().list_servers().await;
    assert!(listing.is_complete());
    assert_eq!(listing.servers[0].ipv4, [ip]);
    assert_eq!(listing.servers[0].comment, "panel=ispmanager-6-host");
}

#[tokio::test]
async fn the_simulated_vmmanager_creates_edits_readdresses_and_deletes_hosts() {
    let sim = start(PlatformSimConfig {
        task_duration: Duration::from_secs(3600),
        ..PlatformSimConfig::default()
    })
    .await;
    // reqwest is built without a default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{}/auth/v4/public/token", sim.url))
        .body(json!({"email": "admin@example.com", "password": "demo"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    let token = serde_json::from_slice::<serde_json::Value>(&login.bytes().await.unwrap()).unwrap()
        ["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(method, format!("{}{path}", sim.url))
            .header("cookie", format!("ses6={token}"))
            .body(body.to_string())
            .send()
    };
    let created = call(
        reqwest::Method::POST,
        "/vm/v3/host",
        json!({"name": "web1", "comment": "panel=pro", "os": 1}),
    )
    .await
    .unwrap();
    let created: serde_json::Value =
        serde_json::from_slice(&created.bytes().await.unwrap()).unwrap();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(sim.handle.hosts()[0].state.as_str(), "creating");
    let task = created["task"].as_u64().unwrap();
    let tasks = call(
        reqwest::Method::GET,
        &format!("/vm/v3/task?where=consul_id+EQ+{task}"),
        json!(null),
    )
    .await
    .unwrap();
    let tasks: serde_json::Value = serde_json::from_slice(&tasks.bytes().await.unwrap()).unwrap();
    assert_eq!(tasks["list"][0]["status"], "running");
    sim.handle.finish_tasks();
    assert_eq!(sim.handle.hosts()[0].state.as_str(), "active");
    call(
        reqwest::Method::POST,
        &format!("/vm/v3/host/{id}"),
        json!({"comment": "panel=lite"}),
    )
    .await
    .unwrap();
    let added = call(
        reqwest::Method::POST,
        &format!("/vm/v3/host/{id}/ipv4"),
        json!({"ip": "198.51.100.9"}),
    )
    .await
    .unwrap();
    assert_eq!(added.status(), 200);
    let old = sim.handle.hosts()[0].ips[0].id;
    call(
        reqwest::Method::DELETE,
        &format!("/vm/v3/ip/{old}"),
        json!(null),
    )
    .await
    .unwrap();
    let host = &sim.handle.hosts()[0];
    assert_eq!(host.comment, "panel=lite");
    assert_eq!(
        host.ips
            .iter()
            .map(|a| a.ip.to_string())
            .collect::<Vec<_>>(),
        ["198.51.100.9"]
    );
    call(
        reqwest::Method::POST,
        &format!("/vm/v3/host/{id}/stop"),
        json!(null),
    )
    .await
    .unwrap();
    sim.handle.finish_tasks();
    assert_eq!(sim.handle.hosts()[0].state.as_str(), "stopped");
    call(
        reqwest::Method::DELETE,
        &format!("/vm/v3/host/{id}"),
        json!(null),
    )
    .await
    .unwrap();
    assert_eq!(sim.handle.hosts()[0].state.as_str(), "deleting");
    sim.handle.finish_tasks();
    assert!(sim.handle.hosts().is_empty());
    // Without a session nothing is answered.
    let anonymous = http
        .get(format!("{}/vm/v3/host", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
