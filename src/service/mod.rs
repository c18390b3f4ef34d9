//! The application core: one type whose methods are the use cases. The transports
//! call it; it reaches the database and the upstream only through traits. A use case
//! that buys or changes something stores the work and wakes the workflow
//! ([`crate::workflow`]), which carries it out upstream; the core reads the results
//! back from the store.

mod audit;
mod costs;
mod drift;
mod error;
mod feed;
mod idempotency;
mod input;
mod items;
mod lifecycle;
mod pool;
mod pricing;
mod quotes;
mod reconcile;
mod resolve;
mod sessions;
mod spend;
mod stats;
mod usage;
mod webhooks;

pub use crate::workflow::{Worker, WorkflowConfig};
pub use audit::AuditQuery;
pub use drift::{
    DriftReport, Expiring, MAX_LISTED, Mismatch, MismatchField, Missing, MissingReason, Orphan,
};
pub use error::{ErrorKind, InFlight, ServiceError};
pub use feed::{FeedConfig, FeedItem};
pub use idempotency::{REQUEST_KEY_TTL, RequestKey};
pub use input::{DEFAULT_PAGE_SIZE, ListInput, MAX_PAGE_SIZE, OrderInput};
pub use lifecycle::EnsureAction;
pub use pool::{PoolEntry, PoolTariff, PoolView, Released};
pub use quotes::Quote;
pub use reconcile::{MAX_EXPIRING_WITHIN_DAYS, ReconcileConfig};
pub use resolve::{ABANDONED, MAX_REASON_CHARS, ResolveAction, ResolveInput};
pub use stats::DriftCounts;
pub use usage::ClientUsage;
pub use webhooks::{EncodeEvent, WebhookConfig, WebhookInput, WebhookView};

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};

use crate::billmanager::Billmanager;
use crate::domain::{
    ClientName, License, LicenseId, LicenseState, Operation, OperationKind, Panel, PanelCatalog,
    ServerId,
};
use crate::store::{Inserted, Page, Store, StoreError};

/// How often a waiting call re-reads its license even without a change notice from
/// this process (another replica's worker may be doing the work): one primary-key read
/// per waiting call, which keeps an order carried out by another replica from waiting
/// much longer than one carried out here.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// Who calls a mutating use case, and how.
#[derive(Debug, Clone)]
pub struct Call {
    /// The calling client; licenses and request ids are scoped by it.
    pub client: ClientName,
    /// The caller's request id, if any.
    pub request: Option<RequestKey>,
    /// Wait up to this long, counted from `arrived`, for the work to finish upstream
    /// before answering.
    pub wait: Option<Duration>,
    /// Whether the caller may change every client's licenses by id (the `admin`
    /// scope); otherwise only its own.
    pub admin: bool,
    /// When the call arrived: the wait counts from here, so the time it took to accept
    /// the call (pricing it, storing it) comes out of the wait, and an answer due by a
    /// deadline is not late.
    pub arrived: tokio::time::Instant,
}

impl Call {
    /// A call of `client`, arriving now, without request id, that does not wait.
    pub fn of(client: ClientName) -> Self {
        Self {
            client,
            request: None,
            wait: None,
            admin: false,
            arrived: tokio::time::Instant::now(),
        }
    }

    /// Whose licenses the call may change by id: the caller's, or (`None`) any.
    pub fn owner_filter(&self) -> Option<&ClientName> {
        (!self.admin).then_some(&self.client)
    }
}

/// The result of a mutating use case.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The license: as accepted, or as the work left it when the call waited.
    pub license: License,
    /// Whether the call created the license (an order, or a desired state that ordered).
    pub created: bool,
    /// What a desired-state call did.
    pub action: Option<EnsureAction>,
    /// Operations queued, in order.
    pub operations: Vec<i64>,
    /// Whether the call waited and the work finished.
    pub settled: bool,
    /// Whether this is the stored result of an earlier call with the same request id.
    pub replayed: bool,
}

/// The use cases.
#[derive(Clone)]
pub struct LicenseService {
    store: Arc<dyn Store>,
    upstream: Arc<dyn Billmanager>,
    catalog: Arc<PanelCatalog>,
    prices: Arc<quotes::PriceCache>,
    /// Wakes the workers when new work is stored.
    work: Arc<Notify>,
    /// Announces every license change (by id) to waiters in this process.
    changes: broadcast::Sender<LicenseId>,
    /// The reconciler's latest report and defaults.
    drift: Arc<reconcile::DriftState>,
    /// Cancelled at shutdown: change-feed streams end so a drain does not wait for
    /// watchers (they resume on another replica from their last event id).
    closing: tokio_util::sync::CancellationToken,
    /// Per-client order caps.
    spend: Arc<spend::SpendGuard>,
    /// The change feed's latest event id, open streams and bounds.
    feed: Arc<feed::FeedHub>,
    /// Where the service and its worker spawn background work: an application's set,
    /// so that stopping the application ends it.
    tasks: crate::tasks::Tasks,
    /// Webhook delivery settings.
    webhooks: Arc<webhooks::WebhookConfig>,
    /// Wakes this process's webhook dispatcher (a subscription was resumed).
    webhook_wake: Arc<Notify>,
    /// The pool's rules.
    pool: Arc<crate::domain::PoolConfig>,
    /// Where an accepted order goes when a runner of the worker is free.
    at_once: Arc<crate::workflow::AtOnce>,
}

impl LicenseService {
    /// A service over `store`, `upstream` and `catalog`; [`worker`](Self::worker)
    /// carries the operations out upstream.
    pub fn new(
        store: Arc<dyn Store>,
        upstream: Arc<dyn Billmanager>,
        catalog: Arc<PanelCatalog>,
    ) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            store,
            upstream,
            catalog,
            prices: Arc::new(quotes::PriceCache::default()),
            work: Arc::new(Notify::new()),
            changes,
            drift: Arc::default(),
            closing: tokio_util::sync::CancellationToken::new(),
            spend: Arc::default(),
            feed: Arc::new(feed::FeedHub::new(FeedConfig::default())),
            tasks: crate::tasks::Tasks::new(),
            webhooks: Arc::default(),
            webhook_wake: Arc::new(Notify::new()),
            pool: Arc::default(),
            at_once: Arc::default(),
        }
    }

    /// Bounds the change feed with `config`.
    pub fn with_feed_config(mut self, config: FeedConfig) -> Self {
        self.feed = Arc::new(feed::FeedHub::new(config));
        self
    }

    /// Spawns the service's and its worker's background work in `tasks`.
    pub fn with_tasks(mut self, tasks: crate::tasks::Tasks) -> Self {
        self.tasks = tasks;
        self
    }

    /// The worker that carries this service's operations out upstream.
    pub fn worker(&self, config: WorkflowConfig) -> Worker {
        crate::workflow::Worker::new(
            self.store.clone(),
            self.upstream.clone(),
            self.work.clone(),
            self.changes.clone(),
            self.catalog.clone(),
            config,
            self.tasks.clone(),
            self.at_once.clone(),
        )
    }

    /// The catalog itself.
    pub fn catalog(&self) -> &Arc<PanelCatalog> {
        &self.catalog
    }

    /// The upstream client.
    pub fn upstream(&self) -> &Arc<dyn Billmanager> {
        &self.upstream
    }

    /// The panel catalog.
    pub fn panels(&self) -> &[Panel] {
        self.catalog.panels()
    }

    /// Orders a license; see the OrderLicense RPC for the semantics.
    pub async fn order_license(
        &self,
        call: &Call,
        input: OrderInput,
    ) -> Result<Outcome, ServiceError> {
        self.order_as(call, input, "OrderLicense", None).await
    }

    /// Orders a license on behalf of `method`: the request id is recorded with that
    /// method's fingerprint and `action`, so that a replay of the call that ordered
    /// (OrderLicense, or EnsureServerLicense when the server had no license) matches
    /// the record and answers with the first result.
    #[tracing::instrument(skip_all, fields(server_id = %input.server_id, panel = %input.panel))]
    pub(crate) async fn order_as(
        &self,
        call: &Call,
        input: OrderInput,
        method: &'static str,
        action: Option<EnsureAction>,
    ) -> Result<Outcome, ServiceError> {
        let new = input.clone().validate(&call.client, &self.catalog)?;
        let fp = idempotency::fingerprint(method, &idempotency::order_params(&new));
        if let Some(replayed) = self.replay(call, &fp).await? {
            return Ok(replayed);
        }
        // A new license is paid from now for its period.
        self.check_prepaid(call, None, new.period)?;
        // Held until the order is stored, so a client's orders are counted one at a time.
        let spend = self
            .spend_permit(&call.client, &new.server_id, &self.order_purchase(&new))
            .await?;
        let now = OffsetDateTime::now_utc();
        let pending = new.clone().into_pending(LicenseId::generate(), now);
        let op = Operation::received(pending.id, OperationKind::Order, now)
            .in_trace(crate::telemetry::otlp::traceparent());
        let accepted = Outcome {
            license: pending.clone(),
            created: true,
            action,
            operations: Vec::new(),
            settled: false,
            replayed: false,
        };
        let record = self.request_record(call, &fp, &accepted);
        let audit =
            Self::accepted_entries(call, &pending, &[OperationKind::Order.name()], Some(&spend));
        // A parked license of the tariff, when one fits, is taken instead of buying
        // (trials are never parked).
        let pick = (new.period != crate::domain::Period::Trial)
            .then(|| self.pool.pick(new.tariff_id, new.nodes, now))
            .flatten();
        // With a runner free, the order is stored at INTENT and run at once: one
        // commit before the call instead of two and a claim (see `workflow::at_once`).
        let taking = self.at_once.take();
        if taking.is_some() {
            crate::crash::point(crate::crash::BEFORE_INTENT);
        }
        let inserted = self
            .store
            .insert_order_from_pool(
                &pending,
                &op,
                record.as_ref(),
                &audit,
                spend.limit.as_ref(),
                pick.as_ref(),
                taking.as_ref().map(|t| t.order()),
            )
            .await;
        // A slot the order was not stored into (a reuse, a refusal, the server's
        // existing license, a replay) is given back now, not after the call has
        // waited: the queued step may need it.
        let taking = taking.filter(|_| matches!(inserted, Ok(Inserted::Taken { .. })));
        let inserted = match inserted {
            Err(StoreError::RequestKeyTaken) => return self.replay_after_race(call, &fp).await,
            Err(StoreError::SpendLimit(exceeded)) => return Err(spend.refusal(exceeded)),
            other => other?,
        };
        let price = spend.price.clone();
        drop(spend);
        match inserted {
            Inserted::Created(license) => {
                self.accepted_order(call, accepted, license, &price, None)
                    .await
            }
            // Run at once in the slot taken for it.
            Inserted::Taken { license, op } => {
                let run = taking.map(|taking| (taking, op));
                self.accepted_order(call, accepted, license, &price, run)
                    .await
            }
            Inserted::IpTaken(taken) => Err(ServiceError::ip_has_license(
                &taken,
                &call.client,
                call.admin,
            )),
            Inserted::Existing(existing) if !new.matches(&existing) => {
                Err(ServiceError::ServerHasLicense {
                    existing: Box::new(existing),
                    use_instead: "ChangeLicensePanel",
                })
            }
            Inserted::Existing(existing) if existing.ip != new.ip => {
                Err(ServiceError::ServerHasLicense {
                    existing: Box::new(existing),
                    use_instead: "ChangeLicenseIp",
                })
            }
            Inserted::Existing(existing) => {
                // The server has this license already: nothing is stored, so a retry
                // with the same id answers the same way.
                let outcome = Outcome {
                    license: existing,
                    created: false,
                    ..accepted
                };
                self.finish(
                    &Call {
                        request: None,
                        ..call.clone()
                    },
                    outcome,
                )
                .await
            }
        }
    }

    /// Answers an order stored as `license`: queued for the loops, or with `run`, run
    /// at once in the slot taken for it.
    async fn accepted_order(
        &self,
        call: &Call,
        accepted: Outcome,
        license: License,
        price: &crate::domain::CallPrice,
        run: Option<(crate::workflow::Taking, crate::domain::Operation)>,
    ) -> Result<Outcome, ServiceError> {
        match license.reused_from {
            Some(from) => {
                tracing::info!(license_id = %license.id, reused_from = %from, "order accepted; a parked license is taken instead of buying");
                metrics::counter!(crate::metrics::POOL_REUSES, "panel" => license.panel.clone())
                    .increment(1);
            }
            None => {
                tracing::info!(license_id = %license.id, price = %price, "order accepted");
                self.count_order(&license, price);
            }
        }
        match run {
            Some((taking, op)) => taking.run(op, license.clone()),
            None => self.wake_workers(),
        }
        let _ = self.changes.send(license.id);
        self.finish(
            call,
            Outcome {
                license,
                ..accepted
            },
        )
        .await
    }

    /// One license by id.
    pub async fn get_license(
        &self,
        client: Option<&ClientName>,
        id: &str,
    ) -> Result<License, ServiceError> {
        let id = LicenseId::parse(id).map_err(|_| ServiceError::NotFound)?;
        self.store
            .get_license(id)
            .await?
            .filter(|l| client.is_none_or(|c| &l.client == c))
            .ok_or(ServiceError::NotFound)
    }

    /// A server's live license, else its most recent one. `client` is the caller's
    /// owner filter (`None` for an admin); `chosen` the client an admin names. Server
    /// ids are each client's own, so an admin who names none is answered only when one
    /// client uses the server id, never with one of several picked at random.
    pub async fn get_server_license(
        &self,
        client: Option<&ClientName>,
        server_id: &str,
        chosen: Option<&str>,
    ) -> Result<License, ServiceError> {
        let server_id = ServerId::parse(server_id, "serverId")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let chosen = chosen.filter(|c| !c.is_empty()).map(ClientName::new);
        let owner = match (client, &chosen) {
            // A client sees only its own licenses, whatever it names.
            (Some(own), Some(named)) if own != named => return Err(ServiceError::NotFound),
            (Some(own), _) => Some(own),
            (None, Some(named)) => Some(named),
            (None, None) => {
                let clients = self.server_clients(&server_id).await?;
                if clients.len() > 1 {
                    return Err(ServiceError::ServerIdAmbiguous {
                        server_id: server_id.as_str().to_owned(),
                        clients,
                    });
                }
                None
            }
        };
        self.store
            .server_license(owner, &server_id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// The clients that have (or had) a license for `server_id`, sorted.
    async fn server_clients(&self, server_id: &ServerId) -> Result<Vec<String>, ServiceError> {
        let filter = crate::store::LicenseFilter {
            server_id: Some(server_id.clone()),
            ..Default::default()
        };
        let mut clients = std::collections::BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_licenses(&filter, 1000, token.as_deref())
                .await?;
            clients.extend(page.items.into_iter().map(|l| l.client.as_str().to_owned()));
            match page.next_token {
                Some(next) => token = Some(next),
                None => return Ok(clients.into_iter().collect()),
            }
        }
    }

    /// One license's latest events, newest first (`client`: only when it is theirs).
    pub async fn license_events(
        &self,
        client: Option<&ClientName>,
        id: &str,
        limit: u32,
    ) -> Result<Vec<crate::domain::Event>, ServiceError> {
        let license = self.get_license(client, id).await?;
        Ok(self.store.license_events(license.id, limit).await?)
    }

    /// The latest operation of a license (its order or its latest change) as the
    /// workflow last recorded it: how far it got, and when it was last sent upstream.
    /// `client`: only when the license is theirs.
    pub async fn latest_operation(
        &self,
        client: Option<&ClientName>,
        id: &str,
    ) -> Result<Option<crate::domain::Operation>, ServiceError> {
        let license = self.get_license(client, id).await?;
        Ok(self.store.latest_operation(license.id).await?)
    }

    /// Lists licenses.
    pub async fn list_licenses(
        &self,
        client: Option<&ClientName>,
        input: ListInput,
    ) -> Result<Page<License>, ServiceError> {
        let (filter, page_size, token) = input.validate(client, &self.catalog)?;
        Ok(self
            .store
            .list_licenses(&filter, page_size, token.as_deref())
            .await?)
    }

    /// Waits until the license leaves PENDING/PROVISIONING or `timeout` passes, then
    /// returns it as it is.
    pub async fn wait_settled(
        &self,
        client: Option<&ClientName>,
        id: LicenseId,
        timeout: Duration,
    ) -> Result<License, ServiceError> {
        // Subscribe before reading so a change between the read and the wait is seen.
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let license = self.get_license(client, &id.to_string()).await?;
            if !matches!(
                license.state,
                LicenseState::Pending | LicenseState::Provisioning
            ) {
                return Ok(license);
            }
            // Another replica's worker may be the one moving the license on, and its
            // changes are not announced here: re-read at least every poll. The poll is
            // fixed before waiting: counted anew at each notice of another license, a
            // busy process (notices every few milliseconds) would never re-read.
            let wake = deadline.min(tokio::time::Instant::now() + WAIT_POLL);
            loop {
                match tokio::time::timeout_at(wake, changes.recv()).await {
                    Err(_) if wake == deadline => return Ok(license),
                    Err(_) => break,
                    Ok(Ok(changed)) if changed != id => continue,
                    // Our license changed, or we lagged behind and must re-read.
                    Ok(_) => break,
                }
            }
        }
    }

    /// Wakes one worker loop of this process for the work just queued (other
    /// processes find it by polling). One, not all: every woken loop tries a claim, and
    /// the claims queue behind each other. A loop that finishes a step claims again
    /// at once, and a loop whose claim finds work wakes one more, so a burst spreads
    /// over the loops; if no loop is waiting, the next one to wait finds the wake-up
    /// stored.
    fn wake_workers(&self) {
        self.work.notify_one();
    }

    /// A receiver of license-change notices of this process.
    fn subscribe(&self) -> broadcast::Receiver<LicenseId> {
        self.changes.subscribe()
    }

    /// The store, for the change feed.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A notice of every license change made in this process.
    pub fn change_notices(&self) -> broadcast::Receiver<LicenseId> {
        self.subscribe()
    }

    /// Checks the store; used by readiness.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// Why no upstream call is made at present because the upstream refused the
    /// credentials; used by readiness.
    pub fn upstream_auth_refused(&self) -> Option<String> {
        self.upstream.auth_refused()
    }
}
