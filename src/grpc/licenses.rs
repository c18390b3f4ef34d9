//! `licensefacade.v1.LicenseService`: each method extracts, calls the service, and
//! converts back.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::error::status;
use crate::api::pb::v1::{self as pb, license_service_server::LicenseService as Rpc};
use crate::api::{
    ensure_action_to_pb, ensure_input, event_to_pb, license_to_pb, list_input, order_input,
    panel_to_pb, quote_to_pb,
};
use crate::domain::{ClientName, License};
use crate::service::{Accepted, LicenseService};

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

impl GrpcLicenses {
    /// The license after an accepted change: at once, or when the change is done.
    async fn settle(
        &self,
        client: &ClientName,
        accepted: Accepted,
        wait: bool,
        budget: Duration,
    ) -> Result<License, Status> {
        if !wait {
            return Ok(accepted.license);
        }
        self.service
            .wait_operations(
                Some(client),
                accepted.license.id,
                &accepted.operations,
                budget,
            )
            .await
            .map_err(status)
    }
}

/// The caller's deadline from the `grpc-timeout` header (e.g. `5S`, `200m`).
fn deadline<T>(request: &Request<T>) -> Option<Duration> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (value, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let value: u64 = value.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// The change RPCs that take only a license id.
#[derive(Clone, Copy)]
enum Simple {
    Suspend,
    Resume,
    Cancel,
    ReissueKey,
}

impl GrpcLicenses {
    async fn simple(
        &self,
        change: Simple,
        id: &str,
        wait: bool,
        budget: Duration,
    ) -> Result<Option<pb::License>, Status> {
        let client = ClientName::anonymous();
        let s = &self.service;
        let accepted = match change {
            Simple::Suspend => s.suspend(Some(&client), id).await,
            Simple::Resume => s.resume(Some(&client), id).await,
            Simple::Cancel => s.cancel(Some(&client), id).await,
            Simple::ReissueKey => s.reissue_key(Some(&client), id).await,
        }
        .map_err(status)?;
        let license = self.settle(&client, accepted, wait, budget).await?;
        Ok(Some(license_to_pb(&license)))
    }
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
        let client = ClientName::anonymous();
        let wait = wait_budget(&request);
        let body = request.into_inner();
        let wait_for_active = body.wait_for_active;
        let ordered = self
            .service
            .order_license(&client, order_input(body))
            .await
            .map_err(status)?;
        let license = if wait_for_active {
            self.service
                .wait_settled(Some(&client), ordered.license.id, wait)
                .await
                .map_err(status)?
        } else {
            ordered.license
        };
        Ok(Response::new(pb::OrderLicenseResponse {
            license: Some(license_to_pb(&license)),
            created: ordered.created,
        }))
    }

    async fn get_license(
        &self,
        request: Request<pb::GetLicenseRequest>,
    ) -> Result<Response<pb::GetLicenseResponse>, Status> {
        let client = ClientName::anonymous();
        let license = match request.into_inner().selector {
            Some(pb::get_license_request::Selector::Id(id)) => {
                self.service.get_license(Some(&client), &id).await
            }
            Some(pb::get_license_request::Selector::ServerId(server_id)) => {
                self.service
                    .get_server_license(Some(&client), &server_id)
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
        let client = ClientName::anonymous();
        let page = self
            .service
            .list_licenses(Some(&client), list_input(request.into_inner()))
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
            .quote(&r.panel, r.period_months)
            .await
            .map_err(status)?;
        Ok(Response::new(quote_to_pb(&quote)))
    }

    async fn renew_license(
        &self,
        request: Request<pb::RenewLicenseRequest>,
    ) -> Result<Response<pb::RenewLicenseResponse>, Status> {
        let client = ClientName::anonymous();
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let accepted = self
            .service
            .renew(Some(&client), &r.id, r.period_months)
            .await
            .map_err(status)?;
        let license = self.settle(&client, accepted, r.wait, budget).await?;
        Ok(Response::new(pb::RenewLicenseResponse {
            license: Some(license_to_pb(&license)),
        }))
    }

    async fn change_license_ip(
        &self,
        request: Request<pb::ChangeLicenseIpRequest>,
    ) -> Result<Response<pb::ChangeLicenseIpResponse>, Status> {
        let client = ClientName::anonymous();
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let accepted = self
            .service
            .change_ip(Some(&client), &r.id, &r.ip)
            .await
            .map_err(status)?;
        let license = self.settle(&client, accepted, r.wait, budget).await?;
        Ok(Response::new(pb::ChangeLicenseIpResponse {
            license: Some(license_to_pb(&license)),
        }))
    }

    async fn change_license_panel(
        &self,
        request: Request<pb::ChangeLicensePanelRequest>,
    ) -> Result<Response<pb::ChangeLicensePanelResponse>, Status> {
        let client = ClientName::anonymous();
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let accepted = self
            .service
            .change_panel(Some(&client), &r.id, &r.panel, r.period_months)
            .await
            .map_err(status)?;
        let license = self.settle(&client, accepted, r.wait, budget).await?;
        Ok(Response::new(pb::ChangeLicensePanelResponse {
            license: Some(license_to_pb(&license)),
        }))
    }

    async fn suspend_license(
        &self,
        request: Request<pb::SuspendLicenseRequest>,
    ) -> Result<Response<pb::SuspendLicenseResponse>, Status> {
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let license = self.simple(Simple::Suspend, &r.id, r.wait, budget).await?;
        Ok(Response::new(pb::SuspendLicenseResponse { license }))
    }

    async fn resume_license(
        &self,
        request: Request<pb::ResumeLicenseRequest>,
    ) -> Result<Response<pb::ResumeLicenseResponse>, Status> {
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let license = self.simple(Simple::Resume, &r.id, r.wait, budget).await?;
        Ok(Response::new(pb::ResumeLicenseResponse { license }))
    }

    async fn cancel_license(
        &self,
        request: Request<pb::CancelLicenseRequest>,
    ) -> Result<Response<pb::CancelLicenseResponse>, Status> {
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let license = self.simple(Simple::Cancel, &r.id, r.wait, budget).await?;
        Ok(Response::new(pb::CancelLicenseResponse { license }))
    }

    async fn reissue_license_key(
        &self,
        request: Request<pb::ReissueLicenseKeyRequest>,
    ) -> Result<Response<pb::ReissueLicenseKeyResponse>, Status> {
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let license = self
            .simple(Simple::ReissueKey, &r.id, r.wait, budget)
            .await?;
        Ok(Response::new(pb::ReissueLicenseKeyResponse { license }))
    }

    async fn ensure_server_license(
        &self,
        request: Request<pb::EnsureServerLicenseRequest>,
    ) -> Result<Response<pb::EnsureServerLicenseResponse>, Status> {
        let client = ClientName::anonymous();
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let wait = r.wait;
        let ensured = self
            .service
            .ensure_server_license(&client, ensure_input(r))
            .await
            .map_err(status)?;
        let license = if wait {
            self.service
                .wait_settled(Some(&client), ensured.license.id, budget)
                .await
                .map_err(status)?;
            self.service
                .wait_operations(
                    Some(&client),
                    ensured.license.id,
                    &ensured.operations,
                    budget,
                )
                .await
                .map_err(status)?
        } else {
            ensured.license
        };
        Ok(Response::new(pb::EnsureServerLicenseResponse {
            license: Some(license_to_pb(&license)),
            action: ensure_action_to_pb(ensured.action) as i32,
        }))
    }

    async fn cancel_server_license(
        &self,
        request: Request<pb::CancelServerLicenseRequest>,
    ) -> Result<Response<pb::CancelServerLicenseResponse>, Status> {
        let client = ClientName::anonymous();
        let budget = wait_budget(&request);
        let r = request.into_inner();
        let accepted = self
            .service
            .cancel_server_license(&client, &r.server_id)
            .await
            .map_err(status)?;
        let license = self.settle(&client, accepted, r.wait, budget).await?;
        Ok(Response::new(pb::CancelServerLicenseResponse {
            license: Some(license_to_pb(&license)),
        }))
    }

    type WatchLicensesStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchLicensesResponse, Status>> + Send + 'static>>;

    async fn watch_licenses(
        &self,
        request: Request<pb::WatchLicensesRequest>,
    ) -> Result<Response<Self::WatchLicensesStream>, Status> {
        let client = ClientName::anonymous();
        let after = request.into_inner().after_event_id;
        let events = self.service.watch(Some(client), after).map(|item| {
            item.map(|event| pb::WatchLicensesResponse {
                event: Some(event_to_pb(&event)),
            })
            .map_err(status)
        });
        Ok(Response::new(Box::pin(events)))
    }
}
