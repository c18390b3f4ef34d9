//! Scenario 6, the platform watcher at scale: one pass over N servers that all need a license
//! (N orders), then one pass over N servers and their N licenses (steady state, the
//! pass every interval), then one with 1 % of the hosts re-addressed and 1 % deleted.
//! The service is a release `license-facade serve` child; the BILLmanager sandbox,
//! the platform simulator and the watcher run in this process.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use license_facade::platform::sim::{PlatformSim, PlatformSimConfig, PlatformSimHandle};
use license_facade::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use license_facade::watcher::{PassMode, PassReport, Watcher, WatcherConfig};

use crate::scenarios::{Ctx, start_facade};

/// Upstream functions the service may call.
const UPSTREAM_FUNCS: &[&str] = &[
    "auth",
    "soft",
    "soft.order.param",
    "soft.edit",
    "soft.delete",
    "service.changepricelist",
    "service.prolong",
    "pricelist.export",
    "subaccount",
];

fn upstream_calls(h: &SandboxHandle) -> u64 {
    UPSTREAM_FUNCS.iter().map(|f| h.call_count(f)).sum()
}

/// One measured pass: its row.
async fn measured(
    label: &str,
    n: usize,
    watcher: &Watcher,
    sandbox: &SandboxHandle,
    platform: &PlatformSimHandle,
) -> anyhow::Result<(String, PassReport)> {
    let (up0, plat0) = (upstream_calls(sandbox), platform.total_calls());
    let t = Instant::now();
    let report = watcher.pass(PassMode::default()).await?;
    let wall = t.elapsed();
    if report.errors > 0 {
        bail!("{label}: {} calls failed", report.errors);
    }
    let row = format!(
        "| {n} | {label} | {:.2} | {} | {} | {} | {} / {} / {} / {} |",
        wall.as_secs_f64(),
        platform.total_calls() - plat0,
        report.api_calls,
        upstream_calls(sandbox) - up0,
        report.ordered,
        report.moved,
        report.cancelled,
        report.in_order,
    );
    eprintln!("{row}");
    Ok((row, report))
}

/// Waits until `n` upstream licenses are active (status 2).
async fn all_active(sandbox: &SandboxHandle, n: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let active = sandbox.licenses().iter().filter(|l| l.status == 2).count();
        if active >= n {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("only {active} of {n} licenses active after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn watcher(ctx: &Ctx, n: usize) -> anyhow::Result<String> {
    let sandbox = Sandbox::bind(
        "127.0.0.1:0".parse().expect("valid"),
        SandboxConfig {
            key_delay: Duration::ZERO,
            balance_cents: i64::MAX / 4,
            ip_change_cooldown: Duration::ZERO,
            ..SandboxConfig::default()
        },
    )
    .await?;
    let (sandbox_handle, sandbox_url) = (sandbox.handle(), sandbox.url());
    tokio::spawn(sandbox.run(std::future::pending()));
    let db = format!("sqlite:{}", ctx.sqlite_dir.join("watcher.db").display());
    let (facade, _http, grpc, _) = start_facade(ctx, &db, Some(&sandbox_url)).await?;

    let sim = PlatformSim::bind(
        "127.0.0.1:0".parse().expect("valid"),
        PlatformSimConfig::default(),
    )
    .await?;
    let (platform, platform_url) = (sim.handle(), sim.url());
    tokio::spawn(sim.run(std::future::pending()));
    let hosts = platform.seed_hosts(n, |_| "panel=ispmanager-6-pro".to_owned());

    let config = ctx.dir.join("watcher.toml");
    std::fs::write(
        &config,
        format!(
            "instance = \"bench\"\nstate_file = \"watcher-state.json\"\nconcurrency = 32\n\n\
             [license_facade]\ngrpc_url = \"http://{grpc}\"\ntoken = \"{token}\"\ntimeout_secs = 60\n\n\
             [platform]\nkind = \"vmmanager6\"\nurl = \"{platform_url}\"\n\
             email = \"admin@example.com\"\npassword = \"demo\"\npage_size = 1000\n\n\
             [cancel]\nabsent_listings = 1\ngrace_secs = 0\nmax_share = 0.05\n",
            token = license_facade::auth::SANDBOX_TOKEN,
        ),
    )?;
    let watcher = Watcher::new(WatcherConfig::load(&config)?)?;

    let (first, report) = measured(
        "first pass: every server needs a license",
        n,
        &watcher,
        &sandbox_handle,
        &platform,
    )
    .await?;
    if report.ordered != n {
        bail!("the first pass ordered {} of {n}", report.ordered);
    }
    let to_active = all_active(&sandbox_handle, n).await?;
    let (steady, report) = measured(
        "steady state: N servers, N licenses, nothing to do",
        n,
        &watcher,
        &sandbox_handle,
        &platform,
    )
    .await?;
    if report.in_order != n {
        bail!("the steady pass found {} of {n} in order", report.in_order);
    }

    // 1 % re-addressed and 1 % deleted, through the platform's API.
    let churn = (n / 100).max(1);
    let http = reqwest::Client::new();
    let token: serde_json::Value = serde_json::from_slice(
        &http
            .post(format!("{platform_url}/auth/v4/public/token"))
            .body(r#"{"email":"admin@example.com","password":"demo"}"#)
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let token = token["token"]
        .as_str()
        .context("a session token")?
        .to_owned();
    for (i, host) in hosts.iter().take(2 * churn).enumerate() {
        let path = if i < churn {
            format!("{platform_url}/vm/v3/host/{host}/ipv4")
        } else {
            format!("{platform_url}/vm/v3/host/{host}")
        };
        let request = if i < churn {
            http.post(path).body("{}")
        } else {
            http.delete(path)
        };
        request
            .header("x-xsrf-token", &token)
            .send()
            .await?
            .error_for_status()?;
    }
    // The re-addressed hosts lose their old address.
    for host in platform.hosts().iter().filter(|h| h.ips.len() > 1) {
        let old = host.ips[0].id;
        http.delete(format!("{platform_url}/vm/v3/ip/{old}"))
            .header("x-xsrf-token", &token)
            .send()
            .await?
            .error_for_status()?;
    }
    let (churned, report) = measured(
        "1 % re-addressed, 1 % deleted",
        n,
        &watcher,
        &sandbox_handle,
        &platform,
    )
    .await?;
    if report.moved != churn || report.cancelled != churn {
        bail!(
            "the churn pass moved {} and cancelled {} of {churn}",
            report.moved,
            report.cancelled
        );
    }
    let (_, peak) = facade.mem();
    drop(facade);
    Ok([
        "| servers | pass | wall s | platform requests | license-facade calls | upstream calls during the pass | ordered / moved / cancelled / in order |".to_owned(),
        "|---:|---|---:|---:|---:|---:|---|".to_owned(),
        first,
        steady,
        churned,
        String::new(),
        format!(
            "All {n} ordered licenses ACTIVE upstream {:.1} s after the first pass returned (the service's workers, not the watcher). Service peak RSS {:.1} MB. Watcher concurrency 32, platform page size 1000, `ListLicenses` page size 1000.",
            to_active.as_secs_f64(),
            peak as f64 / 1024.0
        ),
    ]
    .join("\n"))
}
