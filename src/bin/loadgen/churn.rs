//! Scenario 9, churn and the license pool: N servers licensed by the watcher, then K
//! deleted and K created with the same panel, and one pass of the watcher over that.
//! Three runs, each on a fresh sandbox, service and platform: the cancel policy; the
//! park policy with the upstream's cooldowns (the sandbox's and the pool's) at 0; the
//! park policy with both at 30 days. Counted: purchases carried out upstream, reuses,
//! releases, upstream cancellations, and the money — purchases at the sandbox's price
//! list, the balance it charged, and the pool's monthly cost and savings (`GET
//! /v1/pool`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use license_facade::platform::sim::{PlatformSim, PlatformSimConfig, PlatformSimHandle};
use license_facade::sandbox::{PriceTable, Sandbox, SandboxConfig};
use license_facade::watcher::{PassMode, Watcher, WatcherConfig};
use serde_json::Value;

use crate::scenarios::{Ctx, start_facade_with};

/// ISPmanager 6 Pro, the panel of every server.
const PRO_TARIFF: u32 = 55228;

/// One run's settings.
struct Variant {
    label: &'static str,
    release: &'static str,
    cooldown_days: u32,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        label: "cancel",
        release: "cancel",
        cooldown_days: 0,
    },
    Variant {
        label: "park, cooldowns 0",
        release: "park",
        cooldown_days: 0,
    },
    Variant {
        label: "park, cooldowns 30 days",
        release: "park",
        cooldown_days: 30,
    },
];

/// What one run counted after the churn.
struct Counted {
    purchases: u64,
    reuses: usize,
    released: usize,
    parked: usize,
    cancelled: usize,
    upstream_deletions: u64,
    charged_cents: i64,
    pool_parked: u64,
    pool_monthly: String,
    pool_saved: String,
    pass: Duration,
    settled: Duration,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub async fn churn(ctx: &Ctx, n: usize, k: usize) -> anyhow::Result<String> {
    if k == 0 || k > n {
        bail!("--churned must be between 1 and --churn-servers ({n})");
    }
    let price = PriceTable::default()
        .tariff(PRO_TARIFF)
        .context("the Pro tariff in the sandbox's price list")?
        .price(1);
    let mut rows = vec![
        "| run | purchases | reuses | released: parked / cancelled | cancelled | upstream deletions | purchases at list price, EUR | balance charged, EUR | parked after | pool month cost, EUR | pool saved, EUR | pass s | settled s |".to_owned(),
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for (i, variant) in VARIANTS.iter().enumerate() {
        let c = run(ctx, i, variant, n, k).await?;
        let row = format!(
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
            variant.label,
            c.purchases,
            c.reuses,
            c.parked,
            c.released - c.parked,
            c.cancelled,
            c.upstream_deletions,
            money(c.purchases as i64 * price),
            money(c.charged_cents),
            c.pool_parked,
            c.pool_monthly,
            c.pool_saved,
            c.pass.as_secs_f64(),
            c.settled.as_secs_f64(),
        );
        eprintln!("{row}");
        rows.push(row);
    }
    rows.push(String::new());
    rows.push(format!(
        "{n} servers licensed (ISPmanager 6 Pro, monthly, {} EUR at the sandbox's price list), then {k} deleted and {k} created; one pass of the watcher (`absent_listings = 1`, `grace_secs = 0`, concurrency 32). Counts are of the churn only (the first {n} purchases left out). \"Settled\": from the end of the pass until every license of a listed server is ACTIVE and nothing is being ordered.",
        money(price)
    ));
    Ok(rows.join("\n"))
}

async fn run(
    ctx: &Ctx,
    index: usize,
    variant: &Variant,
    n: usize,
    k: usize,
) -> anyhow::Result<Counted> {
    let sandbox = Sandbox::bind(
        "127.0.0.1:0".parse().expect("valid"),
        SandboxConfig {
            key_delay: Duration::ZERO,
            balance_cents: i64::MAX / 4,
            ip_change_cooldown_days: variant.cooldown_days,
            key_change_cooldown_days: variant.cooldown_days,
            ..SandboxConfig::default()
        },
    )
    .await?;
    let (sandbox, sandbox_url) = (sandbox.handle(), {
        let url = sandbox.url();
        tokio::spawn(sandbox.run(std::future::pending()));
        url
    });
    let db_path = ctx.sqlite_dir.join(format!("churn-{index}.db"));
    let _ = std::fs::remove_file(&db_path);
    let pool = format!(
        "[pool]\nip_change_cooldown_days = {d}\nkey_change_cooldown_days = {d}\n",
        d = variant.cooldown_days
    );
    let (facade, http, grpc, _) = start_facade_with(
        ctx,
        &format!("sqlite:{}", db_path.display()),
        Some(&sandbox_url),
        &pool,
    )
    .await?;
    let rest = Rest {
        base: format!("http://{http}"),
        http: reqwest::Client::new(),
    };

    let sim = PlatformSim::bind(
        "127.0.0.1:0".parse().expect("valid"),
        PlatformSimConfig::default(),
    )
    .await?;
    let (platform, platform_url) = (sim.handle(), sim.url());
    tokio::spawn(sim.run(std::future::pending()));
    let marker = |_| "panel=ispmanager-6-pro".to_owned();
    let hosts = platform.seed_hosts(n, marker);

    let config = ctx.dir.join(format!("churn-{index}.toml"));
    std::fs::write(
        &config,
        format!(
            "instance = \"churn\"\nstate_file = \"churn-{index}-state.json\"\nconcurrency = 32\n\n\
             [license_facade]\ngrpc_url = \"http://{grpc}\"\ntoken = \"{token}\"\ntimeout_secs = 60\n\n\
             [platform]\nkind = \"vmmanager6\"\nurl = \"{platform_url}\"\n\
             email = \"admin@example.com\"\npassword = \"demo\"\npage_size = 1000\n\n\
             [cancel]\nabsent_listings = 1\ngrace_secs = 0\nmax_share = {share}\nrelease = \"{release}\"\n",
            token = license_facade::auth::SANDBOX_TOKEN,
            share = k as f64 / n as f64,
            release = variant.release,
        ),
    )?;
    let watcher = Watcher::new(WatcherConfig::load(&config)?)?;

    let first = watcher.pass(PassMode::default()).await?;
    if first.ordered != n || first.errors > 0 {
        bail!(
            "{}: the first pass ordered {} of {n} ({} errors)",
            variant.label,
            first.ordered,
            first.errors
        );
    }
    rest.settled(n).await?;
    let orders0 = sandbox.carried_out("soft.order.param");
    let deletions0 = sandbox.carried_out("soft.delete");
    let balance0 = sandbox.balance();

    delete_hosts(&platform, &platform_url, &hosts[..k]).await?;
    platform.seed_hosts(k, marker);
    let t = Instant::now();
    let report = watcher.pass(PassMode::default()).await?;
    let pass = t.elapsed();
    if report.errors > 0 || report.ordered != k || report.cancelled + report.parked != k {
        bail!(
            "{}: the churn pass ordered {}, parked {}, cancelled {} of {k} ({} errors)",
            variant.label,
            report.ordered,
            report.parked,
            report.cancelled,
            report.errors
        );
    }
    let t = Instant::now();
    let licenses = rest.settled(n).await?;
    let settled = t.elapsed();
    let pool = rest.get("/v1/pool").await?;
    let pro = pool["tariffs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["tariffId"] == PRO_TARIFF);
    // An amount the pool does not show (no Pro entry, or no reuse yet) is nothing.
    let field = |name: &str| {
        pro.and_then(|t| t[name].as_str())
            .filter(|v| !v.is_empty())
            .unwrap_or("0.00")
            .to_owned()
    };
    let counted = Counted {
        purchases: sandbox.carried_out("soft.order.param") - orders0,
        reuses: licenses
            .iter()
            .filter(|l| l["reusedFrom"].as_str().is_some_and(|id| !id.is_empty()))
            .count(),
        released: report.released,
        parked: report.parked,
        cancelled: report.cancelled,
        upstream_deletions: sandbox.carried_out("soft.delete") - deletions0,
        charged_cents: balance0 - sandbox.balance(),
        pool_parked: pro.and_then(|t| t["parked"].as_u64()).unwrap_or(0),
        pool_monthly: field("monthlyCost"),
        pool_saved: field("saved"),
        pass,
        settled,
    };
    drop(facade);
    Ok(counted)
}

/// Deletes hosts through the platform's REST API, as its operator would.
async fn delete_hosts(
    platform: &PlatformSimHandle,
    url: &str,
    hosts: &[u64],
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let token: Value = serde_json::from_slice(
        &http
            .post(format!("{url}/auth/v4/public/token"))
            .body(r#"{"email":"admin@example.com","password":"demo"}"#)
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let token = token["token"].as_str().context("a session token")?;
    for host in hosts {
        http.delete(format!("{url}/vm/v3/host/{host}"))
            .header("x-xsrf-token", token)
            .send()
            .await?
            .error_for_status()?;
    }
    platform.finish_tasks();
    Ok(())
}

/// The service's REST API as its admin client.
struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(license_facade::auth::SANDBOX_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        Ok(serde_json::from_slice(&answer.bytes().await?)?)
    }

    /// Every license, newest first.
    async fn licenses(&self) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .get(&format!("/v1/licenses?pageSize=1000&pageToken={token}"))
                .await?;
            all.extend(page["licenses"].as_array().cloned().unwrap_or_default());
            match page["nextPageToken"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_owned(),
                _ => return Ok(all),
            }
        }
    }

    /// Waits until `n` licenses are ACTIVE and none is on its way (being ordered,
    /// cancelled, parked or moved); the licenses then.
    async fn settled(&self, n: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let licenses = self.licenses().await?;
            let count = |states: &[&str]| {
                licenses
                    .iter()
                    .filter(|l| states.iter().any(|s| l["state"] == *s))
                    .count()
            };
            let busy = count(&["PENDING", "PROVISIONING", "NEEDS_ATTENTION"]);
            if count(&["ACTIVE"]) == n && busy == 0 {
                return Ok(licenses);
            }
            if Instant::now() > deadline {
                bail!(
                    "after 10 minutes {} ACTIVE of {n}, {busy} on their way",
                    count(&["ACTIVE"])
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
