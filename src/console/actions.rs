//! A license's actions from the console: each is a page that asks for what the
//! action needs, then a confirmation that states what will be sent and, where the
//! action costs money, its price (the service's quote); only the confirmation's
//! POST changes anything. The confirmation carries a fresh request id, so a form
//! sent twice (a double click, a reload) is the same call and buys nothing twice.
//!
//! An action is one entry of [`ACTIONS`] (its inputs, its words) and one arm of
//! [`carry_out`] calling its use case; the license page offers the entries whose
//! operation the license's state allows. Resolving a `NEEDS_ATTENTION` license
//! (retry, bind to an upstream id, abandon, each with a reason) fits the same shape
//! once the core has that use case: an entry asking for the mode, the upstream id and
//! the reason, and an arm calling it.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::PageError;
use super::pages::panel_choices;
use super::session::{Posted, Session};
use super::views::{Choice, Chrome, Confirm, Hidden, LicenseRow, render};
use super::{BASE, ConsoleState};
use crate::auth::{Principal, Scope};
use crate::service::{Call, RequestKey};

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
}

/// Every action of the API on one license (resolving a license that needs
/// attention is not here).
pub const ACTIONS: [Action; 7] = [
    Action {
        slug: "renew",
        title: "Renew license",
        explain: "Extends the paid period upstream. This is charged to the reseller account.",
        done: "The renewal was accepted; it is being carried out upstream.",
        danger: false,
        needs_period: true,
        needs_ip: false,
        needs_panel: false,
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
    },
];

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
    let license = state
        .service
        .get_license(session.principal.owner_filter(), &id)
        .await?;
    let ask_period = action.needs_period && input.period.is_empty();
    let ask_ip = action.needs_ip && input.ip.trim().is_empty();
    let ask_panel = action.needs_panel && input.panel.is_empty();
    let ready = !(ask_period || ask_ip || ask_panel);
    let mut summary = vec![
        ("License".to_owned(), license.id.to_string()),
        ("Server".to_owned(), license.server_id.to_string()),
    ];
    let mut hidden = Vec::new();
    let (mut price, mut price_error) = (String::new(), String::new());
    if ready {
        // The price the spend guard will charge: the quote of what is bought.
        let bought = if action.needs_panel {
            Some(input.panel.clone())
        } else if action.needs_period {
            Some(license.panel.clone())
        } else {
            None
        };
        if action.needs_ip {
            summary.push(("From IP".into(), license.ip.to_string()));
            summary.push(("To IP".into(), input.ip.trim().to_owned()));
            hidden.push(Hidden {
                name: "ip",
                value: input.ip.trim().to_owned(),
            });
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
            if let Some(panel) = bought {
                match state.service.quote(&panel, m).await {
                    Ok(q) => price = format!("{} {}", q.price, q.currency),
                    Err(e) => price_error = e.to_string(),
                }
            }
        }
    }
    let page = Confirm {
        chrome: Chrome::of(&session, "licenses"),
        l: LicenseRow::from(&license),
        slug: action.slug,
        title: action.title,
        explain: action.explain,
        danger: action.danger,
        ask_period: action.needs_period,
        ask_ip: action.needs_ip,
        ask_panel: action.needs_panel,
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
        _ => return Err(PageError::not_found()),
    };
    tracing::info!(
        client = %session.principal.client,
        license_id = %outcome.license.id,
        action = action.slug,
        "console action accepted"
    );
    Ok(Redirect::to(&format!(
        "{BASE}/licenses/{}?done={}",
        outcome.license.id, action.slug
    ))
    .into_response())
}
