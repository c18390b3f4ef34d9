//! `GET /v1/events`: the change feed as Server-Sent Events. Each event's `id:` is its
//! feed id, so a browser or client that reconnects with `Last-Event-ID` resumes
//! exactly after the last event it received.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::api::feed_item_to_pb;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsQuery {
    after_event_id: Option<i64>,
}

/// `GET /v1/events[?afterEventId=N]`, or `Last-Event-ID: N`.
pub async fn stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let from_header = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::field("Last-Event-ID", "must be an event id"))?,
        ),
        None => None,
    };
    let after = from_header.or(query.after_event_id).unwrap_or(0);
    let events = state
        .service
        .watch(&principal.client, principal.owner_filter().cloned(), after)?
        .map(|item| {
            Ok(match item {
                Ok(item) => {
                    let pb = feed_item_to_pb(&item);
                    let kind = pb.kind().as_str_name();
                    let sse = SseEvent::default().event(kind);
                    // Only a position to resume from sets the reader's Last-Event-ID.
                    let sse = if pb.id > 0 {
                        sse.id(pb.id.to_string())
                    } else {
                        sse
                    };
                    sse.json_data(&pb)
                        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"))
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, error.cause_chain = ?e, "change feed read failed");
                    SseEvent::default().event("error").data(e.code())
                }
            })
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
