//! The watcher as a child process (`license-facade watch --once`), killed with
//! SIGKILL in the middle of its passes: a restarted watcher repeats nothing that was
//! done and loses nothing that was decided.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::harness::{Chain, PRO, Spec, is_live, sid};

/// Runs `watch --config <config> --once`; SIGKILLs it after its `kill_after`-th log
/// line with `message` (`None`: lets it finish). Whether it was killed mid-pass.
fn run_watcher(config: &Path, message: &str, kill_after: Option<usize>) -> bool {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .args(["watch", "--once", "--config"])
        .arg(config)
        .env("LICENSE_FACADE_LOG_FORMAT", "json")
        .env("LICENSE_FACADE_LOG", "info")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let needle = format!("\"message\":\"{message}\"");
    let mut seen = 0;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains(&needle) {
            seen += 1;
            if Some(seen) == kill_after {
                // Still running: the kill lands mid-pass, with more calls to come.
                killed = child.try_wait().unwrap().is_none();
                child.kill().expect("SIGKILL");
                break;
            }
        }
    }
    let status = child.wait().expect("reaped");
    if kill_after.is_none() {
        assert!(status.success(), "the final pass ends well: {status}");
    }
    killed
}

#[tokio::test]
async fn a_watcher_killed_mid_pass_five_times_buys_nothing_twice_and_loses_no_cancellation() {
    // Arrange: 40 hosts; a watcher that cancels as soon as a complete listing lacks
    // a server, one call at a time (so a kill lands between calls or during one).
    let chain = Chain::start().await;
    let hosts = chain.vm.create_hosts("web", 40, PRO).await;
    let spec = Spec {
        absent_listings: 1,
        grace_secs: 0,
        max_share: 1.0,
        concurrency: 1,
        ..Spec::default()
    };
    let config = chain.write_config(&spec);
    let dir = chain.dir.path().to_owned();

    // Act: three runs killed while ordering, then one to the end.
    let mut kills = 0;
    for _ in 0..3 {
        let config = config.clone();
        kills += usize::from(
            tokio::task::spawn_blocking(move || run_watcher(&config, "license ensured", Some(4)))
                .await
                .unwrap(),
        );
    }
    let c = config.clone();
    tokio::task::spawn_blocking(move || run_watcher(&c, "license ensured", None))
        .await
        .unwrap();

    // Assert: forty servers, forty purchases, one live license each.
    let licenses = chain.all_active(40).await;
    assert_eq!(chain.purchases(), 40);
    for host in &hosts {
        let live = licenses
            .iter()
            .filter(|l| l["serverId"] == sid(*host) && is_live(l))
            .count();
        assert_eq!(live, 1, "host {host}");
    }

    // Act: twenty hosts go; two runs killed while cancelling, then one to the end.
    for host in &hosts[..20] {
        chain.vm.delete_host(*host).await;
    }
    for _ in 0..2 {
        let config = config.clone();
        kills += usize::from(
            tokio::task::spawn_blocking(move || run_watcher(&config, "license cancelled", Some(3)))
                .await
                .unwrap(),
        );
    }
    let c = config.clone();
    tokio::task::spawn_blocking(move || run_watcher(&c, "license cancelled", None))
        .await
        .unwrap();

    // Assert: every cancellation made, each once, nothing else touched.
    let licenses = chain
        .licenses_when("20 live, 20 cancelled", |ls| {
            ls.iter().filter(|l| is_live(l)).count() == 20
                && ls.iter().filter(|l| l["state"] == "CANCELLED").count() == 20
        })
        .await;
    for host in &hosts[20..] {
        assert!(
            licenses
                .iter()
                .any(|l| l["serverId"] == sid(*host) && l["state"] == "ACTIVE")
        );
    }
    assert_eq!(chain.upstream_deletions(), 20);
    assert_eq!(chain.purchases(), 40);
    assert_eq!(kills, 5, "every kill landed mid-pass");
    assert!(spec.state_file(&dir).exists());
}
