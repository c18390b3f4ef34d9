//! `license-facade doctor` against a standalone sandbox: every check passes on a good
//! account, the report says what the answer shapes mean, and nothing is bought or
//! changed (the sandbox's call log shows no mutating function).

use license_facade::config::{ServeArgs, Settings};
use license_facade::doctor::{Check, examine};
use license_facade::sandbox::{
    NewSandboxLicense, Sandbox, SandboxConfig, SandboxHandle, SavedFilter,
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
