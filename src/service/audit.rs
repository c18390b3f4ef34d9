//! The audit log: each accepted action that buys or changes a license (ACCEPTED) is
//! written in the transaction that accepts it, and how its upstream work ended in the
//! transaction that closes its operation, so the log never misses a committed change.
//! Admins read the log.

use time::OffsetDateTime;

use super::{Call, LicenseService, ServiceError};
use crate::domain::{
    AuditEntry, AuditFilter, AuditOutcome, ClientName, FieldViolation, License, LicenseId,
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
    /// Only this client's entries (empty: all).
    pub client: String,
    /// Only this action's entries, e.g. `RENEW` (empty: all).
    pub action: String,
    /// Only entries recorded at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries recorded before this time.
    pub until: Option<OffsetDateTime>,
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
        let action = match query.action.trim() {
            "" => None,
            a if a.len() <= 32 && a.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => {
                Some(a.to_owned())
            }
            _ => {
                return Err(ServiceError::InvalidArgument(vec![FieldViolation::new(
                    "action",
                    "must be an action name such as RENEW",
                )]));
            }
        };
        let client = match query.client.trim() {
            "" => None,
            c => Some(ClientName::new(c.to_owned())),
        };
        let filter = AuditFilter {
            license_id,
            action,
            client,
            since: query.since,
            until: query.until,
            ..AuditFilter::default()
        };
        let token = (!query.page_token.is_empty()).then_some(query.page_token.as_str());
        Ok(self.store.list_audit(&filter, page_size, token).await?)
    }

    /// The entries that record `call` having `actions` on `license` accepted; the
    /// store writes them in the transaction that accepts the work.
    pub(super) fn accepted_entries(
        call: &Call,
        license: &License,
        actions: &[&str],
        paid: Option<&super::spend::Permit>,
    ) -> Vec<AuditEntry> {
        actions
            .iter()
            .map(|action| {
                let mut accepted = entry(
                    license,
                    call.client.clone(),
                    action,
                    call.request.as_ref().map(|r| r.as_str().to_owned()),
                    AuditOutcome::Accepted,
                );
                // The price belongs to the paid action of the call (one at most).
                if let Some(paid) = paid.filter(|_| crate::domain::PAID_ACTIONS.contains(action)) {
                    accepted.price = Some(paid.price.clone());
                    accepted.bought = Some(paid.bought.clone());
                }
                accepted
            })
            .collect()
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

/// An entry of `client`'s `action` on `license`, recorded now.
pub(super) fn entry(
    license: &License,
    client: ClientName,
    action: &str,
    request_id: Option<String>,
    outcome: AuditOutcome,
) -> AuditEntry {
    AuditEntry::of(license, client, action, request_id, outcome)
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
