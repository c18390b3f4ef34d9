//! The watcher's only way into license-facade: the public gRPC API, called with the
//! watcher's own client token, exactly as a provider's own integration would call it.
//! Nothing here touches the service core or the store.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::config::ApiTls;
use tonic_types::StatusExt as _;

use crate::api::pb::v1 as pb;
use pb::license_service_client::LicenseServiceClient;

/// Licenses asked per `ListLicenses` page (the API's maximum).
const PAGE_SIZE: i32 = 1000;

/// A license as the watcher needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct License {
    /// License id.
    pub id: String,
    /// The server id it belongs to.
    pub server_id: String,
    /// The bound address.
    pub ip: String,
    /// Canonical panel name.
    pub panel: String,
    /// State, by its API name (`ACTIVE`, …).
    pub state: &'static str,
    /// When it last changed (`seconds.nanos` since the Unix epoch), part of the
    /// request ids derived from it.
    pub updated: String,
    /// When it last changed, in whole seconds since the Unix epoch.
    pub updated_secs: i64,
}

impl License {
    /// Whether it is live, holding its server: not CANCELLED or FAILED, nor PARKED
    /// (in the service's pool, bound to no server) or REUSED (taken by another
    /// license).
    pub fn is_live(&self) -> bool {
        !matches!(
            self.state,
            "CANCELLED" | "FAILED" | "PARKED" | "REUSED" | "STATE_UNSPECIFIED"
        )
    }

    fn from_pb(l: pb::License) -> Self {
        let state = pb::license::State::try_from(l.state)
            .unwrap_or(pb::license::State::Unspecified)
            .as_str_name();
        let updated = l
            .update_time
            .as_ref()
            .map(|t| format!("{}.{:09}", t.seconds, t.nanos))
            .unwrap_or_default();
        let updated_secs = l.update_time.as_ref().map_or(0, |t| t.seconds);
        Self {
            id: l.id,
            server_id: l.server_id,
            ip: l.ip,
            panel: l.panel,
            state,
            updated,
            updated_secs,
        }
    }
}

/// What `EnsureServerLicense` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensured {
    /// The license already matched.
    None,
    /// A license was ordered.
    Ordered,
    /// Panel and/or IP changes were queued.
    Changed,
}

/// Where `ReleaseLicense` sent a license.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleasedTo {
    /// The license as the answer shows it.
    pub license: License,
    /// Parked in the pool (`true`), or cancelled by the pool's rules.
    pub parked: bool,
    /// Why it was cancelled instead of parked; empty when parked.
    pub reason: String,
}

/// A failed call, with the API's reason code when it sent one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}{}: {message}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
pub struct ApiError {
    /// The gRPC status code.
    pub code: tonic::Code,
    /// `google.rpc.ErrorInfo.reason`, e.g. `IP_IN_USE`.
    pub reason: Option<String>,
    /// The status message.
    pub message: String,
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self {
            code: status.code(),
            reason: status.get_details_error_info().map(|i| i.reason),
            message: status.message().to_owned(),
        }
    }
}

/// Adds the bearer token, if any, to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// One ensure call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnsureCall {
    /// Server id.
    pub server_id: String,
    /// Address.
    pub ip: String,
    /// Host name (may be empty).
    pub hostname: String,
    /// Canonical panel.
    pub panel: String,
    /// 1 or 12.
    pub period_months: i32,
    /// Auto-renewal of a new order.
    pub auto_renew: bool,
    /// Request id.
    pub request_id: String,
}

/// A client of license-facade's gRPC API.
#[derive(Clone)]
pub struct LicenseApi {
    client: LicenseServiceClient<InterceptedService<Channel, Bearer>>,
    /// Deadline of one call, also sent to the service as the call's `grpc-timeout`
    /// (a waiting call is answered before the watcher gives up on it).
    timeout: Duration,
}

impl LicenseApi {
    /// A client of `url` calling with `token` (none when a TLS client certificate
    /// identifies the watcher), over TLS when `tls` is given. Connects lazily: the
    /// first call connects, and a service that is down fails calls, not the start.
    pub fn new(
        url: &str,
        token: Option<&SecretString>,
        timeout: Duration,
        tls: Option<&ApiTls>,
    ) -> anyhow::Result<Self> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        if let Some(tls) = tls {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key.expose_secret()));
            }
            endpoint = endpoint
                .tls_config(config)
                .context("invalid TLS settings of license_facade")?;
        }
        let channel = endpoint.connect_lazy();
        let value = match token {
            Some(token) => {
                let mut value: MetadataValue<Ascii> = format!("Bearer {}", token.expose_secret())
                    .parse()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "the license_facade token has characters a header cannot carry"
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            client: LicenseServiceClient::with_interceptor(channel, Bearer(value)),
            timeout,
        })
    }

    /// `(canonical name, aliases)` of every panel.
    pub async fn panels(&self) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        let answer = self
            .client
            .clone()
            .list_panels(pb::ListPanelsRequest {})
            .await?
            .into_inner();
        Ok(answer
            .panels
            .into_iter()
            .map(|p| (p.name, p.aliases))
            .collect())
    }

    /// Every license of this client whose server id starts with `prefix`, newest
    /// first; CANCELLED and FAILED ones included (they name a server's generations).
    pub async fn licenses(&self, prefix: &str) -> Result<(Vec<License>, u64), ApiError> {
        let mut licenses = Vec::new();
        let mut token = String::new();
        let mut calls = 0u64;
        loop {
            calls += 1;
            let page = self
                .client
                .clone()
                .list_licenses(pb::ListLicensesRequest {
                    page_size: PAGE_SIZE,
                    page_token: token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            licenses.extend(
                page.licenses
                    .into_iter()
                    .filter(|l| l.server_id.starts_with(prefix))
                    .map(License::from_pb),
            );
            if page.next_page_token.is_empty() {
                return Ok((licenses, calls));
            }
            token = page.next_page_token;
        }
    }

    /// `EnsureServerLicense`, not waiting for the upstream.
    pub async fn ensure(&self, call: &EnsureCall) -> Result<(License, Ensured), ApiError> {
        let answer = self
            .client
            .clone()
            .ensure_server_license(pb::EnsureServerLicenseRequest {
                server: Some(pb::Server {
                    id: call.server_id.clone(),
                    ip: call.ip.clone(),
                    hostname: call.hostname.clone(),
                }),
                panel: call.panel.clone(),
                period_months: call.period_months,
                auto_renew: call.auto_renew,
                nodes: None,
                wait: false,
                request_id: call.request_id.clone(),
            })
            .await?
            .into_inner();
        let action = match pb::EnsureAction::try_from(answer.action) {
            Ok(pb::EnsureAction::Ordered) => Ensured::Ordered,
            Ok(pb::EnsureAction::Changed) => Ensured::Changed,
            _ => Ensured::None,
        };
        let license = answer
            .license
            .map(License::from_pb)
            .ok_or_else(|| ApiError {
                code: tonic::Code::Internal,
                reason: None,
                message: "an answer without its license".into(),
            })?;
        Ok((license, action))
    }

    /// `CancelLicense` of one license (by id, so that only the license judged is ever
    /// cancelled, never a newer one of the same server).
    pub async fn cancel(&self, license_id: &str, request_id: &str) -> Result<License, ApiError> {
        let answer = self
            .client
            .clone()
            .cancel_license(pb::CancelLicenseRequest {
                id: license_id.to_owned(),
                wait: false,
                request_id: request_id.to_owned(),
            })
            .await?
            .into_inner();
        answer
            .license
            .map(License::from_pb)
            .ok_or_else(|| ApiError {
                code: tonic::Code::Internal,
                reason: None,
                message: "an answer without its license".into(),
            })
    }

    /// `ReleaseLicense` of one license (by id, as [`cancel`](Self::cancel)): the
    /// service parks it by its pool's rules, else cancels it. Waits (within the call's
    /// deadline) until the park is done upstream, so that the orders made after it
    /// can take the license instead of buying.
    pub async fn release(
        &self,
        license_id: &str,
        request_id: &str,
    ) -> Result<ReleasedTo, ApiError> {
        let mut request = tonic::Request::new(pb::ReleaseLicenseRequest {
            id: license_id.to_owned(),
            wait: true,
            request_id: request_id.to_owned(),
        });
        request.set_timeout(self.timeout);
        let answer = self
            .client
            .clone()
            .release_license(request)
            .await?
            .into_inner();
        let parked = answer.outcome == pb::ReleaseOutcome::Parked as i32;
        let license = answer
            .license
            .map(License::from_pb)
            .ok_or_else(|| ApiError {
                code: tonic::Code::Internal,
                reason: None,
                message: "an answer without its license".into(),
            })?;
        Ok(ReleasedTo {
            license,
            parked,
            reason: answer.reason,
        })
    }

    /// The server's live license, else its latest; `None` when it never had one.
    pub async fn server_license(&self, server_id: &str) -> Result<Option<License>, ApiError> {
        let answer = self
            .client
            .clone()
            .get_license(pb::GetLicenseRequest {
                selector: Some(pb::get_license_request::Selector::ServerId(
                    server_id.to_owned(),
                )),
                client: String::new(),
            })
            .await;
        match answer {
            Ok(answer) => Ok(answer.into_inner().license.map(License::from_pb)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }
}
