//! `license-facade doctor` against a standalone sandbox: every check passes on a good
//! account, the report says what the answer shapes mean, and nothing is bought or
//! changed (the sandbox's call log shows no mutating function). With `--sandbox` (a
//! sandbox of its own, empty at first) it orders one license and reads it back through
//! `soft.edit` and the list, and reports the shapes of those answers.

use license_facade::config::{ServeArgs, Settings};
use license_facade::doctor::{Check, examine};
use license_facade::sandbox::{
    NewSandboxLicense, OrderIdAt, Sandbox, SandboxConfig, SandboxHandle, SavedFilter,
};

/// Functions that change something upstream.
const MUTATING: [&str; 7] = [
    "soft.order.param",
    "soft.edit",
    "soft.suspend",
    "soft.resume",
    "soft.delete",
    "service.prolong",
    "service.changepricelist",
];

async fn doctor(config: SandboxConfig, password: &str) -> (Vec<Check>, SandboxHandle) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let handle = sandbox.handle();
    let url = sandbox.url();
    tokio::spawn(sandbox.run(std::future::pending()));
    handle.insert_license(NewSandboxLicense::new("198.51.100.9", 55228));
    let settings = Settings::from_args(ServeArgs {
        billmanager_url: Some(url),
        billmanager_user: Some("demo".into()),
        billmanager_password: Some(password.into()),
        database_url: Some("sqlite::memory:".into()),
        ..ServeArgs::default()
    })
    .unwrap();
    (examine(settings).await.unwrap(), handle)
}

fn line<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} line in {checks:?}"))
}

#[tokio::test]
async fn doctor_passes_on_a_good_account_and_buys_nothing() {
    let (checks, sandbox) = doctor(SandboxConfig::default(), "demo").await;
    let before = sandbox.licenses();

    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    assert!(
        line(&checks, "answer shapes")
            .detail
            .contains("no remoteid column")
    );
    assert!(line(&checks, "balance").detail.contains("10000.00 EUR"));
    // One active license listed: no status 5 or 1 shows, so a lost order answer
    // cannot be proven unplaced, and the report says what follows.
    let licenses = &line(&checks, "licenses").detail;
    assert!(
        licenses.contains("no license in status 5 (processing) or 1 (ordered)")
            && licenses.contains("will go to a person"),
        "{licenses}"
    );
    assert!(
        checks.iter().any(|c| c.name.starts_with("tariff 55228")),
        "{checks:#?}"
    );
    for func in MUTATING {
        assert_eq!(sandbox.call_count(func), 0, "{func} was called");
    }
    assert_eq!(sandbox.call_count("auth"), 1, "one log-in");
    assert_eq!(sandbox.balance(), 1_000_000);
    assert_eq!(sandbox.licenses(), before);
}

#[tokio::test]
async fn doctor_fails_on_a_filtered_list_and_says_why() {
    let config = SandboxConfig {
        saved_filter: Some(SavedFilter::ActiveOnly),
        ..SandboxConfig::default()
    };
    let (checks, sandbox) = doctor(config, "demo").await;

    let licenses = line(&checks, "licenses");
    assert!(!licenses.passed);
    assert!(licenses.detail.contains("saved list filters"), "{licenses}");
    for func in MUTATING {
        assert_eq!(sandbox.call_count(func), 0, "{func} was called");
    }
}

#[tokio::test]
async fn doctor_with_a_wrong_password_logs_in_once_and_stops() {
    let (checks, sandbox) = doctor(SandboxConfig::default(), "wrong").await;

    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert!(!checks[0].passed);
    assert!(
        checks[0].detail.contains("refused the credentials"),
        "{}",
        checks[0]
    );
    assert_eq!(sandbox.call_count("auth"), 1);
    assert_eq!(sandbox.call_count("soft"), 0);
}

/// `examine` with a sandbox of its own (`doctor --sandbox`) configured as `config`.
async fn doctor_on_own_sandbox(config: SandboxConfig) -> Vec<Check> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut settings = Settings::from_args(ServeArgs {
        sandbox: true,
        database_url: Some("sqlite::memory:".into()),
        ..ServeArgs::default()
    })
    .unwrap();
    settings.sandbox = Some(config);
    examine(settings).await.unwrap()
}

/// A sandbox whose keys come within 200 ms, so the read-back does not wait long.
fn quick_sandbox() -> SandboxConfig {
    SandboxConfig {
        key_delay: std::time::Duration::from_millis(200),
        ..SandboxConfig::default()
    }
}

#[test]
fn doctor_sandbox_orders_a_license_reads_it_back_and_prints_the_shapes_it_saw() {
    // Act: the command as a user runs it.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .args(["doctor", "--sandbox", "--sandbox-key-delay-ms", "300"])
        .env_remove("LICENSE_FACADE_BILLMANAGER_URL")
        .output()
        .expect("the binary runs");

    // Assert
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("ok   {name}: ")))
            .unwrap_or_else(|| panic!("no passed {name} line in:\n{report}"))
            .to_owned()
    };
    let ordered = line("sandbox order");
    assert!(ordered.contains("bought license 1000001"), "{ordered}");
    assert!(ordered.contains("its id at `doc/id`"), "{ordered}");
    let details = line("read back (soft.edit)");
    assert!(
        details.contains("status 5 (processing) → 2 (active) with a key"),
        "{details}"
    );
    assert!(details.contains("IP and tariff as ordered"), "{details}");
    let listed = line("read back (list)");
    assert!(
        listed.contains("listed with status 2 (active)") && listed.contains("by its licname"),
        "{listed}"
    );
    let shapes = line("answer shapes");
    for seen in [
        "the id in `id`",
        "no remoteid column",
        "raw values in `orig`",
        "status in `item_status`: 2 (active) ×1",
        "`saved_filters` present and empty",
    ] {
        assert!(shapes.contains(seen), "{seen:?} missing: {shapes}");
    }
    assert!(line("licenses").contains("1 listed"), "{report}");
}

#[tokio::test]
async fn doctor_sandbox_reports_the_other_answer_shapes_the_upstream_may_use() {
    let checks = doctor_on_own_sandbox(SandboxConfig {
        order_id_at: OrderIdAt::ItemId,
        list_remoteid: true,
        translated_without_orig: true,
        ..quick_sandbox()
    })
    .await;

    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    let ordered = line(&checks, "sandbox order");
    assert!(ordered.detail.contains("`doc/item.id`"), "{ordered}");
    let listed = line(&checks, "read back (list)");
    assert!(listed.detail.contains("by its remoteid"), "{listed}");
    let shapes = line(&checks, "answer shapes");
    assert!(
        shapes.detail.contains("recovery matches by remoteid"),
        "{shapes}"
    );
    assert!(shapes.detail.contains("no raw `orig` values"), "{shapes}");
}

#[tokio::test]
async fn doctor_sandbox_fails_when_the_list_hides_the_license_it_ordered() {
    let checks = doctor_on_own_sandbox(SandboxConfig {
        saved_filter: Some(SavedFilter::HideAll),
        ..quick_sandbox()
    })
    .await;

    assert!(line(&checks, "sandbox order").passed, "{checks:#?}");
    assert!(line(&checks, "read back (soft.edit)").passed, "{checks:#?}");
    let listed = line(&checks, "read back (list)");
    assert!(!listed.passed, "{listed}");
    assert!(
        listed
            .detail
            .contains("a look-up after a lost answer would not find it"),
        "{listed}"
    );
    assert!(listed.detail.contains("saved list filters"), "{listed}");
    assert!(!line(&checks, "licenses").passed);
}
