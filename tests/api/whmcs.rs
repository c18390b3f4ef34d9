//! ISPsystem's WHMCS module for BILLmanager licenses (`billmanager_noc`, from
//! 460s/ispsystem_whmcs_modules) run through its whole life in the stand-in WHMCS of
//! `tests/whmcs/standin.php`, against the BILLmanager endpoint of the service's
//! sandbox: order and key, suspend, resume, new key, rename and move, terminate (the
//! module parks the license on 0.0.0.0), and a second service that reuses the parked
//! license instead of buying one.
//!
//! The module is third-party code and is not in this repository. Point
//! `LICENSE_FACADE_WHMCS_MODULE` at its `servers/billmanager_noc/billmanager_noc.php`
//! to run these tests; they also need `php` with the curl and SimpleXML extensions.
//! Without either they print that they were skipped and pass, with `CI=true` too: CI
//! cannot have a module the repository does not ship.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use license_facade::sandbox::SandboxConfig;

use crate::helpers::{TestApp, spawn_app_with};

const STANDIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/whmcs/standin.php");

/// Where the stand-in WHMCS sends the module's calls: a BILLmanager API and its
/// account (the sandbox's own `/billmgr` here; the service's `/billmgr` works the same
/// way for a shop).
struct Billmgr<'a> {
    url: &'a str,
    user: &'a str,
    password: &'a str,
}

/// The module's file, or `None` (after saying why) when the tests cannot run here.
fn module() -> Option<PathBuf> {
    let Some(module) = std::env::var_os("LICENSE_FACADE_WHMCS_MODULE") else {
        eprintln!(
            "skipped: LICENSE_FACADE_WHMCS_MODULE is not set (the path of billmanager_noc.php \
             from 460s/ispsystem_whmcs_modules, which this repository does not ship)"
        );
        return None;
    };
    let module = PathBuf::from(module);
    assert!(
        module.is_file(),
        "LICENSE_FACADE_WHMCS_MODULE names no file: {}",
        module.display()
    );
    let probe = Command::new("php")
        .args([
            "-r",
            "exit(extension_loaded('curl') && extension_loaded('simplexml') ? 0 : 1);",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(module),
        Ok(_) => {
            eprintln!("skipped: php lacks the curl or SimpleXML extension");
            None
        }
        Err(e) => {
            eprintln!("skipped: php cannot be run ({e})");
            None
        }
    }
}

/// Runs the stand-in WHMCS with `module` against `target`; the password travels in
/// the environment, never on the command line.
async fn run_standin(module: &Path, target: &Billmgr<'_>) -> Output {
    let mut command = Command::new("php");
    command
        .arg(STANDIN)
        .env("LICENSE_FACADE_WHMCS_MODULE", module)
        .env("LICENSE_FACADE_WHMCS_BILLMGR_URL", target.url)
        .env("LICENSE_FACADE_WHMCS_BILLMGR_USER", target.user)
        .env("LICENSE_FACADE_WHMCS_BILLMGR_PASSWORD", target.password)
        .env_remove("LICENSE_FACADE_WHMCS_TARIFF");
    // The sandbox answers on this test's runtime: wait for php off it.
    tokio::task::spawn_blocking(move || command.output().expect("php runs"))
        .await
        .expect("the wait for php ends")
}

/// The app with its sandbox, keys at once, and pool cooldowns of `days`.
async fn app_with_pool_cooldowns(days: u32) -> TestApp {
    spawn_app_with(0, |settings| {
        let sandbox = settings.sandbox.as_mut().expect("a sandbox");
        sandbox.ip_change_cooldown_days = days;
        sandbox.key_change_cooldown_days = days;
    })
    .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_whmcs_module_runs_its_whole_life_and_its_second_service_reuses_the_parked_license() {
    let Some(module) = module() else { return };
    let app = app_with_pool_cooldowns(0).await;
    let account = SandboxConfig::default();
    let target = Billmgr {
        url: &app.sandbox_url,
        user: &account.user,
        password: &account.password,
    };

    let run = run_standin(&module, &target).await;

    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let steps: Vec<&str> = stdout.lines().collect();
    let names = [
        "CreateAccount service 1: success",
        "SuspendAccount service 1: success",
        "UnSuspendAccount service 1: success",
        "Newkey service 1: success",
        "Update service 1: success",
        "TerminateAccount service 1: success",
        "CreateAccount service 2: success",
        "all steps passed",
    ];
    assert_eq!(steps.len(), names.len(), "{stdout}");
    for (line, name) in steps.iter().zip(names) {
        assert!(line.starts_with(name), "{line} (expected {name})");
    }
    assert_eq!(app.sandbox.carried_out("soft.order.param"), 1, "one order");
    let licenses = app.sandbox.licenses();
    assert_eq!(licenses.len(), 1, "{licenses:?}");
    let reused = &licenses[0];
    assert_eq!(
        (reused.ip.as_str(), reused.licname.as_str(), reused.status),
        ("192.0.2.20", "whmcs-second", 2)
    );
    assert_eq!(reused.remote_id, "l2");
    // The module sends soft.suspend and soft.resume without `sok`: counted on arrival.
    assert_eq!(app.sandbox.call_count("soft.suspend"), 2, "suspend, park");
    assert_eq!(app.sandbox.call_count("soft.resume"), 2, "unsuspend, reuse");
}

#[tokio::test]
async fn within_the_pool_cooldown_the_whmcs_module_buys_a_second_license_and_the_run_fails() {
    let Some(module) = module() else { return };
    let app = app_with_pool_cooldowns(30).await;
    let account = SandboxConfig::default();
    let target = Billmgr {
        url: &app.sandbox_url,
        user: &account.user,
        password: &account.password,
    };

    let run = run_standin(&module, &target).await;

    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("TerminateAccount service 1: success"),
        "{stdout}"
    );
    assert!(
        stderr.contains("FAILED at CreateAccount service 2: ispsystem_noc holds 2 licenses"),
        "{stderr}"
    );
    assert!(
        stderr.contains("The IP change cooldown of this license has not passed"),
        "the module's log shows the refusal: {stderr}"
    );
    let authinfo = format!("{}:{}", account.user, account.password);
    assert!(
        !stderr.contains(&authinfo) && stderr.contains("********"),
        "the log masks the password: {stderr}"
    );
    assert_eq!(app.sandbox.carried_out("soft.order.param"), 2);
    let licenses = app.sandbox.licenses();
    assert_eq!(
        (licenses[0].ip.as_str(), licenses[0].licname.as_str()),
        ("0.0.0.0", "free.lic"),
        "the parked license stays in the pool"
    );
    assert_eq!(licenses[1].ip, "192.0.2.20");
}
