//! The reconciler: compares one paged upstream listing with the store, periodically and
//! on demand, and keeps the latest [`DriftReport`] in memory and in the store (so every
//! replica, and a restarted process, can show it). It changes no license; taking an
//! orphan under management is the explicit [`LicenseService::adopt`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::drift::{CompareAt, DriftReport, MissingReason, compare};
use super::{LicenseService, ServiceError};
use crate::billmanager::{UpstreamError, UpstreamId, UpstreamLicense, UpstreamStatus};
use crate::domain::{
    ClientName, FieldViolation, Hostname, License, LicenseId, LicenseIp, LicenseState, Period,
    Precondition, ServerId,
};
use crate::store::Inserted;
use crate::workflow::matching::{parse_date, upstream_tariff};

/// Largest `expiring_within_days` a caller may ask for (ten years).
pub const MAX_EXPIRING_WITHIN_DAYS: u32 = 3650;

/// The most licenses missing from the upstream list that one reconciliation reads
/// one by one to confirm they are gone (see `LicenseService::confirm_missing`).
pub const MAX_CONFIRMED_MISSING: usize = 50;

/// The store lease that makes the periodic reconciliation run once per interval
/// across replicas.
pub const RECONCILE_LEASE: &str = "reconcile";

/// Tuning of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Time between periodic runs; zero turns them off (on-demand runs still work).
    pub interval: Duration,
    /// Default horizon of the expiring list, in days.
    pub expiring_within_days: u32,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            expiring_within_days: 14,
        }
    }
}

/// The reconciler's share of the service.
pub(super) struct DriftState {
    /// Default horizon of the expiring list.
    expiring_within_days: AtomicU32,
    /// The newest report this process has seen (made here or read from the store).
    /// A std mutex: it is held only to swap an `Arc`, never across an await.
    latest: Mutex<Option<Arc<DriftReport>>>,
    /// One run at a time per process; a second caller waits and then runs its own.
    running: tokio::sync::Mutex<()>,
}

impl Default for DriftState {
    fn default() -> Self {
        Self {
            expiring_within_days: AtomicU32::new(ReconcileConfig::default().expiring_within_days),
            latest: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

impl DriftState {
    fn latest(&self) -> Option<Arc<DriftReport>> {
        self.latest.lock().expect("not poisoned").clone()
    }

    /// Keeps `report` unless a newer one is already kept.
    fn offer(&self, report: Arc<DriftReport>) {
        let mut latest = self.latest.lock().expect("not poisoned");
        if latest
            .as_ref()
            .is_none_or(|l| l.generate_time <= report.generate_time)
        {
            *latest = Some(report);
        }
    }
}

impl LicenseService {
    /// Sets the reconciler's defaults; call before cloning the service.
    pub fn with_reconcile_config(self, config: &ReconcileConfig) -> Self {
        self.drift
            .expiring_within_days
            .store(config.expiring_within_days, Ordering::Relaxed);
        self
    }

    /// Runs a reconciliation now: one paged upstream listing (`soft`), one read of
    /// every license here with an upstream id, compared by upstream id. Keeps and
    /// returns the report; changes no license. `expiring_within_days` defaults to the
    /// configured horizon.
    #[tracing::instrument(skip_all)]
    pub async fn reconcile(
        &self,
        expiring_within_days: Option<u32>,
    ) -> Result<Arc<DriftReport>, ServiceError> {
        let days = match expiring_within_days {
            Some(d) if d > MAX_EXPIRING_WITHIN_DAYS => {
                return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "expiringWithinDays",
                    format!("must be at most {MAX_EXPIRING_WITHIN_DAYS}"),
                )]));
            }
            Some(d) => d,
            None => self.drift.expiring_within_days.load(Ordering::Relaxed),
        };
        let _one_at_a_time = self.drift.running.lock().await;
        // The upstream is listed first: a license that changes here afterwards has a
        // newer update time and is left for the next run instead of being misjudged.
        let listed_at = OffsetDateTime::now_utc();
        let listed = self
            .upstream
            .list_licenses()
            .await
            .map_err(|e| ServiceError::UpstreamUnavailable(e.to_string()))?;
        // A list that may leave licenses out would report them missing (and could
        // hide orphans): no report is better than a wrong one.
        if let Some(why) = listed.incomplete {
            return Err(ServiceError::UpstreamUnavailable(format!(
                "the upstream license list may be incomplete: {why}"
            )));
        }
        let upstream = listed.licenses;
        let ours = self.store.licenses_with_upstream_id().await?;
        let mut report = compare(
            &upstream,
            &ours,
            CompareAt {
                catalog: &self.catalog,
                now: OffsetDateTime::now_utc(),
                listed_at,
                expiring_within_days: days,
            },
        );
        self.confirm_missing(&mut report).await?;
        let report = Arc::new(report);
        log_report(&report);
        self.drift.offer(report.clone());
        if let Err(e) = self.persist(&report).await {
            // The report is still served from memory by this process.
            tracing::error!(error.message = %e, error.cause_chain = ?e, "cannot store the drift report");
        }
        Ok(report)
    }

    /// A license the list does not show is missing only if its own read
    /// (`soft.edit`, which no list filter narrows) does not show it live either. A
    /// list that leaves out a live license is filtered (a saved filter need not show
    /// itself) or cut, and a report from it would call paid licenses gone, which a
    /// person might "fix" by buying them again: no report then. The first
    /// [`MAX_CONFIRMED_MISSING`] are read; a filter that hides licenses hides many.
    async fn confirm_missing(&self, report: &mut DriftReport) -> Result<(), ServiceError> {
        let unlisted = report
            .missing
            .iter_mut()
            .filter(|m| m.reason == MissingReason::Absent)
            .take(MAX_CONFIRMED_MISSING);
        for missing in unlisted {
            let Some(id) = missing.license.upstream_id else {
                continue;
            };
            match self.upstream.license_details(id).await {
                Ok(read) if read.status == UpstreamStatus::Deleted => {
                    missing.reason = MissingReason::Deleted;
                }
                Ok(read) => {
                    metrics::counter!(crate::metrics::UPSTREAM_ANOMALIES, "kind" => "incomplete_list")
                        .increment(1);
                    return Err(ServiceError::UpstreamUnavailable(format!(
                        "the upstream license list may be incomplete: it leaves out license {id}, which its own read shows in status {}",
                        read.status.code()
                    )));
                }
                // The upstream does not know it: gone indeed.
                Err(UpstreamError::Refused { .. }) => {}
                Err(e) => {
                    return Err(ServiceError::UpstreamUnavailable(format!(
                        "cannot confirm that license {id}, which the list leaves out, is gone upstream: {e}"
                    )));
                }
            }
        }
        Ok(())
    }

    async fn persist(&self, report: &DriftReport) -> anyhow::Result<()> {
        let json = serde_json::to_string(report).context("cannot encode the drift report")?;
        self.store
            .save_drift_report(report.generate_time, &json)
            .await
            .context("cannot save the drift report")
    }

    /// The newest drift report of any replica: the stored one if it is newer than the
    /// one this process holds. [`ServiceError::NoDriftReport`] before the first run.
    pub async fn latest_drift(&self) -> Result<Arc<DriftReport>, ServiceError> {
        let held = self.drift.latest();
        match self
            .stored_drift(held.as_ref().map(|r| r.generate_time))
            .await
        {
            Ok(Some(stored)) => return Ok(stored),
            Ok(None) => {}
            Err(e) if held.is_some() => {
                tracing::warn!(error.message = %e, "cannot read the stored drift report; serving the one in memory");
            }
            Err(e) => return Err(e),
        }
        held.ok_or(ServiceError::NoDriftReport)
    }

    /// The stored report if it is newer than `newer_than`; kept in memory too.
    async fn stored_drift(
        &self,
        newer_than: Option<OffsetDateTime>,
    ) -> Result<Option<Arc<DriftReport>>, ServiceError> {
        let Some((_, json)) = self.store.latest_drift_report(newer_than).await? else {
            return Ok(None);
        };
        match serde_json::from_str::<DriftReport>(&json) {
            Ok(report) => {
                let report = Arc::new(report);
                self.drift.offer(report.clone());
                Ok(Some(report))
            }
            Err(e) => {
                // Written by another version; the next run replaces it.
                tracing::warn!(error.message = %e, "the stored drift report is unreadable; ignored");
                Ok(None)
            }
        }
    }

    /// Reconciles every `config.interval` (plus up to 10% jitter) until `stop`. A run
    /// needs the [`RECONCILE_LEASE`] store lease, so replicas sharing a database make
    /// one periodic run per interval between them, not one each. Nothing runs when
    /// the interval is zero.
    pub async fn run_reconciler(self, config: ReconcileConfig, stop: CancellationToken) {
        if config.interval.is_zero() {
            tracing::info!("periodic reconciliation is off");
            return;
        }
        let owner = format!("reconciler-{}", uuid::Uuid::now_v7().simple());
        loop {
            let jitter = config.interval.mul_f64(rand::random_range(0.0..0.1));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(config.interval + jitter) => {}
            }
            // Once per period across all replicas: the `reconcile` lease lasts 90% of
            // the period, so the replica whose timer fires first after it runs out
            // takes it and the others skip this period.
            let ttl = config.interval.mul_f64(0.9);
            match self
                .store
                .try_take_lease(RECONCILE_LEASE, &owner, OffsetDateTime::now_utc(), ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("another replica holds the reconcile lease; skipping this run");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, error.cause_chain = ?e, "cannot take the reconcile lease; skipping this run");
                    continue;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                result = self.reconcile(None) => if let Err(e) = result {
                    tracing::warn!(error.message = %e, error.cause_chain = ?e, "periodic reconciliation failed");
                }
            }
        }
    }

    /// Takes an orphan (live upstream, unknown here) under management as the license
    /// of `server_id`: reads its details upstream, maps its tariff to a catalog panel
    /// and stores it ACTIVE (or SUSPENDED, as upstream) with its id, address, key and
    /// expiry. Buys and changes nothing upstream.
    #[tracing::instrument(skip_all, fields(upstream_id = %upstream_id, server_id = %server_id))]
    pub async fn adopt(
        &self,
        client: &ClientName,
        upstream_id: &str,
        server_id: &str,
        hostname: &str,
    ) -> Result<License, ServiceError> {
        let (id, server_id, hostname) = adopt_input(upstream_id, server_id, hostname)?;
        let details = self
            .upstream
            .license_details(id)
            .await
            .map_err(|e| match e {
                UpstreamError::Refused { .. } => ServiceError::UpstreamLicenseNotFound(id),
                other => ServiceError::UpstreamUnavailable(other.to_string()),
            })?;
        let license = self.adopted_license(client, server_id, hostname, &details)?;
        match self.store.insert_adopted(&license).await? {
            // An adoption is never taken (it has no order to run).
            Inserted::Created(license) | Inserted::Taken { license, .. } => {
                tracing::info!(license_id = %license.id, "orphan adopted");
                self.audit_adopted(client, &license).await;
                let _ = self.changes.send(license.id);
                Ok(license)
            }
            Inserted::Existing(existing) if existing.upstream_id == Some(id) => {
                Err(ServiceError::Precondition(Precondition {
                    code: "UPSTREAM_LICENSE_KNOWN",
                    message: format!(
                        "upstream license {id} is already license {} here ({}); there is nothing to adopt",
                        existing.id, existing.state
                    ),
                }))
            }
            // A license that needs a person is resolved onto the orphan (BIND), not
            // cancelled: nobody knows whether it holds a paid license.
            Inserted::Existing(existing) if existing.state == LicenseState::NeedsAttention => {
                Err(ServiceError::ServerHasLicense {
                    existing: Box::new(existing),
                    use_instead: "ResolveLicense",
                })
            }
            Inserted::Existing(existing) => Err(ServiceError::ServerHasLicense {
                existing: Box::new(existing),
                use_instead: "CancelServerLicense",
            }),
            // Adoption is an admin's call: it may see every license.
            Inserted::IpTaken(taken) => Err(ServiceError::ip_has_license(&taken, client, true)),
        }
    }

    /// The license an adoption stores, or why the upstream license cannot be adopted.
    fn adopted_license(
        &self,
        client: &ClientName,
        server_id: ServerId,
        hostname: Option<Hostname>,
        details: &UpstreamLicense,
    ) -> Result<License, ServiceError> {
        let id = details.id;
        let state = managed_state(details)?;
        let bad = |message: String| {
            ServiceError::InvalidArgument(vec![FieldViolation::new("upstreamId", message)])
        };
        let panel = upstream_tariff(details, &self.catalog)
            .and_then(|t| self.catalog.by_tariff(t))
            .ok_or_else(|| {
                bad(format!(
                    "upstream license {id} has tariff {}, which is not a panel of the catalog",
                    details
                        .tariff_id
                        .map(|t| t.to_string())
                        .or_else(|| details.tariff_name.clone())
                        .unwrap_or_else(|| "(none)".into())
                ))
            })?;
        let raw_ip = details.ip.as_deref().unwrap_or_default();
        let ip = LicenseIp::parse(raw_ip, "ip").map_err(|v| {
            bad(format!(
                "upstream license {id} is bound to {raw_ip:?}, which cannot be used: {}",
                v.message
            ))
        })?;
        let period = if panel.trial {
            Period::Trial
        } else {
            details
                .period
                .and_then(Period::from_upstream)
                .filter(|p| *p != Period::Trial)
                .unwrap_or(Period::Month)
        };
        let now = OffsetDateTime::now_utc();
        Ok(License {
            id: LicenseId::generate(),
            client: client.clone(),
            server_id,
            ip,
            hostname,
            panel: panel.name.clone(),
            tariff_id: panel.tariff_id,
            nodes: None,
            period,
            // The upstream details do not say; the expiring list will show it.
            auto_renew: false,
            state,
            license_key: details.license_key.clone(),
            upstream_id: Some(id),
            expire_time: details.expire_date.as_deref().and_then(parse_date),
            create_time: now,
            update_time: now,
            last_error: None,
            reused_from: None,
            reused_by: None,
        })
    }
}

/// The state a license managed here takes from its upstream license's status (an
/// adoption, or a resolution that binds it): only an active or suspended upstream
/// license can be taken over.
pub(super) fn managed_state(details: &UpstreamLicense) -> Result<LicenseState, ServiceError> {
    let id = details.id;
    match details.status {
        UpstreamStatus::Active => Ok(LicenseState::Active),
        UpstreamStatus::Suspended => Ok(LicenseState::Suspended),
        UpstreamStatus::Deleted => Err(not_adoptable(
            "UPSTREAM_LICENSE_DELETED",
            format!("upstream license {id} is deleted; there is nothing to take over"),
        )),
        other => Err(not_adoptable(
            "UPSTREAM_LICENSE_NOT_READY",
            format!(
                "upstream license {id} has status {}; take it over once it is active",
                other.code()
            ),
        )),
    }
}

fn not_adoptable(code: &'static str, message: String) -> ServiceError {
    ServiceError::Precondition(Precondition { code, message })
}

/// Validates the caller's part of an adoption.
fn adopt_input(
    upstream_id: &str,
    server_id: &str,
    hostname: &str,
) -> Result<(UpstreamId, ServerId, Option<Hostname>), ServiceError> {
    let mut violations = Vec::new();
    let id = match upstream_id.trim().parse::<UpstreamId>() {
        Ok(id) if id > 0 => Some(id),
        _ => {
            violations.push(FieldViolation::new(
                "upstreamId",
                "must be a BILLmanager license id (a positive number)",
            ));
            None
        }
    };
    let server_id = ServerId::parse(server_id, "serverId")
        .map_err(|v| violations.push(v))
        .ok();
    let hostname = Hostname::parse(hostname, "hostname")
        .map_err(|v| violations.push(v))
        .ok();
    match (id, server_id, hostname) {
        (Some(id), Some(server_id), Some(hostname)) if violations.is_empty() => {
            Ok((id, server_id, hostname))
        }
        _ => Err(ServiceError::InvalidArgument(violations)),
    }
}

fn log_report(report: &DriftReport) {
    if report.has_drift() {
        tracing::warn!(
            orphans = report.orphan_count,
            missing = report.missing_count,
            mismatches = report.mismatch_count,
            expiring = report.expiring_count,
            upstream_seen = report.upstream_seen,
            local_checked = report.local_checked,
            "drift between BILLmanager and the store"
        );
    } else {
        tracing::info!(
            expiring = report.expiring_count,
            upstream_seen = report.upstream_seen,
            local_checked = report.local_checked,
            "reconciled: no drift"
        );
    }
}
