//! TLS on both listeners: client certificates verified against a CA identify clients
//! over gRPC and REST, bad or missing certificates are refused where they are
//! required, bearer tokens still work where they are optional, and a replaced server
//! certificate is served after SIGHUP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use license_facade::auth::{Clients, SANDBOX_TOKEN, token_sha256_hex};
use license_facade::tls::{ClientAuth, TlsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::{Bearer, TestApp, spawn_app_with};
use crate::support::{Ca, Pem};

/// The PKI of one test: the server's CA and certificate, the client CA and the files
/// the service reads.
struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            server_ca: Ca::new("license-facade test server CA"),
            client_ca: Ca::new("license-facade test client CA"),
            dir: tempfile::tempdir().unwrap(),
        };
        pki.write_server(&pki.server_ca.leaf("first", &["127.0.0.1"], false));
        std::fs::write(pki.path("client-ca.pem"), pki.client_ca.pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the server's certificate and key files, each in one rename.
    fn write_server(&self, pem: &Pem) {
        for (name, text) in [("server.pem", &pem.cert), ("server.key", &pem.key)] {
            let tmp = self.path(&format!("{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.path(name)).unwrap();
        }
    }

    fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert_file: self.path("server.pem"),
            key_file: self.path("server.key"),
            client_ca_file: Some(self.path("client-ca.pem")),
            client_auth,
        }
    }

    /// A client certificate of the client CA naming the `watcher` client.
    fn watcher(&self) -> Pem {
        self.client_ca
            .leaf("watcher.test", &["watcher.test"], false)
    }
}

/// `watcher` is known by its certificate only; `ops` by its token.
fn clients() -> Clients {
    Clients::from_toml(&format!(
        "[[client]]\nname = \"watcher\"\ncert_subject = \"watcher.test\"\n\
         scopes = [\"licenses.read\", \"licenses.write\"]\n\
         [[client]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
        token_sha256_hex(SANDBOX_TOKEN)
    ))
    .unwrap()
}

async fn spawn_tls(pki: &Pki, client_auth: ClientAuth) -> TestApp {
    let settings = pki.settings(client_auth);
    spawn_app_with(0, move |s| {
        s.tls = Some(settings);
        s.clients = Some(clients());
    })
    .await
}

fn https(app: &TestApp) -> String {
    app.http.replacen("http://", "https://", 1)
}

fn rustls_client(server_ca: &str, client: Option<&Pem>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match client {
        Some(pem) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(pem.cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// A REST client trusting the server CA, presenting `client`, sending `token`.
fn rest_client(pki: &Pki, client: Option<&Pem>, token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls_client(&pki.server_ca.pem(), client))
        .default_headers(headers)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

type TlsGrpc =
    LicenseServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// A gRPC client over TLS (connected lazily: a refused handshake fails the first call).
fn grpc_client(addr: SocketAddr, pki: &Pki, client: Option<&Pem>, token: Option<&str>) -> TlsGrpc {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.server_ca.pem()));
    if let Some(pem) = client {
        tls = tls.identity(Identity::from_pem(&pem.cert, &pem.key));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let token = token.map(|t| format!("Bearer {t}").parse().unwrap());
    LicenseServiceClient::with_interceptor(channel, Bearer(token))
}

async fn list_licenses(client: &mut TlsGrpc) -> Result<pb::ListLicensesResponse, tonic::Status> {
    client
        .list_licenses(pb::ListLicensesRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

fn order(server: &str, ip: &str) -> Value {
    json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Pro"})
}

#[tokio::test]
async fn a_client_certificate_identifies_its_client_over_rest_and_grpc() {
    // Arrange
    let pki = Pki::new();
    let app = spawn_tls(&pki, ClientAuth::Required).await;
    let watcher = pki.watcher();
    let rest = rest_client(&pki, Some(&watcher), None);

    // Act: an order over REST and reads over gRPC, with no token at all.
    let ordered = rest
        .post(format!("{}/v1/licenses?wait=20s", https(&app)))
        .json(&order("srv-tls", "203.0.113.90"))
        .send()
        .await
        .unwrap();
    let ordered_status = ordered.status();
    let ordered: Value = ordered.json().await.unwrap();
    let id = ordered["id"].as_str().expect("an id").to_owned();
    let mut grpc = grpc_client(app.grpc_addr, &pki, Some(&watcher), None);
    let got = grpc
        .get_license(pb::GetLicenseRequest {
            selector: Some(pb::get_license_request::Selector::Id(id.clone())),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner);
    let listed = list_licenses(&mut grpc).await;
    let read_over_rest = rest
        .get(format!("{}/v1/licenses/{id}", https(&app)))
        .send()
        .await
        .unwrap();

    // Assert
    assert!(ordered_status.is_success(), "{ordered_status}: {ordered}");
    let got = got.expect("the watcher reads its own license over gRPC");
    assert_eq!(got.license.unwrap().id, id);
    let listed = listed.expect("the watcher lists over gRPC");
    assert_eq!(
        listed.licenses.iter().map(|l| &l.id).collect::<Vec<_>>(),
        vec![&id],
        "the license is the watcher's own"
    );
    assert_eq!(read_over_rest.status(), 200);
}

#[tokio::test]
async fn where_client_certificates_are_required_a_wrong_ca_an_expired_certificate_and_none_are_refused()
 {
    // Arrange
    let pki = Pki::new();
    let app = spawn_tls(&pki, ClientAuth::Required).await;
    let stranger_ca = Ca::new("another CA");
    // Each with the TLS alert the client is sent.
    let cases = [
        (
            "UnknownCA",
            Some(stranger_ca.leaf("watcher.test", &[], false)),
        ),
        (
            "CertificateExpired",
            Some(pki.client_ca.leaf("watcher.test", &[], true)),
        ),
        ("CertificateRequired", None),
    ];

    for (alert, cert) in &cases {
        // Act: the token would be good; the connection is not.
        let rest = rest_client(&pki, cert.as_ref(), Some(SANDBOX_TOKEN))
            .get(format!("{}/v1/licenses", https(&app)))
            .send()
            .await;
        let grpc = list_licenses(&mut grpc_client(
            app.grpc_addr,
            &pki,
            cert.as_ref(),
            Some(SANDBOX_TOKEN),
        ))
        .await;

        // Assert
        let rest = format!("{:?}", rest.expect_err(alert));
        assert!(rest.contains(alert), "REST: {rest}");
        let grpc = format!("{:?}", grpc.expect_err(alert));
        assert!(grpc.contains(alert), "gRPC: {grpc}");
    }
    let good = rest_client(&pki, Some(&pki.watcher()), None)
        .get(format!("{}/v1/licenses", https(&app)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        good.status(),
        200,
        "the same listener takes a good certificate"
    );
}

#[tokio::test]
async fn a_verified_certificate_that_names_no_client_is_unauthenticated() {
    // Arrange
    let pki = Pki::new();
    let app = spawn_tls(&pki, ClientAuth::Required).await;
    let nobody = pki.client_ca.leaf("nobody.test", &["nobody.test"], false);

    // Act
    let rest = rest_client(&pki, Some(&nobody), None)
        .get(format!("{}/v1/licenses", https(&app)))
        .send()
        .await
        .unwrap();
    let grpc = list_licenses(&mut grpc_client(app.grpc_addr, &pki, Some(&nobody), None)).await;

    // Assert
    assert_eq!(rest.status(), 401);
    assert_eq!(grpc.unwrap_err().code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn a_bearer_token_still_works_over_tls_when_client_certificates_are_optional() {
    // Arrange
    let pki = Pki::new();
    let app = spawn_tls(&pki, ClientAuth::Optional).await;

    // Act
    let rest = rest_client(&pki, None, Some(SANDBOX_TOKEN))
        .get(format!("{}/v1/licenses", https(&app)))
        .send()
        .await
        .unwrap();
    let grpc = list_licenses(&mut grpc_client(
        app.grpc_addr,
        &pki,
        None,
        Some(SANDBOX_TOKEN),
    ))
    .await;
    let no_token = rest_client(&pki, None, None)
        .get(format!("{}/v1/licenses", https(&app)))
        .send()
        .await
        .unwrap();
    let with_cert = rest_client(&pki, Some(&pki.watcher()), None)
        .get(format!("{}/v1/licenses", https(&app)))
        .send()
        .await
        .unwrap();
    let mut console = crate::console::Browser {
        base: https(&app),
        http: reqwest::Client::builder()
            .use_preconfigured_tls(rustls_client(&pki.server_ca.pem(), None))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        cookies: Default::default(),
    };
    let logged_in = console.log_in(SANDBOX_TOKEN).await;
    let plain = reqwest::Client::new()
        .get(format!("{}/v1/licenses", app.http))
        .timeout(Duration::from_secs(10))
        .send()
        .await;

    // Assert
    assert_eq!(rest.status(), 200);
    assert!(grpc.is_ok(), "{grpc:?}");
    assert_eq!(no_token.status(), 401);
    assert_eq!(with_cert.status(), 200, "a certificate still identifies");
    assert!(plain.is_err(), "plain HTTP on a TLS listener: {plain:?}");
    let session = logged_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lf_console="))
        .expect("the console logs in over TLS");
    assert!(session.contains("; Secure"), "{session}");
}

/// The certificate the listener at `addr` presents to a new connection.
async fn served_certificate(addr: SocketAddr, pki: &Pki) -> CertificateDer<'static> {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(rustls_client(&pki.server_ca.pem(), None)));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("the handshake completes");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

fn der_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_after_sighup() {
    // Arrange
    let pki = Pki::new();
    let mut app = spawn_tls(&pki, ClientAuth::Optional).await;
    let grpc_addr = app.grpc_addr;
    let http_addr: SocketAddr = app.http.trim_start_matches("http://").parse().unwrap();
    let first = std::fs::read_to_string(pki.path("server.pem")).unwrap();
    let before = served_certificate(http_addr, &pki).await;
    let mut reloads = app.tls_reloads.take().expect("TLS is on");
    let second = pki.server_ca.leaf("second", &["127.0.0.1"], false);

    // Act
    pki.write_server(&second);
    reloads.borrow_and_update();
    // SAFETY: kill(2) with this process's own id and a signal it handles.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(sent, 0);
    tokio::time::timeout(Duration::from_secs(20), reloads.changed())
        .await
        .expect("reloaded in time")
        .unwrap();
    let rest_after = served_certificate(http_addr, &pki).await;
    let grpc_after = served_certificate(grpc_addr, &pki).await;

    // Assert
    assert_eq!(before, der_of(&first));
    assert_eq!(rest_after, der_of(&second.cert));
    assert_eq!(grpc_after, der_of(&second.cert));
}

/// The files a TLS settings block names exist; the start fails otherwise.
#[tokio::test]
async fn a_missing_certificate_file_stops_the_start() {
    let pki = Pki::new();
    let mut settings = pki.settings(ClientAuth::Off);
    settings.cert_file = Path::new("/nonexistent/server.pem").to_path_buf();
    crate::support::init();
    let mut serve =
        license_facade::config::Settings::from_args(license_facade::config::ServeArgs {
            sandbox: true,
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    serve.tls = Some(settings);

    let built = license_facade::startup::Application::build(serve).await;

    let error = format!("{:#}", built.err().expect("refused"));
    assert!(error.contains("/nonexistent/server.pem"), "{error}");
}
