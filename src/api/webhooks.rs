//! Conversion of webhook subscriptions to and from the API messages.

use super::Timestamp;
use super::pb::v1 as pb;
use crate::domain::{EventKind, WebhookState};
use crate::service::{WebhookInput, WebhookView};

/// A subscription as the API shows it (never its secret).
pub fn webhook_to_pb(view: &WebhookView) -> pb::Webhook {
    let w = &view.webhook;
    let state = match w.state {
        WebhookState::Active => pb::webhook::State::Active,
        WebhookState::Failing => pb::webhook::State::Failing,
    };
    pb::Webhook {
        id: w.id.clone(),
        client: w.client.to_string(),
        all_clients: w.all_clients,
        url: w.url.clone(),
        event_types: w
            .event_types
            .iter()
            .map(|k| kind_to_pb(*k) as i32)
            .collect(),
        state: state as i32,
        last_event_id: w.last_event_id,
        backlog: i64::try_from(view.backlog).unwrap_or(i64::MAX),
        delivered: i64::try_from(w.delivered).unwrap_or(i64::MAX),
        attempts: i32::try_from(w.attempts).unwrap_or(i32::MAX),
        last_error: w.last_error.clone().unwrap_or_default(),
        next_attempt_time: (w.attempts > 0).then(|| Timestamp::from(w.next_attempt)),
        create_time: Some(Timestamp::from(w.create_time)),
    }
}

fn kind_to_pb(kind: EventKind) -> pb::license_event::Kind {
    use pb::license_event::Kind as K;
    match kind {
        EventKind::Created => K::Created,
        EventKind::StateChanged => K::StateChanged,
        EventKind::KeyIssued => K::KeyIssued,
        EventKind::Renewed => K::Renewed,
        EventKind::IpChanged => K::IpChanged,
        EventKind::PanelChanged => K::PanelChanged,
        EventKind::OperationFailed => K::OperationFailed,
    }
}

/// What a CreateWebhook request asks for; kinds by name (an unknown number by its
/// number), checked by the service.
pub fn webhook_input(r: pb::CreateWebhookRequest) -> WebhookInput {
    WebhookInput {
        url: r.url,
        event_types: r
            .event_types
            .iter()
            .map(|k| match pb::license_event::Kind::try_from(*k) {
                Ok(kind) => kind.as_str_name().to_owned(),
                Err(_) => k.to_string(),
            })
            .collect(),
        secret: r.secret,
    }
}
