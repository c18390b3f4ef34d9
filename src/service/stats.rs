//! Figures for the metrics: licenses by state and the latest drift report's counts.

use super::{LicenseService, ServiceError};
use crate::domain::LicenseState;

pub use crate::metrics::DriftCounts;

impl LicenseService {
    /// How many licenses are in each state; every state is listed, zeros included.
    pub async fn license_counts(&self) -> Result<Vec<(LicenseState, u64)>, ServiceError> {
        let counted = self.store.count_by_state().await?;
        Ok(LicenseState::ALL
            .into_iter()
            .map(|state| {
                let n = counted
                    .iter()
                    .filter(|(name, _)| name == state.as_str())
                    .map(|(_, n)| *n)
                    .sum();
                (state, n)
            })
            .collect())
    }

    /// The figures the metrics show of the shared database; a count that cannot be
    /// read is left out (and logged).
    pub async fn metric_figures(&self) -> crate::metrics::Figures {
        let licenses = match self.license_counts().await {
            Ok(counts) => Some(counts),
            Err(e) => {
                tracing::warn!(error.message = %e, "cannot count the licenses for the metrics");
                None
            }
        };
        crate::metrics::Figures {
            licenses,
            drift: self.drift_counts().await,
        }
    }

    /// The counts of the newest drift report, or `None` before the first one.
    pub async fn drift_counts(&self) -> Option<DriftCounts> {
        let report = self.latest_drift().await.ok()?;
        Some(DriftCounts {
            generated_unix: report.generate_time.unix_timestamp(),
            orphans: report.orphan_count,
            missing: report.missing_count,
            mismatches: report.mismatch_count,
            expiring: report.expiring_count,
        })
    }
}

impl LicenseService {
    /// Counts an accepted order in the metrics, with its recorded price when known.
    pub(super) fn count_order(
        &self,
        license: &crate::domain::License,
        price: &crate::domain::CallPrice,
    ) {
        let client = license.client.as_str();
        crate::metrics::order(client);
        if let crate::domain::CallPrice::Known(money) = price {
            crate::metrics::spend(client, money.cents, &money.currency);
        }
    }
}
