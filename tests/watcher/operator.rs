//! What operators and guests see: the dry run, metrics, the status page, the guest
//! endpoint, and a DCImanager platform.

use std::sync::Arc;
use std::time::Duration;

use license_facade::watcher::{Listeners, PassMode, WatcherConfig, serve};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::{Chain, PRO, Spec, pass, sid};

#[tokio::test]
async fn a_dry_run_plans_and_sends_nothing() {
    // Arrange
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 3, PRO).await;
    let spec = Spec::default();
    let watcher = chain.watcher(&spec);

    // Act
    let plan = watcher
        .pass(PassMode {
            dry_run: true,
            allow_mass_cancel: false,
        })
        .await
        .unwrap();

    // Assert
    assert!(plan.dry_run);
    let ordered: Vec<_> = plan.steps.iter().filter(|s| s.action == "order").collect();
    assert_eq!(ordered.len(), 3);
    assert!(ordered.iter().all(|s| s.result == "planned"));
    assert_eq!(ordered[0].server_id, sid(hosts[0]));
    assert_eq!(ordered[0].panel.as_deref(), Some("ISPmanager 6 Pro"));
    assert!(chain.licenses().await.is_empty());
    assert_eq!(chain.purchases(), 0);
    assert!(
        !spec.state_file(chain.dir.path()).exists(),
        "a dry run writes no bookkeeping"
    );
    // The plan's request ids are the ones the real pass then sends.
    let real = pass(&watcher).await;
    let ids = |r: &license_facade::watcher::PassReport| {
        let mut ids: Vec<String> = r.steps.iter().map(|s| s.request_id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&plan), ids(&real));
}

#[tokio::test]
async fn the_watcher_serves_metrics_a_status_page_and_the_guest_answer() {
    // Arrange: a watcher serving both listeners, passing every second.
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 2, PRO).await;
    let spec = Spec {
        extra: "[http]\naddr = \"127.0.0.1:0\"\n[guest]\naddr = \"127.0.0.1:0\"\n\
                trusted_proxies = [\"127.0.0.1/32\"]\n"
            .into(),
        ..Spec::default()
    };
    let config = WatcherConfig::load(&chain.write_config(&spec)).unwrap();
    let listeners = Listeners::bind(&config).await.unwrap();
    let (http, guest) = (
        listeners.http_addr().unwrap(),
        listeners.guest_addr().unwrap(),
    );
    let watcher = Arc::new(license_facade::watcher::Watcher::new(config).unwrap());
    let stop = CancellationToken::new();
    let served = tokio::spawn(serve(
        watcher.clone(),
        listeners,
        stop.clone().cancelled_owned(),
    ));
    let licenses = chain.all_active(2).await;
    let ip = licenses[0]["ip"].as_str().unwrap().to_owned();

    // Act
    let client = crate::support::http_client().build().unwrap();
    let metrics = client
        .get(format!("http://{http}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status: Value = client
        .get(format!("http://{http}/status?format=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = client
        .get(format!("http://{http}/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let guest_answer = |forwarded: Option<String>| {
        let mut request = client.get(format!("http://{guest}/guest/license"));
        if let Some(addr) = forwarded {
            request = request.header("x-forwarded-for", addr);
        }
        request.send()
    };
    let mine = guest_answer(Some(ip.clone())).await.unwrap();
    let (mine_status, mine): (u16, Value) = (mine.status().as_u16(), mine.json().await.unwrap());
    let stranger = guest_answer(Some("198.51.100.200".into())).await.unwrap();
    let not_forwarded = guest_answer(None).await.unwrap();
    let operator_route_on_guest = client
        .get(format!("http://{guest}/status"))
        .send()
        .await
        .unwrap();

    // Assert
    assert!(
        metrics.contains("license_facade_watcher_servers_seen 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("license_facade_watcher_licenses_ordered_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("license_facade_watcher_last_complete_listing_timestamp_seconds"));
    assert_eq!(status["servers"].as_array().unwrap().len(), 2);
    assert_eq!(status["servers"][0]["server_id"], sid(hosts[0]));
    assert!(page.contains(&sid(hosts[1])) && page.contains("ISPmanager 6 Pro"));
    assert_eq!(
        (mine_status, mine["state"].as_str()),
        (200, Some("ACTIVE")),
        "{mine}"
    );
    assert_eq!(mine["panel"], "ISPmanager 6 Pro");
    assert!(
        mine.get("licenseKey").is_none() && mine.get("id").is_none(),
        "only the state: {mine}"
    );
    assert_eq!(stranger.status(), 404);
    assert_eq!(not_forwarded.status(), 404, "127.0.0.1 has no license");
    assert_eq!(operator_route_on_guest.status(), 404);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_status_page_lists_pending_cancellations_with_their_deadline() {
    // Arrange
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 4, PRO).await;
    let watcher = chain.watcher(&Spec::default());
    pass(&watcher).await;
    chain.all_active(4).await;
    chain.vm.delete_host(hosts[2]).await;

    // Act
    let report = pass(&watcher).await;
    let snapshot = serde_json::to_value(watcher.board().snapshot()).unwrap();

    // Assert
    assert_eq!(report.pending.len(), 1);
    let pending = &snapshot["pending"][0];
    assert_eq!(pending["server_id"], sid(hosts[2]));
    assert_eq!(pending["listings"], 1);
    assert_eq!(pending["listings_needed"], 3);
    assert_eq!(
        pending["grace_ends"].as_i64().unwrap() - pending["since"].as_i64().unwrap(),
        3600
    );
    assert!(
        watcher
            .board()
            .metrics()
            .contains("license_facade_watcher_pending_cancellations 1")
    );
}

#[tokio::test]
async fn a_dcimanager_platform_is_watched_the_same_way() {
    // Arrange: servers racked on the simulated DCImanager, marked through its API.
    let chain = Chain::start().await;
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            let ip = format!("198.51.100.{}", 20 + i).parse().unwrap();
            chain
                .platform
                .add_dci_server(&format!("rack-u{i}"), &[ip], "")
        })
        .collect();
    let client = crate::support::http_client().build().unwrap();
    for id in &ids {
        let answer = client
            .post(format!("{}/api/dci/v3/server/{id}", chain.platform_url))
            .header("x-xsrf-token", chain.vm.token())
            .json(&serde_json::json!({"tags": ["lic_ISPmanager_6_Host"]}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    let watcher = chain.watcher(&Spec {
        kind: "dcimanager6",
        absent_listings: 1,
        grace_secs: 0,
        ..Spec::default()
    });

    // Act
    let report = pass(&watcher).await;

    // Assert
    assert_eq!(report.ordered, 3, "{:#?}", report.steps);
    let licenses = chain.all_active(3).await;
    assert!(licenses.iter().all(|l| l["panel"] == "ISPmanager 6 Host"));
    assert!(
        licenses
            .iter()
            .any(|l| l["serverId"] == format!("dci6-t:{}", ids[0]))
    );
    // A decommissioned server's license goes.
    chain.platform.remove_dci_server(ids[1]);
    assert_eq!(pass(&watcher).await.cancelled, 1);
}
