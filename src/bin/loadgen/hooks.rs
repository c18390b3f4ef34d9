//! Scenario 8, webhook deliveries: a receiver in this process on loopback and one
//! subscription of every event. Throughput: the receiver answers 503 while orders
//! build a backlog, then 204, and the subscription is resumed; deliveries per second
//! until the backlog is drained. Delay: orders paced to about 100 events per second;
//! the time from each event's commit (its `time`) to its arrival at the receiver.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::load::new_hist;
use crate::scenarios::{Ctx, next_server, start_facade_with};

/// Events per second of the delay measurement.
const EVENT_RATE: f64 = 100.0;
/// Orders that build the backlog of the throughput measurement.
const BACKLOG_ORDERS: usize = 500;

#[derive(Clone)]
struct Receiver {
    down: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    delays: Arc<Mutex<Histogram<u64>>>,
}

async fn receive(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    if r.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let now = OffsetDateTime::now_utc();
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(time) = event["time"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    {
        let micros = (now - time).whole_microseconds().max(1);
        let mut delays = r.delays.lock().expect("never poisoned");
        let _ = delays.record(u64::try_from(micros).unwrap_or(u64::MAX));
    }
    r.delivered.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> anyhow::Result<(Receiver, SocketAddr)> {
    let receiver = Receiver {
        down: Arc::new(AtomicBool::new(false)),
        delivered: Arc::new(AtomicU64::new(0)),
        delays: Arc::new(Mutex::new(new_hist())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((receiver, addr))
}

fn client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", license_facade::auth::SANDBOX_TOKEN).parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()?)
}

async fn order(http: &reqwest::Client, base: &str) -> bool {
    let (server, ip) = next_server();
    let body = json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Pro"});
    http.post(format!("{base}/v1/licenses"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn backlog(http: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<u64> {
    let hook: Value = serde_json::from_slice(
        &http
            .get(format!("{base}/v1/webhooks/{id}"))
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    Ok(hook["backlog"].as_str().unwrap_or("0").parse()?)
}

pub async fn webhooks(ctx: &Ctx) -> anyhow::Result<String> {
    let (receiver, addr) = start_receiver().await?;
    let file = ctx
        .sqlite_dir
        .join(format!("loadgen-hooks-{}.db", std::process::id()));
    let db = format!("sqlite:{}", file.display());
    let (facade, http_addr, _, _) = start_facade_with(
        ctx,
        &db,
        None,
        "[webhooks]\nallow_private_targets = true\npoll_ms = 50\n",
    )
    .await?;
    let base = format!("http://{http_addr}");
    let http = client()?;
    let created: Value = serde_json::from_slice(
        &http
            .post(format!("{base}/v1/webhooks"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({"url": format!("http://{addr}/hook")}).to_string())
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let id = created["webhook"]["id"]
        .as_str()
        .with_context(|| format!("no subscription: {created}"))?
        .to_owned();

    // Throughput: a backlog built while the receiver is down, then drained.
    receiver.down.store(true, Ordering::SeqCst);
    let mut orders = tokio::task::JoinSet::new();
    for _ in 0..BACKLOG_ORDERS / 50 {
        for _ in 0..50 {
            let (http, base) = (http.clone(), base.clone());
            orders.spawn(async move { order(&http, &base).await });
        }
        while orders.join_next().await.is_some() {}
    }
    // The backlog is complete when the workers are done with the orders.
    let mut last = u64::MAX;
    let settle = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = backlog(&http, &base, &id).await?;
        if now == last {
            break;
        }
        if Instant::now() > settle {
            bail!("the backlog did not settle");
        }
        last = now;
    }
    let events = last;
    let per_order = events as f64 / BACKLOG_ORDERS as f64;
    receiver.down.store(false, Ordering::SeqCst);
    receiver.delivered.store(0, Ordering::SeqCst);
    let start = Instant::now();
    http.post(format!("{base}/v1/webhooks/{id}/resume"))
        .send()
        .await?;
    let deadline = start + Duration::from_secs(300);
    while receiver.delivered.load(Ordering::SeqCst) < events {
        if Instant::now() > deadline {
            bail!("the backlog was not drained");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = start.elapsed();
    let throughput = events as f64 / drain.as_secs_f64();

    // Delay at about 100 events per second: orders paced at 100 / events per order.
    let order_rate = EVENT_RATE / per_order.max(1.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / order_rate));
    let warm_until = Instant::now() + ctx.bounds.warmup;
    let stop = warm_until + ctx.bounds.duration;
    let mut recording = false;
    let mut from_count = 0;
    let mut spawned = tokio::task::JoinSet::new();
    while Instant::now() < stop {
        tick.tick().await;
        if !recording && Instant::now() >= warm_until {
            recording = true;
            receiver.delays.lock().expect("never poisoned").reset();
            from_count = receiver.delivered.load(Ordering::SeqCst);
        }
        let (http, base) = (http.clone(), base.clone());
        spawned.spawn(async move { order(&http, &base).await });
    }
    let delivered = receiver.delivered.load(Ordering::SeqCst) - from_count;
    while spawned.join_next().await.is_some() {}
    let delays = receiver.delays.lock().expect("never poisoned").clone();
    let rate = delivered as f64 / ctx.bounds.duration.as_secs_f64();
    drop(facade);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    let ms = |q: f64| delays.value_at_quantile(q) as f64 / 1000.0;
    Ok([
        "| measurement | events | events/s | p50 ms | p99 ms |".to_owned(),
        "|---|---:|---:|---:|---:|".to_owned(),
        format!(
            "| backlog drained after the receiver came back ({BACKLOG_ORDERS} orders, {per_order:.1} events each) | {events} | {throughput:.0} | | |"
        ),
        format!(
            "| event → delivery at ~{EVENT_RATE:.0} events/s ({order_rate:.1} orders/s) | {} | {rate:.0} | {:.1} | {:.1} |",
            delays.len(),
            ms(0.5),
            ms(0.99)
        ),
        String::new(),
        "SQLite file store, the built-in sandbox, one subscription of every event, one delivery at a time (feed order); each event's delay is from its commit (`time`) to its arrival at the receiver.".to_owned(),
    ]
    .join("\n"))
}
