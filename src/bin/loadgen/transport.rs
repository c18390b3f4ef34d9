//! Scenario 7: the read path (GetLicense, REST and gRPC) at 64 concurrent calls, side
//! by side in one run: plain TCP with traces off, TLS with traces off, and plain TCP with
//! every span exported over OTLP to a sink in this process. One service child per
//! variant (built-in sandbox, in-memory database), one after the other.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;

use crate::load::{self, BEARER, Bounds, Stats, drive};
use crate::procs::{Proc, free_addr};
use crate::scenarios::{Ctx, row};

/// Concurrent calls of every point.
const CONCURRENCY: usize = 64;

/// The test certificate of the TLS variant: files for the service, a connector and the
/// CA for the clients.
struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    ca_pem: String,
    connector: TlsConnector,
}

impl Tls {
    fn new(ctx: &Ctx) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
        let cert = params.self_signed(&key)?;
        let cert_file = ctx.dir.join("tls.pem");
        let key_file = ctx.dir.join("tls.key");
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone())?;
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file,
            key_file,
            ca_pem: cert.pem(),
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// Counts the spans it is sent.
struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn start_sink() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let count = Arc::new(AtomicU64::new(0));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Sink(count.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok((url, count))
}

/// One HTTP/1.1 connection, over TLS when `tls` is given.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: String,
}

impl Conn {
    async fn connect(addr: SocketAddr, tls: Option<&Tls>) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let sender = match tls {
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                sender
            }
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
                let stream = tls.connector.connect(name, tcp).await?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let request = hyper::Request::get(path)
            .header("host", &self.host)
            .header("authorization", BEARER)
            .body(Empty::new())?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }
}

/// A gRPC channel, over TLS when `tls` is given.
async fn grpc(
    addr: SocketAddr,
    tls: Option<&Tls>,
) -> anyhow::Result<LicenseServiceClient<Channel>> {
    let Some(tls) = tls else {
        return load::grpc(addr).await;
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
        .tcp_nodelay(true)
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem)),
        )?
        .connect()
        .await?;
    Ok(LicenseServiceClient::new(channel))
}

/// A service child with `extra` flags; returns once `/readyz` answers 200.
async fn start(
    ctx: &Ctx,
    extra: &[String],
    tls: Option<&Tls>,
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr)> {
    let (http, grpc) = (free_addr(), free_addr());
    let mut args: Vec<String> = [
        "serve",
        "--sandbox",
        "--sandbox-key-delay-ms",
        "0",
        "--http-addr",
        &http.to_string(),
        "--grpc-addr",
        &grpc.to_string(),
        "--drain-delay-ms",
        "0",
        "--clients-file",
        &crate::scenarios::clients_file(ctx)?.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().cloned());
    let mut p = Proc::spawn(
        &ctx.bin,
        &args,
        &ctx.dir.join("children.log"),
        "license-facade serve",
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = Conn::connect(http, tls).await
            && let Ok((200, _)) = c.get("/readyz").await
        {
            return Ok((p, http, grpc));
        }
        if let Some(status) = p.child.try_wait()? {
            bail!("license-facade serve exited early: {status}");
        }
        if Instant::now() > deadline {
            bail!("license-facade serve not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Orders one license (REST, waiting until it is active); returns its id.
async fn order_one(http: SocketAddr, tls: Option<&Tls>) -> anyhow::Result<String> {
    let (status, body) = orderer(http, tls).await?.post_order().await?;
    if !(200..300).contains(&status) {
        bail!(
            "order answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["id"].as_str().context("no license id")?.to_owned())
}

/// A REST connection that places one order.
struct Orderer {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    host: String,
}

impl Orderer {
    async fn post_order(&mut self) -> anyhow::Result<(u16, Bytes)> {
        let body =
            r#"{"server":{"id":"lg-transport","ip":"10.200.0.1"},"panel":"ISPmanager 6 Pro"}"#;
        let request = hyper::Request::post("/v1/licenses?wait=30s")
            .header("host", &self.host)
            .header("authorization", BEARER)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from_static(
                body.as_bytes(),
            )))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }
}

async fn orderer(addr: SocketAddr, tls: Option<&Tls>) -> anyhow::Result<Orderer> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let sender = match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            sender
        }
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
            let stream = tls.connector.connect(name, tcp).await?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            sender
        }
    };
    Ok(Orderer {
        sender,
        host: addr.to_string(),
    })
}

async fn rest_point(
    addr: SocketAddr,
    path: &str,
    tls: Option<&Tls>,
    b: Bounds,
) -> anyhow::Result<Stats> {
    let mut workers = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let conn = Arc::new(tokio::sync::Mutex::new(Conn::connect(addr, tls).await?));
        let path = path.to_owned();
        workers.push(move || {
            let conn = conn.clone();
            let path = path.clone();
            async move { matches!(conn.lock().await.get(&path).await, Ok((200, _))) }
        });
    }
    Ok(drive(workers, b).await)
}

async fn grpc_point(
    addr: SocketAddr,
    id: &str,
    tls: Option<&Tls>,
    b: Bounds,
) -> anyhow::Result<Stats> {
    let mut workers = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let client = grpc(addr, tls).await?;
        let id = id.to_owned();
        workers.push(move || {
            let mut client = client.clone();
            let id = id.clone();
            async move { load::grpc_get(&mut client, &id).await }
        });
    }
    Ok(drive(workers, b).await)
}

pub async fn transport(ctx: &Ctx) -> anyhow::Result<String> {
    let tls = Tls::new(ctx)?;
    let (sink, spans) = start_sink().await?;
    let tls_flags = vec![
        "--tls-cert-file".to_owned(),
        tls.cert_file.display().to_string(),
        "--tls-key-file".to_owned(),
        tls.key_file.display().to_string(),
    ];
    let traced_flags = vec!["--otlp-endpoint".to_owned(), sink];
    let variants: [(&str, Vec<String>, Option<&Tls>); 3] = [
        ("plain TCP, traces off", vec![], None),
        ("TLS, traces off", tls_flags, Some(&tls)),
        ("plain TCP, traces exported", traced_flags, None),
    ];
    let mut out = vec![
        "| variant | target | concurrency | req/s | p50 ms | p99 ms | errors |".to_owned(),
        "|---|---|---:|---:|---:|---:|---:|".to_owned(),
    ];
    let mut baseline = None;
    let mut ratios = vec![];
    for (name, flags, tls) in variants {
        let (facade, http, grpc_addr) = start(ctx, &flags, tls).await?;
        let id = order_one(http, tls).await?;
        let path = format!("/v1/licenses/{id}");
        let rest = rest_point(http, &path, tls, ctx.bounds).await?;
        let grpc = grpc_point(grpc_addr, &id, tls, ctx.bounds).await?;
        drop(facade);
        for (target, stats) in [("REST GetLicense", &rest), ("gRPC GetLicense", &grpc)] {
            out.push(format!("| {name} {}", row(target, CONCURRENCY, stats)));
            eprintln!("{}", out[out.len() - 1]);
        }
        match baseline {
            None => baseline = Some((rest.rps(), grpc.rps())),
            Some((r, g)) => ratios.push(format!(
                "{name}: REST {:.0} %, gRPC {:.0} % of plain TCP",
                100.0 * rest.rps() / r,
                100.0 * grpc.rps() / g
            )),
        }
    }
    out.push(String::new());
    out.push(format!(
        "Ratios: {}. Spans received by the sink: {}.",
        ratios.join("; "),
        spans.load(Ordering::Relaxed)
    ));
    Ok(out.join("\n"))
}
