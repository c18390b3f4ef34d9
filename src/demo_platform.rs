//! `license-facade demo-platform`: the whole chain on a laptop, in one process — the
//! VMmanager 6 simulator with some marked hosts, the watcher, license-facade and its
//! BILLmanager sandbox. Create, re-address and delete hosts on the simulator (the
//! command prints how) and watch their licenses follow on the watcher's status page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, Settings};
use crate::platform::sim::{PlatformSim, PlatformSimConfig};
use crate::startup::Application;
use crate::watcher::{Listeners, Watcher, WatcherConfig};

/// `license-facade demo-platform`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// license-facade's REST address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// license-facade's gRPC address (the watcher calls it).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// The platform simulator's address.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub platform_addr: SocketAddr,
    /// The watcher's operator listener (/status, /metrics).
    #[arg(long, default_value = "127.0.0.1:9187")]
    pub watcher_addr: SocketAddr,
    /// Hosts created at start, alternately marked for ISPmanager 6 Pro and Lite (every
    /// fifth one unmarked).
    #[arg(long, default_value_t = 10)]
    pub hosts: usize,
    /// Seconds between watcher passes.
    #[arg(long, default_value_t = 10)]
    pub interval_secs: u64,
    /// Seconds a gone host's license is kept before it is cancelled.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u64,
}

/// Runs the chain until `shutdown` resolves.
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.cancel();
    });

    // The watcher's operator listener first: the console's Servers page reads it.
    let operator = tokio::net::TcpListener::bind(args.watcher_addr)
        .await
        .with_context(|| {
            format!(
                "cannot bind the watcher's listener on {}",
                args.watcher_addr
            )
        })?;
    let watcher_addr = operator.local_addr()?;

    // license-facade with its sandbox (the built-in sandbox client, token
    // `sandbox-token`, is the watcher's client here).
    let mut settings = Settings::from_args(ServeArgs {
        http_addr: Some(args.http_addr),
        grpc_addr: Some(args.grpc_addr),
        sandbox: true,
        sandbox_key_delay_ms: 1000,
        ..ServeArgs::default()
    })?;
    settings.console.watchers = vec![crate::console::WatcherLink::new(
        "demo",
        &format!("http://{watcher_addr}"),
    )?];
    let app = Application::build(settings).await?;
    let grpc = app.grpc_addr();
    let service = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));

    // The platform, with its hosts.
    let sim = PlatformSim::bind(
        args.platform_addr,
        PlatformSimConfig {
            task_duration: Duration::from_secs(2),
            ..PlatformSimConfig::default()
        },
    )
    .await
    .context("cannot bind the platform simulator")?;
    let platform_url = sim.url();
    sim.handle().seed_hosts(args.hosts, |i| match i % 5 {
        4 => "no panel".to_owned(),
        n if n % 2 == 0 => "panel=ispmanager-6-pro".to_owned(),
        _ => "panel=ispmanager-6-lite".to_owned(),
    });
    let platform = tokio::spawn(sim.run(stop.clone().cancelled_owned()));

    // The watcher, configured as docs/integrations.md describes.
    let dir = tempfile_dir()?;
    let config_path = dir.join("watcher.toml");
    std::fs::write(
        &config_path,
        format!(
            "instance = \"demo\"\nstate_file = \"state.json\"\ninterval_secs = {interval}\n\n\
             [license_facade]\ngrpc_url = \"http://{grpc}\"\ntoken = \"{token}\"\n\n\
             [platform]\nkind = \"vmmanager6\"\nurl = \"{platform_url}\"\n\
             email = \"admin@example.com\"\npassword = \"demo\"\n\n\
             [cancel]\nabsent_listings = 2\ngrace_secs = {grace}\n\n\
             [http]\naddr = \"{watcher}\"\n",
            interval = args.interval_secs.max(1),
            token = crate::auth::SANDBOX_TOKEN,
            grace = args.grace_secs,
            watcher = watcher_addr,
        ),
    )?;
    let config = WatcherConfig::load(&config_path)?;
    let listeners = Listeners::from_bound(Some(operator), None);
    tracing::info!(
        platform = %platform_url,
        license_facade_rest = %format!("http://{}", args.http_addr),
        license_facade_grpc = %grpc,
        watcher_status = %format!("http://{watcher_addr}/status"),
        console_servers = %format!("http://{}/console/servers", args.http_addr),
        watcher_config = %config_path.display(),
        "demo chain running: platform simulator → watcher → license-facade → BILLmanager sandbox"
    );
    tracing::info!(
        create = %format!(
            "TOKEN=$(curl -s -X POST {platform_url}/auth/v4/public/token -d '{{\"email\":\"admin@example.com\",\"password\":\"demo\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/'); \
             curl -s -H \"x-xsrf-token: $TOKEN\" -X POST {platform_url}/vm/v3/host -d '{{\"name\":\"web-new\",\"comment\":\"panel=ispmanager-6-pro\",\"os\":1}}'"
        ),
        delete = %format!("curl -s -H \"x-xsrf-token: $TOKEN\" -X DELETE {platform_url}/vm/v3/host/1"),
        "try it"
    );
    let watcher = Arc::new(Watcher::new(config)?);
    crate::watcher::serve(watcher, listeners, stop.clone().cancelled_owned()).await?;
    platform.await.context("the platform task")??;
    service.await.context("the service task")??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A fresh directory for the demo watcher's configuration and state.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("license-facade-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
