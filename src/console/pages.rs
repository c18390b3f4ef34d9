//! The pages everyone with `licenses.read` sees: the overview and the license list
//! (a license's page is `license`).

use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::ConsoleState;
use super::error::PageError;
use super::session::Session;
use super::views::{
    Choice, Chrome, DriftSummary, LicenseRow, Licenses, Overview, StateCount, UsageRow, render,
    state_class, when,
};
use crate::auth::Scope;
use crate::domain::LicenseState;
use crate::service::ListInput;

/// How many licenses of the NEEDS_ATTENTION queue the overview lists.
const QUEUE_SHOWN: i32 = 20;
/// Licenses per page of the list.
const LIST_PAGE: i32 = 50;

/// `GET /console/`.
pub async fn overview(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, PageError> {
    session.require(Scope::Read)?;
    let owner = session.principal.owner_filter();
    let service = &state.service;
    let queue = service
        .list_licenses(
            owner,
            ListInput {
                state: Some(LicenseState::NeedsAttention),
                page_size: QUEUE_SHOWN,
                ..ListInput::default()
            },
        )
        .await?;
    // Counts and the drift report span every client: only admins see them, as on
    // the API (the drift report is an admin call).
    let (counts, drift) = if session.is_admin() {
        let counts = service
            .license_counts()
            .await?
            .into_iter()
            .map(|(state, count)| StateCount {
                state: state.as_str(),
                class: state_class(state),
                count,
            })
            .collect();
        (counts, service.drift_counts().await.map(drift_summary))
    } else {
        (Vec::new(), None)
    };
    let clients = match owner {
        None => state.auth.client_names(),
        Some(own) => vec![own.clone()],
    };
    let mut usage = Vec::with_capacity(clients.len());
    for client in &clients {
        let u = service.client_usage(client).await?;
        usage.push(UsageRow {
            client: u.client.to_string(),
            paid_calls: u.paid_calls,
            at_cap: u.per_day.is_some_and(|cap| u.paid_calls >= u64::from(cap)),
            per_day: u.per_day.map(|c| c.to_string()).unwrap_or_default(),
            per_hour: u.per_hour.map(|c| c.to_string()).unwrap_or_default(),
            spent: u.spent,
            unpriced: u.unpriced,
            spend_cap: u.spend_cap.unwrap_or_default(),
        });
    }
    let page = Overview {
        chrome: Chrome::of(&session, "overview"),
        counts,
        attention: queue.items.iter().map(LicenseRow::from).collect(),
        attention_more: queue.next_token.is_some(),
        store_ok: service.ready().await.is_ok(),
        upstream_ok: state.readiness.upstream_ok(),
        breaker_open: state.readiness.breaker_open(),
        draining: state.readiness.draining(),
        drift,
        usage,
    };
    Ok(render(&page))
}

pub(super) fn drift_summary(d: crate::service::DriftCounts) -> DriftSummary {
    DriftSummary {
        generated: time::OffsetDateTime::from_unix_timestamp(d.generated_unix)
            .map(when)
            .unwrap_or_default(),
        orphans: d.orphans,
        missing: d.missing,
        mismatches: d.mismatches,
        expiring: d.expiring,
    }
}

/// The filters of the license list, as its form sends them.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    panel: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    server: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    client: String,
    /// The downstream (`/billmgr`) item id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    item: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    page: String,
}

/// The item id filter: digits, perhaps after a `#` as the page shows them.
fn item_filter(item: &str) -> Result<Option<u64>, PageError> {
    let item = item.trim();
    let digits = item.strip_prefix('#').unwrap_or(item).trim();
    if digits.is_empty() {
        return Ok(None);
    }
    digits.parse().map(Some).map_err(|_| {
        PageError::bad_request("the item id must be a whole number (the /billmgr item id)")
    })
}

/// A `<select>` of the states, `selected` chosen.
fn state_choices(selected: &str) -> Vec<Choice> {
    std::iter::once(Choice {
        value: String::new(),
        label: "Any state".into(),
        selected: selected.is_empty(),
    })
    .chain(LicenseState::ALL.into_iter().map(|s| Choice {
        value: s.as_str().into(),
        label: s.as_str().into(),
        selected: s.as_str() == selected,
    }))
    .collect()
}

/// A `<select>` of the catalog's panels, `selected` chosen; `any` adds "any".
pub(super) fn panel_choices(state: &ConsoleState, selected: &str, any: bool) -> Vec<Choice> {
    let any = any.then(|| Choice {
        value: String::new(),
        label: "Any panel".into(),
        selected: selected.is_empty(),
    });
    any.into_iter()
        .chain(state.service.panels().iter().map(|p| Choice {
            value: p.name.clone(),
            label: p.name.clone(),
            selected: p.name == selected,
        }))
        .collect()
}

/// `GET /console/licenses`: filtered, newest first, paged by the store's keyset
/// token (a page costs the same at the millionth license as at the first).
pub async fn licenses(
    State(state): State<ConsoleState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    session.require(Scope::Read)?;
    let license_state = match q.state.as_str() {
        "" => None,
        s => Some(LicenseState::parse(s).ok_or_else(|| {
            PageError::bad_request("state must be one of the listed license states")
        })?),
    };
    let page = state
        .service
        .list_licenses(
            session.principal.owner_filter(),
            ListInput {
                server_id: q.server.trim().to_owned(),
                ip: q.ip.trim().to_owned(),
                panel: q.panel.clone(),
                state: license_state,
                page_size: LIST_PAGE,
                page_token: q.page.clone(),
                client: q.client.trim().to_owned(),
                item_id: item_filter(&q.item)?,
            },
        )
        .await?;
    let items = state.service.item_ids(&page.items).await?;
    let first = ListQuery {
        page: String::new(),
        ..clone_query(&q)
    };
    let next = page.next_token.as_ref().map(|token| ListQuery {
        page: token.clone(),
        ..clone_query(&q)
    });
    let view = Licenses {
        chrome: Chrome::of(&session, "licenses"),
        states: state_choices(&q.state),
        panels: panel_choices(&state, &q.panel, true),
        server_id: q.server.clone(),
        ip: q.ip.clone(),
        client: q.client.clone(),
        item: q.item.clone(),
        rows: page
            .items
            .iter()
            .map(|l| LicenseRow::from(l).with_item(items.get(&l.id).copied()))
            .collect(),
        next: next.map(|n| query_string(&n)),
        paged: !q.page.is_empty(),
        first: query_string(&first),
    };
    Ok(render(&view))
}

fn clone_query(q: &ListQuery) -> ListQuery {
    ListQuery {
        state: q.state.clone(),
        panel: q.panel.clone(),
        server: q.server.clone(),
        ip: q.ip.clone(),
        client: q.client.clone(),
        item: q.item.clone(),
        page: q.page.clone(),
    }
}

/// `value` as a URL query (the template escapes it for the attribute).
pub(super) fn query_string<T: Serialize>(value: &T) -> String {
    serde_urlencoded::to_string(value).unwrap_or_default()
}
