//! Changes to existing licenses and the desired-state call. Each change is checked
//! against the license's state, then queued as a durable operation for the worker.

use std::time::Duration;

use time::OffsetDateTime;

use super::{LicenseService, OrderInput, Ordered, ServiceError};
use crate::domain::{
    ClientName, FieldViolation, License, LicenseId, LicenseIp, LicenseState, Operation,
    OperationKind, Period, Phase, ServerId,
};

/// A change accepted for the worker.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The license as it is now (the change is not applied yet).
    pub license: License,
    /// The queued operations, in order.
    pub operations: Vec<i64>,
}

/// What `EnsureServerLicense` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnsureAction {
    /// The license already matched.
    None,
    /// A license was ordered.
    Ordered,
    /// Changes (panel and/or IP) were queued.
    Changed,
}

/// The result of `EnsureServerLicense`.
#[derive(Debug, Clone)]
pub struct Ensured {
    /// The server's license.
    pub license: License,
    /// What was done.
    pub action: EnsureAction,
    /// Queued operations, if any.
    pub operations: Vec<i64>,
}

impl LicenseService {
    async fn queue(
        &self,
        license: License,
        changes: Vec<OperationKind>,
    ) -> Result<Accepted, ServiceError> {
        for change in &changes {
            license.check_change(change)?;
        }
        let now = OffsetDateTime::now_utc();
        let ops: Vec<Operation> = changes
            .into_iter()
            .map(|kind| Operation::received(license.id, kind, now))
            .collect();
        let operations = self.store.insert_operations(license.id, &ops).await?;
        tracing::info!(license_id = %license.id, ?operations, "change accepted");
        self.wake_workers();
        Ok(Accepted {
            license,
            operations,
        })
    }

    /// Renews for `period_months` (1 or 12).
    pub async fn renew(
        &self,
        client: Option<&ClientName>,
        id: &str,
        period_months: i32,
    ) -> Result<Accepted, ServiceError> {
        let period = Period::paid_months(period_months, "periodMonths")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let license = self.get_license(client, id).await?;
        let previous_expiry = license.expire_time.map(|t| {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        });
        let change = OperationKind::Renew {
            period: period.upstream_value(),
            previous_expiry,
        };
        self.queue(license, vec![change]).await
    }

    /// Moves the license to another IP.
    pub async fn change_ip(
        &self,
        client: Option<&ClientName>,
        id: &str,
        ip: &str,
    ) -> Result<Accepted, ServiceError> {
        let ip = LicenseIp::parse(ip, "ip").map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let license = self.get_license(client, id).await?;
        let change = OperationKind::ChangeIp { ip: ip.to_string() };
        self.queue(license, vec![change]).await
    }

    /// Switches the license to another panel (tariff).
    pub async fn change_panel(
        &self,
        client: Option<&ClientName>,
        id: &str,
        panel: &str,
        period_months: i32,
    ) -> Result<Accepted, ServiceError> {
        let license = self.get_license(client, id).await?;
        let change = self.panel_change(&license, panel, period_months)?;
        self.queue(license, vec![change]).await
    }

    fn panel_change(
        &self,
        license: &License,
        panel: &str,
        period_months: i32,
    ) -> Result<OperationKind, ServiceError> {
        let target = self.catalog.resolve(panel)?;
        if target.trial {
            return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                "panel",
                "a license cannot be changed to a trial tariff",
            )]));
        }
        // A trial converts to a paid period; a paid license keeps its own.
        let period = match (license.period, period_months) {
            (Period::Trial, months) => Period::paid_months(months, "periodMonths")
                .map_err(|v| ServiceError::InvalidArgument(vec![v]))?,
            (own, 0) => own,
            (_, months) => Period::paid_months(months, "periodMonths")
                .map_err(|v| ServiceError::InvalidArgument(vec![v]))?,
        };
        Ok(OperationKind::ChangePanel {
            tariff_id: target.tariff_id,
            panel: target.name.clone(),
            period: period.upstream_value(),
        })
    }

    /// Suspends an active license.
    pub async fn suspend(
        &self,
        client: Option<&ClientName>,
        id: &str,
    ) -> Result<Accepted, ServiceError> {
        let license = self.get_license(client, id).await?;
        self.queue(license, vec![OperationKind::Suspend]).await
    }

    /// Resumes a suspended license.
    pub async fn resume(
        &self,
        client: Option<&ClientName>,
        id: &str,
    ) -> Result<Accepted, ServiceError> {
        let license = self.get_license(client, id).await?;
        self.queue(license, vec![OperationKind::Resume]).await
    }

    /// Deletes the license upstream; it stays here as CANCELLED history.
    pub async fn cancel(
        &self,
        client: Option<&ClientName>,
        id: &str,
    ) -> Result<Accepted, ServiceError> {
        let license = self.get_license(client, id).await?;
        self.queue(license, vec![OperationKind::Cancel]).await
    }

    /// Asks the upstream for a new license key.
    pub async fn reissue_key(
        &self,
        client: Option<&ClientName>,
        id: &str,
    ) -> Result<Accepted, ServiceError> {
        let license = self.get_license(client, id).await?;
        let change = OperationKind::ReissueKey {
            previous_key: license.license_key.clone(),
        };
        self.queue(license, vec![change]).await
    }

    /// Converges the server's license to `input`: orders one if there is none, changes
    /// the panel and/or the IP if they differ (never a second license), nothing if it
    /// matches.
    pub async fn ensure_server_license(
        &self,
        client: &ClientName,
        input: OrderInput,
    ) -> Result<Ensured, ServiceError> {
        let wanted = input.clone().validate(client, &self.catalog)?;
        let existing = self
            .store
            .server_license(Some(client), &wanted.server_id)
            .await?
            .filter(|l| l.state.is_live());
        let Some(license) = existing else {
            let Ordered { license, created } = self.order_license(client, input).await?;
            return Ok(Ensured {
                license,
                action: if created {
                    EnsureAction::Ordered
                } else {
                    EnsureAction::None
                },
                operations: Vec::new(),
            });
        };
        let mut changes = Vec::new();
        if license.tariff_id != wanted.tariff_id {
            changes.push(self.panel_change(&license, &wanted.panel, input.period_months)?);
        }
        if license.ip != wanted.ip {
            changes.push(OperationKind::ChangeIp {
                ip: wanted.ip.to_string(),
            });
        }
        if changes.is_empty() {
            return Ok(Ensured {
                license,
                action: EnsureAction::None,
                operations: Vec::new(),
            });
        }
        let accepted = self.queue(license, changes).await?;
        Ok(Ensured {
            license: accepted.license,
            action: EnsureAction::Changed,
            operations: accepted.operations,
        })
    }

    /// Cancels the server's live license.
    pub async fn cancel_server_license(
        &self,
        client: &ClientName,
        server_id: &str,
    ) -> Result<Accepted, ServiceError> {
        let server_id = ServerId::parse(server_id, "serverId")
            .map_err(|v| ServiceError::InvalidArgument(vec![v]))?;
        let license = self
            .store
            .server_license(Some(client), &server_id)
            .await?
            .filter(|l| l.state.is_live())
            .ok_or(ServiceError::NotFound)?;
        self.queue(license, vec![OperationKind::Cancel]).await
    }

    /// Waits until every operation in `ops` has finished or `timeout` passes, then
    /// returns the license. A refused operation is [`ServiceError::UpstreamRefused`].
    pub async fn wait_operations(
        &self,
        client: Option<&ClientName>,
        id: LicenseId,
        ops: &[i64],
        timeout: Duration,
    ) -> Result<License, ServiceError> {
        let mut changes = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut open = false;
            for op_id in ops {
                let Some(op) = self.store.get_operation(*op_id).await? else {
                    continue;
                };
                match op.phase {
                    Phase::Failed => {
                        let license = self.get_license(client, &id.to_string()).await?;
                        if license.state == LicenseState::NeedsAttention {
                            return Ok(license);
                        }
                        let message = license
                            .last_error
                            .map(|e| e.message)
                            .or(op.last_error)
                            .unwrap_or_else(|| "the change failed".into());
                        return Err(ServiceError::UpstreamRefused(message));
                    }
                    Phase::Done => {}
                    _ => open = true,
                }
            }
            if !open {
                return self.get_license(client, &id.to_string()).await;
            }
            loop {
                match tokio::time::timeout_at(deadline, changes.recv()).await {
                    Err(_) => return self.get_license(client, &id.to_string()).await,
                    Ok(Ok(changed)) if changed != id => continue,
                    Ok(_) => break,
                }
            }
        }
    }
}
