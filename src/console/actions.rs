//! A license's actions from the console: each is a page that asks for what the
//! action needs, then a confirmation that states what will be sent and, where the
//! action costs money, its price (the service's quote); only the confirmation's
//! POST changes anything. The confirmation carries a fresh request id, so a form
//! sent twice (a double click, a reload) is the same call and buys nothing twice.
//!
//! An action is one entry of [`ACTIONS`] (its inputs, its words) and one arm of
//! [`carry_out`] calling its use case; the license page offers the entries whose
//! operation the license's state allows. Resolving a `NEEDS_ATTENTION` license is one
//! of them, for admins: it asks for the action (retry, bind to an upstream id,
//! abandon; none is chosen in advance, the operator must pick one) and the reason,
//! and suggests the drift report's orphans on the license's IP as the upstream id to
//! bind.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::PageError;
use super::pages::panel_choices;
use super::session::{Posted, Session};
use super::views::{Choice, Chrome, Confirm, Hidden, LicenseRow, render};
use super::{BASE, ConsoleState};
use crate::auth::{Principal, Scope};
use crate::domain::CallPrice;
use crate::service::{Call, RequestKey, ResolveAction, ResolveInput};

/// What an action needs and says.
pub struct Action {
    /// Its path segment.
    pub slug: &'static str,
    title: &'static str,
    explain: &'static str,
    /// What the license page says once it is accepted.
    pub done: &'static str,
    danger: bool,
    needs_period: bool,
    needs_ip: bool,
    needs_panel: bool,
    /// Resolving a `NEEDS_ATTENTION` license (admin only).
    needs_resolve: bool,
}

/// Every action of the API on one license.
pub const ACTIONS: [Action; 9] = [
    Action {
        slug: "renew",
        title: "Renew license",
        explain: "Extends the paid period upstream. This is charged to the reseller account.",
        done: "The renewal was accepted; it is being carried out upstream.",
        danger: false,
        needs_period: true,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "change-ip",
        title: "Change IP address",
        explain: "Binds the license to another address. The panel on the old address stops \
                  being licensed.",
        done: "The IP change was accepted; it is being carried out upstream.",
        danger: false,
        needs_period: false,
        needs_ip: true,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "change-panel",
        title: "Change panel",
        explain: "Moves the license to another panel (tariff). This is charged to the reseller \
                  account.",
        done: "The panel change was accepted; it is being carried out upstream.",
        danger: false,
        needs_period: true,
        needs_ip: false,
        needs_panel: true,
        needs_resolve: false,
    },
    Action {
        slug: "suspend",
        title: "Suspend license",
        explain: "Stops the license upstream until it is resumed. The paid period keeps running.",
        done: "The suspension was accepted; it is being carried out upstream.",
        danger: false,
        needs_period: false,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "resume",
        title: "Resume license",
        explain: "Lifts the suspension upstream.",
        done: "Resuming was accepted; it is being carried out upstream.",
        danger: false,
        needs_period: false,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "reissue-key",
        title: "Reissue license key",
        explain: "Asks the upstream for a new key; the old key stops working.",
        done: "The new key was requested; it appears here once issued.",
        danger: false,
        needs_period: false,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "release",
        title: "Release license",
        explain: "Gives the license up for the pool: if the pool's rules of its tariff keep it, \
                  it is parked upstream with its paid time and the next order of its tariff \
                  takes it instead of buying; if it is not worth keeping, it is cancelled. \
                  Either way the server and its IP address no longer hold it.",
        done: "The release was accepted: the license is being parked in the pool.",
        danger: false,
        needs_period: false,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "cancel",
        title: "Cancel license",
        explain: "Deletes the license upstream. This cannot be undone and nothing is refunded.",
        done: "The cancellation was accepted; it is being carried out upstream.",
        danger: true,
        needs_period: false,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: false,
    },
    Action {
        slug: "resolve",
        title: "Resolve license",
        explain: "The service could not tell whether this license was bought, and stopped. \
                  Look in the BILLmanager panel first. RETRY: nothing was bought; the order (or \
                  change) is looked up once more and sent again only if it is not there. BIND: \
                  it was bought; give its BILLmanager id (same IP and tariff). ABANDON: give \
                  up here; nothing is sent and the server is free for a new order.",
        done: "The license was resolved.",
        danger: false,
        needs_period: false,
        needs_ip: false,
        needs_panel: false,
        needs_resolve: true,
    },
];

/// What a resolution sent without one is told.
const NO_RESOLUTION: &str = "No resolution was chosen: choose RETRY, BIND or ABANDON. Nothing \
                             was changed.";

fn action(slug: &str) -> Result<&'static Action, PageError> {
    ACTIONS
        .iter()
        .find(|a| a.slug == slug)
        .ok_or_else(PageError::not_found)
}

/// What an action's form sends (the inputs page by GET, the confirmation by POST).
#[derive(Debug, Default, Deserialize)]
pub struct ActionInput {
    #[serde(default)]
    period: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    panel: String,
    /// The resolution; `None` on the first visit, `Some("")` when the form was sent
    /// without one.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    upstream_id: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    request_key: String,
}

fn months(period: &str) -> Result<i32, PageError> {
    match period {
        "1" => Ok(1),
        "12" => Ok(12),
        _ => Err(PageError::bad_request("the period must be 1 or 12 months")),
    }
}

/// `GET /console/licenses/{id}/actions/{action}`: the inputs, or (once given) the
/// confirmation with the price.
pub async fn confirm(
    State(state): State<ConsoleState>,
    session: Session,
    Path((id, slug)): Path<(String, String)>,
    Query(input): Query<ActionInput>,
) -> Result<Response, PageError> {
    session.require(Scope::Write)?;
    let action = action(&slug)?;
    if action.needs_resolve {
        session.require(Scope::Admin)?;
    }
    let license = state
        .service
        .get_license(session.principal.owner_filter(), &id)
        .await?;
    let ask_period = action.needs_period && input.period.is_empty();
    let ask_ip = action.needs_ip && input.ip.trim().is_empty();
    let ask_panel = action.needs_panel && input.panel.is_empty();
    let mode = input.mode.as_deref().unwrap_or_default();
    let resolution = ResolveAction::parse(mode);
    let ask_resolve =
        action.needs_resolve && (resolution.is_none() || input.reason.trim().is_empty());
    // Sent without a resolution (an empty choice, or a value that is none): say so.
    let problem = if action.needs_resolve && input.mode.is_some() && resolution.is_none() {
        NO_RESOLUTION
    } else {
        ""
    };
    let ready = !(ask_period || ask_ip || ask_panel || ask_resolve);
    let mut summary = vec![
        ("License".to_owned(), license.id.to_string()),
        ("Server".to_owned(), license.server_id.to_string()),
    ];
    let mut hidden = Vec::new();
    let (mut price, mut price_error) = (String::new(), String::new());
    let (mut outlook, mut cancels) = (String::new(), false);
    if ready {
        if action.slug == "release" {
            (outlook, cancels) = super::pool::release_outlook(&state, &license).await?;
        }
        if action.needs_ip {
            summary.push(("From IP".into(), license.ip.to_string()));
            summary.push(("To IP".into(), input.ip.trim().to_owned()));
            hidden.push(Hidden {
                name: "ip",
                value: input.ip.trim().to_owned(),
            });
        }
        if action.needs_resolve {
            summary.push(("Resolution".into(), mode.to_owned()));
            if !input.upstream_id.trim().is_empty() {
                summary.push(("Upstream license".into(), input.upstream_id.trim().into()));
            }
            summary.push(("Reason".into(), input.reason.trim().into()));
            for (name, value) in [
                ("mode", mode),
                ("upstream_id", &input.upstream_id),
                ("reason", &input.reason),
            ] {
                hidden.push(Hidden {
                    name,
                    value: value.trim().to_owned(),
                });
            }
        }
        if action.needs_panel {
            summary.push(("From panel".into(), license.panel.clone()));
            summary.push(("To panel".into(), input.panel.clone()));
            hidden.push(Hidden {
                name: "panel",
                value: input.panel.clone(),
            });
        } else {
            summary.push(("Panel".into(), license.panel.clone()));
        }
        if action.needs_period {
            let m = months(&input.period)?;
            summary.push((
                "Period".into(),
                if m == 1 {
                    "1 month".into()
                } else {
                    format!("{m} months")
                },
            ));
            hidden.push(Hidden {
                name: "period",
                value: m.to_string(),
            });
            // The price the call will be recorded (and capped) with: the service's one
            // price of what it buys, add-ons included.
            let priced = if action.needs_panel {
                state
                    .service
                    .panel_change_price(&license, &input.panel, m)
                    .await
            } else {
                state.service.renewal_price(&license, m).await
            };
            match priced {
                Ok(CallPrice::Unknown(why)) => price_error = why,
                Ok(known) => price = known.to_string(),
                Err(e) => price_error = e.to_string(),
            }
        }
    }
    let page = Confirm {
        chrome: Chrome::of(&session, "licenses"),
        l: LicenseRow::from(&license),
        slug: action.slug,
        title: action.title,
        explain: action.explain,
        danger: action.danger || cancels,
        outlook,
        ask_period: action.needs_period,
        ask_ip: action.needs_ip,
        ask_panel: action.needs_panel,
        ask_resolve: action.needs_resolve,
        modes: ResolveAction::ALL
            .into_iter()
            .map(|m| Choice {
                value: m.as_str().into(),
                label: m.as_str().into(),
                selected: resolution == Some(m),
            })
            .collect(),
        mode_chosen: resolution.is_some(),
        problem,
        upstream_id: input.upstream_id.trim().to_owned(),
        reason: input.reason.clone(),
        candidates: if action.needs_resolve {
            bind_candidates(&state, &license).await
        } else {
            Vec::new()
        },
        periods: ["1", "12"]
            .into_iter()
            .map(|m| Choice {
                value: m.into(),
                label: if m == "1" {
                    "1 month".into()
                } else {
                    "12 months".into()
                },
                selected: input.period == m || (input.period.is_empty() && m == "1"),
            })
            .collect(),
        panels: panel_choices(&state, &input.panel, false)
            .into_iter()
            .filter(|c| c.value != license.panel)
            .collect(),
        ip: input.ip.clone(),
        ready,
        summary,
        price,
        price_error,
        hidden,
        request_key: format!("console-{}", uuid::Uuid::now_v7()),
    };
    Ok(render(&page))
}

/// The upstream ids of the latest drift report's orphans on `license`'s IP: the
/// likely purchase of a license whose order could not be confirmed. None without a
/// report.
async fn bind_candidates(state: &ConsoleState, license: &crate::domain::License) -> Vec<String> {
    let ip = license.ip.to_string();
    match state.service.latest_drift().await {
        Ok(report) => report
            .orphans
            .iter()
            .filter(|o| o.ip.as_deref() == Some(ip.as_str()))
            .map(|o| o.upstream_id.to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The call of a console action: the session's client, with the confirmation's
/// request id, not waiting (the license page shows the progress).
fn call(principal: &Principal, request_key: &str) -> Result<Call, PageError> {
    let request = RequestKey::parse(request_key, "request_key")
        .map_err(|v| PageError::bad_request(v.message))?;
    Ok(Call {
        client: principal.client.clone(),
        admin: principal.owner_filter().is_none(),
        request: Some(request),
        wait: None,
        arrived: tokio::time::Instant::now(),
    })
}

/// `POST /console/licenses/{id}/actions/{action}`: carries the confirmed action
/// out through the same use case as the API, then back to the license.
pub async fn carry_out(
    State(state): State<ConsoleState>,
    Path((id, slug)): Path<(String, String)>,
    posted: Posted<ActionInput>,
) -> Result<Response, PageError> {
    let Posted { session, form } = posted;
    session.require(Scope::Write)?;
    let action = action(&slug)?;
    let call = call(&session.principal, &form.request_key)?;
    let service = &state.service;
    let mut done = action.slug;
    let outcome = match action.slug {
        "renew" => service.renew(&call, &id, months(&form.period)?).await?,
        "change-ip" => service.change_ip(&call, &id, form.ip.trim()).await?,
        "change-panel" => {
            service
                .change_panel(&call, &id, &form.panel, months(&form.period)?)
                .await?
        }
        "suspend" => service.suspend(&call, &id).await?,
        "resume" => service.resume(&call, &id).await?,
        "reissue-key" => service.reissue_key(&call, &id).await?,
        "cancel" => service.cancel(&call, &id).await?,
        "release" => {
            let released = service.release(&call, &id).await?;
            // The pool's rules cancelled it: the page says so, as after a cancel.
            if released.cancelled.is_some() {
                done = "cancel";
            }
            released.outcome
        }
        "resolve" => {
            session.require(Scope::Admin)?;
            let mode = form.mode.as_deref().unwrap_or_default();
            let Some(resolution) = ResolveAction::parse(mode) else {
                return Err(PageError::bad_request(NO_RESOLUTION));
            };
            let input = ResolveInput {
                action: Some(resolution),
                reason: form.reason.clone(),
                upstream_id: form.upstream_id.clone(),
            };
            service.resolve(&call, &id, input).await?
        }
        _ => return Err(PageError::not_found()),
    };
    tracing::info!(
        client = %session.principal.client,
        license_id = %outcome.license.id,
        action = action.slug,
        "console action accepted"
    );
    Ok(Redirect::to(&format!(
        "{BASE}/licenses/{}?done={done}",
        outcome.license.id
    ))
    .into_response())
}
