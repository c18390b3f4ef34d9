//! [`BillmanagerClient`]: the [`Billmanager`] trait over BILLmanager's HTTP API.
//!
//! Every call is one form POST (`func`, `out`, `lang=en`, the credentials, the
//! function's parameters) to the configured URL. Credentials travel only in the body:
//! `authinfo=user:password` on each call, or, in session mode, `auth=SID` after one
//! `func=auth`. Failures are classified in [`transport`](super::transport); refusals
//! come from the answer's `doc/error`.
//!
//! Retries: mutating calls are never repeated here. Reads (`soft`, `soft.edit` view,
//! `pricelist.export`) are repeated once after `Unavailable`, after a jittered pause so
//! that many callers do not come back in step. In session mode an `auth`
//! error (an expired session: the call was not carried out) leads to one fresh log-in
//! and one repeat, for every function.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tracing::Instrument as _;

use super::config::redacted_url;
use super::error::AUTH_BACKOFF;
use super::scrub::Scrubber;
use super::{
    Billmanager, ClientConfig, LicenseList, OrderParams, UpstreamError, UpstreamId,
    UpstreamLicense, UpstreamTariff, WireFormat, convert, transport,
};
use crate::protocol::Doc;

/// Pause before the single repeat of a read that found the upstream unreachable; the
/// actual pause is drawn uniformly from half to one and a half times this.
const READ_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Upper bound on `soft` pages, against an upstream that pages forever.
const MAX_PAGES: u32 = 10_000;
/// The credentials' back-off grows to this many times its first length.
const AUTH_BACKOFF_GROWTH: u32 = 16;

/// Which calls may be repeated after an `Unavailable` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Never,
    OnceIfUnavailable,
}

#[derive(Clone, Copy)]
enum Credential<'a> {
    AuthInfo,
    Session(&'a SecretString),
}

type Params = Vec<(String, String)>;

fn param(key: &str, value: impl ToString) -> (String, String) {
    (key.to_owned(), value.to_string())
}

/// The `soft.order.param` form of a paid order (`skipbasket`: no cart).
fn order_form(params: &OrderParams) -> Params {
    crate::protocol::OrderForm {
        tariff_id: params.tariff_id,
        ip: params.ip.to_string(),
        period: params.period,
        autoprolong: params.autoprolong,
        remote_id: params.remote_id.clone(),
        licname: params.licname.clone(),
        addons: params.addons.iter().copied().collect(),
        skipbasket: true,
    }
    .to_params()
}

fn elid_sok(id: UpstreamId) -> Params {
    vec![param("elid", id), param("sok", "ok")]
}

/// The shape of a `soft` list answer, as [`BillmanagerClient::list_shape`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListShape {
    /// Rows on the first page.
    pub rows: usize,
    /// The column that carried the license id (`id` or `elid`), if any row had one.
    pub id_column: Option<&'static str>,
    /// Whether rows carry `remoteid`.
    pub remoteid: bool,
    /// Whether rows carry `licname`.
    pub licname: bool,
    /// Whether any column carried a raw value in `orig`.
    pub orig: bool,
    /// Whether the answer carries the account's `saved_filters` (empty or not).
    pub saved_filters: bool,
    /// Why the list may leave licenses out (a saved or active filter), if it may.
    pub filter: Option<String>,
    /// The column that carried the status (`status`, `item_status` or `status_msg`),
    /// if any row had one.
    pub status_column: Option<&'static str>,
    /// The status codes of the first page's rows as read (0 when unreadable), each
    /// with how many rows had it.
    pub statuses: std::collections::BTreeMap<u32, usize>,
}

/// Where a `soft.order.param` answer carried the new license's id. Used by `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderAnswer {
    /// The new license's id.
    pub id: UpstreamId,
    /// Where it was: `doc/id`, `doc/item.id` or `doc/id/v`.
    pub id_at: &'static str,
}

/// The BILLmanager client: one `reqwest::Client`, built once, shared by every call.
pub struct BillmanagerClient {
    http: reqwest::Client,
    url: String,
    user: String,
    password: SecretString,
    format: WireFormat,
    use_session: bool,
    page_size: u32,
    max_response_bytes: usize,
    max_price_list_bytes: usize,
    price_list_filter: super::PriceListFilter,
    /// The session id in session mode. An async mutex because the log-in runs while it
    /// is held: concurrent calls wait for one log-in instead of each starting one.
    session: Mutex<Option<SecretString>>,
    /// The outbound rate limit; `None` when unlimited.
    limiter: Option<governor::DefaultDirectRateLimiter>,
    /// The bound on a whole mutating call, waits included (see [`Self::call`]).
    call_timeout: std::time::Duration,
    /// The credentials' back-off (see [`AuthGate`]).
    auth_gate: std::sync::Mutex<AuthGate>,
    auth_backoff: Duration,
    /// Held by the one call that may test credentials in doubt.
    auth_trial: Mutex<()>,
}

/// After the upstream refuses the credentials, no call is made until `until`: every
/// call would be another failed log-in, and panels block addresses whose log-ins keep
/// failing. The pause doubles with each refusal in a row; any accepted call resets it.
#[derive(Debug, Default)]
struct AuthGate {
    until: Option<Instant>,
    refusals: u32,
}

impl AuthGate {
    /// The pause after the `refusals`-th refusal in a row.
    fn pause(first: Duration, refusals: u32) -> Duration {
        let doublings = refusals.saturating_sub(1).min(AUTH_BACKOFF_GROWTH.ilog2());
        first.saturating_mul(1 << doublings)
    }
}

tokio::task_local! {
    /// Set once the request of the current call has started on the wire.
    static SENT: std::sync::Arc<std::sync::atomic::AtomicBool>;
}

impl fmt::Debug for BillmanagerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillmanagerClient")
            .field("url", &redacted_url(&self.url))
            .field("user", &self.user)
            .field("format", &self.format)
            .field("use_session", &self.use_session)
            .finish_non_exhaustive()
    }
}

impl BillmanagerClient {
    /// Validates the configuration and builds the HTTP client (rustls with the ring
    /// provider; system CA roots for an `https` URL).
    pub fn new(config: ClientConfig) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|_| anyhow!("the BILLmanager url is not a valid URL"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => bail!("the BILLmanager url must be http or https"),
        };
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            bail!("the BILLmanager url must not carry credentials or a query string");
        }
        if config.page_size == 0 {
            bail!("the BILLmanager page size must be positive");
        }
        if config.max_response_bytes == 0 {
            bail!("the BILLmanager response size limit must be positive");
        }
        let http = transport::http_client(config.connect_timeout, config.request_timeout, https)?;
        let limiter = std::num::NonZeroU32::new(config.max_calls_per_second)
            .map(|rate| governor::RateLimiter::direct(governor::Quota::per_second(rate)));
        Ok(Self {
            http,
            url: config.url,
            user: config.user,
            password: config.password,
            format: config.format,
            use_session: config.use_session,
            page_size: config.page_size,
            max_response_bytes: config.max_response_bytes,
            max_price_list_bytes: config.max_price_list_bytes.min(config.max_response_bytes),
            price_list_filter: config.price_list_filter,
            session: Mutex::new(None),
            limiter,
            call_timeout: config.request_timeout,
            auth_gate: std::sync::Mutex::new(AuthGate::default()),
            auth_trial: Mutex::new(()),
            auth_backoff: config.auth_backoff,
        })
    }

    /// One upstream function call, logged with its outcome (never its parameters).
    ///
    /// A mutating call is bounded as a whole — rate-limit wait and log-in included —
    /// by the request timeout. The workflow sends a call only while its lease outlasts
    /// that bound; without it, a call queued behind the rate limit could reach the
    /// upstream after the lease ran out and another worker, finding nothing upstream
    /// yet, had sent it again. Running out of time before the request left is
    /// `Unavailable` (nothing was sent); after it left, `Indeterminate`.
    async fn call(&self, func: &str, params: &Params, retry: Retry) -> Result<Doc, UpstreamError> {
        let started = Instant::now();
        // A span of its own, named by the function (never its parameters), only when
        // traces are exported: log lines keep the caller's span otherwise.
        let span = if crate::telemetry::otlp::exporting() {
            tracing::info_span!(
                "upstream call",
                otel.name = func,
                otel.kind = "client",
                billmanager.function = func,
            )
        } else {
            tracing::Span::none()
        };
        let result = self.call_traced(func, params, retry).instrument(span).await;
        log_outcome(func, started, result.as_ref().err());
        result
    }

    /// [`call`](Self::call) without its log line, in the call's span.
    async fn call_traced(
        &self,
        func: &str,
        params: &Params,
        retry: Retry,
    ) -> Result<Doc, UpstreamError> {
        if retry == Retry::OnceIfUnavailable {
            self.call_with_session(func, params, retry).await
        } else {
            let sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let bounded = tokio::time::timeout(
                self.call_timeout,
                SENT.scope(sent.clone(), self.call_with_session(func, params, retry)),
            );
            match bounded.await {
                Ok(result) => result,
                Err(_) if sent.load(std::sync::atomic::Ordering::SeqCst) => Err(
                    UpstreamError::Indeterminate("timed out waiting for the answer".into()),
                ),
                Err(_) => Err(UpstreamError::Unavailable(
                    "the call could not be sent within the request timeout (rate limit or log-in); not sent"
                        .into(),
                )),
            }
        }
    }

    /// Whether the last verdict on the credentials was a refusal.
    fn auth_in_doubt(&self) -> bool {
        let gate = self.auth_gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.refusals > 0
    }

    /// When the credentials' back-off ends, if it runs now.
    fn auth_blocked(&self) -> Option<Instant> {
        let gate = self.auth_gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.until.filter(|until| *until > Instant::now())
    }

    /// Starts or lengthens the back-off after a refusal of the credentials; ends it
    /// after any answer that proves them good.
    fn note_auth<T>(&self, result: &Result<T, UpstreamError>) {
        let mut gate = self.auth_gate.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            // Refusals that arrive while the back-off runs are of calls sent before
            // it began (or of the log-in already counted): one refusal, one doubling.
            Err(UpstreamError::Auth(_)) if gate.until.is_some_and(|u| u > Instant::now()) => {}
            Err(UpstreamError::Auth(_)) => {
                gate.refusals = gate.refusals.saturating_add(1);
                let pause = AuthGate::pause(self.auth_backoff, gate.refusals);
                gate.until = Some(Instant::now() + pause);
                metrics::gauge!(crate::metrics::UPSTREAM_AUTH_REFUSED).set(1.0);
                tracing::error!(
                    refusals = gate.refusals,
                    pause_secs = pause.as_secs(),
                    "the upstream refused the credentials; no call until the back-off ends"
                );
            }
            Err(UpstreamError::Unavailable(_) | UpstreamError::Indeterminate(_)) => {}
            Ok(_) | Err(UpstreamError::Refused { .. } | UpstreamError::Unreadable(_)) => {
                if gate.refusals > 0 {
                    tracing::info!("the upstream accepted the credentials again");
                    metrics::gauge!(crate::metrics::UPSTREAM_AUTH_REFUSED).set(0.0);
                }
                *gate = AuthGate::default();
            }
        }
    }

    async fn call_with_session(
        &self,
        func: &str,
        params: &Params,
        retry: Retry,
    ) -> Result<Doc, UpstreamError> {
        // While the credentials are in doubt (refused, back-off over), calls go one at
        // a time: in `authinfo` mode every call is a log-in, and a queue of them must
        // not all fail at once. The wait is inside the bound of a mutating call.
        let _one_at_a_time = if self.auth_in_doubt() {
            Some(self.auth_trial.lock().await)
        } else {
            None
        };
        if self.auth_blocked().is_some() {
            return Err(UpstreamError::Unavailable(AUTH_BACKOFF.into()));
        }
        // Noted before the turn is handed on, so the next call sees the verdict.
        let result = self.call_with_credentials(func, params, retry).await;
        self.note_auth(&result);
        result
    }

    async fn call_with_credentials(
        &self,
        func: &str,
        params: &Params,
        retry: Retry,
    ) -> Result<Doc, UpstreamError> {
        if !self.use_session {
            return self
                .call_with_retry(func, params, Credential::AuthInfo, retry)
                .await;
        }
        let sid = self.session().await?;
        match self
            .call_with_retry(func, params, Credential::Session(&sid), retry)
            .await
        {
            // An expired session: the call was not carried out, so it may be repeated.
            Err(UpstreamError::Auth(_)) => {
                self.forget_session(&sid).await;
                let sid = self.session().await?;
                self.call_with_retry(func, params, Credential::Session(&sid), retry)
                    .await
            }
            other => other,
        }
    }

    async fn call_with_retry(
        &self,
        func: &str,
        params: &Params,
        credential: Credential<'_>,
        retry: Retry,
    ) -> Result<Doc, UpstreamError> {
        match self.attempt(func, params, credential).await {
            Err(UpstreamError::Unavailable(_)) if retry == Retry::OnceIfUnavailable => {
                tokio::time::sleep(jittered(READ_RETRY_PAUSE)).await;
                self.attempt(func, params, credential).await
            }
            other => other,
        }
    }

    async fn attempt(
        &self,
        func: &str,
        params: &Params,
        credential: Credential<'_>,
    ) -> Result<Doc, UpstreamError> {
        let authinfo;
        let mut form: Vec<(&str, &str)> =
            vec![("func", func), ("out", self.format.out()), ("lang", "en")];
        match credential {
            Credential::AuthInfo => {
                authinfo =
                    SecretString::from(format!("{}:{}", self.user, self.password.expose_secret()));
                form.push(("authinfo", authinfo.expose_secret()));
            }
            Credential::Session(sid) => form.push(("auth", sid.expose_secret())),
        }
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let sid = match credential {
            Credential::AuthInfo => None,
            Credential::Session(sid) => Some(sid.expose_secret()),
        };
        self.exchange(&form).await.map_err(|e| self.scrub(e, sid))
    }

    /// Sends a form and reads the answer: a transport failure, an unusable body or a
    /// `doc/error` is an error; any other `doc` is the result.
    async fn exchange(&self, form: &[(&str, &str)]) -> Result<Doc, UpstreamError> {
        self.wait_for_rate_limit().await;
        // From here on the request may reach the upstream.
        let _ = SENT.try_with(|sent| sent.store(true, std::sync::atomic::Ordering::SeqCst));
        // The export is bounded more tightly: it only feeds quotes and checks.
        let limit = if form.contains(&("func", "pricelist.export")) {
            self.max_price_list_bytes
        } else {
            self.max_response_bytes
        };
        let body = transport::post_form(&self.http, &self.url, form, limit).await?;
        let doc = Doc::parse(&body)
            .map_err(|e| UpstreamError::Indeterminate(format!("unusable answer: {e}")))?;
        match doc.error() {
            // A refused session or password is `Auth`; every other type a refusal.
            Some(error) if error.kind == "auth" => Err(UpstreamError::Auth(error.message)),
            Some(error) => Err(UpstreamError::Refused {
                kind: error.kind,
                object: error.object,
                message: error.message,
            }),
            None => Ok(doc),
        }
    }

    /// `subaccount`: the account's balance and currency, when the API gives them.
    /// A read; used by `doctor`.
    pub async fn balance(&self) -> Result<Option<(String, String)>, UpstreamError> {
        let doc = self
            .call("subaccount", &Vec::new(), Retry::OnceIfUnavailable)
            .await?;
        let row = doc.elems().into_iter().next();
        let field = |name: &str| {
            row.and_then(|r| r.field(name))
                .or_else(|| doc.field(name))
                .map(str::to_owned)
        };
        Ok(field("balance").map(|b| (b, field("currency").unwrap_or_default())))
    }

    /// What the first page of `soft` looks like: which columns its rows carry and
    /// whether raw values come in `orig`. A read; used by `doctor`.
    pub async fn list_shape(&self) -> Result<ListShape, UpstreamError> {
        let form = vec![param("p_num", 1), param("p_cnt", self.page_size)];
        let doc = self.call("soft", &form, Retry::OnceIfUnavailable).await?;
        let rows = doc.elems();
        let columns = |name: &str| rows.iter().any(|r| r.child(name).is_some());
        let mut statuses = std::collections::BTreeMap::new();
        for row in rows.iter().filter_map(|r| convert::license_row(r).ok()) {
            *statuses.entry(row.status.code()).or_default() += 1;
        }
        Ok(ListShape {
            rows: rows.len(),
            id_column: ["id", "elid"].into_iter().find(|c| columns(c)),
            remoteid: columns("remoteid"),
            licname: columns("licname"),
            orig: rows
                .iter()
                .any(|r| r.children.iter().any(|c| c.attr("orig").is_some())),
            status_column: ["status", "item_status", "status_msg"]
                .into_iter()
                .find(|c| columns(c)),
            saved_filters: doc.node("saved_filters").is_some(),
            filter: doc.filter_note(),
            statuses,
        })
    }

    /// Orders a license exactly as [`Billmanager::order_license`] does and says where
    /// the answer carried its id. It spends money: `doctor` calls it on its own sandbox
    /// only.
    pub async fn order_license_answer(
        &self,
        params: &OrderParams,
    ) -> Result<OrderAnswer, UpstreamError> {
        let doc = self
            .call("soft.order.param", &order_form(params), Retry::Never)
            .await?;
        let (id, id_at) = convert::order_id_at(&doc)?;
        Ok(OrderAnswer { id, id_at })
    }

    /// Waits until the outbound rate limit lets one more request go.
    async fn wait_for_rate_limit(&self) {
        use governor::clock::{Clock as _, DefaultClock};
        let Some(limiter) = &self.limiter else { return };
        let mut waited = false;
        while let Err(not_until) = limiter.check() {
            waited = true;
            tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now())).await;
        }
        if waited {
            metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
        }
    }

    /// `error` with its text bounded and the credentials of the request masked: an
    /// upstream may echo the request (password, session id) in its messages, and these
    /// messages are stored and shown (see [`scrub`](super::scrub)).
    fn scrub(&self, error: UpstreamError, sid: Option<&str>) -> UpstreamError {
        let scrubber = Scrubber::new([self.password.expose_secret(), sid.unwrap_or_default()]);
        let clean = |s: String| scrubber.text(&s);
        match error {
            UpstreamError::Refused {
                kind,
                object,
                message,
            } => UpstreamError::Refused {
                kind: clean(kind),
                object: object.map(clean),
                message: clean(message),
            },
            UpstreamError::Auth(message) => UpstreamError::Auth(clean(message)),
            UpstreamError::Unavailable(message) => UpstreamError::Unavailable(clean(message)),
            UpstreamError::Indeterminate(message) => UpstreamError::Indeterminate(clean(message)),
            UpstreamError::Unreadable(message) => UpstreamError::Unreadable(clean(message)),
        }
    }

    /// The current session id, logging in first when there is none.
    async fn session(&self) -> Result<SecretString, UpstreamError> {
        let mut current = self.session.lock().await;
        if let Some(sid) = current.as_ref() {
            return Ok(sid.clone());
        }
        // Calls queued behind a log-in that was just refused must not each try again.
        if self.auth_blocked().is_some() {
            return Err(UpstreamError::Unavailable(AUTH_BACKOFF.into()));
        }
        let sid = self.log_in().await;
        self.note_auth(&sid);
        let sid = sid?;
        *current = Some(sid.clone());
        Ok(sid)
    }

    /// Drops `failed` unless another call has already replaced it.
    async fn forget_session(&self, failed: &SecretString) {
        let mut current = self.session.lock().await;
        if current
            .as_ref()
            .is_some_and(|sid| sid.expose_secret() == failed.expose_secret())
        {
            *current = None;
        }
    }

    /// `func=auth`. The actual call has not been sent yet when this runs, so every
    /// failure other than a rejection of the credentials is `Unavailable`.
    async fn log_in(&self) -> Result<SecretString, UpstreamError> {
        let started = Instant::now();
        let form = [
            ("func", "auth"),
            ("out", self.format.out()),
            ("lang", "en"),
            ("username", self.user.as_str()),
            ("password", self.password.expose_secret()),
        ];
        let result = self
            .exchange(&form)
            .await
            .map_err(|e| self.scrub(e, None))
            .and_then(|doc| {
                convert::session_id(&doc).ok_or_else(|| {
                    UpstreamError::Unavailable("log-in answer carried no session id".into())
                })
            })
            .map(SecretString::from)
            .map_err(|e| match e {
                UpstreamError::Auth(_) => e,
                UpstreamError::Refused { kind, message, .. } => {
                    UpstreamError::Auth(format!("log-in refused ({kind}): {message}"))
                }
                UpstreamError::Unavailable(m)
                | UpstreamError::Indeterminate(m)
                | UpstreamError::Unreadable(m) => {
                    UpstreamError::Unavailable(format!("log-in failed: {m}"))
                }
            });
        log_outcome("auth", started, result.as_ref().err());
        result
    }
}

/// Records why a list may be incomplete; the first reason is the one reported, later
/// ones mostly follow from it.
fn mark_incomplete(list: &mut LicenseList, why: String) {
    list.incomplete.get_or_insert(why);
}

/// A pause drawn uniformly from half to one and a half times `base`.
fn jittered(base: Duration) -> Duration {
    use rand::Rng as _;
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Logs a call's outcome and records it in the upstream metrics.
fn log_outcome(func: &str, started: Instant, error: Option<&UpstreamError>) {
    let elapsed = started.elapsed();
    crate::metrics::upstream_call(func, outcome_label(error), elapsed);
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let outcome = outcome_label(error);
    match error {
        None => tracing::debug!(func, elapsed_ms, outcome, "billmanager call"),
        Some(error) => {
            tracing::debug!(func, elapsed_ms, outcome, error = %error, "billmanager call");
        }
    }
}

/// The `outcome` label of a call.
fn outcome_label(error: Option<&UpstreamError>) -> &'static str {
    match error {
        None => "ok",
        Some(UpstreamError::Refused { .. }) => "refused",
        Some(UpstreamError::Auth(_)) => "auth",
        Some(UpstreamError::Unavailable(_)) => "unavailable",
        Some(UpstreamError::Indeterminate(_)) => "indeterminate",
        Some(UpstreamError::Unreadable(_)) => "unreadable",
    }
}

#[async_trait]
impl Billmanager for BillmanagerClient {
    async fn order_license(&self, params: &OrderParams) -> Result<UpstreamId, UpstreamError> {
        let doc = self
            .call("soft.order.param", &order_form(params), Retry::Never)
            .await?;
        convert::order_id(&doc)
    }

    async fn license_details(&self, id: UpstreamId) -> Result<UpstreamLicense, UpstreamError> {
        let form = vec![param("elid", id)];
        let doc = self
            .call("soft.edit", &form, Retry::OnceIfUnavailable)
            .await?;
        convert::license_details(&doc, id)
    }

    async fn list_licenses(&self) -> Result<LicenseList, UpstreamError> {
        let mut list = LicenseList::default();
        let mut seen = HashSet::new();
        let mut total = None;
        for page in 1..=MAX_PAGES {
            let form = vec![param("p_num", page), param("p_cnt", self.page_size)];
            let doc = self.call("soft", &form, Retry::OnceIfUnavailable).await?;
            if !doc.looks_like_list() {
                mark_incomplete(
                    &mut list,
                    "the `soft` answer has neither rows nor `p_elems`".into(),
                );
            }
            if let Some(note) = doc.filter_note() {
                mark_incomplete(&mut list, note);
            }
            total = doc.p_elems().or(total);
            let rows = doc.elems();
            if rows.is_empty() {
                break;
            }
            let mut repeated = false;
            for row in &rows {
                let license = convert::license_row(row)?;
                if seen.insert(license.id) {
                    list.licenses.push(license);
                } else {
                    repeated = true;
                }
            }
            if repeated {
                // An upstream that ignores `p_num` sends page 1 again: stop there.
                tracing::warn!(page, "billmanager repeated list rows; paging stopped");
                break;
            }
            let done = match total {
                Some(total) => list.licenses.len() as u64 >= total,
                None => rows.len() < self.page_size as usize,
            };
            if done {
                break;
            }
            if page == MAX_PAGES {
                mark_incomplete(&mut list, format!("paging stopped after {MAX_PAGES} pages"));
            }
        }
        // Only a total that the rows add up to proves that nothing was left out.
        let read = list.licenses.len() as u64;
        match total {
            None => mark_incomplete(
                &mut list,
                "the `soft` answer gives no total (`p_elems`)".into(),
            ),
            Some(total) if total != read => mark_incomplete(
                &mut list,
                format!("the `soft` answer counts {total} licenses but {read} were read"),
            ),
            Some(_) => {}
        }
        Ok(list)
    }

    async fn ping(&self) -> Result<(), UpstreamError> {
        match self
            .call("subaccount", &Vec::new(), Retry::OnceIfUnavailable)
            .await
        {
            // A refusal (say, the function is not offered to this account) still
            // shows an upstream that answers and accepts the credentials.
            Ok(_) | Err(UpstreamError::Refused { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn price_list(&self) -> Result<Vec<UpstreamTariff>, UpstreamError> {
        let mut form = vec![param("onlyavailable", "on")];
        form.extend(
            self.price_list_filter
                .params()
                .map(|(name, value)| param(name, value)),
        );
        let doc = self
            .call("pricelist.export", &form, Retry::OnceIfUnavailable)
            .await?;
        Ok(convert::tariffs(&doc))
    }

    async fn renew_license(
        &self,
        id: UpstreamId,
        period: i32,
    ) -> Result<Option<String>, UpstreamError> {
        let form = vec![
            param("elid", id),
            param("period", period),
            param("sok", "ok"),
        ];
        let doc = self.call("service.prolong", &form, Retry::Never).await?;
        Ok(doc.field("newexpiredate").map(str::to_owned))
    }

    async fn change_ip(&self, id: UpstreamId, ip: IpAddr) -> Result<(), UpstreamError> {
        let form = vec![param("elid", id), param("ip", ip), param("sok", "ok")];
        self.call("soft.edit", &form, Retry::Never).await.map(drop)
    }

    async fn change_tariff(
        &self,
        id: UpstreamId,
        tariff_id: u32,
        period: i32,
    ) -> Result<(), UpstreamError> {
        let form = vec![
            param("elid", id),
            param("pricelist", tariff_id),
            param("period", period),
            param("sok", "ok"),
        ];
        self.call("service.changepricelist", &form, Retry::Never)
            .await
            .map(drop)
    }

    async fn suspend_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.call("soft.suspend", &elid_sok(id), Retry::Never)
            .await
            .map(drop)
    }

    async fn resume_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.call("soft.resume", &elid_sok(id), Retry::Never)
            .await
            .map(drop)
    }

    async fn delete_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.call("soft.delete", &elid_sok(id), Retry::Never)
            .await
            .map(drop)
    }

    async fn reissue_key(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        let form = vec![
            param("elid", id),
            param("clicked_button", "newkey"),
            param("sok", "ok"),
        ];
        self.call("soft.edit", &form, Retry::Never).await.map(drop)
    }

    async fn move_license(
        &self,
        id: UpstreamId,
        ip: IpAddr,
        name: &str,
    ) -> Result<(), UpstreamError> {
        let form = vec![
            param("elid", id),
            param("ip", ip),
            param("licname", name),
            param("remoteid", name),
            param("sok", "ok"),
        ];
        self.call("soft.edit", &form, Retry::Never).await.map(drop)
    }

    fn auth_refused(&self) -> Option<String> {
        let until = self.auth_blocked()?;
        Some(format!(
            "the upstream refused the credentials; the next log-in is tried in {} s",
            until.saturating_duration_since(Instant::now()).as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_back_off_doubles_past_five_minutes_and_stops_growing() {
        let first = ClientConfig::default().auth_backoff;
        let pauses: Vec<u64> = (1..=8)
            .map(|n| AuthGate::pause(first, n).as_secs())
            .collect();

        assert_eq!(pauses, [60, 120, 240, 480, 960, 960, 960, 960]);
        assert!(pauses.iter().any(|p| *p >= 300));
    }
}
