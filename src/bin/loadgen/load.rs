//! The load loop (closed loop: each worker sends its next request when the last one
//! answered) and the clients: a raw hyper HTTP/1.1 connection per REST worker and a
//! tonic channel (one HTTP/2 connection) per gRPC worker.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use license_facade::api::pb::v1 as pb;
use pb::license_service_client::LicenseServiceClient;
use tonic::transport::Channel;

/// Sent on every call: the sandbox token of the bearer authentication (harmless
/// where authentication is off).
pub const BEARER: &str = "Bearer sandbox-token";

/// Bounds of one measurement point.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Not recorded: the first requests (connections, caches, allocator).
    pub warmup: Duration,
    /// Recorded time after the warm-up.
    pub duration: Duration,
    /// Recorded requests at most.
    pub max_requests: u64,
}

/// The result of one measurement point.
pub struct Stats {
    /// Successful requests recorded.
    pub ok: u64,
    /// Failed requests recorded.
    pub errors: u64,
    /// Recorded time.
    pub elapsed: Duration,
    /// Latency of the successful requests, in microseconds.
    pub hist: Histogram<u64>,
}

impl Stats {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// Runs `workers` (each a `call` closure owning its own connection) in a closed loop
/// within `bounds`; records only the requests that start after the warm-up.
pub async fn drive<C, Fut>(workers: Vec<C>, bounds: Bounds) -> Stats
where
    C: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now();
    let record_from = start + bounds.warmup;
    let stop_at = record_from + bounds.duration;
    let recorded = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut call in workers {
        let recorded = recorded.clone();
        let max = bounds.max_requests;
        tasks.spawn(async move {
            let mut hist = new_hist();
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let t0 = Instant::now();
                if t0 >= stop_at {
                    break;
                }
                let record = t0 >= record_from;
                if record && recorded.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
                let good = call().await;
                if record {
                    if good {
                        ok += 1;
                        hist.saturating_record(t0.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (hist, ok, errors, Instant::now())
        });
    }
    let mut hist = new_hist();
    let (mut ok, mut errors) = (0, 0);
    let mut end = record_from;
    while let Some(done) = tasks.join_next().await {
        let (h, o, e, t) = done.expect("worker panicked");
        hist.add(h).expect("same bounds");
        ok += o;
        errors += e;
        end = end.max(t);
    }
    Stats {
        ok,
        errors,
        elapsed: end.saturating_duration_since(record_from),
        hist,
    }
}

/// One HTTP/1.1 connection.
pub struct Http {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer: its status and body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", BEARER);
        let body = match json {
            Some(json) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::copy_from_slice(json.as_bytes()))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        let resp = self.sender.send_request(req.body(body)?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends one request with `headers` and an optional form body; returns the
    /// status, the headers and the body (the console is driven like a browser).
    pub async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        form: Option<&str>,
    ) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = match form {
            Some(form) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                Full::new(Bytes::copy_from_slice(form.as_bytes()))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        let resp = self.sender.send_request(req.body(body)?).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    }

    /// `GET path` answered 200.
    pub async fn get_ok(&mut self, path: &str) -> bool {
        matches!(self.send("GET", path, None).await, Ok((200, _)))
    }
}

/// A GET on a fresh connection (probes).
pub async fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    Some(resp.status().as_u16())
}

/// One gRPC channel (one HTTP/2 connection).
pub async fn grpc(addr: SocketAddr) -> anyhow::Result<LicenseServiceClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(LicenseServiceClient::new(channel))
}

/// A request with the bearer token and a deadline.
pub fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut()
        .insert("authorization", BEARER.parse().expect("ascii"));
    req.set_timeout(timeout);
    req
}

/// `GetLicense` by id answered OK.
pub async fn grpc_get(client: &mut LicenseServiceClient<Channel>, id: &str) -> bool {
    let msg = pb::GetLicenseRequest {
        selector: Some(pb::get_license_request::Selector::Id(id.to_owned())),
        ..Default::default()
    };
    client
        .get_license(request(msg, Duration::from_secs(10)))
        .await
        .is_ok()
}
