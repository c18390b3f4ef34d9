//! `licensefacade.v1.LicenseService`: each method extracts, calls the service, and
//! converts back.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::principal;
use super::error::status;
use crate::api::pb::v1::{self as pb, license_service_server::LicenseService as Rpc};
use crate::api::{
    ensure_action_to_pb, ensure_input, feed_item_to_pb, license_to_pb, list_input, order_input,
    panel_to_pb, quote_to_pb,
};
use crate::service::{
    AuditQuery, Call, EnsureAction, LicenseService, Outcome, RequestKey, ServiceError,
};

/// The gRPC face of [`LicenseService`].
pub struct GrpcLicenses {
    service: LicenseService,
}

impl GrpcLicenses {
    /// Wraps the service.
    pub fn new(service: LicenseService) -> Self {
        Self { service }
    }
}

/// The longest a call waits for a license to settle.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// How long a call may wait: its deadline less a margin for the answer, at most
/// [`MAX_WAIT`].
fn wait_budget<T>(request: &Request<T>) -> Duration {
    deadline(request)
        .map(|d| d.saturating_sub(Duration::from_millis(100)))
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT)
}

/// The call context of a mutating RPC: the client, its request id and whether (and
/// how long) to wait.
fn call<T>(request: &Request<T>, request_id: &str, wait: bool) -> Result<Call, Status> {
    let request_key = if request_id.is_empty() {
        None
    } else {
        Some(
            RequestKey::parse(request_id, "requestId")
                .map_err(|v| status(ServiceError::InvalidArgument(vec![v])))?,
        )
    };
    let principal = principal(request)?;
    Ok(Call {
        admin: principal.owner_filter().is_none(),
        client: principal.client,
        request: request_key,
        wait: wait.then(|| wait_budget(request)),
        arrived: tokio::time::Instant::now(),
    })
}

fn license(outcome: &Outcome) -> Option<pb::License> {
    Some(license_to_pb(&outcome.license))
}

/// The caller's deadline from the `grpc-timeout` header (e.g. `5S`, `200m`).
fn deadline<T>(request: &Request<T>) -> Option<Duration> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    super::deadline::parse_grpc_timeout(raw)
}

#[tonic::async_trait]
impl Rpc for GrpcLicenses {
    async fn list_panels(
        &self,
        _request: Request<pb::ListPanelsRequest>,
    ) -> Result<Response<pb::ListPanelsResponse>, Status> {
        let panels = self.service.panels().iter().map(panel_to_pb).collect();
        Ok(Response::new(pb::ListPanelsResponse { panels }))
    }

    async fn order_license(
        &self,
        request: Request<pb::OrderLicenseRequest>,
    ) -> Result<Response<pb::OrderLicenseResponse>, Status> {
        let body = request.get_ref();
        let call = call(&request, &body.request_id, body.wait_for_active)?;
        let outcome = self
            .service
            .order_license(&call, order_input(request.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::OrderLicenseResponse {
            license: license(&outcome),
            created: outcome.created,
        }))
    }

    async fn get_license(
        &self,
        request: Request<pb::GetLicenseRequest>,
    ) -> Result<Response<pb::GetLicenseResponse>, Status> {
        let principal = principal(&request)?;
        let client = principal.owner_filter();
        let request = request.into_inner();
        let license = match request.selector {
            Some(pb::get_license_request::Selector::Id(id)) => {
                self.service.get_license(client, &id).await
            }
            Some(pb::get_license_request::Selector::ServerId(server_id)) => {
                self.service
                    .get_server_license(client, &server_id, Some(&request.client))
                    .await
            }
            None => {
                return Err(Status::invalid_argument("set either id or serverId"));
            }
        }
        .map_err(status)?;
        Ok(Response::new(pb::GetLicenseResponse {
            license: Some(license_to_pb(&license)),
        }))
    }

    async fn list_licenses(
        &self,
        request: Request<pb::ListLicensesRequest>,
    ) -> Result<Response<pb::ListLicensesResponse>, Status> {
        let principal = principal(&request)?;
        let page = self
            .service
            .list_licenses(principal.owner_filter(), list_input(request.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListLicensesResponse {
            licenses: page.items.iter().map(license_to_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn quote_license(
        &self,
        request: Request<pb::QuoteLicenseRequest>,
    ) -> Result<Response<pb::QuoteLicenseResponse>, Status> {
        let r = request.into_inner();
        let quote = self
            .service
            .quote(&r.panel, r.period_months, r.nodes)
            .await
            .map_err(status)?;
        Ok(Response::new(quote_to_pb(&quote)))
    }

    async fn renew_license(
        &self,
        request: Request<pb::RenewLicenseRequest>,
    ) -> Result<Response<pb::RenewLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self
            .service
            .renew(&call, &r.id, r.period_months)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RenewLicenseResponse {
            license: license(&outcome),
        }))
    }

    async fn change_license_ip(
        &self,
        request: Request<pb::ChangeLicenseIpRequest>,
    ) -> Result<Response<pb::ChangeLicenseIpResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self
            .service
            .change_ip(&call, &r.id, &r.ip)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ChangeLicenseIpResponse {
            license: license(&outcome),
        }))
    }

    async fn change_license_panel(
        &self,
        request: Request<pb::ChangeLicensePanelRequest>,
    ) -> Result<Response<pb::ChangeLicensePanelResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self
            .service
            .change_panel(&call, &r.id, &r.panel, r.period_months)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ChangeLicensePanelResponse {
            license: license(&outcome),
        }))
    }

    async fn suspend_license(
        &self,
        request: Request<pb::SuspendLicenseRequest>,
    ) -> Result<Response<pb::SuspendLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self.service.suspend(&call, &r.id).await.map_err(status)?;
        Ok(Response::new(pb::SuspendLicenseResponse {
            license: license(&outcome),
        }))
    }

    async fn resume_license(
        &self,
        request: Request<pb::ResumeLicenseRequest>,
    ) -> Result<Response<pb::ResumeLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self.service.resume(&call, &r.id).await.map_err(status)?;
        Ok(Response::new(pb::ResumeLicenseResponse {
            license: license(&outcome),
        }))
    }

    async fn cancel_license(
        &self,
        request: Request<pb::CancelLicenseRequest>,
    ) -> Result<Response<pb::CancelLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self.service.cancel(&call, &r.id).await.map_err(status)?;
        Ok(Response::new(pb::CancelLicenseResponse {
            license: license(&outcome),
        }))
    }

    async fn reissue_license_key(
        &self,
        request: Request<pb::ReissueLicenseKeyRequest>,
    ) -> Result<Response<pb::ReissueLicenseKeyResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self
            .service
            .reissue_key(&call, &r.id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReissueLicenseKeyResponse {
            license: license(&outcome),
        }))
    }

    async fn ensure_server_license(
        &self,
        request: Request<pb::EnsureServerLicenseRequest>,
    ) -> Result<Response<pb::EnsureServerLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self
            .service
            .ensure_server_license(&call, ensure_input(request.into_inner()))
            .await
            .map_err(status)?;
        let action = outcome.action.unwrap_or(EnsureAction::None);
        Ok(Response::new(pb::EnsureServerLicenseResponse {
            license: license(&outcome),
            action: ensure_action_to_pb(action) as i32,
        }))
    }

    async fn cancel_server_license(
        &self,
        request: Request<pb::CancelServerLicenseRequest>,
    ) -> Result<Response<pb::CancelServerLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let park = r.policy == pb::ReleasePolicy::Park as i32;
        let released = self
            .service
            .end_server_license(&call, &r.server_id, park)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CancelServerLicenseResponse {
            license: license(&released.outcome),
            outcome: crate::api::release_outcome_to_pb(&released) as i32,
            reason: if park {
                released.cancelled.clone().unwrap_or_default()
            } else {
                String::new()
            },
        }))
    }

    async fn release_license(
        &self,
        request: Request<pb::ReleaseLicenseRequest>,
    ) -> Result<Response<pb::ReleaseLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let released = self.service.release(&call, &r.id).await.map_err(status)?;
        Ok(Response::new(crate::api::release_to_pb(&released)))
    }

    async fn get_pool(
        &self,
        _: Request<pb::GetPoolRequest>,
    ) -> Result<Response<pb::GetPoolResponse>, Status> {
        let view = self.service.pool_view().await.map_err(status)?;
        Ok(Response::new(crate::api::pool_to_pb(&view)))
    }

    type WatchLicensesStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchLicensesResponse, Status>> + Send + 'static>>;

    async fn watch_licenses(
        &self,
        request: Request<pb::WatchLicensesRequest>,
    ) -> Result<Response<Self::WatchLicensesStream>, Status> {
        let principal = principal(&request)?;
        let after = request.into_inner().after_event_id;
        let events = self
            .service
            .watch(&principal.client, principal.owner_filter().cloned(), after)
            .map_err(status)?
            .map(|item| {
                item.map(|item| pb::WatchLicensesResponse {
                    event: Some(feed_item_to_pb(&item)),
                })
                .map_err(status)
            });
        Ok(Response::new(Box::pin(events)))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let days = request.into_inner().expiring_within_days;
        let report = self.service.reconcile(days).await.map_err(status)?;
        Ok(Response::new(pb::ReconcileResponse {
            report: Some(crate::api::drift_report_to_pb(&report)),
        }))
    }

    async fn list_drift(
        &self,
        _request: Request<pb::ListDriftRequest>,
    ) -> Result<Response<pb::ListDriftResponse>, Status> {
        let report = self.service.latest_drift().await.map_err(status)?;
        Ok(Response::new(pb::ListDriftResponse {
            report: Some(crate::api::drift_report_to_pb(&report)),
        }))
    }

    async fn adopt_license(
        &self,
        request: Request<pb::AdoptLicenseRequest>,
    ) -> Result<Response<pb::AdoptLicenseResponse>, Status> {
        let client = principal(&request)?.client;
        let r = request.into_inner();
        let license = self
            .service
            .adopt(&client, &r.upstream_id, &r.server_id, &r.hostname)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AdoptLicenseResponse {
            license: Some(license_to_pb(&license)),
        }))
    }

    async fn resolve_license(
        &self,
        request: Request<pb::ResolveLicenseRequest>,
    ) -> Result<Response<pb::ResolveLicenseResponse>, Status> {
        let r = request.get_ref();
        let call = call(&request, &r.request_id, r.wait)?;
        let outcome = self
            .service
            .resolve(&call, &r.id, crate::api::resolve_input(r))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResolveLicenseResponse {
            license: license(&outcome),
        }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let r = request.into_inner();
        let page = self
            .service
            .list_audit(AuditQuery {
                license_id: r.license_id,
                page_size: r.page_size,
                page_token: r.page_token,
                ..AuditQuery::default()
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page
                .items
                .iter()
                .map(crate::api::audit_entry_to_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_cost_report(
        &self,
        request: Request<pb::GetCostReportRequest>,
    ) -> Result<Response<pb::GetCostReportResponse>, Status> {
        let principal = principal(&request)?;
        let report = self
            .service
            .cost_report(principal.owner_filter(), &request.get_ref().month)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetCostReportResponse {
            report: Some(crate::api::cost_report_to_pb(
                &report,
                time::OffsetDateTime::now_utc(),
            )),
        }))
    }

    async fn create_webhook(
        &self,
        request: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::CreateWebhookResponse>, Status> {
        let principal = principal(&request)?;
        let view = self
            .service
            .create_webhook(
                &principal.client,
                principal.owner_filter().is_none(),
                crate::api::webhook_input(request.into_inner()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateWebhookResponse {
            webhook: Some(crate::api::webhook_to_pb(&view)),
            secret: view.webhook.secret.clone(),
        }))
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let principal = principal(&request)?;
        let hooks = self
            .service
            .list_webhooks(principal.owner_filter())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks: hooks.iter().map(crate::api::webhook_to_pb).collect(),
        }))
    }

    async fn delete_webhook(
        &self,
        request: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let principal = principal(&request)?;
        self.service
            .delete_webhook(principal.owner_filter(), &request.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    async fn resume_webhook(
        &self,
        request: Request<pb::ResumeWebhookRequest>,
    ) -> Result<Response<pb::ResumeWebhookResponse>, Status> {
        let principal = principal(&request)?;
        let view = self
            .service
            .resume_webhook(principal.owner_filter(), &request.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResumeWebhookResponse {
            webhook: Some(crate::api::webhook_to_pb(&view)),
        }))
    }
}
