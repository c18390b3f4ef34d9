//! Stopping an application in this process, gracefully or by a kill, ends everything
//! it started and releases its SQLite file at once: no worker of the old one still
//! calls the upstream or writes, and a new application opens the same file straight
//! away (the in-process crash of the model and fault tests relies on it).

use std::time::Duration;

use crate::support::{InProcess, Order, Timings, sandbox_config, start_sandbox};

/// How long the upstream is watched for calls from a stopped application: several
/// times the worker's longest pause between polls (`poll_max`, 100 ms here).
const QUIET: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_application_leaves_no_worker_running_and_its_file_opens_again_at_once() {
    stops_cleanly(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_application_leaves_no_worker_running_and_its_file_opens_again_at_once() {
    stops_cleanly(Stop::Graceful).await;
}

#[derive(Clone, Copy)]
enum Stop {
    Kill,
    Graceful,
}

async fn stops_cleanly(how: Stop) {
    // Arrange: a license whose key never comes, so the worker polls the upstream
    // for as long as it runs.
    let sandbox = start_sandbox(license_facade::sandbox::SandboxConfig {
        key_delay: Duration::from_secs(3600),
        ..sandbox_config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let app = InProcess::start(&db, &sandbox.url, Timings::default()).await;
    let tasks = app.tasks();
    let id = app.api.order(&Order::new(1)).await.expect("accepted");
    while sandbox.handle.call_count("soft.edit") < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act
    match how {
        Stop::Kill => app.crash().await,
        Stop::Graceful => app.stop().await,
    }
    let calls = total_calls(&sandbox.handle);
    tokio::time::sleep(QUIET).await;

    // Assert: every task the old application spawned is gone, nothing of it talks to
    // the upstream any more, and the file is free at once (`start` panics if the
    // lock were still held).
    assert_eq!(
        total_calls(&sandbox.handle),
        calls,
        "a stopped application still called the upstream"
    );
    assert!(
        tasks.is_empty(),
        "{} tasks of the stopped application run on",
        tasks.len()
    );
    let again = InProcess::start(&db, &sandbox.url, Timings::default()).await;
    let license = again.api.license(&id).await;
    assert_eq!(
        license["id"],
        id.as_str(),
        "the new application reads the same database"
    );
    again.crash().await;
}

fn total_calls(sandbox: &license_facade::sandbox::SandboxHandle) -> u64 {
    ["soft", "soft.edit", "soft.order.param", "auth"]
        .iter()
        .map(|f| sandbox.call_count(f))
        .sum()
}
