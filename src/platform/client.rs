//! The HTTP client of a platform: the token on every request (`x-xsrf-token` header
//! and `ses6` cookie, as the Go client `usaafko/vmmanager6-api-go` sends it), log-in
//! with e-mail and password and log-in again when the session has expired, and
//! back-off while the platform answers 503.
//!
//! Each answer says whether it was interrupted on the way (a 503 or an expired
//! session before it succeeded), because a listing that was interrupted after its
//! first page cannot prove an absence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use super::config::{Credentials, PlatformConfig, PlatformKind};
use super::error::PlatformError;

/// The longest wait between two attempts while the platform is busy.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An answer and what interrupted it on the way, if anything.
#[derive(Debug)]
pub struct Exchange {
    /// The JSON body.
    pub body: Value,
    /// `Some("busy")` after a 503, `Some("session")` after a re-login.
    pub interrupted: Option<&'static str>,
}

/// An authenticated client of one platform.
pub struct PlatformClient {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    /// The session token from the last log-in; a mutex so that concurrent callers log
    /// in once.
    session: tokio::sync::Mutex<Option<SecretString>>,
    busy_attempts: u32,
    busy_backoff: Duration,
    /// DCImanager examples send `isp-box-instance: true` (platforms.md §1).
    box_instance: bool,
    requests: Arc<AtomicU64>,
}

impl PlatformClient {
    /// Checks the URL and builds the HTTP client.
    pub fn new(config: &PlatformConfig) -> anyhow::Result<Self> {
        let url =
            reqwest::Url::parse(&config.url).context("the platform url is not a valid URL")?;
        let https = match url.scheme() {
            "https" => true,
            "http" if config.allow_http || is_loopback(&url) => false,
            "http" => bail!(
                "the platform url must be https (the token and password would travel in \
                 clear); set platform.allow_http = true to allow it anyway"
            ),
            _ => bail!("the platform url must be an http:// or https:// URL"),
        };
        Ok(Self {
            http: http_client(config.request_timeout, https)?,
            base: config.url.trim_end_matches('/').to_owned(),
            credentials: config.credentials.clone(),
            session: tokio::sync::Mutex::new(None),
            busy_attempts: config.busy_attempts.max(1),
            busy_backoff: config.busy_backoff,
            box_instance: config.kind == PlatformKind::DciManager6,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// HTTP requests sent so far (log-ins and retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// GETs `path` (with its query) and reads the JSON answer, logging in first when
    /// there is no session, again once when the session has expired, and retrying
    /// with back-off while the platform answers 503.
    pub async fn get_json(&self, path: &str) -> Result<Exchange, PlatformError> {
        let mut interrupted = None;
        let mut busy = 0u32;
        let mut relogged = false;
        loop {
            let token = self.token().await?;
            let mut request = self.http.get(format!("{}{path}", self.base));
            request = self.authorize(request, &token);
            let response = self.send(request).await?;
            let status = response.status();
            if status.is_success() {
                let body = read_json(response).await?;
                return Ok(Exchange { body, interrupted });
            }
            match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    busy += 1;
                    interrupted = Some("busy");
                    if busy >= self.busy_attempts {
                        return Err(PlatformError::Busy(busy));
                    }
                    tokio::time::sleep(self.backoff(busy)).await;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    if matches!(self.credentials, Credentials::ApiToken(_)) {
                        return Err(PlatformError::Unauthorized(status.as_u16()));
                    }
                    if relogged {
                        return Err(PlatformError::SessionExpired);
                    }
                    relogged = true;
                    interrupted = Some("session");
                    tracing::info!(
                        status = status.as_u16(),
                        "platform session expired; logging in again"
                    );
                    self.forget_session(&token).await;
                }
                other => return Err(PlatformError::Http(other.as_u16())),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.busy_backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        token: &SecretString,
    ) -> reqwest::RequestBuilder {
        let token = token.expose_secret();
        let mut request = request
            .header("x-xsrf-token", token)
            .header(reqwest::header::COOKIE, format!("ses6={token}"))
            .header(reqwest::header::ACCEPT, "application/json");
        if self.box_instance {
            request = request.header("isp-box-instance", "true");
        }
        request
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, PlatformError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        request
            .send()
            .await
            .map_err(|e| PlatformError::Transport(e.without_url().to_string()))
    }

    /// The token to send: the API token, or the session's (logging in if needed).
    async fn token(&self) -> Result<SecretString, PlatformError> {
        let (email, password) = match &self.credentials {
            Credentials::ApiToken(token) => return Ok(token.clone()),
            Credentials::Password { email, password } => (email, password),
        };
        let mut session = self.session.lock().await;
        if let Some(token) = session.as_ref() {
            return Ok(token.clone());
        }
        let token = self.login(email, password).await?;
        *session = Some(token.clone());
        Ok(token)
    }

    /// Drops the session `stale`, unless another caller already replaced it.
    async fn forget_session(&self, stale: &SecretString) {
        let mut session = self.session.lock().await;
        if session
            .as_ref()
            .is_some_and(|t| t.expose_secret() == stale.expose_secret())
        {
            *session = None;
        }
    }

    /// `POST /auth/v4/public/token`: 201 (or 200) with `{"token": …}`. Retried while
    /// the platform answers 503, as the Go client retries its log-in.
    async fn login(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<SecretString, PlatformError> {
        let body = json!({"email": email, "password": password.expose_secret()});
        let mut busy = 0u32;
        loop {
            let request = self
                .http
                .post(format!("{}/auth/v4/public/token", self.base))
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            let response = self.send(request).await?;
            let status = response.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                busy += 1;
                if busy >= self.busy_attempts {
                    return Err(PlatformError::Busy(busy));
                }
                tokio::time::sleep(self.backoff(busy)).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(PlatformError::Unauthorized(status.as_u16()));
            }
            if !status.is_success() {
                return Err(PlatformError::Http(status.as_u16()));
            }
            let answer = read_json(response).await?;
            return answer["token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_owned()))
                .ok_or_else(|| PlatformError::Malformed("log-in answer without a token".into()));
        }
    }
}

/// The JSON body of an answer.
async fn read_json(response: reqwest::Response) -> Result<Value, PlatformError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| PlatformError::Transport(e.without_url().to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| PlatformError::Malformed(e.to_string()))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP client: rustls on ring, system CA roots for https, no redirects.
fn http_client(timeout: Duration, https: bool) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let (added, _) =
            roots.add_parsable_certificates(crate::billmanager::transport::system_roots());
        if added == 0 {
            bail!(
                "no CA certificates found for the platform's https URL \
                 (set SSL_CERT_FILE or install the system CA bundle)"
            );
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the platform HTTP client")
}
