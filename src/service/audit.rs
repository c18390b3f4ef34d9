//! The audit log: the service records each accepted action that buys or changes a
//! license (ACCEPTED), the worker records how its upstream work ended, and admins
//! read the log. A failed audit write is logged and does not undo the work, which is
//! already committed.

use time::OffsetDateTime;

use super::worker::Worker;
use super::{Call, LicenseService, ServiceError};
use crate::domain::{
    AuditEntry, AuditFilter, AuditOutcome, ClientName, FieldViolation, License, LicenseId,
    LicenseState, Operation, Phase,
};
use crate::store::{Page, Store};

use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// A request for a page of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this license's entries (empty: all).
    pub license_id: String,
    /// Entries per page (0: the default).
    pub page_size: i32,
    /// The token of the page to read (empty: the first).
    pub page_token: String,
}

impl LicenseService {
    /// A page of the audit log, newest first.
    pub async fn list_audit(&self, query: AuditQuery) -> Result<Page<AuditEntry>, ServiceError> {
        let license_id = match query.license_id.as_str() {
            "" => None,
            id => Some(LicenseId::parse(id).map_err(|_| {
                ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "licenseId",
                    "must be a license id (a UUID)",
                )])
            })?),
        };
        let page_size = match query.page_size {
            0 => DEFAULT_PAGE_SIZE as u32,
            n if !(0..=MAX_PAGE_SIZE).contains(&n) => {
                return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "pageSize",
                    format!("must be between 0 and {MAX_PAGE_SIZE}"),
                )]));
            }
            n => n as u32,
        };
        let filter = AuditFilter {
            license_id,
            ..AuditFilter::default()
        };
        let token = (!query.page_token.is_empty()).then_some(query.page_token.as_str());
        Ok(self.store.list_audit(&filter, page_size, token).await?)
    }

    /// Records that `call` had `actions` on `license` accepted.
    pub(super) async fn audit_accepted(&self, call: &Call, license: &License, actions: &[&str]) {
        for action in actions {
            let entry = entry(
                license,
                call.client.clone(),
                action,
                call.request.as_ref().map(|r| r.as_str().to_owned()),
                AuditOutcome::Accepted,
            );
            append(&*self.store, &entry).await;
        }
    }

    /// Records that `client` adopted `license` (nothing is bought; it ends at once).
    pub(super) async fn audit_adopted(&self, client: &ClientName, license: &License) {
        let entry = entry(
            license,
            client.clone(),
            crate::domain::ADOPT_ACTION,
            None,
            AuditOutcome::Succeeded,
        );
        append(&*self.store, &entry).await;
    }
}

impl Worker {
    /// Whether saving `op` now ends it: it is DONE or FAILED and the stored one is
    /// still open (so its end is recorded once).
    pub(super) async fn ends_now(&self, op: &Operation) -> bool {
        if op.phase.is_open() {
            return false;
        }
        match self.store.get_operation(op.id).await {
            Ok(Some(stored)) => stored.phase.is_open(),
            _ => false,
        }
    }

    /// Records how `op` ended, on behalf of the client whose call it was.
    pub(super) async fn audit_outcome(&self, op: &Operation, license: &License) {
        let action = op.kind.name();
        let accepted = self
            .store
            .list_audit(
                &AuditFilter {
                    license_id: Some(license.id),
                    action: Some(action.to_owned()),
                    outcome: Some(AuditOutcome::Accepted),
                },
                1,
                None,
            )
            .await
            .ok()
            .and_then(|page| page.items.into_iter().next());
        // Without its ACCEPTED entry (a failed write), the owner stands in.
        let (client, request_id) = match accepted {
            Some(a) => (a.client, a.request_id),
            None => (license.client.clone(), None),
        };
        let outcome = match (op.phase, license.state) {
            (Phase::Done, _) => AuditOutcome::Succeeded,
            (_, LicenseState::NeedsAttention) => AuditOutcome::NeedsAttention,
            _ => AuditOutcome::Failed,
        };
        let mut entry = entry(license, client, action, request_id, outcome);
        if outcome != AuditOutcome::Succeeded {
            entry.detail = license
                .last_error
                .as_ref()
                .map(|e| e.message.clone())
                .or_else(|| op.last_error.clone());
        }
        append(&*self.store, &entry).await;
    }
}

fn entry(
    license: &License,
    client: ClientName,
    action: &str,
    request_id: Option<String>,
    outcome: AuditOutcome,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        time: OffsetDateTime::now_utc(),
        client,
        action: action.to_owned(),
        license_id: license.id,
        server_id: license.server_id.to_string(),
        request_id,
        upstream_id: license.upstream_id,
        outcome,
        detail: None,
    }
}

async fn append(store: &dyn Store, entry: &AuditEntry) {
    if let Err(e) = store.insert_audit(entry).await {
        tracing::error!(
            error.message = %e,
            error.cause_chain = ?e,
            license_id = %entry.license_id,
            action = %entry.action,
            outcome = %entry.outcome,
            "cannot write the audit log"
        );
    }
}
