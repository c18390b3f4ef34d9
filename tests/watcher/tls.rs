//! The watcher over TLS: the service requires client certificates and knows the
//! watcher by its certificate alone (no token); a pass orders a marked server's
//! license, and a watcher without the certificate is refused.

use license_facade::platform::sim::{PlatformSim, PlatformSimConfig};
use license_facade::tls::{ClientAuth, TlsSettings};
use license_facade::watcher::{PassMode, Watcher, WatcherConfig};
use tokio_util::sync::CancellationToken;

use crate::harness::{PRO, Spec, Vm, service_with};
use crate::support::{Ca, TOKEN, client_toml, sandbox_config, start_sandbox};

#[tokio::test]
async fn a_watcher_known_by_its_client_certificate_orders_over_tls() {
    // Arrange: the service on TLS with required client certificates.
    let sandbox = start_sandbox(sandbox_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let server_ca = Ca::new("service CA");
    let client_ca = Ca::new("client CA");
    let server = server_ca.leaf("license-facade", &["127.0.0.1"], false);
    let watcher_cert = client_ca.leaf("watcher.test", &[], false);
    for (name, text) in [
        ("server.pem", &server.cert),
        ("server.key", &server.key),
        ("client-ca.pem", &client_ca.pem()),
        ("service-ca.pem", &server_ca.pem()),
        ("watcher.pem", &watcher_cert.cert),
        ("watcher.key", &watcher_cert.key),
    ] {
        std::fs::write(path(name), text).unwrap();
    }
    let clients = client_toml("ops", TOKEN, r#"["admin"]"#, "")
        + "[[client]]\nname = \"watcher\"\ncert_subject = \"watcher.test\"\n\
           scopes = [\"licenses.read\", \"licenses.write\"]\nmax_requests_per_second = 0\n";
    let tls = TlsSettings {
        cert_file: path("server.pem"),
        key_file: path("server.key"),
        client_ca_file: Some(path("client-ca.pem")),
        client_auth: ClientAuth::Required,
    };
    let database = format!("sqlite:{}", path("db.sqlite").display());
    let app = service_with(&database, &sandbox.url, |s| {
        s.tls = Some(tls);
        s.clients = Some(license_facade::auth::Clients::from_toml(&clients).unwrap());
    })
    .await;
    let grpc = app.grpc_addr();
    let _running = app.spawn();
    let sim = PlatformSim::bind("127.0.0.1:0".parse().unwrap(), PlatformSimConfig::default())
        .await
        .unwrap();
    let platform_url = sim.url();
    let stop = CancellationToken::new();
    let _platform_stop = stop.clone().drop_guard();
    tokio::spawn(sim.run(stop.cancelled_owned()));
    Vm::login(&platform_url)
        .await
        .create_host("web-tls", PRO)
        .await;
    // The harness's plain-HTTP, token configuration, turned into TLS with a client
    // certificate and no token.
    let plain = Spec::default().toml(&grpc, &platform_url);
    let token_line = plain
        .lines()
        .find(|l| l.starts_with("token = "))
        .unwrap()
        .to_owned();
    let over_tls = plain
        .replace(
            &format!("grpc_url = \"http://{grpc}\""),
            &format!("grpc_url = \"https://{grpc}\""),
        )
        .replace(
            &token_line,
            "ca_file = \"service-ca.pem\"\ncert_file = \"watcher.pem\"\nkey_file = \"watcher.key\"",
        );
    let without_cert = over_tls.replace(
        "cert_file = \"watcher.pem\"\nkey_file = \"watcher.key\"",
        &token_line,
    );
    let watcher = |name: &str, text: &str| {
        std::fs::write(path(name), text).unwrap();
        Watcher::new(WatcherConfig::load(&path(name)).expect("a valid configuration"))
            .expect("the watcher builds")
    };
    let with_cert = watcher("w-cert.toml", &over_tls);
    let token_only = watcher("w-token.toml", &without_cert);

    // Act
    let refused = token_only.pass(PassMode::default()).await;
    let report = with_cert
        .pass(PassMode::default())
        .await
        .expect("the pass runs");

    // Assert
    assert!(
        refused.is_err()
            || refused
                .as_ref()
                .is_ok_and(|r| r.errors > 0 && r.ordered == 0),
        "no certificate, no call: {refused:?}"
    );
    assert_eq!(
        (report.ordered, report.errors),
        (1, 0),
        "{:#?}",
        report.steps
    );
}
