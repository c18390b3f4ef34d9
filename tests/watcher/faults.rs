//! A listing that is not known to be complete never cancels anything.

use license_facade::platform::sim::SimFaults;

use crate::harness::{Chain, PRO, Spec, is_live, pass};

/// Cancel as soon as any complete listing lacks a server: only the completeness
/// verdict stands between a fault and a cancellation.
fn eager() -> Spec {
    Spec {
        absent_listings: 1,
        grace_secs: 0,
        max_share: 1.0,
        page_size: 4,
        ..Spec::default()
    }
}

#[tokio::test]
async fn a_busy_empty_cut_failing_or_expiring_platform_cancels_nothing() {
    // Arrange: ten licensed hosts, two of them then deleted for real.
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 10, PRO).await;
    let watcher = chain.watcher(&eager());
    assert_eq!(pass(&watcher).await.ordered, 10);
    chain.all_active(10).await;
    chain.vm.delete_host(hosts[0]).await;
    chain.vm.delete_host(hosts[1]).await;

    // Act and assert: each fault in turn, one pass each.
    let faults = [
        (
            "503 throughout",
            SimFaults {
                busy_rate: 1.0,
                ..SimFaults::default()
            },
        ),
        (
            "an empty list",
            SimFaults {
                empty_list: true,
                ..SimFaults::default()
            },
        ),
        (
            "a list cut short",
            SimFaults {
                cut_list: 3,
                ..SimFaults::default()
            },
        ),
        (
            "a failing page",
            SimFaults {
                fail_page_at: Some(4),
                ..SimFaults::default()
            },
        ),
        (
            "503 mid-listing",
            SimFaults {
                busy_page_at: Some((4, 1000)),
                ..SimFaults::default()
            },
        ),
    ];
    for (what, fault) in faults {
        chain.platform.set_faults(fault);
        let report = pass(&watcher).await;
        assert!(!report.listing.complete, "{what}: {:?}", report.listing);
        assert_eq!(report.cancelled, 0, "{what}");
        assert!(report.pending.is_empty(), "{what}: no absence counted");
    }
    chain.platform.set_faults(SimFaults::default());
    // Sessions that expire at every second call: no run gets through.
    chain.platform.set_session_max_calls(Some(1));
    let report = pass(&watcher).await;
    assert!(!report.listing.complete, "{:?}", report.listing);
    assert_eq!(report.cancelled, 0);
    assert_eq!(chain.upstream_deletions(), 0);
    assert_eq!(
        chain.licenses().await.iter().filter(|l| is_live(l)).count(),
        10
    );

    // Act: the platform recovers.
    chain.platform.set_session_max_calls(None);
    chain.platform.expire_sessions();
    let report = pass(&watcher).await;

    // Assert: the real absences, and only they, are acted on.
    assert!(report.listing.complete);
    assert_eq!(
        (report.cancelled, report.errors),
        (2, 0),
        "{:#?}",
        report.steps
    );
    chain
        .licenses_when("8 live", |ls| ls.iter().filter(|l| is_live(l)).count() == 8)
        .await;
    assert_eq!(chain.purchases(), 10);
}

#[tokio::test]
async fn a_pass_that_would_cancel_most_licenses_stops_and_reports() {
    // Arrange: a filter that (wrongly) hides eight of ten hosts.
    let chain = Chain::start().await;
    chain.vm.create_hosts("web", 10, PRO).await;
    let watcher = chain.watcher(&eager());
    pass(&watcher).await;
    chain.all_active(10).await;
    let broken = chain.watcher(&Spec {
        name: "broken".into(),
        max_share: 0.25,
        min_allowed: 1,
        platform_extra: "filter = \"id LT 3\"".into(),
        ..eager()
    });

    // Act
    let report = pass(&broken).await;

    // Assert
    assert!(report.listing.complete);
    assert_eq!(report.cancelled, 0);
    let blocked = report.blocked.expect("the pass stops");
    assert!(blocked.contains("8 cancellations are due"), "{blocked}");
    assert!(report.pending.iter().all(|p| p.held_by_limit));
    assert_eq!(chain.upstream_deletions(), 0);
    assert!(
        broken
            .board()
            .metrics()
            .contains("license_facade_watcher_cancellations_blocked 1")
    );
}

#[tokio::test]
async fn a_busy_platform_at_log_in_is_waited_for() {
    // Arrange
    let chain = Chain::start().await;
    chain.vm.create_hosts("web", 3, PRO).await;
    let watcher = chain.watcher(&eager());
    chain.platform.set_faults(SimFaults {
        busy_next: 2,
        ..SimFaults::default()
    });

    // Act
    let report = pass(&watcher).await;

    // Assert: the platform woke up; the listing is whole.
    assert!(report.listing.complete, "{:?}", report.listing);
    assert_eq!(report.ordered, 3);
    assert_eq!(chain.platform.calls("503"), 2);
}
