//! The change feed: events read from the store in id order, so every reader (on any
//! replica) sees the same sequence and can resume after the last id it saw.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;

use super::{LicenseService, ServiceError};
use crate::domain::{ClientName, Event, LicenseId};

/// Events fetched per store read.
const BATCH: u32 = 500;
/// How often a reader looks for events written by other processes.
const POLL: Duration = Duration::from_millis(500);

struct Cursor {
    service: LicenseService,
    client: Option<ClientName>,
    after: i64,
    buffered: VecDeque<Event>,
    notices: broadcast::Receiver<LicenseId>,
}

impl LicenseService {
    /// Every event after `after_id`, then new ones as they are committed; ends only
    /// at shutdown ([`close_feeds`](Self::close_feeds)). Only `client`'s licenses when
    /// set.
    pub fn watch(
        &self,
        client: Option<ClientName>,
        after_id: i64,
    ) -> impl Stream<Item = Result<Event, ServiceError>> + Send + use<> {
        let cursor = Cursor {
            service: self.clone(),
            client,
            after: after_id.max(0),
            buffered: VecDeque::new(),
            notices: self.change_notices(),
        };
        futures::stream::unfold(cursor, |mut c| async move {
            loop {
                if let Some(event) = c.buffered.pop_front() {
                    c.after = event.id;
                    return Some((Ok(event), c));
                }
                match c
                    .service
                    .store()
                    .events_after(c.after, BATCH, c.client.as_ref())
                    .await
                {
                    Ok(events) if !events.is_empty() => c.buffered.extend(events),
                    Ok(_) => {
                        // Woken by a change in this process, or by the poll for
                        // changes made elsewhere; caught up, so shutdown may end it.
                        tokio::select! {
                            _ = c.service.closing.cancelled() => return None,
                            _ = tokio::time::timeout(POLL, c.notices.recv()) => {}
                        }
                    }
                    Err(e) => return Some((Err(e.into()), c)),
                }
            }
        })
    }

    /// Ends every change-feed stream of this process once it has delivered what is
    /// committed; called at shutdown so watchers do not hold the drain open.
    pub fn close_feeds(&self) {
        self.closing.cancel();
    }
}
