//! The guest side: the recipe waits for its server's license before it runs the
//! installer, asking the watcher's guest endpoint with no credential.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use license_facade::watcher::{Listeners, Watcher, WatcherConfig, serve};
use tokio_util::sync::CancellationToken;

use crate::harness::{Chain, PRO, Spec};

/// A script at `path` that records its arguments in `path.args`.
fn stub(path: &Path) {
    let record = format!("{}.args", path.display());
    std::fs::write(path, format!("#!/bin/sh\necho \"$@\" >> '{record}'\n")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Runs the recipe as a guest calling from `address` (through the trusted proxy
/// header); its exit code.
fn run_recipe(dir: &Path, guest: &str, address: &str, wait_secs: u32) -> i32 {
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/recipes/ispmanager-license.sh"
    );
    Command::new("sh")
        .arg(recipe)
        .env("LF_GUEST_URL", format!("http://{guest}"))
        .env("LF_WAIT_SECS", wait_secs.to_string())
        .env("LF_POLL_SECS", "1")
        .env("LF_INSTALLER", dir.join("install.sh"))
        .env("LF_LICCTL", dir.join("licctl"))
        .env("LF_CURL_OPTS", format!("-H X-Forwarded-For:{address}"))
        .status()
        .expect("sh runs")
        .code()
        .unwrap_or(-1)
}

#[tokio::test]
async fn the_recipe_installs_the_licensed_panel_only_once_the_license_is_active() {
    // Arrange: a marked host, a watcher serving its guest listener.
    let chain = Chain::start().await;
    chain.vm.create_host("web", PRO).await;
    let spec = Spec {
        extra: "[guest]\naddr = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n".into(),
        ..Spec::default()
    };
    let config = WatcherConfig::load(&chain.write_config(&spec)).unwrap();
    let listeners = Listeners::bind(&config).await.unwrap();
    let guest = listeners.guest_addr().unwrap().to_string();
    let watcher = Arc::new(Watcher::new(config).unwrap());
    let stop = CancellationToken::new();
    let served = tokio::spawn(serve(watcher, listeners, stop.clone().cancelled_owned()));
    let dir = tempfile::tempdir().unwrap();
    stub(&dir.path().join("install.sh"));
    stub(&dir.path().join("licctl"));
    let installs = dir.path().join("install.sh.args");

    // Act: a guest whose address has no license gives up without installing.
    let (d, g) = (dir.path().to_owned(), guest.clone());
    let stranger = tokio::task::spawn_blocking(move || run_recipe(&d, &g, "198.51.100.99", 0))
        .await
        .unwrap();

    // Assert
    assert_eq!(stranger, 1);
    assert!(!installs.exists(), "no install without a license");

    // Act: the licensed host's guest waits for ACTIVE, then installs.
    let licenses = chain.all_active(1).await;
    let ip = licenses[0]["ip"].as_str().unwrap().to_owned();
    let (d, g) = (dir.path().to_owned(), guest);
    let licensed = tokio::task::spawn_blocking(move || run_recipe(&d, &g, &ip, 60))
        .await
        .unwrap();

    // Assert: the Pro package, ISPsystem's recipe options, then the license fetched.
    assert_eq!(licensed, 0);
    assert_eq!(
        std::fs::read_to_string(&installs).unwrap().trim(),
        "--silent --ignore-hostname --ispmgr6 ispmanager-pro"
    );
    let fetched = dir.path().join("licctl.args");
    assert_eq!(
        std::fs::read_to_string(fetched).unwrap().trim(),
        "fetch ispmgr"
    );
    stop.cancel();
    served.await.unwrap().unwrap();
}
