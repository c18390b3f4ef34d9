//! The scenarios (the watcher's is in `watch.rs`). Each starts what it measures (child processes on loopback,
//! or the sandbox in this process), prints a markdown table and returns it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use license_facade::api::pb::v1 as pb;
use license_facade::billmanager::{
    Billmanager, BillmanagerClient, ClientConfig, OrderParams, UpstreamStatus,
};
use license_facade::domain::{
    ClientName, License, LicenseId, LicenseIp, LicenseState, PanelCatalog, Period, ServerId,
};
use license_facade::sandbox::{Sandbox, SandboxConfig};
use license_facade::service::LicenseService;
use license_facade::store::{SqliteStore, Store};
use secrecy::SecretString;

use crate::load::{self, Bounds, Http, Stats, drive};
use crate::procs::{Proc, facade_bin, free_addr, run_measured};

/// What every scenario needs.
pub struct Ctx {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub bounds: Bounds,
    pub pg_url: Option<String>,
    pub licenses: usize,
    /// Where the order path keeps its SQLite file (default: a temporary directory on
    /// the root disk; `/dev/shm` shows the cost without fsync).
    pub sqlite_dir: PathBuf,
}

impl Ctx {
    pub fn new(
        bin: Option<PathBuf>,
        bounds: Bounds,
        pg_url: Option<String>,
        licenses: usize,
        sqlite_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("loadgen-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            bin: facade_bin(bin)?,
            sqlite_dir: sqlite_dir.unwrap_or_else(|| dir.clone()),
            dir,
            bounds,
            pg_url,
            licenses,
        })
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.join("children.log")
    }
}

pub(crate) const PRO: u32 = 55228;
const SANDBOX_USER: &str = "demo";

fn s(v: &str) -> String {
    v.to_owned()
}

/// A unique server id and a unique address for an order.
pub(crate) fn next_server() -> (String, String) {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id() % 64) * 1_000_000;
    (
        format!("lg-{}-{n}", std::process::id()),
        format!(
            "10.{}.{}.{}",
            128 + ((n >> 16) & 127),
            (n >> 8) & 255,
            n & 255
        ),
    )
}

pub(crate) fn row(name: &str, conc: usize, st: &Stats) -> String {
    format!(
        "| {name} | {conc} | {:.0} | {:.3} | {:.3} | {} |",
        st.rps(),
        st.ms(0.5),
        st.ms(0.99),
        st.errors
    )
}

/// A `license-facade serve` child against `upstream` (a sandbox URL), or with an
/// in-process sandbox when `upstream` is `None`.
pub(crate) async fn start_facade(
    ctx: &Ctx,
    database_url: &str,
    upstream: Option<&str>,
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr, Duration)> {
    start_facade_with(ctx, database_url, upstream, "").await
}

/// [`start_facade`] with `extra` (TOML) added to its configuration file.
pub(crate) async fn start_facade_with(
    ctx: &Ctx,
    database_url: &str,
    upstream: Option<&str>,
    extra: &str,
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr, Duration)> {
    start_facade_bin(ctx, &ctx.bin, database_url, upstream, extra).await
}

/// [`start_facade_with`] for another build of the service (`loadgen compare`).
pub(crate) async fn start_facade_bin(
    ctx: &Ctx,
    bin: &Path,
    database_url: &str,
    upstream: Option<&str>,
    extra: &str,
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr, Duration)> {
    let (http, grpc) = (free_addr(), free_addr());
    let mut args = vec![
        s("serve"),
        s("--http-addr"),
        http.to_string(),
        s("--grpc-addr"),
        grpc.to_string(),
        s("--database-url"),
        database_url.to_owned(),
        s("--drain-delay-ms"),
        s("0"),
    ];
    match upstream {
        Some(url) => args.extend([
            s("--clients-file"),
            clients_file(ctx)?.display().to_string(),
            s("--billmanager-url"),
            url.to_owned(),
            s("--billmanager-user"),
            s(SANDBOX_USER),
            s("--billmanager-password"),
            s(SANDBOX_USER),
        ]),
        None => args.extend([s("--sandbox"), s("--sandbox-key-delay-ms"), s("0")]),
    }
    args.extend([
        s("--config"),
        unlimited_config(ctx, extra)?.display().to_string(),
    ]);
    let mut p = Proc::spawn(bin, &args, &ctx.log(), "license-facade serve")?;
    let ready = p.wait_ready(http, "/readyz").await?;
    Ok((p, http, grpc, ready))
}

/// A configuration file that lifts the outbound rate limit (`max_calls_per_second`,
/// default 20/s, which protects the real BILLmanager): the order path measures the
/// facade, not the limiter.
fn unlimited_config(ctx: &Ctx, extra: &str) -> anyhow::Result<PathBuf> {
    let path = ctx.dir.join("unlimited.toml");
    std::fs::write(
        &path,
        format!("[billmanager]\nmax_calls_per_second = 0\n{extra}"),
    )?;
    Ok(path)
}

/// A clients file holding the sandbox token with every scope and no practical rate
/// limit (the per-client limit would otherwise cap the load at 100 requests/s).
pub(crate) fn clients_file(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let path = ctx.dir.join("clients.toml");
    let token = license_facade::auth::token_sha256_hex(license_facade::auth::SANDBOX_TOKEN);
    std::fs::write(
        &path,
        format!(
            "[[client]]\nname = \"loadgen\"\ntoken_sha256 = \"{token}\"\n\
             scopes = [\"licenses.read\", \"licenses.write\", \"admin\"]\n\
             max_requests_per_second = 1000000000\n"
        ),
    )?;
    Ok(path)
}

/// A standalone `license-facade sandbox` child: key delay 0, latency 0, a balance
/// that does not run out.
pub(crate) async fn start_sandbox(ctx: &Ctx) -> anyhow::Result<(Proc, String)> {
    let addr = free_addr();
    let args = vec![
        s("sandbox"),
        s("--addr"),
        addr.to_string(),
        s("--key-delay-ms"),
        s("0"),
        s("--balance"),
        s("100000000000000"),
    ];
    let mut p = Proc::spawn(&ctx.bin, &args, &ctx.log(), "license-facade sandbox")?;
    // The API answers 200 (with an error document) without credentials.
    p.wait_ready(addr, "/billmgr").await?;
    Ok((p, format!("http://{addr}/billmgr")))
}

/// Orders one license through REST and waits until it is active; returns its id.
pub(crate) async fn order_one(http: SocketAddr) -> anyhow::Result<String> {
    let (server_id, ip) = next_server();
    let body =
        format!(r#"{{"server":{{"id":"{server_id}","ip":"{ip}"}},"panel":"ISPmanager 6 Pro"}}"#);
    let mut c = Http::connect(http).await?;
    let (status, bytes) = c.send("POST", "/v1/licenses?wait=30s", Some(&body)).await?;
    if !(200..300).contains(&status) {
        bail!(
            "order answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    let id = v["id"]
        .as_str()
        .or_else(|| v["license"]["id"].as_str())
        .context("no license id in the order answer")?;
    Ok(id.to_owned())
}

// ---------------------------------------------------------------- 1. read path

pub async fn read(ctx: &Ctx) -> anyhow::Result<String> {
    let db = format!("sqlite:{}", ctx.dir.join("read.db").display());
    let (_facade, http, grpc, _) = start_facade(ctx, &db, None).await?;
    let id = order_one(http).await?;
    let path = format!("/v1/licenses/{id}");
    let (status, body) = Http::connect(http).await?.send("GET", &path, None).await?;
    if status != 200 {
        bail!("GET {path} answered {status}");
    }
    let json_path = ctx.dir.join("license.json");
    std::fs::write(&json_path, &body)?;
    let (_bare, bare_http, bare_grpc) = start_bare(ctx, &json_path, &path).await?;

    let mut out = vec![
        s("| target | concurrency | req/s | p50 ms | p99 ms | errors |"),
        s("|---|---:|---:|---:|---:|---:|"),
    ];
    let mut ratios = vec![];
    for conc in [1usize, 16, 64] {
        let svc = rest_point(http, &path, conc, ctx.bounds).await?;
        let lim = rest_point(bare_http, &path, conc, ctx.bounds).await?;
        out.push(row("REST GetLicense (service)", conc, &svc));
        out.push(row("REST bare axum handler", conc, &lim));
        ratios.push(format!(
            "REST @{conc}: {:.0} % of bare",
            100.0 * svc.rps() / lim.rps()
        ));
        eprintln!("{}\n{}", out[out.len() - 2], out[out.len() - 1]);
    }
    for conc in [1usize, 16, 64] {
        let svc = grpc_point(grpc, &id, conc, ctx.bounds).await?;
        let lim = grpc_point(bare_grpc, &id, conc, ctx.bounds).await?;
        out.push(row("gRPC GetLicense (service)", conc, &svc));
        out.push(row("gRPC bare tonic unary", conc, &lim));
        ratios.push(format!(
            "gRPC @{conc}: {:.0} % of bare",
            100.0 * svc.rps() / lim.rps()
        ));
        eprintln!("{}\n{}", out[out.len() - 2], out[out.len() - 1]);
    }
    out.push(String::new());
    out.push(format!("Ratios: {}.", ratios.join("; ")));
    Ok(out.join("\n"))
}

/// `loadgen bare-server`: a bare axum handler and a bare tonic handler answering
/// `json_path`'s bytes (and the same license over gRPC), ready when `path` answers.
pub(crate) async fn start_bare(
    ctx: &Ctx,
    json_path: &Path,
    path: &str,
) -> anyhow::Result<(Proc, SocketAddr, SocketAddr)> {
    let (bare_http, bare_grpc) = (free_addr(), free_addr());
    let me = std::env::current_exe()?;
    let mut bare = Proc::spawn(
        &me,
        &[
            s("bare-server"),
            s("--http-addr"),
            bare_http.to_string(),
            s("--grpc-addr"),
            bare_grpc.to_string(),
            s("--license-json"),
            json_path.display().to_string(),
        ],
        &ctx.log(),
        "loadgen bare-server",
    )?;
    bare.wait_ready(bare_http, path).await?;
    Ok((bare, bare_http, bare_grpc))
}

pub(crate) async fn rest_point(
    addr: SocketAddr,
    path: &str,
    conc: usize,
    b: Bounds,
) -> anyhow::Result<Stats> {
    let mut workers = Vec::with_capacity(conc);
    for _ in 0..conc {
        let conn = Arc::new(tokio::sync::Mutex::new(Http::connect(addr).await?));
        let path = path.to_owned();
        workers.push(move || {
            let conn = conn.clone();
            let path = path.clone();
            async move { conn.lock().await.get_ok(&path).await }
        });
    }
    Ok(drive(workers, b).await)
}

pub(crate) async fn grpc_point(
    addr: SocketAddr,
    id: &str,
    conc: usize,
    b: Bounds,
) -> anyhow::Result<Stats> {
    let mut workers = Vec::with_capacity(conc);
    for _ in 0..conc {
        let client = load::grpc(addr).await?;
        let id = id.to_owned();
        workers.push(move || {
            let mut client = client.clone();
            let id = id.clone();
            async move { load::grpc_get(&mut client, &id).await }
        });
    }
    Ok(drive(workers, b).await)
}

// ---------------------------------------------------------------- 2. order path

pub(crate) fn direct_client(url: &str) -> anyhow::Result<BillmanagerClient> {
    BillmanagerClient::new(ClientConfig {
        url: url.to_owned(),
        user: SANDBOX_USER.to_owned(),
        password: SecretString::from(SANDBOX_USER.to_owned()),
        max_calls_per_second: 0,
        ..ClientConfig::default()
    })
}

/// Orders `ISPmanager 6 Pro` through gRPC; with `wait`, until ACTIVE.
async fn grpc_order(
    client: &mut pb::license_service_client::LicenseServiceClient<tonic::transport::Channel>,
    wait: bool,
) -> bool {
    let (server_id, ip) = next_server();
    let msg = pb::OrderLicenseRequest {
        server: Some(pb::Server {
            id: server_id,
            ip,
            hostname: String::new(),
        }),
        panel: s("ISPmanager 6 Pro"),
        period_months: 1,
        wait_for_active: wait,
        ..Default::default()
    };
    match client
        .order_license(load::request(msg, Duration::from_secs(60)))
        .await
    {
        Ok(resp) => {
            let state = resp.into_inner().license.map_or(0, |l| l.state);
            if wait {
                state == pb::license::State::Active as i32
            } else {
                true
            }
        }
        Err(_) => false,
    }
}

pub(crate) async fn order_point(
    grpcs: &[SocketAddr],
    conc: usize,
    wait: bool,
    b: Bounds,
) -> anyhow::Result<Stats> {
    let mut workers = Vec::with_capacity(conc);
    for i in 0..conc {
        let client = load::grpc(grpcs[i % grpcs.len()]).await?;
        workers.push(move || {
            let mut client = client.clone();
            async move { grpc_order(&mut client, wait).await }
        });
    }
    Ok(drive(workers, b).await)
}

/// The order path without the facade: order, then read the license once (it is
/// active at once with key delay 0), from this process with the service's client.
pub(crate) async fn direct_point(url: &str, b: Bounds) -> anyhow::Result<Stats> {
    let direct = Arc::new(direct_client(url)?);
    let workers = vec![move || {
        let direct = direct.clone();
        async move {
            let (server_id, ip) = next_server();
            let params = OrderParams {
                tariff_id: PRO,
                ip: ip.parse().expect("valid ip"),
                period: 1,
                autoprolong: None,
                remote_id: uuid::Uuid::now_v7().to_string(),
                licname: server_id,
                addons: vec![],
            };
            match direct.order_license(&params).await {
                Ok(id) => matches!(
                    direct.license_details(id).await,
                    Ok(l) if l.status == UpstreamStatus::Active
                ),
                Err(_) => false,
            }
        }
    }];
    Ok(drive(workers, b).await)
}

pub async fn order(ctx: &Ctx) -> anyhow::Result<String> {
    let (_sandbox, url) = start_sandbox(ctx).await?;
    let mut out = vec![
        s("| path | concurrency | orders/s | p50 ms | p99 ms | errors |"),
        s("|---|---:|---:|---:|---:|---:|"),
    ];
    let direct_st = direct_point(&url, ctx.bounds).await?;
    out.push(row("direct sandbox call (order + read)", 1, &direct_st));
    eprintln!("{}", out.last().expect("row"));

    let orders_db = ctx
        .sqlite_dir
        .join(format!("loadgen-orders-{}.db", std::process::id()));
    let db = format!("sqlite:{}", orders_db.display());
    let (facade, _http, grpc, _) = start_facade(ctx, &db, Some(&url)).await?;
    let lat = order_point(&[grpc], 1, true, ctx.bounds).await?;
    out.push(row("OrderLicense until ACTIVE, SQLite", 1, &lat));
    eprintln!("{}", out.last().expect("row"));
    let added = (
        lat.ms(0.5) - direct_st.ms(0.5),
        lat.ms(0.99) - direct_st.ms(0.99),
    );
    let sq = order_point(&[grpc], 64, true, ctx.bounds).await?;
    out.push(row("OrderLicense until ACTIVE, SQLite", 64, &sq));
    eprintln!("{}", out.last().expect("row"));
    let sq_acc = order_point(&[grpc], 64, false, ctx.bounds).await?;
    out.push(row("OrderLicense accepted (durable), SQLite", 64, &sq_acc));
    eprintln!("{}", out.last().expect("row"));
    drop(facade);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", orders_db.display()));
    }

    let mut pg_line = s("PostgreSQL: skipped (--pg-url none).");
    if let Some(admin) = &ctx.pg_url {
        let name = format!("loadgen_{}", std::process::id());
        let pool = sqlx::PgPool::connect(admin).await.context("PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await?;
        let result = async {
            let db = match admin.rfind('/') {
                Some(i) => format!("{}/{name}", &admin[..i]),
                None => bail!("bad PostgreSQL URL"),
            };
            let (r1, _, g1, _) = start_facade(ctx, &db, Some(&url)).await?;
            let (r2, _, g2, _) = start_facade(ctx, &db, Some(&url)).await?;
            let pl = order_point(&[g1, g2], 1, true, ctx.bounds).await?;
            out.push(row("OrderLicense until ACTIVE, PostgreSQL ×2", 1, &pl));
            eprintln!("{}", out.last().expect("row"));
            let p = order_point(&[g1, g2], 64, true, ctx.bounds).await?;
            out.push(row("OrderLicense until ACTIVE, PostgreSQL ×2", 64, &p));
            eprintln!("{}", out.last().expect("row"));
            let pa = order_point(&[g1, g2], 64, false, ctx.bounds).await?;
            out.push(row(
                "OrderLicense accepted (durable), PostgreSQL ×2",
                64,
                &pa,
            ));
            eprintln!("{}", out.last().expect("row"));
            drop((r1, r2));
            anyhow::Ok(format!(
                "PostgreSQL ×2 / SQLite ×1: {:.2}× until ACTIVE, {:.2}× accepted.",
                p.rps() / sq.rps(),
                pa.rps() / sq_acc.rps()
            ))
        }
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await?;
        pg_line = result?;
    }
    out.push(String::new());
    out.push(format!(
        "Added by the facade over the direct call, at concurrency 1: p50 {:+.3} ms, p99 {:+.3} ms. {pg_line}",
        added.0, added.1
    ));
    Ok(out.join("\n"))
}

// ---------------------------------------------------------------- 3. reconcile

pub async fn reconcile(ctx: &Ctx) -> anyhow::Result<String> {
    let n = ctx.licenses;
    let sandbox = Sandbox::bind(
        "127.0.0.1:0".parse().expect("valid"),
        SandboxConfig {
            key_delay: Duration::ZERO,
            ..SandboxConfig::default()
        },
    )
    .await?;
    let handle = sandbox.handle();
    let url = sandbox.url();
    tokio::spawn(sandbox.run(std::future::pending()));

    // Seeding: not measured.
    let t = Instant::now();
    handle.bulk_seed(n, PRO);
    let db_path = ctx.dir.join("reconcile.db");
    let db = format!("sqlite:{}", db_path.display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db).await?);
    let now = time::OffsetDateTime::now_utc();
    let catalog = PanelCatalog::defaults();
    let panel = catalog.by_tariff(PRO).context("pro panel")?.name.clone();
    let mut licenses = Vec::with_capacity(n);
    for l in handle.licenses() {
        licenses.push(License {
            id: LicenseId::generate(),
            client: ClientName::anonymous(),
            server_id: ServerId::parse(&l.remote_id, "serverId")
                .map_err(|v| anyhow::anyhow!(v.message))?,
            ip: LicenseIp::parse(&l.ip, "ip").map_err(|v| anyhow::anyhow!(v.message))?,
            hostname: None,
            panel: panel.clone(),
            tariff_id: l.tariff_id,
            nodes: None,
            period: Period::Month,
            auto_renew: l.auto_prolong.is_some(),
            state: LicenseState::Active,
            license_key: (!l.license_key.is_empty()).then(|| l.license_key.clone()),
            upstream_id: Some(l.id),
            expire_time: Some(l.expire_date.midnight().assume_utc()),
            create_time: now,
            update_time: now,
            last_error: None,
            reused_from: None,
            reused_by: None,
        });
    }
    let mut seeded = 0;
    for chunk in licenses.chunks(10_000) {
        seeded += store.insert_adopted_batch(chunk).await?;
    }
    drop(licenses);
    let seed_time = t.elapsed();
    eprintln!("seeded {n} sandbox licenses and {seeded} store licenses in {seed_time:.1?}");

    let calls = || handle.call_count("soft") + handle.call_count("auth");
    let mut rows = vec![];
    for (label, config) in [
        ("default settings (outbound limit 20 calls/s)", None),
        ("outbound limit off", Some(unlimited_config(ctx, "")?)),
    ] {
        let soft0 = handle.call_count("soft");
        let calls0 = calls();
        // A separate process, as an operator runs it: wall time and peak RSS.
        let mut args = vec![
            s("reconcile"),
            s("--database-url"),
            db.clone(),
            s("--billmanager-url"),
            url.clone(),
            s("--billmanager-user"),
            s(SANDBOX_USER),
            s("--billmanager-password"),
            s(SANDBOX_USER),
        ];
        if let Some(config) = config {
            args.extend([s("--config"), config.display().to_string()]);
        }
        let (bin, log) = (ctx.bin.clone(), ctx.log());
        let (code, wall, maxrss) =
            tokio::task::spawn_blocking(move || run_measured(&bin, &args, &log)).await??;
        if code != 0 {
            bail!(
                "license-facade reconcile exited with {code}; see {}",
                ctx.log().display()
            );
        }
        let soft = handle.call_count("soft") - soft0;
        let all = calls() - calls0;
        rows.push(format!(
            "| {n} | `license-facade reconcile` process, {label} | {:.2} | {:.1} | {all} ({soft} × `soft`) |",
            wall.as_secs_f64(),
            maxrss as f64 / 1024.0
        ));
        eprintln!("{}", rows.last().expect("row"));
    }

    // The same in this process, timing only `LicenseService::reconcile`.
    let upstream = Arc::new(direct_client(&url)?);
    let service = LicenseService::new(store, upstream, Arc::new(catalog));
    let soft1 = handle.call_count("soft");
    let t = Instant::now();
    let report = service.reconcile(None).await?;
    let inproc = t.elapsed();
    let inproc_soft = handle.call_count("soft") - soft1;

    let page = ClientConfig::default().page_size;
    Ok([
        s("| licenses (sandbox = store) | run | wall s | peak RSS MB | upstream calls |"),
        s("|---:|---|---:|---:|---:|"),
        rows[0].clone(),
        rows[1].clone(),
        format!(
            "| {n} | `LicenseService::reconcile` in the harness, outbound limit off | {:.2} | — | {inproc_soft} × `soft` (page size {page}) |",
            inproc.as_secs_f64()
        ),
        String::new(),
        format!(
            "Report: {} seen upstream, {} checked here, {} orphans, {} missing, {} mismatches, {} expiring. Seeding (not measured): {:.1} s.",
            report.upstream_seen,
            report.local_checked,
            report.orphan_count,
            report.missing_count,
            report.mismatch_count,
            report.expiring_count,
            seed_time.as_secs_f64()
        ),
    ]
    .join("\n"))
}

// ---------------------------------------------------------------- 4. footprint

pub async fn footprint(ctx: &Ctx) -> anyhow::Result<String> {
    let (_sandbox, url) = start_sandbox(ctx).await?;
    let db = format!("sqlite:{}", ctx.dir.join("footprint.db").display());
    // First start creates the database; the measured start opens an existing one.
    let (first, _, _, first_ready) = start_facade(ctx, &db, Some(&url)).await?;
    drop(first);
    let (facade, http, _grpc, ready) = start_facade(ctx, &db, Some(&url)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = facade.mem();
    let id = order_one(http).await?;
    let path = format!("/v1/licenses/{id}");
    let st = rest_point(
        http,
        &path,
        16,
        Bounds {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(600),
            max_requests: 100_000,
        },
    )
    .await?;
    let (after_rss, hwm) = facade.mem();
    let size = std::fs::metadata(&ctx.bin)?.len();
    Ok([
        s("| measure | value |"),
        s("|---|---:|"),
        format!(
            "| idle RSS (2 s after ready) | {:.1} MB |",
            idle_rss as f64 / 1024.0
        ),
        format!(
            "| RSS after {} GetLicense (REST, 16 concurrent) | {:.1} MB (peak {:.1} MB) |",
            st.ok + st.errors,
            after_rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        format!(
            "| start to ready (`/readyz` 200), existing database | {:.0} ms |",
            ready.as_secs_f64() * 1000.0
        ),
        format!(
            "| start to ready, new database (migrations) | {:.0} ms |",
            first_ready.as_secs_f64() * 1000.0
        ),
        format!(
            "| release binary size (`{}`) | {:.1} MB |",
            Path::new(&ctx.bin).display(),
            size as f64 / 1024.0 / 1024.0
        ),
    ]
    .join("\n"))
}

// ---------------------------------------------------------------- 5. console

/// The console's pages with `ctx.licenses` stored licenses: a `serve --sandbox`
/// child on a seeded SQLite file, driven like a browser (session cookie).
pub async fn console(ctx: &Ctx) -> anyhow::Result<String> {
    let n = ctx.licenses;
    // Seeding: not measured. Every tenth license is suspended, one in a thousand
    // needs attention (the overview's queue); three clients, three panels.
    let t = Instant::now();
    let db_path = ctx.dir.join("console.db");
    let db = format!("sqlite:{}", db_path.display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&db).await?);
    let catalog = PanelCatalog::defaults();
    let panels: Vec<_> = ["ISPmanager 6 Lite", "ISPmanager 6 Pro", "ISPmanager 6 Host"]
        .iter()
        .map(|name| catalog.resolve(name).map(|p| (p.name.clone(), p.tariff_id)))
        .collect::<Result<_, _>>()?;
    let now = time::OffsetDateTime::now_utc();
    let mut batch = Vec::with_capacity(10_000);
    let mut seeded = 0;
    for i in 0..n {
        let (panel, tariff_id) = panels[i % panels.len()].clone();
        let state = match i {
            i if i % 1000 == 7 => LicenseState::NeedsAttention,
            i if i % 10 == 3 => LicenseState::Suspended,
            _ => LicenseState::Active,
        };
        batch.push(License {
            id: LicenseId::generate(),
            client: ClientName::new(["shop", "vps", "dedicated"][i % 3]),
            server_id: ServerId::parse(&format!("srv-{i}"), "serverId")
                .map_err(|v| anyhow::anyhow!(v.message))?,
            ip: LicenseIp::parse(
                &format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
                "ip",
            )
            .map_err(|v| anyhow::anyhow!(v.message))?,
            hostname: None,
            panel,
            tariff_id,
            nodes: None,
            period: Period::Month,
            auto_renew: false,
            state,
            license_key: Some(format!("{i:032x}")),
            upstream_id: Some(i as u64 + 1),
            expire_time: Some(now + time::Duration::days(30)),
            create_time: now,
            update_time: now,
            last_error: None,
            reused_from: None,
            reused_by: None,
        });
        if batch.len() == 10_000 {
            seeded += store.insert_adopted_batch(&batch).await?;
            batch.clear();
        }
    }
    seeded += store.insert_adopted_batch(&batch).await?;
    drop(batch);
    store.close().await;
    let seed_time = t.elapsed();
    eprintln!("seeded {seeded} licenses in {seed_time:.1?}");

    // No periodic reconciliation: the in-process sandbox knows none of these
    // licenses, and a report of 100,000 missing ones is not what is measured.
    let config = ctx.dir.join("console.toml");
    std::fs::write(&config, "[reconcile]\ninterval_secs = 0\n")?;
    let http = free_addr();
    let args = vec![
        s("serve"),
        s("--http-addr"),
        http.to_string(),
        s("--grpc-addr"),
        free_addr().to_string(),
        s("--database-url"),
        db.clone(),
        s("--drain-delay-ms"),
        s("0"),
        s("--sandbox"),
        s("--config"),
        config.display().to_string(),
    ];
    let mut facade = Proc::spawn(&ctx.bin, &args, &ctx.log(), "license-facade serve")?;
    facade.wait_ready(http, "/readyz").await?;
    let cookie = console_log_in(http).await?;

    // A deep page: its token, after walking 1,000 pages (50,000 licenses) in.
    let mut deep = String::from("/console/licenses");
    let mut c = Http::connect(http).await?;
    for _ in 0..(n / 50 / 2).min(1000) {
        let (status, _, body) = c
            .send_with("GET", &deep, &[("cookie", &cookie)], None)
            .await?;
        if status != 200 {
            bail!("the license list answered {status}");
        }
        let body = String::from_utf8_lossy(&body);
        let next = body
            .split("id=\"next\"")
            .next()
            .and_then(|before| before.rsplit("href=\"").next())
            .filter(|href| href.starts_with("/console/licenses?"))
            .context("no next page link")?;
        deep = next.trim_end_matches(['"', ' ']).replace("&amp;", "&");
    }

    let points = [
        ("license list, first page (50 rows)", s("/console/licenses")),
        ("license list, page 1,001 (keyset token)", deep),
        (
            "license list, state SUSPENDED and panel Pro",
            s("/console/licenses?state=SUSPENDED&panel=ISPmanager+6+Pro"),
        ),
        ("license list, by IP", s("/console/licenses?ip=10.0.200.17")),
        (
            "license list, client vps (admin filter)",
            s("/console/licenses?client=vps"),
        ),
        (
            "overview (counts, NEEDS_ATTENTION queue, usage)",
            s("/console/"),
        ),
    ];
    let mut out = vec![
        format!(
            "{n} licenses stored (seeding, not measured: {:.1} s).",
            seed_time.as_secs_f64()
        ),
        String::new(),
        s("| page | concurrency | pages/s | p50 ms | p99 ms | errors |"),
        s("|---|---:|---:|---:|---:|---:|"),
    ];
    for (name, path) in &points {
        for conc in [1, 16] {
            let st = console_point(http, path, &cookie, conc, ctx.bounds).await?;
            out.push(row(name, conc, &st));
            eprintln!("{}", out.last().expect("row"));
        }
    }
    drop(facade);
    Ok(out.join("\n"))
}

/// Logs in to the console with the sandbox token; returns the `Cookie` header of
/// the session.
async fn console_log_in(http: SocketAddr) -> anyhow::Result<String> {
    let mut c = Http::connect(http).await?;
    let (_, headers, body) = c.send_with("GET", "/console/login", &[], None).await?;
    let nonce =
        set_cookie(&headers, license_facade::console::LOGIN_COOKIE).context("no log-in cookie")?;
    let body = String::from_utf8_lossy(&body);
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF field on the log-in form")?;
    let form = format!("csrf={csrf}&token={}", license_facade::auth::SANDBOX_TOKEN);
    let login_cookie = format!("{}={nonce}", license_facade::console::LOGIN_COOKIE);
    let (status, headers, _) = c
        .send_with(
            "POST",
            "/console/login",
            &[("cookie", &login_cookie)],
            Some(&form),
        )
        .await?;
    let session = set_cookie(&headers, license_facade::console::SESSION_COOKIE)
        .with_context(|| format!("the log-in answered {status} without a session"))?;
    Ok(format!(
        "{}={session}",
        license_facade::console::SESSION_COOKIE
    ))
}

/// The value a `Set-Cookie` header gives cookie `name`.
fn set_cookie(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

async fn console_point(
    addr: SocketAddr,
    path: &str,
    cookie: &str,
    conc: usize,
    b: Bounds,
) -> anyhow::Result<Stats> {
    let mut workers = Vec::with_capacity(conc);
    for _ in 0..conc {
        let conn = Arc::new(tokio::sync::Mutex::new(Http::connect(addr).await?));
        let (path, cookie) = (path.to_owned(), cookie.to_owned());
        workers.push(move || {
            let conn = conn.clone();
            let (path, cookie) = (path.clone(), cookie.clone());
            async move {
                matches!(
                    conn.lock()
                        .await
                        .send_with("GET", &path, &[("cookie", &cookie)], None)
                        .await,
                    Ok((200, _, _))
                )
            }
        });
    }
    Ok(drive(workers, b).await)
}
