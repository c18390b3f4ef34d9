//! One authenticated downstream call: the service, the caller and the parameters,
//! with what every function needs from them (the license an `elid` names, the
//! service's call context, the error mapping with the request's id).

use std::time::Duration;

use crate::auth::Principal;
use crate::domain::{ClientName, ItemLabels, License};
use crate::protocol::{ApiError, Params};
use crate::service::{Call, LicenseService, ServiceError};

use super::error::to_api_error;

/// How long a change (renewal, move, suspension, …) is waited for before it is
/// answered: the shop answers once the change is made, and its clients read the
/// result right after. Past this the change goes on and the answer is a plain `ok`.
pub const CHANGE_WAIT: Duration = Duration::from_secs(20);

/// A call by an authenticated account.
pub struct Req<'a> {
    /// The use cases.
    pub service: &'a LicenseService,
    /// The account's client.
    pub principal: Principal,
    /// The request's parameters.
    pub params: &'a Params,
}

impl Req<'_> {
    /// Whose licenses the caller sees: its own (or, for an admin, every client's).
    pub fn owner(&self) -> Option<&ClientName> {
        self.principal.owner_filter()
    }

    /// The call context of a change, waited for up to [`CHANGE_WAIT`].
    pub fn change_call(&self) -> Call {
        Call {
            wait: Some(CHANGE_WAIT),
            ..self.call()
        }
    }

    /// The call context without a wait or request id.
    pub fn call(&self) -> Call {
        Call {
            admin: self.owner().is_none(),
            ..Call::of(self.principal.client.clone())
        }
    }

    /// The shop's error for `e`.
    pub fn fail(&self, e: &ServiceError) -> ApiError {
        to_api_error(e, self.params.get("elid"))
    }

    /// The one license `elid` names (an item id), if the caller may see it.
    pub async fn license(&self) -> Result<(u64, License), ApiError> {
        let item = self.params.elid()?;
        self.license_of(item).await.map(|l| (item, l))
    }

    /// The account's own labels of `license`, if it set any.
    pub async fn labels(&self, license: &License) -> Result<Option<ItemLabels>, ApiError> {
        let mut labels = self
            .service
            .item_labels(&self.principal.client, std::slice::from_ref(license))
            .await
            .map_err(|e| self.fail(&e))?;
        Ok(labels.remove(&license.id))
    }

    /// The license of item `item`, if the caller may see it.
    pub async fn license_of(&self, item: u64) -> Result<License, ApiError> {
        self.service
            .license_by_item(self.owner(), item)
            .await
            .map_err(|e| to_api_error(&e, Some(&item.to_string())))
    }
}
