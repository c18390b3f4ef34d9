//! The admin pages: the drift report (reconcile now, adopt an orphan) and the
//! audit log. Both need the `admin` scope, as their API calls do.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::PageError;
use super::pages::{drift_summary, query_string};
use super::session::{Posted, Session};
use super::views::{Audit, AuditRow, Choice, Chrome, Drift, DriftRow, OrphanRow, day, render};
use super::{BASE, ConsoleState};
use crate::auth::Scope;
use crate::service::{AuditQuery, DriftCounts, ServiceError};

/// Audit entries per page.
const AUDIT_PAGE: i32 = 50;

/// `GET /console/drift`: the latest report of any replica.
pub async fn drift(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, PageError> {
    session.require(Scope::Admin)?;
    let chrome = Chrome::of(&session, "drift");
    let report = match state.service.latest_drift().await {
        Ok(report) => report,
        Err(ServiceError::NoDriftReport) => {
            return Ok(render(&Drift {
                chrome,
                summary: None,
                truncated: false,
                upstream_seen: 0,
                local_checked: 0,
                orphans: Vec::new(),
                missing: Vec::new(),
                mismatches: Vec::new(),
                expiring: Vec::new(),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let stuck = stuck_by_ip(&state).await?;
    let page = Drift {
        chrome,
        summary: Some(drift_summary(DriftCounts {
            generated_unix: report.generate_time.unix_timestamp(),
            orphans: report.orphan_count,
            missing: report.missing_count,
            mismatches: report.mismatch_count,
            expiring: report.expiring_count,
        })),
        truncated: report.truncated(),
        upstream_seen: report.upstream_seen,
        local_checked: report.local_checked,
        orphans: report
            .orphans
            .iter()
            .map(|o| OrphanRow {
                upstream_id: o.upstream_id,
                ip: o.ip.clone().unwrap_or_default(),
                tariff: o
                    .panel
                    .clone()
                    .or_else(|| o.tariff_name.clone())
                    .or_else(|| o.tariff_id.map(|t| t.to_string()))
                    .unwrap_or_default(),
                licname: o.licname.clone().unwrap_or_default(),
                remote_id: o.remote_id.clone().unwrap_or_default(),
                status: o.status,
                expires: o.expire_time.map(day).unwrap_or_default(),
                resolves: o.ip.as_ref().and_then(|ip| stuck.get(ip)).cloned(),
            })
            .collect(),
        missing: report
            .missing
            .iter()
            .map(|m| DriftRow {
                id: m.license.id.to_string(),
                server_id: m.license.server_id.to_string(),
                what: format!("{:?}", m.reason).to_uppercase(),
                ours: m.license.state.as_str().into(),
                upstream: String::new(),
            })
            .collect(),
        mismatches: report
            .mismatches
            .iter()
            .map(|m| DriftRow {
                id: m.license.id.to_string(),
                server_id: m.license.server_id.to_string(),
                what: format!("{:?}", m.field).to_uppercase(),
                ours: m.ours.clone(),
                upstream: m.upstream.clone(),
            })
            .collect(),
        expiring: report
            .expiring
            .iter()
            .map(|e| DriftRow {
                id: e.license.id.to_string(),
                server_id: e.license.server_id.to_string(),
                what: format!("{} days left", e.days_left),
                ours: e.license.expire_time.map(day).unwrap_or_default(),
                upstream: String::new(),
            })
            .collect(),
    };
    Ok(render(&page))
}

/// The `NEEDS_ATTENTION` licenses (the first page of them) by IP, as (id, server id):
/// an orphan on one of these IPs is likely the purchase the license could not
/// confirm, and the drift page offers to resolve the license with it.
async fn stuck_by_ip(
    state: &ConsoleState,
) -> Result<std::collections::HashMap<String, (String, String)>, PageError> {
    let page = state
        .service
        .list_licenses(
            None,
            crate::service::ListInput {
                state: Some(crate::domain::LicenseState::NeedsAttention),
                page_size: crate::service::MAX_PAGE_SIZE,
                ..Default::default()
            },
        )
        .await?;
    Ok(page
        .items
        .into_iter()
        .map(|l| {
            (
                l.ip.to_string(),
                (l.id.to_string(), l.server_id.to_string()),
            )
        })
        .collect())
}

/// `POST /console/drift/reconcile`: runs a reconciliation now.
pub async fn reconcile(
    State(state): State<ConsoleState>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Result<Response, PageError> {
    posted.session.require(Scope::Admin)?;
    state.service.reconcile(None).await?;
    Ok(Redirect::to(&format!("{BASE}/drift")).into_response())
}

/// The adopt form of an orphan.
#[derive(Debug, Deserialize)]
pub struct AdoptForm {
    #[serde(default)]
    server_id: String,
    #[serde(default)]
    hostname: String,
}

/// `POST /console/drift/{upstreamId}/adopt`: takes the orphan under management as
/// the license of the given server, then shows it.
pub async fn adopt(
    State(state): State<ConsoleState>,
    Path(upstream_id): Path<String>,
    posted: Posted<AdoptForm>,
) -> Result<Response, PageError> {
    let Posted { session, form } = posted;
    session.require(Scope::Admin)?;
    let license = state
        .service
        .adopt(
            &session.principal.client,
            &upstream_id,
            form.server_id.trim(),
            form.hostname.trim(),
        )
        .await?;
    Ok(Redirect::to(&format!("{BASE}/licenses/{}", license.id)).into_response())
}

/// The filters of the audit page, as its form sends them.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuditFilterQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    client: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    license: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    since: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    until: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    page: String,
}

/// The actions the audit log records.
const AUDIT_ACTIONS: [&str; 9] = [
    "ORDER",
    "RENEW",
    "CHANGE_IP",
    "CHANGE_PANEL",
    "SUSPEND",
    "RESUME",
    "CANCEL",
    "REISSUE_KEY",
    crate::domain::ADOPT_ACTION,
];

/// A time from the form: `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM` (UTC,
/// as a `datetime-local` input sends it).
fn parse_time(field: &str, text: &str) -> Result<Option<OffsetDateTime>, PageError> {
    use time::macros::format_description;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let minute = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let date = format_description!("[year]-[month]-[day]");
    time::PrimitiveDateTime::parse(text, minute)
        .or_else(|_| time::Date::parse(text, date).map(|d| d.midnight()))
        .map(|t| Some(t.assume_utc()))
        .map_err(|_| {
            PageError::bad_request(format!(
                "{field} must be a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM), in UTC"
            ))
        })
}

/// `GET /console/audit`: the audit log, newest first, filtered.
pub async fn audit(
    State(state): State<ConsoleState>,
    session: Session,
    Query(q): Query<AuditFilterQuery>,
) -> Result<Response, PageError> {
    session.require(Scope::Admin)?;
    let page = state
        .service
        .list_audit(AuditQuery {
            license_id: q.license.trim().to_owned(),
            page_size: AUDIT_PAGE,
            page_token: q.page.clone(),
            client: q.client.trim().to_owned(),
            action: q.action.clone(),
            since: parse_time("since", &q.since)?,
            until: parse_time("until", &q.until)?,
        })
        .await?;
    let first = AuditFilterQuery {
        page: String::new(),
        ..q.clone()
    };
    let next = page.next_token.as_ref().map(|token| AuditFilterQuery {
        page: token.clone(),
        ..q.clone()
    });
    let view = Audit {
        chrome: Chrome::of(&session, "audit"),
        client: q.client.clone(),
        license_id: q.license.clone(),
        actions: std::iter::once(Choice {
            value: String::new(),
            label: "Any action".into(),
            selected: q.action.is_empty(),
        })
        .chain(AUDIT_ACTIONS.iter().map(|a| Choice {
            value: (*a).into(),
            label: (*a).into(),
            selected: q.action == *a,
        }))
        .collect(),
        since: q.since.clone(),
        until: q.until.clone(),
        rows: page.items.iter().map(AuditRow::from).collect(),
        next: next.map(|n| query_string(&n)),
        paged: !q.page.is_empty(),
        first: query_string(&first),
    };
    Ok(render(&view))
}
