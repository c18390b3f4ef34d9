//! What the downstream BILLmanager API needs beyond the other use cases: the stable
//! integer item ids its clients keep (assigned by the store when a license is
//! inserted, whichever API created it), a license by item id, the account's own labels
//! of its items, and the pre-check of an order (`soft.checkip`).

use std::collections::HashMap;

use super::{Call, LicenseService, OrderInput, ServiceError};
use crate::domain::{ClientName, ItemLabels, License, LicenseId};

impl LicenseService {
    /// The item ids of `licenses`.
    pub async fn item_ids(
        &self,
        licenses: &[License],
    ) -> Result<HashMap<LicenseId, u64>, ServiceError> {
        let ids: Vec<LicenseId> = licenses.iter().map(|l| l.id).collect();
        Ok(self.store.item_ids(&ids).await?.into_iter().collect())
    }

    /// The item id of one license.
    pub async fn item_id(&self, license: &License) -> Result<u64, ServiceError> {
        self.item_ids(std::slice::from_ref(license))
            .await?
            .remove(&license.id)
            .ok_or(ServiceError::NotFound)
    }

    /// The license with item id `item`; `client` sees only its own (`None`: any).
    pub async fn license_by_item(
        &self,
        client: Option<&ClientName>,
        item: u64,
    ) -> Result<License, ServiceError> {
        let id = self
            .store
            .license_by_item(item)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.get_license(client, &id.to_string()).await
    }

    /// The labels the downstream account of `client` gave `licenses` (those without
    /// labels are left out).
    pub async fn item_labels(
        &self,
        client: &ClientName,
        licenses: &[License],
    ) -> Result<HashMap<LicenseId, ItemLabels>, ServiceError> {
        let ids: Vec<LicenseId> = licenses.iter().map(|l| l.id).collect();
        Ok(self
            .store
            .item_labels(client, &ids)
            .await?
            .into_iter()
            .collect())
    }

    /// Sets the labels of `labels` that are `Some` on `license` for the downstream
    /// account of `client`. Labels are the account's own: nothing is sent upstream,
    /// and the license keeps its host name and server id.
    pub async fn set_item_labels(
        &self,
        client: &ClientName,
        license: &License,
        labels: &ItemLabels,
    ) -> Result<(), ServiceError> {
        labels
            .check()
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        if labels.is_empty() {
            return Ok(());
        }
        let now = time::OffsetDateTime::now_utc();
        self.store
            .set_item_labels(client, license.id, labels, now)
            .await?;
        tracing::info!(license_id = %license.id, client = %client, "item labels set");
        Ok(())
    }

    /// Whether `input` would be accepted as an order now: valid, a known panel, and no
    /// live license on its IP (any client's). Buys nothing.
    pub async fn check_order(&self, call: &Call, input: OrderInput) -> Result<(), ServiceError> {
        let new = input.validate(&call.client, &self.catalog)?;
        self.ip_is_free(call, &new.ip.to_string(), None).await
    }
}
