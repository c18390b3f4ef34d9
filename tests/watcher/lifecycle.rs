//! Servers come, move, change panel and go; their licenses follow, each bought once.

use std::time::Duration;

use crate::harness::{Chain, LITE_TARIFF, PRO, PRO_TARIFF, Spec, is_live, live_of, pass, sid};

#[tokio::test]
async fn fifty_marked_servers_get_fifty_active_licenses_and_ten_deleted_ones_are_cancelled_after_the_grace_only()
 {
    // Arrange: 50 hosts created with the marker, through the platform's API.
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 50, PRO).await;
    let spec = Spec {
        absent_listings: 2,
        grace_secs: 600,
        ..Spec::default()
    };
    let watcher = chain.watcher(&spec);

    // Act: one pass orders them all.
    let first = pass(&watcher).await;

    // Assert
    assert!(first.listing.complete, "{:?}", first.listing);
    assert_eq!((first.ordered, first.errors), (50, 0), "{:#?}", first.steps);
    let licenses = chain.all_active(50).await;
    for host in &hosts {
        assert!(
            live_of(&licenses, &sid(*host)).is_some(),
            "host {host} has a license"
        );
    }
    assert_eq!(chain.purchases(), 50);
    let again = pass(&watcher).await;
    assert_eq!((again.ordered, again.in_order), (0, 50));

    // Act: ten hosts are deleted.
    let gone = &hosts[..10];
    for host in gone {
        chain.vm.delete_host(*host).await;
    }
    let one = pass(&watcher).await;
    let two = pass(&watcher).await;

    // Assert: absent from two complete listings, but the grace period is not over.
    assert_eq!((one.cancelled, two.cancelled), (0, 0));
    assert_eq!(two.pending.len(), 10);
    assert!(
        two.pending
            .iter()
            .all(|p| p.listings == 2 && p.grace_ends == p.since + 600)
    );
    assert_eq!(chain.live_upstream(), 50);

    // Act: the grace period passes.
    watcher.advance_clock(Duration::from_secs(600));
    let due = pass(&watcher).await;

    // Assert: exactly those ten are cancelled, upstream too, and nothing else.
    assert_eq!((due.cancelled, due.errors), (10, 0), "{:#?}", due.steps);
    let licenses = chain
        .licenses_when("40 live, 10 cancelled", |ls| {
            ls.iter().filter(|l| is_live(l)).count() == 40
                && ls.iter().filter(|l| l["state"] == "CANCELLED").count() == 10
        })
        .await;
    for host in gone {
        assert!(live_of(&licenses, &sid(*host)).is_none());
    }
    assert_eq!(chain.live_upstream(), 40);
    assert_eq!(chain.upstream_deletions(), 10);
    let after = pass(&watcher).await;
    assert_eq!(
        (after.cancelled, after.ordered, after.pending.len()),
        (0, 0, 0)
    );
    assert_eq!(chain.purchases(), 50);
    // Every action is in the audit log under the watcher's own client.
    let audit = chain.audit().await;
    let by_watcher = |action: &str| {
        audit
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == "SUCCEEDED")
            .map(|e| e["client"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let (orders, cancels) = (by_watcher("ORDER"), by_watcher("CANCEL"));
    assert_eq!(orders.len(), 50, "{orders:?}");
    assert_eq!(cancels.len(), 10, "{cancels:?}");
    assert!(
        orders.iter().chain(&cancels).all(|c| *c == "watcher"),
        "{orders:?} {cancels:?}"
    );
}

#[tokio::test]
async fn five_address_changes_move_their_licenses_and_buy_nothing() {
    // Arrange
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 8, PRO).await;
    let watcher = chain.watcher(&Spec::default());
    assert_eq!(pass(&watcher).await.ordered, 8);
    chain.all_active(8).await;

    // Act: five hosts get another address.
    let mut moved = Vec::new();
    for host in &hosts[..5] {
        moved.push((*host, chain.vm.change_address(*host).await));
    }
    let report = pass(&watcher).await;

    // Assert
    assert_eq!(
        (report.moved, report.ordered, report.errors),
        (5, 0, 0),
        "{:#?}",
        report.steps
    );
    let licenses = chain
        .licenses_when("moved and active", |ls| {
            moved.iter().all(|(host, ip)| {
                live_of(ls, &sid(*host)).is_some_and(|l| l["ip"] == *ip && l["state"] == "ACTIVE")
            })
        })
        .await;
    assert_eq!(licenses.iter().filter(|l| is_live(l)).count(), 8);
    for (_, ip) in &moved {
        assert_eq!(
            chain.sandbox.live_on(ip).len(),
            1,
            "one upstream license on {ip}"
        );
    }
    assert_eq!(chain.purchases(), 8, "a move buys nothing");
    assert_eq!(pass(&watcher).await.in_order, 8);
}

#[tokio::test]
async fn a_changed_panel_marker_switches_the_tariff_of_the_same_license() {
    // Arrange
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 3, PRO).await;
    let watcher = chain.watcher(&Spec::default());
    pass(&watcher).await;
    let before = chain.all_active(3).await;
    let license_id = live_of(&before, &sid(hosts[0])).unwrap()["id"].clone();
    let upstream =
        |l: &serde_json::Value| -> u64 { l["upstreamId"].as_str().unwrap().parse().unwrap() };
    let upstream_id = upstream(live_of(&before, &sid(hosts[0])).unwrap());
    assert_eq!(
        chain.sandbox.handle.license(upstream_id).unwrap().tariff_id,
        PRO_TARIFF
    );

    // Act
    chain
        .vm
        .set_comment(hosts[0], "customer 42; panel=ispmanager-6-lite")
        .await;
    let report = pass(&watcher).await;

    // Assert: the same license, now Lite, upstream too; nothing bought.
    assert_eq!(
        (report.panel_changed, report.ordered),
        (1, 0),
        "{:#?}",
        report.steps
    );
    let after = chain
        .licenses_when("switched to Lite", |ls| {
            live_of(ls, &sid(hosts[0]))
                .is_some_and(|l| l["panel"] == "ISPmanager 6 Lite" && l["state"] == "ACTIVE")
        })
        .await;
    let license = live_of(&after, &sid(hosts[0])).unwrap();
    assert_eq!(license["id"], license_id);
    assert_eq!(upstream(license), upstream_id, "the same upstream license");
    assert_eq!(
        chain.sandbox.handle.license(upstream_id).unwrap().tariff_id,
        LITE_TARIFF
    );
    assert_eq!(chain.purchases(), 3);
}

#[tokio::test]
async fn an_unmarked_server_loses_its_license_like_a_gone_one() {
    // Arrange
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 4, PRO).await;
    let watcher = chain.watcher(&Spec {
        absent_listings: 1,
        grace_secs: 0,
        ..Spec::default()
    });
    pass(&watcher).await;
    chain.all_active(4).await;

    // Act
    chain.vm.set_comment(hosts[1], "panel=none").await;
    let report = pass(&watcher).await;

    // Assert
    assert_eq!(report.cancelled, 1, "{:#?}", report.steps);
    let licenses = chain
        .licenses_when("3 live", |ls| ls.iter().filter(|l| is_live(l)).count() == 3)
        .await;
    assert!(live_of(&licenses, &sid(hosts[1])).is_none());

    // Act: marked again, it gets a new license (a new generation, a new request id).
    chain.vm.set_comment(hosts[1], PRO).await;
    let report = pass(&watcher).await;
    assert_eq!(report.ordered, 1, "{:#?}", report.steps);
    chain.all_active(4).await;
    assert_eq!(chain.purchases(), 5);
}
