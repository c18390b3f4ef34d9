//! Two watchers on one platform (a second one for availability, or started by
//! mistake): every license is still bought once, every move made once.

use license_facade::watcher::PassReport;

use crate::harness::{Chain, PRO, Spec, is_live, live_of, pass, sid};

/// The failed calls of a report that are not the API's "the same request is still
/// running" answer (ABORTED): the one refusal two watchers sending the same request
/// id at the same moment may meet, retried at the next pass.
fn real_errors(r: &PassReport) -> Vec<String> {
    r.steps
        .iter()
        .filter_map(|s| s.error.clone())
        .filter(|e| !e.starts_with("Aborted"))
        .collect()
}

#[tokio::test]
async fn two_watchers_on_one_platform_buy_each_license_once() {
    // Arrange: two watchers of the same instance, each with its own state file.
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 20, PRO).await;
    let spec = |name: &str| Spec {
        name: name.into(),
        concurrency: 4,
        ..Spec::default()
    };
    let (a, b) = (chain.watcher(&spec("a")), chain.watcher(&spec("b")));

    // Act: both pass at the same time, twice.
    for _ in 0..2 {
        let (ra, rb) = tokio::join!(pass(&a), pass(&b));
        assert!(
            real_errors(&ra).is_empty() && real_errors(&rb).is_empty(),
            "{ra:#?} {rb:#?}"
        );
    }

    // Assert
    chain.all_active(20).await;
    assert_eq!(chain.purchases(), 20);

    // Act: four hosts move; both watchers see it at the same time.
    let mut moved = Vec::new();
    for host in &hosts[..4] {
        moved.push((*host, chain.vm.change_address(*host).await));
    }
    for _ in 0..2 {
        let (ra, rb) = tokio::join!(pass(&a), pass(&b));
        assert!(
            real_errors(&ra).is_empty() && real_errors(&rb).is_empty(),
            "{ra:#?} {rb:#?}"
        );
    }

    // Assert: moved, one upstream license on each new address, nothing bought.
    let licenses = chain
        .licenses_when("moved", |ls| {
            moved.iter().all(|(host, ip)| {
                live_of(ls, &sid(*host)).is_some_and(|l| l["ip"] == *ip && l["state"] == "ACTIVE")
            })
        })
        .await;
    assert_eq!(licenses.iter().filter(|l| is_live(l)).count(), 20);
    for (_, ip) in &moved {
        assert_eq!(chain.sandbox.live_on(ip).len(), 1, "{ip}");
    }
    assert_eq!(chain.live_upstream(), 20);
    assert_eq!(chain.purchases(), 20);
}
