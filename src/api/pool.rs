//! The pool and releases as the API shows them.

use super::pb::v1 as pb;
use super::{Timestamp, license_to_pb};
use crate::domain::cents_text;
use crate::service::{PoolView, Released};

/// Where a release sent its license.
pub fn release_outcome_to_pb(released: &Released) -> pb::ReleaseOutcome {
    match released.cancelled {
        None => pb::ReleaseOutcome::Parked,
        Some(_) => pb::ReleaseOutcome::Cancelled,
    }
}

/// The answer to ReleaseLicense.
pub fn release_to_pb(released: &Released) -> pb::ReleaseLicenseResponse {
    pb::ReleaseLicenseResponse {
        license: Some(license_to_pb(&released.outcome.license)),
        outcome: release_outcome_to_pb(released) as i32,
        reason: released.cancelled.clone().unwrap_or_default(),
    }
}

/// The pool as the API shows it.
pub fn pool_to_pb(view: &PoolView) -> pb::GetPoolResponse {
    pb::GetPoolResponse {
        tariffs: view
            .tariffs
            .iter()
            .map(|t| pb::PoolTariff {
                tariff_id: t.tariff_id,
                panel: t.panel.clone().unwrap_or_default(),
                parked: t.parked,
                reusable: t.reusable,
                monthly_cost: t.monthly_cost.map(cents_text).unwrap_or_default(),
                reuses: u32::try_from(t.reuses).unwrap_or(u32::MAX),
                saved: t.saved.map(cents_text).unwrap_or_default(),
                currency: t.currency.clone(),
            })
            .collect(),
        entries: view
            .entries
            .iter()
            .map(|e| pb::PoolEntry {
                license: Some(license_to_pb(&e.license)),
                reusable_time: e.reusable_time.map(Timestamp::from),
            })
            .collect(),
    }
}
