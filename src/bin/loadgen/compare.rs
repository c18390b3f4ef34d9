//! Scenario 10: two builds of the service side by side in one run: the figures of the read
//! path, the order path and the footprint, measured on a baseline binary and on this
//! one in alternating rounds (A B, B A, A B, …), so that a difference is the code's
//! and not the machine's mood between two runs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use crate::load::{Http, Stats};
use crate::procs::{Proc, status_kib};
use crate::scenarios::{
    Ctx, direct_point, grpc_point, order_one, order_point, rest_point, start_bare,
    start_facade_bin, start_sandbox,
};

/// What one build gave in one round (the read figures stay 0 with `--orders-only`).
#[derive(Default)]
struct Figures {
    idle_rss_kib: u64,
    idle_anon_kib: u64,
    after_reads_rss_kib: u64,
    rest: f64,
    rest_bare: f64,
    grpc: f64,
    grpc_bare: f64,
    order_p50_ms: f64,
    direct_p50_ms: f64,
    active_64: f64,
    accepted_64: f64,
}

impl Figures {
    fn rest_ratio(&self) -> f64 {
        self.rest / self.rest_bare
    }
    fn grpc_ratio(&self) -> f64 {
        self.grpc / self.grpc_bare
    }
    fn added_ms(&self) -> f64 {
        self.order_p50_ms - self.direct_p50_ms
    }
}

/// `VmRSS` and `RssAnon` of a process, in KiB.
fn rss(p: &Proc) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap_or_default();
    let kib = |name| status_kib(&status, name).unwrap_or(0);
    (kib("VmRSS:"), kib("RssAnon:"))
}

/// The read path and the footprint of `serve --sandbox` (the figures: idle
/// RSS right after start, RSS after the read load), then the order path against the
/// shared standalone sandbox, for one build.
async fn measure(
    ctx: &Ctx,
    bin: &Path,
    tag: &str,
    upstream: &str,
    bare: (SocketAddr, SocketAddr),
    orders_only: bool,
) -> anyhow::Result<Figures> {
    let mut f = Figures::default();
    if !orders_only {
        read_and_footprint(ctx, bin, tag, bare, &mut f).await?;
    }
    order_path(ctx, bin, tag, upstream, &mut f).await?;
    Ok(f)
}

/// Idle RSS of `serve --sandbox` 2 s after it is ready, GetLicense at 64 concurrent
/// over REST and gRPC beside the bare handlers, and the RSS after those reads.
async fn read_and_footprint(
    ctx: &Ctx,
    bin: &Path,
    tag: &str,
    bare: (SocketAddr, SocketAddr),
    f: &mut Figures,
) -> anyhow::Result<()> {
    let at64 = ctx.bounds;
    // A fresh file every round: the in-process sandbox starts its ids from 1 again,
    // so a license kept from the last round would collide with the next order's.
    let file = ctx.dir.join(format!("read-{tag}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    let db = format!("sqlite:{}", file.display());
    let (facade, http, grpc, _) = start_facade_bin(ctx, bin, &db, None, "").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss_kib, idle_anon_kib) = rss(&facade);
    let id = order_one(http).await?;
    let path = format!("/v1/licenses/{id}");
    let (status, _) = Http::connect(http).await?.send("GET", &path, None).await?;
    if status != 200 {
        bail!("{tag}: GET {path} answered {status}");
    }
    let rest = rest_point(http, &path, 64, at64).await?;
    let rest_bare = rest_point(bare.0, &path, 64, at64).await?;
    let grpc_st = grpc_point(grpc, &id, 64, at64).await?;
    let grpc_bare = grpc_point(bare.1, &id, 64, at64).await?;
    let (after_reads_rss_kib, _) = rss(&facade);
    drop(facade);
    if rest.errors + grpc_st.errors > 0 {
        bail!("{tag}: {} reads failed", rest.errors + grpc_st.errors);
    }
    f.idle_rss_kib = idle_rss_kib;
    f.idle_anon_kib = idle_anon_kib;
    f.after_reads_rss_kib = after_reads_rss_kib;
    f.rest = rest.rps();
    f.rest_bare = rest_bare.rps();
    f.grpc = grpc_st.rps();
    f.grpc_bare = grpc_bare.rps();
    Ok(())
}

/// The order path against the shared sandbox: the direct call at 1, then through the
/// service on a fresh SQLite file: until ACTIVE at 1 and 64, accepted at 64.
async fn order_path(
    ctx: &Ctx,
    bin: &Path,
    tag: &str,
    upstream: &str,
    f: &mut Figures,
) -> anyhow::Result<()> {
    let at64 = ctx.bounds;
    let direct = direct_point(upstream, at64).await?;
    let orders_db = ctx
        .sqlite_dir
        .join(format!("loadgen-compare-{tag}-{}.db", std::process::id()));
    let db = format!("sqlite:{}", orders_db.display());
    let (facade, _http, grpc, _) = start_facade_bin(ctx, bin, &db, Some(upstream), "").await?;
    let one = order_point(&[grpc], 1, true, at64).await?;
    let active = order_point(&[grpc], 64, true, at64).await?;
    let accepted = order_point(&[grpc], 64, false, at64).await?;
    drop(facade);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", orders_db.display()));
    }
    let errors: u64 = [&direct, &one, &active, &accepted]
        .iter()
        .map(|s: &&Stats| s.errors)
        .sum();
    if errors > 0 {
        bail!("{tag}: {errors} orders failed");
    }
    f.order_p50_ms = one.ms(0.5);
    f.direct_p50_ms = direct.ms(0.5);
    f.active_64 = active.rps();
    f.accepted_64 = accepted.rps();
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn row(round: usize, tag: &str, f: &Figures) -> String {
    format!(
        "| {round} | {tag} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} % | {:.0} | {:.0} | {:.0} % | {:.3} | {:+.3} | {:.0} | {:.0} |",
        mb(f.idle_rss_kib),
        mb(f.idle_anon_kib),
        mb(f.after_reads_rss_kib),
        f.rest,
        f.rest_bare,
        100.0 * f.rest_ratio(),
        f.grpc,
        f.grpc_bare,
        100.0 * f.grpc_ratio(),
        f.order_p50_ms,
        f.added_ms(),
        f.active_64,
        f.accepted_64,
    )
}

/// Runs `rounds` rounds over `baseline` (A) and this run's `--facade-bin` (B);
/// `orders_only` measures the order path alone (a quicker run, for a bisect).
pub async fn compare(
    ctx: &Ctx,
    baseline: &Path,
    rounds: usize,
    orders_only: bool,
) -> anyhow::Result<String> {
    if !baseline.exists() {
        bail!("--baseline-bin {} not found", baseline.display());
    }
    // One upstream and one bare limit for both builds: only the service differs.
    let (_sandbox, url) = start_sandbox(ctx).await?;
    let json_path = ctx.dir.join("compare-license.json");
    {
        let db = format!("sqlite:{}", ctx.dir.join("compare-seed.db").display());
        let (seed, http, _, _) = start_facade_bin(ctx, &ctx.bin, &db, None, "").await?;
        let id = order_one(http).await?;
        let (_, body) = Http::connect(http)
            .await?
            .send("GET", &format!("/v1/licenses/{id}"), None)
            .await?;
        std::fs::write(&json_path, &body)?;
        drop(seed);
    }
    let (_bare, bare_http, bare_grpc) = start_bare(ctx, &json_path, "/v1/licenses/x").await?;

    let mut out = vec![
        format!("A: `{}`; B: `{}`.", baseline.display(), ctx.bin.display()),
        String::new(),
        "| round | build | idle RSS MB | idle anon MB | RSS after reads MB | REST @64 req/s | bare axum req/s | REST / bare | gRPC @64 req/s | bare tonic req/s | gRPC / bare | order until ACTIVE @1 p50 ms | added over direct ms | until ACTIVE @64 /s | accepted @64 /s |".to_owned(),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    let (mut a, mut b) = (vec![], vec![]);
    for round in 1..=rounds {
        let order: [(&str, &Path); 2] = if round % 2 == 1 {
            [("A", baseline), ("B", &ctx.bin)]
        } else {
            [("B", &ctx.bin), ("A", baseline)]
        };
        for (tag, bin) in order {
            let f = measure(ctx, bin, tag, &url, (bare_http, bare_grpc), orders_only).await?;
            out.push(row(round, tag, &f));
            eprintln!("{}", out.last().expect("row"));
            if tag == "A" { a.push(f) } else { b.push(f) }
        }
    }
    out.push(String::new());
    out.push("Medians over the rounds:".to_owned());
    out.push(String::new());
    out.push("| figure | A | B | B / A |".to_owned());
    out.push("|---|---:|---:|---:|".to_owned());
    type Pick = fn(&Figures) -> f64;
    let figures: [(&str, Pick); 10] = [
        ("idle RSS, MB", |f| mb(f.idle_rss_kib)),
        ("idle anonymous RSS, MB", |f| mb(f.idle_anon_kib)),
        ("RSS after the reads, MB", |f| mb(f.after_reads_rss_kib)),
        ("REST GetLicense @64 / bare axum", Figures::rest_ratio),
        ("gRPC GetLicense @64 / bare tonic", Figures::grpc_ratio),
        ("order until ACTIVE @1, p50 ms", |f| f.order_p50_ms),
        ("added over the direct call @1, p50 ms", Figures::added_ms),
        ("orders until ACTIVE @64, /s", |f| f.active_64),
        ("orders accepted (durable) @64, /s", |f| f.accepted_64),
        ("direct sandbox call @1, p50 ms", |f| f.direct_p50_ms),
    ];
    for (name, pick) in figures {
        let ma = median(a.iter().map(pick).collect());
        let mb_ = median(b.iter().map(pick).collect());
        let mut line = format!("| {name} | ");
        let ratio = name.contains(" / ");
        if ratio {
            let _ = write!(line, "{:.0} % | {:.0} % |", 100.0 * ma, 100.0 * mb_);
        } else {
            let _ = write!(line, "{ma:.2} | {mb_:.2} |");
        }
        let _ = write!(line, " {:.2} |", mb_ / ma);
        out.push(line);
    }
    Ok(out.join("\n"))
}
