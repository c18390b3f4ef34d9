//! `licensefacade.v1.LicenseService`: each method extracts, calls the service, and
//! converts back.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::error::status;
use crate::api::pb::v1::{self as pb, license_service_server::LicenseService as Rpc};
use crate::api::{license_to_pb, list_input, order_input, panel_to_pb};
use crate::domain::ClientName;
use crate::service::LicenseService;

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
        // Leave a little of the deadline for the answer to travel back.
        let wait = deadline(&request)
            .map(|d| d.saturating_sub(Duration::from_millis(100)))
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT);
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
}
