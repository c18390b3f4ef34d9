//! Churn with the park policy: servers deleted and as many created with the same
//! panel. The gone servers' licenses are released to the service's pool and the new
//! servers' orders take them instead of buying; with the cancel policy the same churn
//! buys one license per new server.

use std::collections::BTreeSet;

use license_facade::domain::PoolConfig;
use license_facade::platform::sim::PlatformSimConfig;
use license_facade::watcher::{PassReport, Watcher};
use serde_json::Value;

use crate::harness::{Chain, PRO, PRO_TARIFF, Spec, pass};
use crate::support::sandbox_config;

/// Servers licensed, then deleted, and created anew.
const CHURN: usize = 20;

/// What a churn left behind.
struct Churned {
    chain: Chain,
    watcher: Watcher,
    /// The pass that saw the old servers gone and the new ones there.
    report: PassReport,
    /// The licenses of the deleted servers.
    old: BTreeSet<String>,
    /// Upstream purchases and deletions before the churn.
    purchases: u64,
    deletions: u64,
}

/// A chain whose sandbox and pool let a parked license move at once (both cooldowns
/// 0); the watcher ends a gone server's license by `release` at the first complete
/// listing it is missing from.
async fn churn(release: &'static str) -> Churned {
    let sandbox = license_facade::sandbox::SandboxConfig {
        ip_change_cooldown_days: 0,
        key_change_cooldown_days: 0,
        ..sandbox_config()
    };
    let chain = Chain::start_on(sandbox, PlatformSimConfig::default(), |s| {
        s.pool = PoolConfig {
            ip_change_cooldown_days: 0,
            key_change_cooldown_days: 0,
            ..PoolConfig::default()
        };
    })
    .await;
    let hosts = chain.vm.create_hosts("old", CHURN, PRO).await;
    let watcher = chain.watcher(&Spec {
        absent_listings: 1,
        grace_secs: 0,
        max_share: 1.0,
        release,
        ..Spec::default()
    });
    assert_eq!(pass(&watcher).await.ordered, CHURN);
    let old: BTreeSet<String> = chain
        .all_active(CHURN)
        .await
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let (purchases, deletions) = (chain.purchases(), chain.upstream_deletions());
    assert_eq!(purchases, CHURN as u64);

    for host in &hosts {
        chain.vm.delete_host(*host).await;
    }
    chain.vm.create_hosts("new", CHURN, PRO).await;
    let report = pass(&watcher).await;
    assert_eq!(report.errors, 0, "{:#?}", report.steps);
    assert_eq!(report.ordered, CHURN, "{:#?}", report.steps);
    Churned {
        chain,
        watcher,
        report,
        old,
        purchases,
        deletions,
    }
}

/// The next pass, once the churn has settled, has nothing to do.
async fn settled(watcher: &Watcher) {
    let after = pass(watcher).await;
    assert_eq!(
        (
            after.ordered,
            after.cancelled,
            after.released,
            after.in_order
        ),
        (0, 0, 0, CHURN),
        "{:#?}",
        after.steps
    );
}

/// The license a license took from the pool, if it took one.
fn reused_from(license: &Value) -> Option<&str> {
    license["reusedFrom"].as_str().filter(|id| !id.is_empty())
}

fn ids_where(licenses: &[Value], state: &str) -> BTreeSet<String> {
    licenses
        .iter()
        .filter(|l| l["state"] == state)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn with_the_park_policy_twenty_new_servers_take_the_twenty_gone_ones_licenses_and_buy_nothing()
 {
    // Arrange, Act: 20 servers licensed, deleted, and 20 new ones created.
    let Churned {
        chain,
        watcher,
        report,
        old,
        purchases,
        deletions,
    } = churn("park").await;

    // Assert: every gone server's license was parked, then taken by a new server.
    assert_eq!(
        (report.released, report.parked, report.cancelled),
        (CHURN, CHURN, 0),
        "{:#?}",
        report.steps
    );
    assert!(
        report
            .steps
            .iter()
            .filter(|s| s.action == "release")
            .all(|s| s.outcome == Some("parked") && s.request_id.starts_with("lfw-rel-")),
        "{:#?}",
        report.steps
    );
    let licenses = chain
        .licenses_when("20 reuses ACTIVE and 20 REUSED", |ls| {
            ids_where(ls, "REUSED").len() == CHURN
                && ls
                    .iter()
                    .filter(|l| l["state"] == "ACTIVE" && reused_from(l).is_some())
                    .count()
                    == CHURN
        })
        .await;
    assert_eq!(ids_where(&licenses, "REUSED"), old);
    let reused_from: BTreeSet<String> = licenses
        .iter()
        .filter_map(|l| reused_from(l).map(str::to_owned))
        .collect();
    assert_eq!(reused_from, old, "each gone license taken once");
    assert_eq!(chain.purchases(), purchases, "nothing bought");
    assert_eq!(chain.upstream_deletions(), deletions, "nothing cancelled");
    assert_eq!(
        chain.live_upstream(),
        CHURN,
        "the same 20 upstream licenses"
    );
    assert!(ids_where(&licenses, "CANCELLED").is_empty());
    let (status, pool) = chain.get("/v1/pool").await;
    assert_eq!(status, 200, "{pool}");
    let pro = pool["tariffs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tariffId"] == PRO_TARIFF)
        .unwrap_or_else(|| panic!("the Pro pool: {pool}"));
    assert_eq!(pro["reuses"], CHURN, "{pool}");
    assert_eq!(pro["parked"].as_u64().unwrap_or(0), 0, "{pool}");
    settled(&watcher).await;
}

#[tokio::test]
async fn with_the_cancel_policy_the_same_churn_cancels_twenty_and_buys_twenty() {
    // Arrange, Act
    let Churned {
        chain,
        watcher,
        report,
        old,
        purchases,
        deletions,
    } = churn("cancel").await;

    // Assert
    assert_eq!(
        (report.cancelled, report.released, report.parked),
        (CHURN, 0, 0),
        "{:#?}",
        report.steps
    );
    let licenses = chain
        .licenses_when("20 cancelled and 20 new ACTIVE", |ls| {
            ids_where(ls, "CANCELLED").len() == CHURN && ids_where(ls, "ACTIVE").len() == CHURN
        })
        .await;
    assert_eq!(ids_where(&licenses, "CANCELLED"), old);
    assert!(licenses.iter().all(|l| reused_from(l).is_none()));
    assert_eq!(chain.purchases(), purchases + CHURN as u64);
    assert_eq!(chain.upstream_deletions(), deletions + CHURN as u64);
    settled(&watcher).await;
}
