//! Building and running the application: bind every listener first (so port 0 works
//! and tests need no sleeps), then serve until a shutdown signal, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::billmanager::{Billmanager, BillmanagerClient, CircuitBreaker};
use crate::config::Settings;
use crate::health::{Readiness, probe_upstream};
use crate::listener::{ConnectionLimits, GuardedListener};
use crate::sandbox::{Sandbox, SandboxHandle};
use crate::service::{LicenseService, Worker};
use crate::store::FileLock;
use crate::tasks::Tasks;

/// A built, bound application.
pub struct Application {
    http: TcpListener,
    grpc: TcpListener,
    service: LicenseService,
    worker: Worker,
    upstream: Arc<dyn Billmanager>,
    /// The circuit breaker that `upstream` is; readiness follows it.
    breaker: Arc<CircuitBreaker>,
    sandbox: Option<Sandbox>,
    readiness: Arc<Readiness>,
    probe_interval: Duration,
    reconcile: crate::service::ReconcileConfig,
    drain_delay: Duration,
    drain_timeout: Duration,
    connections: ConnectionLimits,
    auth: Arc<crate::auth::Authenticator>,
    /// The web console's settings.
    console: crate::console::ConsoleConfig,
    /// Bounds of the `/billmgr` log-ins.
    downstream: crate::downstream::DownstreamConfig,
    /// Every background task of the application (the worker's loops included).
    tasks: Tasks,
    /// Held until the application stops: a SQLite file is served by one process.
    db_lock: Option<FileLock>,
    /// TLS of both API listeners, with the SIGHUP listener that reloads it.
    tls: Option<(crate::tls::Tls, Option<tokio::signal::unix::Signal>)>,
}

/// An application running in a task of its own, with the means to stop it.
pub struct Running {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: CancellationToken,
    kill: CancellationToken,
}

impl Running {
    /// Stops it as a shutdown signal would (not serving, drain, stop) and returns once
    /// everything it started has ended and its database is closed and unlocked.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("the application task failed")?
    }

    /// Stops it abruptly, like a crash: no drain, every task dropped at whatever await
    /// point it was (open transactions roll back, calls in flight are cut, leases are
    /// left to run out). Returns once everything it started has ended and its database
    /// is closed and unlocked, so a new application can open the same file at once.
    pub async fn kill(self) -> anyhow::Result<()> {
        self.kill.cancel();
        self.task.await.context("the application task failed")?
    }
}

impl Application {
    /// Opens the store, starts nothing, binds both listeners (and the sandbox's).
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        // The certificate is read before anything else starts: a bad file stops here.
        let tls = match &settings.tls {
            Some(tls) => Some((
                crate::tls::Tls::new(tls).context("cannot set up TLS")?,
                crate::tls::hangup_signal(),
            )),
            None => None,
        };
        // Every console page then comes over TLS: its cookies are `Secure`.
        if tls.is_some() {
            settings.console.secure_cookies = true;
        }
        let clients = settings.clients.take().context(
            "--clients-file is required (LICENSE_FACADE_CLIENTS_FILE): without it nobody could \
             call the API (only --sandbox has a built-in client)",
        )?;
        let sandbox = match settings.sandbox.take() {
            Some(config) => {
                let sandbox = Sandbox::bind("127.0.0.1:0".parse().expect("valid"), config)
                    .await
                    .context("cannot bind the sandbox")?;
                settings.billmanager.url = sandbox.url();
                Some(sandbox)
            }
            None => None,
        };
        let in_memory = settings.database_url.contains(":memory:");
        // The URL's scheme picks the store: `sqlite:` or `postgres://` (replicas).
        let serving = crate::store::connect_serving_sized(
            &settings.database_url,
            settings.database_max_connections,
        )
        .await?;
        let store = serving.store;
        if serving.lock.is_some() {
            // This process holds the SQLite file for itself: a lease left in it belongs
            // to a process that is gone (killed mid-step). Its operations are taken
            // over from their recovery points at once, not when the lease runs out. A
            // request the dead process had in flight may still land: recovery re-sends
            // nothing before one request timeout after the send time stored with it.
            let taken = store
                .release_all_leases(time::OffsetDateTime::now_utc())
                .await
                .context("cannot take over the leases of a stopped process")?;
            if taken > 0 {
                tracing::info!(
                    operations = taken,
                    "took over the work of a stopped process"
                );
            }
        }
        if in_memory {
            tracing::warn!("using an in-memory database: licenses are lost when the process stops");
        }
        crate::metrics::install();
        let breaker_config = settings.billmanager.breaker;
        // The worker only sends a call while its lease outlasts the client's timeout.
        settings.workflow.call_timeout = settings.billmanager.request_timeout;
        let breaker = Arc::new(CircuitBreaker::new(
            Arc::new(
                BillmanagerClient::new(settings.billmanager)
                    .context("cannot build the BILLmanager client")?,
            ),
            breaker_config,
        ));
        let upstream: Arc<dyn Billmanager> = breaker.clone();
        let tasks = Tasks::new();
        let service = LicenseService::new(store, upstream.clone(), Arc::new(settings.catalog))
            .with_reconcile_config(&settings.reconcile)
            .with_spend_caps(&crate::auth::order_caps(&clients))
            .with_feed_config(settings.feed)
            .with_webhook_config(settings.webhooks)
            .with_pool(settings.pool)
            .with_tasks(tasks.clone());
        let auth = Arc::new(crate::auth::Authenticator::new(&clients));
        let worker = service.worker(settings.workflow);
        let http = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("cannot listen on {} (REST)", settings.http_addr))?;
        let grpc = TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on {} (gRPC)", settings.grpc_addr))?;
        Ok(Self {
            http,
            grpc,
            service,
            worker,
            upstream,
            breaker,
            sandbox,
            readiness: Arc::new(Readiness::default()),
            probe_interval: settings.probe_interval,
            reconcile: settings.reconcile,
            drain_delay: settings.drain_delay,
            drain_timeout: settings.drain_timeout,
            connections: settings.connections,
            auth,
            console: std::mem::take(&mut settings.console),
            downstream: settings.downstream,
            tasks,
            db_lock: serving.lock,
            tls,
        })
    }

    /// Successful reloads of the TLS certificate, when the listeners serve TLS.
    pub fn tls_reloads(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.tls.as_ref().map(|(tls, _)| tls.resolver().subscribe())
    }

    /// The bound REST address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The application's background tasks: every one has ended when a stop returns.
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// The in-process sandbox, when running with one.
    pub fn sandbox(&self) -> Option<SandboxHandle> {
        self.sandbox.as_ref().map(Sandbox::handle)
    }

    /// The in-process sandbox's URL, when running with one.
    pub fn sandbox_url(&self) -> Option<String> {
        self.sandbox.as_ref().map(Sandbox::url)
    }

    /// Serves both APIs and runs the worker until `shutdown` resolves, then turns
    /// readiness off, stops accepting, lets in-flight work finish (bounded) and returns
    /// once everything the application started has ended and its database is closed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.run(shutdown, CancellationToken::new()).await
    }

    /// Runs the application in a task of its own; the handle stops it.
    pub fn spawn(self) -> Running {
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        let task = tokio::spawn(self.run(stop.clone().cancelled_owned(), kill.clone()));
        Running { task, stop, kill }
    }

    async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        kill: CancellationToken,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let tasks = self.tasks.clone();

        tracing::info!(
            http = %self.http_addr(),
            grpc = %self.grpc_addr(),
            tls = self.tls.is_some(),
            upstream = if self.sandbox.is_some() { "built-in sandbox" } else { "BILLmanager" },
            sandbox_url = self.sandbox_url().as_deref().unwrap_or(""),
            "license-facade listening"
        );
        if self.auth.is_sandbox() {
            tracing::warn!(
                "sandbox mode without a clients file: the API accepts the bearer token \
                 `sandbox-token` with every scope"
            );
        }

        // The sandbox outlives the application's own tasks: the worker may still be
        // talking to it while they drain.
        let sandbox_stop = CancellationToken::new();
        let sandbox_task = self.sandbox.map(|sandbox| {
            let token = sandbox_stop.clone();
            tokio::spawn(async move {
                if let Err(e) = sandbox.run(token.cancelled_owned()).await {
                    tracing::error!(error.message = %e, "sandbox stopped");
                }
            })
        });

        let (grpc_router, health_reporter) =
            crate::grpc::router(self.service.clone(), self.auth.clone(), &self.connections).await?;

        let worker_stop = stop.clone();
        tasks.spawn(self.worker.run(worker_stop));

        // Request ids are kept for REQUEST_KEY_TTL, then reaped.
        let reaper_service = self.service.clone();
        let reaper_stop = stop.clone();
        tasks.spawn(async move {
            loop {
                match reaper_service.reap_request_keys().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reaped = n, "expired request ids deleted"),
                    Err(e) => tracing::warn!(error.message = %e, "cannot reap request ids"),
                }
                tokio::select! {
                    _ = reaper_stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                }
            }
        });

        tasks.spawn(
            self.service
                .clone()
                .run_reconciler(self.reconcile.clone(), stop.clone()),
        );
        tasks.spawn(self.service.clone().run_event_retention(stop.clone()));
        tasks.spawn(self.service.clone().run_pool_sweeper(stop.clone()));
        tasks.spawn(crate::metrics::run_upkeep(
            crate::metrics::UPKEEP_INTERVAL,
            stop.clone(),
        ));
        tasks.spawn(self.service.clone().run_event_sequencer(stop.clone()));
        tasks.spawn(
            self.service
                .clone()
                .run_webhooks(crate::api::event_json, stop.clone()),
        );

        let probe_reporter = health_reporter.clone();
        let probe_readiness = self.readiness.clone();
        let probe_stop = stop.clone();
        let probe_upstream_client = self.upstream.clone();
        let probe_catalog = self.service.catalog().clone();
        let interval = self.probe_interval;
        tasks.spawn(async move {
            let readiness = probe_readiness.clone();
            probe_upstream(
                probe_upstream_client,
                probe_catalog,
                probe_readiness,
                interval,
                probe_stop,
                // The probe's result is already recorded in `readiness`.
                |_ok| {
                    let reporter = probe_reporter.clone();
                    let readiness = readiness.clone();
                    async move {
                        crate::grpc::set_serving(&reporter, readiness.serving()).await;
                    }
                },
            )
            .await;
        });

        // The breaker: NOT_SERVING while open; its own trial call closes it once the
        // upstream is back, and the probe then runs at once.
        tasks.spawn(self.breaker.clone().run_recovery(stop.clone()));
        let breaker_reporter = health_reporter.clone();
        let breaker_readiness = self.readiness.clone();
        let mut breaker_open = self.breaker.subscribe();
        let breaker_stop = stop.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = breaker_stop.cancelled() => return,
                    changed = breaker_open.changed() => if changed.is_err() { return },
                }
                let open = *breaker_open.borrow_and_update();
                breaker_readiness.set_breaker_open(open);
                crate::grpc::set_serving(&breaker_reporter, breaker_readiness.serving()).await;
            }
        });

        let service = Arc::new(self.service.clone());
        let console = crate::console::ConsoleState::new(
            service.clone(),
            self.readiness.clone(),
            self.auth.clone(),
            &self.console,
        );
        let downstream =
            crate::downstream::router(service.clone(), self.auth.clone(), &self.downstream);
        // The parts served on the HTTP listener, side by side: the REST API, the
        // shop's own API (with its own log-in: `authinfo`, `func=auth`) and the
        // console (with its session log-in); then the layers every answer passes.
        let http_router = crate::http::router(crate::http::AppState {
            service,
            readiness: self.readiness.clone(),
            auth: self.auth.clone(),
            rendered: Default::default(),
        })
        // As services, not merged routes: the shop's API answers every path and method
        // of its own in its own way, never with the REST API's problem+json.
        .route_service(
            crate::downstream::PATHS[0],
            downstream.clone().into_service(),
        )
        .route_service(crate::downstream::PATHS[1], downstream.into_service())
        .nest_service(crate::console::BASE, crate::console::router(console));
        let http_router = crate::http::layered(http_router);
        let tls = self.tls.take().map(|(tls, hangup)| {
            tasks.spawn(tls.resolver().run_reloads(hangup, stop.clone()));
            tls
        });
        let http_listener = GuardedListener::new(self.http, self.connections)
            .with_tls(tls.as_ref().map(crate::tls::Tls::rest_acceptor));
        tasks.spawn(crate::http::serve(
            http_listener,
            http_router,
            self.connections,
            stop.clone(),
            tasks.clone(),
        ));

        let grpc_stop = stop.clone();
        let grpc_listener = GuardedListener::new(self.grpc, self.connections)
            .with_tls(tls.as_ref().map(crate::tls::Tls::grpc_acceptor));
        tasks.spawn(async move {
            let incoming = grpc_listener.into_stream();
            if let Err(e) = grpc_router
                .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                .await
            {
                tracing::error!(error.message = %e, "gRPC server failed");
            }
        });

        let killed = tokio::select! {
            _ = shutdown => false,
            _ = kill.cancelled() => true,
        };
        if !killed {
            let drain = Drain {
                readiness: self.readiness.clone(),
                service: self.service.clone(),
                tasks: tasks.clone(),
                delay: self.drain_delay,
                timeout: self.drain_timeout,
            };
            drain.run(&health_reporter, &stop, &kill).await;
        }
        // Whatever is left (everything, after a kill) ends where it stands; then the
        // store: nothing the application started writes once this returns.
        tasks.kill();
        tasks.wait().await;
        self.service.store().close().await;
        sandbox_stop.cancel();
        if let Some(task) = sandbox_task {
            task.abort();
            let _ = task.await;
        }
        drop(self.db_lock);
        tracing::info!(killed, "stopped");
        Ok(())
    }
}

/// The graceful part of a stop.
struct Drain {
    readiness: Arc<Readiness>,
    service: LicenseService,
    tasks: Tasks,
    delay: Duration,
    timeout: Duration,
}

impl Drain {
    /// Not serving, then stop accepting and let in-flight work finish, bounded; a
    /// kill cuts it short.
    async fn run(
        &self,
        health_reporter: &tonic_health::server::HealthReporter,
        stop: &CancellationToken,
        kill: &CancellationToken,
    ) {
        // 1. Readiness off first (both `/readyz` and gRPC health), while the listeners
        //    still accept: load balancers and probes see NOT_SERVING and stop sending
        //    new calls here during the drain delay, so no client meets a closed port
        //    mid-request.
        tracing::info!(
            drain_delay_ms = self.delay.as_millis() as u64,
            "shutting down: not serving"
        );
        self.readiness.start_draining();
        crate::grpc::set_serving(health_reporter, false).await;
        tokio::select! {
            _ = tokio::time::sleep(self.delay) => {}
            _ = kill.cancelled() => return,
        }
        // 2. Stop accepting; in-flight calls finish, change feeds end, the worker stops
        //    claiming, finishes its current steps and releases its leases. All bounded.
        tracing::info!(drain_timeout_secs = self.timeout.as_secs(), "draining");
        self.service.close_feeds();
        stop.cancel();
        tokio::select! {
            drained = tokio::time::timeout(self.timeout, self.tasks.wait()) => {
                if drained.is_err() {
                    // What is left is killed; unreleased leases simply run out.
                    tracing::warn!("drain timed out; stopping anyway");
                }
            }
            _ = kill.cancelled() => {}
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
