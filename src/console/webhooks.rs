//! `/console/webhooks`: the webhook subscriptions a person's client sees (an admin's:
//! everyone's) with their state and backlog; subscribe, resume and delete, through
//! the same service calls as `/v1/webhooks`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::PageError;
use super::session::{Posted, Session};
use super::views::{Chrome, WebhookRow, Webhooks, render, when};
use super::{BASE, ConsoleState};
use crate::auth::Scope;
use crate::service::{WebhookInput, WebhookView};

fn rows(views: &[WebhookView]) -> Vec<WebhookRow> {
    views
        .iter()
        .map(|v| {
            let w = &v.webhook;
            WebhookRow {
                id: w.id.clone(),
                client: w.client.to_string(),
                url: w.url.clone(),
                kinds: if w.event_types.is_empty() {
                    "every kind".to_owned()
                } else {
                    w.event_types
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                state: w.state.as_str(),
                state_class: match w.state {
                    crate::domain::WebhookState::Active if w.attempts == 0 => "ok",
                    crate::domain::WebhookState::Active => "warn",
                    crate::domain::WebhookState::Failing => "bad",
                },
                backlog: v.backlog,
                delivered: w.delivered,
                attempts: w.attempts,
                last_error: w.last_error.clone().unwrap_or_default(),
                next_attempt: if w.attempts > 0 {
                    when(w.next_attempt)
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

async fn page(
    state: &ConsoleState,
    session: &Session,
    created: Option<(String, String)>,
) -> Result<Response, PageError> {
    let views = state
        .service
        .list_webhooks(session.principal.owner_filter())
        .await?;
    Ok(render(&Webhooks {
        chrome: Chrome::of(session, "webhooks"),
        can_write: session.principal.allows(Scope::Write),
        rows: rows(&views),
        created,
    }))
}

/// `GET /console/webhooks`.
pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Response, PageError> {
    session.require(Scope::Read)?;
    page(&state, &session, None).await
}

/// The subscribe form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    url: String,
    /// Kinds separated by commas or spaces; empty: every kind.
    #[serde(default)]
    event_types: String,
    #[serde(default)]
    secret: String,
}

/// `POST /console/webhooks`: subscribes, then shows the list with the secret, once.
pub async fn create(
    State(state): State<ConsoleState>,
    posted: Posted<CreateForm>,
) -> Result<Response, PageError> {
    let Posted { session, form } = posted;
    session.require(Scope::Write)?;
    let input = WebhookInput {
        url: form.url,
        event_types: form
            .event_types
            .split([',', ' '])
            .filter(|k| !k.trim().is_empty())
            .map(|k| k.trim().to_uppercase())
            .collect(),
        secret: form.secret,
    };
    let view = state
        .service
        .create_webhook(
            &session.principal.client,
            session.principal.owner_filter().is_none(),
            input,
        )
        .await?;
    page(
        &state,
        &session,
        Some((view.webhook.url.clone(), view.webhook.secret.clone())),
    )
    .await
}

/// `POST /console/webhooks/{id}/resume`.
pub async fn resume(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Result<Response, PageError> {
    posted.session.require(Scope::Write)?;
    state
        .service
        .resume_webhook(posted.session.principal.owner_filter(), &id)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/webhooks")).into_response())
}

/// `POST /console/webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted<serde::de::IgnoredAny>,
) -> Result<Response, PageError> {
    posted.session.require(Scope::Write)?;
    state
        .service
        .delete_webhook(posted.session.principal.owner_filter(), &id)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/webhooks")).into_response())
}
