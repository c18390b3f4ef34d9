//! The pool's use cases: releasing a license (parked by the pool's rules, else
//! cancelled), taking a parked license back onto an IP, what the pool holds and what
//! it saved, and its sweep (refused reuses'
//! licenses back to the pool, parked licenses cancelled before their next paid
//! period). Taking a parked license is part of the order (see `order_as`).

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::idempotency::fingerprint;
use super::pricing::price_in;
use super::{Call, LicenseService, Outcome, ServiceError};
use crate::domain::{
    CallPrice, License, LicenseIp, OperationKind, Period, PoolConfig, Purchase, Release, ServerId,
};
use crate::store::ParkedLicense;

/// Where a release sent a license, and why it was cancelled when it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// The call's result.
    pub outcome: Outcome,
    /// Parked (`None`), or cancelled and why.
    pub cancelled: Option<String>,
}

/// One tariff's pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolTariff {
    /// The tariff.
    pub tariff_id: u32,
    /// Its panel, when in the catalog.
    pub panel: Option<String>,
    /// Parked licenses.
    pub parked: u32,
    /// Of those, how many an order could take now.
    pub reusable: u32,
    /// What the parked licenses cost per month; `None` when a price is unknown.
    pub monthly_cost: Option<i64>,
    /// Orders that took a parked license instead of buying.
    pub reuses: u64,
    /// What those orders would have cost at today's monthly price; `None` when
    /// unknown.
    pub saved: Option<i64>,
    /// The currency of the amounts.
    pub currency: String,
}

/// One parked license and when the upstream lets it move.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolEntry {
    /// The license (PARKED).
    pub license: License,
    /// When its cooldowns pass; `None` while its park is finishing.
    pub reusable_time: Option<OffsetDateTime>,
    /// Whether an order could take it now.
    pub reusable: bool,
}

/// The pool as a whole.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolView {
    /// Per tariff, by id.
    pub tariffs: Vec<PoolTariff>,
    /// Every parked license, soonest to expire first.
    pub entries: Vec<PoolEntry>,
}

impl LicenseService {
    /// The pool's rules.
    pub fn pool_config(&self) -> &PoolConfig {
        &self.pool
    }

    /// Sets the pool's rules.
    pub fn with_pool(mut self, pool: PoolConfig) -> Self {
        self.pool = std::sync::Arc::new(pool);
        self
    }

    /// Releases license `id`: parked by the pool's rules of its tariff, else
    /// cancelled.
    pub async fn release(&self, call: &Call, id: &str) -> Result<Released, ServiceError> {
        let fp = fingerprint("ReleaseLicense", &id);
        let license = match self.change_target(call, &fp, id).await? {
            Ok(license) => license,
            Err(replayed) => return self.released(call, replayed).await,
        };
        self.release_license(call, &fp, license).await
    }

    /// Takes parked license `id` back out of the pool onto `ip`, for its own client:
    /// it holds its server and the IP again, suspended until resumed (a shop's reuse
    /// of a license it parked itself, as the WHMCS module does). Nothing is bought;
    /// refused upstream (e.g. by its cooldown), the license stays parked.
    pub async fn unpark(&self, call: &Call, id: &str, ip: &str) -> Result<Outcome, ServiceError> {
        let ip = LicenseIp::parse(ip, "ip").map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let fp = fingerprint("UnparkLicense", &(id, ip.to_string()));
        let license = match self.change_target(call, &fp, id).await? {
            Ok(license) => license,
            Err(replayed) => return Ok(replayed),
        };
        self.ip_is_free(call, &ip.to_string(), Some(&license))
            .await?;
        let change = OperationKind::Unpark {
            ip: ip.to_string(),
            previous_ip: license.ip.to_string(),
        };
        let mut outcome = self.queue(call, &fp, license, vec![change], None).await?;
        if !outcome.settled {
            // Taken out of the pool by the acceptance itself: shown as it is now, not
            // as it was read before.
            outcome.license = self.get_license(call.owner_filter(), id).await?;
        }
        Ok(outcome)
    }

    /// Ends the server's live license: cancels it, or with `park` releases it.
    pub async fn end_server_license(
        &self,
        call: &Call,
        server_id: &str,
        park: bool,
    ) -> Result<Released, ServiceError> {
        if !park {
            return self
                .cancel_server_license(call, server_id)
                .await
                .map(|outcome| Released {
                    outcome,
                    cancelled: Some("cancelled as asked".into()),
                });
        }
        let server_id = ServerId::parse(server_id, "serverId")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let fp = fingerprint("ReleaseServerLicense", &server_id.as_str());
        if let Some(replayed) = self.replay(call, &fp).await? {
            return self.released(call, replayed).await;
        }
        let license = self.live_server_license(call, &server_id).await?;
        self.release_license(call, &fp, license).await
    }

    async fn release_license(
        &self,
        call: &Call,
        fp: &str,
        license: License,
    ) -> Result<Released, ServiceError> {
        let (change, cancelled) = match self.release_outlook(&license).await? {
            Release::Park => (OperationKind::Park, None),
            Release::Cancel(why) => (OperationKind::Cancel, Some(why)),
        };
        if let Some(why) = &cancelled {
            tracing::info!(license_id = %license.id, reason = %why, "released license cancelled, not parked");
        }
        let outcome = self.queue(call, fp, license, vec![change], None).await?;
        Ok(Released { outcome, cancelled })
    }

    /// Where a release of `license` would send it now, by the pool's rules of its
    /// tariff and what the pool holds: what a release does, and what a person is told
    /// before asking for one.
    pub async fn release_outlook(&self, license: &License) -> Result<Release, ServiceError> {
        let parked = self.parked_count(license.tariff_id).await?;
        Ok(self
            .pool
            .release(license, parked, OffsetDateTime::now_utc()))
    }

    /// Parked licenses of `tariff_id` (and those on their way: a park being carried
    /// out counts, so a burst of releases does not overfill the pool).
    async fn parked_count(&self, tariff_id: u32) -> Result<u64, ServiceError> {
        let parked = self
            .store
            .parked_licenses()
            .await?
            .into_iter()
            .filter(|p| p.license.tariff_id == tariff_id)
            .count();
        Ok(u64::try_from(parked).unwrap_or(u64::MAX))
    }

    /// What the pool holds, costs and saved.
    pub async fn pool_view(&self) -> Result<PoolView, ServiceError> {
        let now = OffsetDateTime::now_utc();
        let parked = self.store.parked_licenses().await?;
        let reuses: BTreeMap<u32, u64> = self.store.reuse_counts().await?.into_iter().collect();
        // Prices are what the pool's figures are worth; without them the figures are
        // shown as unknown, never as zero.
        let list = self.price_list_within(Duration::from_secs(2)).await.ok();
        let monthly = |tariff_id: u32, nodes: Option<u32>| -> CallPrice {
            let panel = self
                .catalog
                .by_tariff(tariff_id)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let purchase = Purchase {
                panel,
                tariff_id,
                period: Period::Month,
                addon: self.nodes_of(tariff_id, nodes),
            };
            match &list {
                Some(list) => price_in(list, &purchase),
                None => CallPrice::unknown("the price list is unavailable"),
            }
        };
        let mut tariffs: BTreeMap<u32, PoolTariff> = BTreeMap::new();
        let mut entries = Vec::with_capacity(parked.len());
        for ParkedLicense {
            license,
            ip_changed,
            key_changed,
        } in parked
        {
            let reusable_time = ip_changed
                .zip(key_changed)
                .map(|(ip, key)| self.pool.reusable_from(ip, key));
            let reusable = self
                .pool
                .pick(license.tariff_id, license.nodes, now)
                .is_some_and(|pick| {
                    reusable_time.is_some_and(|t| t <= now)
                        && license
                            .expire_time
                            .is_some_and(|t| t >= pick.paid_until_at_least)
                });
            let entry = tariffs
                .entry(license.tariff_id)
                .or_insert_with(|| self.pool_tariff(license.tariff_id));
            entry.parked += 1;
            entry.reusable += u32::from(reusable);
            let price = monthly(license.tariff_id, license.nodes);
            entry.monthly_cost = entry.monthly_cost.zip(price.cents()).map(|(a, b)| a + b);
            if let CallPrice::Known(m) = &price {
                entry.currency.clone_from(&m.currency);
            }
            entries.push(PoolEntry {
                license,
                reusable_time,
                reusable,
            });
        }
        for (tariff_id, count) in reuses {
            let entry = tariffs
                .entry(tariff_id)
                .or_insert_with(|| self.pool_tariff(tariff_id));
            entry.reuses = count;
            let price = monthly(tariff_id, None);
            entry.saved = price
                .cents()
                .map(|c| c * i64::try_from(count).unwrap_or(i64::MAX));
            if let CallPrice::Known(m) = &price {
                entry.currency.clone_from(&m.currency);
            }
        }
        Ok(PoolView {
            tariffs: tariffs.into_values().collect(),
            entries,
        })
    }

    fn pool_tariff(&self, tariff_id: u32) -> PoolTariff {
        PoolTariff {
            tariff_id,
            panel: self.catalog.by_tariff(tariff_id).map(|p| p.name.clone()),
            parked: 0,
            reusable: 0,
            monthly_cost: Some(0),
            reuses: 0,
            saved: None,
            currency: String::new(),
        }
    }

    /// One sweep of the pool: gives refused reuses' licenses back (a crash between a
    /// refused reuse's two writes leaves that here), and cancels the parked licenses
    /// whose rules say so before their next paid period. Returns the cancellations
    /// queued.
    pub async fn sweep_pool(&self) -> Result<u32, ServiceError> {
        let now = OffsetDateTime::now_utc();
        for id in self.store.give_back_to_pool(now).await? {
            tracing::info!(license_id = %id, "parked license back in the pool");
            let _ = self.changes.send(id);
        }
        let mut cancelled = 0;
        for parked in self.store.parked_licenses().await? {
            let l = &parked.license;
            if !self.pool.cancel_due(l.tariff_id, l.expire_time, now) {
                continue;
            }
            let call = Call::of(l.client.clone());
            match self
                .queue(
                    &call,
                    "",
                    parked.license.clone(),
                    vec![OperationKind::Cancel],
                    None,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(license_id = %l.id, "parked license cancelled before its next paid period");
                    cancelled += 1;
                }
                // Taken by an order meanwhile, or a step already open: nothing to do.
                Err(ServiceError::OperationInProgress(_) | ServiceError::Precondition(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    /// Runs [`sweep_pool`](Self::sweep_pool) every `sweep_interval_secs` until `stop`.
    pub async fn run_pool_sweeper(self, stop: tokio_util::sync::CancellationToken) {
        let interval = Duration::from_secs(self.pool.sweep_interval_secs.max(1));
        loop {
            if let Err(e) = self.sweep_pool().await {
                tracing::warn!(error.message = %e, "pool sweep failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl LicenseService {
    /// A replayed release: where its step sent the license (the reason of a
    /// cancellation was said to the first call only).
    async fn released(&self, call: &Call, outcome: Outcome) -> Result<Released, ServiceError> {
        let mut parked = false;
        for id in &outcome.operations {
            if let Some(op) = self.store.get_operation(*id).await? {
                parked |= matches!(op.kind, OperationKind::Park);
            }
        }
        // A first call that did not wait stored its result before its operations
        // were numbered; the audit entry accepted with its request id names its step.
        if outcome.operations.is_empty() {
            parked = self.park_accepted(call, &outcome.license).await?;
        }
        Ok(Released {
            cancelled: (!parked).then(|| "cancelled by the pool's rules".to_owned()),
            outcome,
        })
    }

    /// Whether a PARK of `license` was accepted with the request id of `call`.
    async fn park_accepted(&self, call: &Call, license: &License) -> Result<bool, ServiceError> {
        let Some(key) = &call.request else {
            return Ok(false);
        };
        let park = OperationKind::Park.name();
        let entries = self
            .list_audit(super::AuditQuery {
                license_id: license.id.to_string(),
                action: park.to_owned(),
                ..super::AuditQuery::default()
            })
            .await?;
        Ok(entries.items.iter().any(|e| {
            e.outcome == crate::domain::AuditOutcome::Accepted
                && e.request_id.as_deref() == Some(key.as_str())
        }))
    }
}
