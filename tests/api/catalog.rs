//! The catalog check against the upstream price list.

use std::process::Command;

const CATALOG: &str = r#"
[[catalog.panels]]
name = "ISPmanager 6 Lite"
tariff_id = 55227

[[catalog.panels]]
name = "Ghost Panel"
tariff_id = 99999
"#;

#[test]
fn panels_check_reports_a_panel_the_upstream_does_not_offer_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, CATALOG).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .args(["panels", "--check", "--sandbox", "--config"])
        .arg(&config)
        .env("LICENSE_FACADE_LOG", "error")
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok       ISPmanager 6 Lite"), "{stdout}");
    assert!(stdout.contains("MISSING  Ghost Panel"), "{stdout}");
}

#[test]
fn panels_check_passes_with_the_default_catalog() {
    let output = Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .args(["panels", "--check", "--sandbox"])
        .env("LICENSE_FACADE_LOG", "error")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with("ok"))
            .count(),
        6
    );
}
