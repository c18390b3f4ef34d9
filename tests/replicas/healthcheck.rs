//! `license-facade healthcheck`, the container HEALTHCHECK: exit 0 against a ready
//! instance (also given the 0.0.0.0 listen address a container uses), 1 when nothing
//! listens. Needs no PostgreSQL.

use std::process::Command;
use std::time::Duration;

use license_facade::config::{ServeArgs, Settings};
use license_facade::startup::Application;
use tokio_util::sync::CancellationToken;

use crate::support::{Api, init};

fn healthcheck(addr: &str) -> i32 {
    Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .args(["healthcheck", "--http-addr", addr])
        .env("LICENSE_FACADE_LOG", "warn")
        .output()
        .expect("the binary runs")
        .status
        .code()
        .expect("an exit code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_when_ready_and_1_when_nothing_answers() {
    // Arrange
    init();
    let mut settings = Settings::from_args(ServeArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
        sandbox: true,
        drain_delay_ms: Some(0),
        ..ServeArgs::default()
    })
    .unwrap();
    settings.probe_interval = Duration::from_secs(3600);
    let app = Application::build(settings).await.unwrap();
    let port = app.http_addr().port();
    let api = Api::new(format!("http://{}", app.http_addr()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    api.wait_ready().await;

    // Act / Assert
    let ready = tokio::task::spawn_blocking(move || {
        (
            healthcheck(&format!("127.0.0.1:{port}")),
            healthcheck(&format!("0.0.0.0:{port}")),
        )
    })
    .await
    .unwrap();
    assert_eq!(ready, (0, 0));
    stop.cancel();
    task.await.unwrap().unwrap();
    let closed = tokio::task::spawn_blocking(move || healthcheck(&format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    assert_eq!(closed, 1, "nothing listens any more");
}
