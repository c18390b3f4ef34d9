//! Webhooks: a client's subscriptions (managed over both APIs and the console) and
//! the dispatcher every process runs, which delivers the change feed's events to
//! them as signed HTTP POSTs.
//!
//! The events table is the outbox and a subscription's `last_event_id` its position
//! in it: a delivery is recorded (the position moved past it) only after the receiver
//! answered 2xx, so a restart or a kill -9 in between sends that event again (at
//! least once; receivers de-duplicate by the event id) and loses none. A process
//! delivers to a subscription only while it holds the subscription's lease, one event
//! at a time in feed order, so each license's events arrive in order and, with
//! replicas, each event is sent by one of them. A failed event is retried after 1 s,
//! 2 s, 4 s … (at most an hour apart) and nothing after it is sent meanwhile; after
//! 72 hours of failures the subscription is marked FAILING and waits, with its
//! backlog, until it is resumed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{LicenseService, ServiceError};
use crate::domain::{
    ClientName, EVENT_ID_HEADER, EVENT_TYPE_HEADER, Event, RETRY_FOR, SIGNATURE_HEADER, Webhook,
    WebhookState, check_webhook_target, check_webhook_url, webhook_backoff, webhook_event_types,
    webhook_signature,
};
use crate::store::WebhookProgress;

/// The most bytes of a secret the caller may choose.
const MAX_SECRET_BYTES: usize = 256;
/// The fewest.
const MIN_SECRET_BYTES: usize = 16;
/// Events read from the store per lease.
const BATCH: u32 = 100;
/// The longest reason of a failed attempt kept.
const MAX_ERROR_BYTES: usize = 300;

/// Writes an event as the body of its delivery.
pub type EncodeEvent = fn(&Event) -> Result<Vec<u8>, String>;

/// Settings of the deliveries (`[webhooks]` in the configuration file).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Let deliveries go to loopback, link-local and metadata addresses (a receiver
    /// on the same host, tests). Off by default.
    pub allow_private_targets: bool,
    /// Longest wait for the receiver's connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole delivery, answer included.
    pub timeout: Duration,
    /// The most bytes of a receiver's answer that are read (the rest is dropped).
    pub max_response_bytes: usize,
    /// How often a process looks for due deliveries when no event of its own woke it
    /// (events other replicas committed, retries that came due).
    pub poll: Duration,
    /// How long a process holds a subscription it delivers to; renewed with every
    /// delivery.
    pub lease: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_response_bytes: 4096,
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
        }
    }
}

/// What a caller asks for when it subscribes.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    /// Where events go.
    pub url: String,
    /// The kinds it wants; empty: all.
    pub event_types: Vec<String>,
    /// The signing secret; empty: one is made.
    pub secret: String,
}

/// A subscription with its backlog (the events it has not reached yet).
#[derive(Debug, Clone)]
pub struct WebhookView {
    /// The subscription.
    pub webhook: Webhook,
    /// Events of its scope after its position.
    pub backlog: u64,
}

impl LicenseService {
    /// Sets the delivery settings.
    pub fn with_webhook_config(mut self, config: WebhookConfig) -> Self {
        self.webhooks = Arc::new(config);
        self
    }

    /// Subscribes `client` (every client's events when `all_clients`, an admin's) to
    /// the events committed from now on. The answer carries the secret.
    pub async fn create_webhook(
        &self,
        client: &ClientName,
        all_clients: bool,
        input: WebhookInput,
    ) -> Result<WebhookView, ServiceError> {
        let url = check_webhook_url(input.url.trim())
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let event_types = webhook_event_types(&input.event_types)
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let secret = match input.secret.as_str() {
            "" => format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>())),
            s if s.len() < MIN_SECRET_BYTES || s.len() > MAX_SECRET_BYTES => {
                return Err(ServiceError::InvalidArgument(vec![
                    crate::domain::FieldViolation::new(
                        "secret",
                        "must be 16 to 256 bytes (or empty, for one made here)",
                    ),
                ]));
            }
            s => s.to_owned(),
        };
        self.resolve_target(&url).await?;
        let now = OffsetDateTime::now_utc();
        let webhook = Webhook {
            id: uuid::Uuid::now_v7().to_string(),
            client: client.clone(),
            all_clients,
            url: url.to_string(),
            event_types,
            secret,
            last_event_id: self.store.latest_event_id().await?,
            state: WebhookState::Active,
            attempts: 0,
            first_failure: None,
            next_attempt: now,
            last_error: None,
            delivered: 0,
            create_time: now,
        };
        self.store.insert_webhook(&webhook).await?;
        // The receiver's origin only: a path or query may carry a token of the
        // receiver's, which has no place in a log.
        tracing::info!(webhook = %webhook.id, client = %client, target = %url.origin().ascii_serialization(), "webhook created");
        Ok(WebhookView {
            webhook,
            backlog: 0,
        })
    }

    /// The subscriptions `owner` sees (every one for an admin, `None`).
    pub async fn list_webhooks(
        &self,
        owner: Option<&ClientName>,
    ) -> Result<Vec<WebhookView>, ServiceError> {
        Ok(self
            .store
            .list_webhooks(owner, None)
            .await?
            .into_iter()
            .map(|(webhook, backlog)| WebhookView { webhook, backlog })
            .collect())
    }

    /// One subscription `owner` sees.
    pub async fn get_webhook(
        &self,
        owner: Option<&ClientName>,
        id: &str,
    ) -> Result<WebhookView, ServiceError> {
        self.store
            .list_webhooks(owner, Some(id))
            .await?
            .into_iter()
            .next()
            .map(|(webhook, backlog)| WebhookView { webhook, backlog })
            .ok_or(ServiceError::WebhookNotFound)
    }

    /// Deletes a subscription `owner` sees.
    pub async fn delete_webhook(
        &self,
        owner: Option<&ClientName>,
        id: &str,
    ) -> Result<(), ServiceError> {
        if self.store.delete_webhook(id, owner).await? {
            tracing::info!(webhook = %id, "webhook deleted");
            Ok(())
        } else {
            Err(ServiceError::WebhookNotFound)
        }
    }

    /// Makes a FAILING subscription deliver again, from the event it stopped at.
    pub async fn resume_webhook(
        &self,
        owner: Option<&ClientName>,
        id: &str,
    ) -> Result<WebhookView, ServiceError> {
        if !self
            .store
            .resume_webhook(id, owner, OffsetDateTime::now_utc())
            .await?
        {
            return Err(ServiceError::WebhookNotFound);
        }
        self.wake_webhooks();
        self.get_webhook(owner, id).await
    }

    /// Where `url`'s host resolves, each address checked against the rules (a name
    /// must not resolve to any refused address); the first address is the one
    /// deliveries connect to, so a later answer of the name server cannot move them.
    async fn resolve_target(&self, url: &reqwest::Url) -> Result<SocketAddr, ServiceError> {
        let host = url
            .host_str()
            .ok_or_else(|| ServiceError::WebhookTargetRefused("names no host".into()))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| {
                    ServiceError::WebhookTargetRefused(format!("{host} does not resolve: {e}"))
                })?
                .collect(),
        };
        let allow = self.webhooks.allow_private_targets;
        for addr in &addrs {
            check_webhook_target(addr.ip(), allow).map_err(|why| {
                ServiceError::WebhookTargetRefused(format!(
                    "{host} resolves to {why}; deliveries may go there only with \
                     webhooks.allow_private_targets"
                ))
            })?;
        }
        addrs.first().copied().ok_or_else(|| {
            ServiceError::WebhookTargetRefused(format!("{host} resolves to no address"))
        })
    }

    /// Wakes this process's dispatcher (a subscription was resumed).
    fn wake_webhooks(&self) {
        self.webhook_wake.notify_one();
    }

    /// Delivers due events to every subscription this process can lease, until
    /// `stop`: woken by each event committed here, else every `poll`. `encode` writes
    /// an event's body as the API shows it (the core does not know the wire format;
    /// startup hands it the API's own mapping).
    pub async fn run_webhooks(self, encode: EncodeEvent, stop: CancellationToken) {
        let owner = format!("webhooks-{}", uuid::Uuid::now_v7().simple());
        let tls = ReceiverTls::default();
        let mut latest = self.latest_events();
        loop {
            if let Err(e) = self.store.sequence_events().await {
                tracing::warn!(error.message = %e, "cannot number events for webhooks");
            }
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let now = OffsetDateTime::now_utc();
                match self
                    .store
                    .claim_webhook(&owner, now, self.webhooks.lease)
                    .await
                {
                    Ok(Some(hook)) => self.deliver(&owner, &tls, encode, hook).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error.message = %e, "cannot claim a webhook");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = latest.changed() => {}
                _ = self.webhook_wake.notified() => {}
                _ = tokio::time::sleep(self.webhooks.poll) => {}
            }
        }
    }

    /// Sends `hook` the events after its position, in order, while the lease holds;
    /// stops at the first failure (recording it) or when no event is left.
    async fn deliver(
        &self,
        owner: &str,
        tls: &ReceiverTls,
        encode: EncodeEvent,
        mut hook: Webhook,
    ) {
        let scope = (!hook.all_clients).then_some(&hook.client);
        let events = match self
            .store
            .events_after(hook.last_event_id, BATCH, scope)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error.message = %e, webhook = %hook.id, "cannot read events");
                self.record(owner, &hook, WebhookProgress::Release).await;
                return;
            }
        };
        let mut client = None;
        for event in &events {
            if !hook.wants(event.kind) {
                // Passed over; recorded with the next delivery or at the end.
                continue;
            }
            if client.is_none() {
                client = match self.client_for(&hook, tls).await {
                    Ok(c) => Some(c),
                    Err(why) => {
                        self.failed(owner, &hook, event.id - 1, why).await;
                        return;
                    }
                };
            }
            let http = client.as_ref().expect("built above");
            match self.post(http, &hook, encode, event).await {
                Ok(()) => {
                    let progress = WebhookProgress::Delivered {
                        through: event.id,
                        delivered: 1,
                        lease_until: OffsetDateTime::now_utc() + self.webhooks.lease,
                    };
                    crate::metrics::webhook_delivered(event.time);
                    if !self.record(owner, &hook, progress).await {
                        // The lease went to another process: it delivers from here.
                        return;
                    }
                    hook.last_event_id = event.id;
                    hook.attempts = 0;
                    hook.first_failure = None;
                }
                Err(why) => {
                    self.failed(owner, &hook, event.id - 1, why).await;
                    return;
                }
            }
        }
        if let Some(last) = events.last() {
            // Events passed over after the last delivery.
            let progress = WebhookProgress::Delivered {
                through: last.id,
                delivered: 0,
                lease_until: OffsetDateTime::now_utc() + self.webhooks.lease,
            };
            self.record(owner, &hook, progress).await;
        }
        self.record(owner, &hook, WebhookProgress::Release).await;
    }

    /// Records a failed attempt at the event after `through` (events before it that
    /// were passed over are recorded first), with the back-off or, after
    /// [`RETRY_FOR`], the FAILING state.
    async fn failed(&self, owner: &str, hook: &Webhook, through: i64, why: String) {
        let now = OffsetDateTime::now_utc();
        if through > hook.last_event_id {
            let passed = WebhookProgress::Delivered {
                through,
                delivered: 0,
                lease_until: now + self.webhooks.lease,
            };
            if !self.record(owner, hook, passed).await {
                return;
            }
        }
        let attempts = hook.attempts.saturating_add(1);
        let first_failure = hook.first_failure.unwrap_or(now);
        let state = if now - first_failure >= RETRY_FOR {
            WebhookState::Failing
        } else {
            WebhookState::Active
        };
        let mut error = why;
        if error.len() > MAX_ERROR_BYTES {
            let mut end = MAX_ERROR_BYTES;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
        tracing::warn!(webhook = %hook.id, attempts, error = %error, state = %state, "webhook delivery failed");
        crate::metrics::webhook_failed();
        let progress = WebhookProgress::Failed {
            attempts,
            first_failure,
            next_attempt: now + webhook_backoff(attempts),
            error,
            state,
        };
        self.record(owner, hook, progress).await;
    }

    async fn record(&self, owner: &str, hook: &Webhook, progress: WebhookProgress) -> bool {
        match self
            .store
            .record_webhook(&hook.id, owner, OffsetDateTime::now_utc(), &progress)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error.message = %e, webhook = %hook.id, "cannot record a webhook delivery");
                false
            }
        }
    }

    /// The HTTP client of one batch: the target resolved and checked now and pinned,
    /// both timeouts, no redirects.
    async fn client_for(
        &self,
        hook: &Webhook,
        tls: &ReceiverTls,
    ) -> Result<reqwest::Client, String> {
        let url = reqwest::Url::parse(&hook.url).map_err(|e| e.to_string())?;
        let addr = self.resolve_target(&url).await.map_err(|e| e.to_string())?;
        let host = url.host_str().unwrap_or_default().to_owned();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls.get()?.clone())
            .connect_timeout(self.webhooks.connect_timeout)
            .timeout(self.webhooks.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }

    /// POSTs `event` to `hook`: 2xx is delivered; the answer is read up to the bound.
    async fn post(
        &self,
        http: &reqwest::Client,
        hook: &Webhook,
        encode: EncodeEvent,
        event: &Event,
    ) -> Result<(), String> {
        let body = encode(event).map_err(|e| format!("cannot encode the event: {e}"))?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let mut response = http
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                webhook_signature(&hook.secret, timestamp, &body),
            )
            .header(EVENT_ID_HEADER, event.id.to_string())
            .header(EVENT_TYPE_HEADER, event.kind.as_str())
            .body(body)
            .send()
            .await
            // Without the URL: its path or query may carry the receiver's token, and
            // this text is logged.
            .map_err(|e| error_chain(&e.without_url()))?;
        let status = response.status();
        let mut read = 0;
        while read < self.webhooks.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// An error with its causes, e.g. "error sending request: connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The TLS configuration of https receivers, made at the first delivery: reading the
/// system's CA bundle takes CPU and memory that a service with no subscription (most
/// of them) never needs, and every start (each replica, each restart) would pay it.
#[derive(Default)]
struct ReceiverTls(std::sync::OnceLock<rustls::ClientConfig>);

impl ReceiverTls {
    fn get(&self) -> Result<&rustls::ClientConfig, String> {
        if let Some(tls) = self.0.get() {
            return Ok(tls);
        }
        let tls = tls_config().map_err(|e| format!("cannot set up TLS: {e:#}"))?;
        Ok(self.0.get_or_init(|| tls))
    }
}

/// TLS for https receivers: rustls on ring, the system's CA certificates.
fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    use anyhow::Context;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(crate::billmanager::transport::system_roots());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}
