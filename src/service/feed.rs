//! The change feed: events read from the store in id order, so every reader (on any
//! replica) sees the same sequence and can resume after the last id it saw.
//!
//! Readers do not poll the store each on its own: one task per process follows the
//! latest committed event id (woken by this process's changes, and every
//! [`POLL`] for other replicas') and publishes it; a reader reads the store only when
//! that id passes its position. A client may hold at most
//! [`FeedConfig::max_streams_per_client`] open streams per process. Events are kept
//! for [`FeedConfig::retention`]; a reader resuming from before the oldest kept event
//! gets [`FeedItem::Expired`], then the current state of every license it may see
//! ([`FeedItem::Snapshot`]), then the live feed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::{LicenseService, ServiceError};
use crate::domain::{ClientName, Event, License};
use crate::store::LicenseFilter;

/// Events fetched per store read.
const BATCH: u32 = 500;
/// Licenses per store read of a snapshot.
const SNAPSHOT_PAGE: u32 = 1000;
/// How often the process looks for events committed by other replicas.
const POLL: Duration = Duration::from_millis(500);
/// How often events are given their feed position when no reader asks (a store that
/// numbers events after commit; see `Store::sequence_events`).
const SEQUENCE_SWEEP: Duration = Duration::from_secs(1);

/// Bounds of the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedConfig {
    /// Open streams (gRPC `WatchLicenses` and REST `/v1/events` together) per client
    /// and process; one more is refused with `STREAM_LIMIT_REACHED`.
    pub max_streams_per_client: usize,
    /// How long events are kept.
    pub retention: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            max_streams_per_client: 8,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// One item of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    /// A change of a license.
    Event(Box<Event>),
    /// The reader's position is older than the oldest kept event: the events it
    /// missed are gone. The current state of its licenses follows as snapshots.
    /// `position` is set when no snapshot follows: the feed position to resume from.
    Expired {
        /// Where the feed stands once the snapshot is delivered.
        position: Option<i64>,
    },
    /// A license's current state, after [`FeedItem::Expired`]. The last snapshot
    /// carries the feed position to resume from; live events follow it.
    Snapshot {
        /// The license as it is.
        license: Box<License>,
        /// Set on the last snapshot.
        position: Option<i64>,
    },
}

/// The process-wide state of the change feed.
#[derive(Debug)]
pub(super) struct FeedHub {
    config: FeedConfig,
    /// The latest committed event id this process knows of.
    latest: watch::Sender<i64>,
    /// Whether the task that follows `latest` runs.
    following: AtomicBool,
    /// Open streams by client.
    open: Mutex<HashMap<ClientName, usize>>,
}

impl FeedHub {
    pub(super) fn new(config: FeedConfig) -> Self {
        Self {
            config,
            latest: watch::Sender::new(0),
            following: AtomicBool::new(false),
            open: Mutex::default(),
        }
    }

    /// Wakes the readers waiting for an event id past theirs, if `id` is newer.
    fn publish_latest(&self, id: i64) {
        self.latest.send_if_modified(|latest| {
            let newer = id > *latest;
            *latest = (*latest).max(id);
            newer
        });
    }

    /// Takes one of `client`'s stream slots, or says that none is free.
    fn take_slot(self: &Arc<Self>, client: &ClientName) -> Result<StreamSlot, ServiceError> {
        let mut open = self.open.lock().expect("never poisoned");
        let count = open.entry(client.clone()).or_default();
        if *count >= self.config.max_streams_per_client {
            return Err(ServiceError::StreamLimitReached {
                limit: self.config.max_streams_per_client,
            });
        }
        *count += 1;
        crate::metrics::feed_streams(client.as_str(), *count);
        Ok(StreamSlot {
            hub: self.clone(),
            client: client.clone(),
        })
    }
}

/// One open stream of a client; freed when the stream is dropped.
struct StreamSlot {
    hub: Arc<FeedHub>,
    client: ClientName,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().expect("never poisoned");
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            crate::metrics::feed_streams(self.client.as_str(), *count);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Where a snapshot stands.
struct Snapshot {
    /// The feed position the snapshot is current at.
    position: i64,
    /// The next page; `None` before the first.
    token: Option<String>,
}

struct Cursor {
    service: LicenseService,
    client: Option<ClientName>,
    after: i64,
    buffered: VecDeque<FeedItem>,
    latest: watch::Receiver<i64>,
    /// Whether the store has been read since the stream started: the first read does
    /// not wait for a newer event id.
    read_once: bool,
    snapshot: Option<Snapshot>,
    slot: StreamSlot,
}

impl LicenseService {
    /// Every event after `after_id`, then new ones as they are committed; ends only
    /// at shutdown ([`close_feeds`](Self::close_feeds)). `caller` is the client whose
    /// stream it is (counted against its stream cap); `filter` limits the events to
    /// one client's licenses.
    pub fn watch(
        &self,
        caller: &ClientName,
        filter: Option<ClientName>,
        after_id: i64,
    ) -> Result<impl Stream<Item = Result<FeedItem, ServiceError>> + Send + use<>, ServiceError>
    {
        let slot = self.feed.take_slot(caller)?;
        self.follow_latest_event();
        let cursor = Cursor {
            service: self.clone(),
            client: filter,
            after: after_id.max(0),
            buffered: VecDeque::new(),
            latest: self.feed.latest.subscribe(),
            read_once: false,
            snapshot: None,
            slot,
        };
        Ok(futures::stream::unfold(cursor, |mut c| async move {
            loop {
                if let Some(item) = c.buffered.pop_front() {
                    return Some((Ok(item), c));
                }
                match c.fill().await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Caught up, so shutdown may end it.
                        tokio::select! {
                            _ = c.service.closing.cancelled() => return None,
                            changed = c.latest.changed() => if changed.is_err() { return None },
                        }
                    }
                    Err(e) => return Some((Err(e), c)),
                }
            }
        }))
    }

    /// A receiver of the latest committed event id this process knows of (woken by
    /// every newer one): the webhook dispatcher's wake-up.
    pub(super) fn latest_events(&self) -> watch::Receiver<i64> {
        self.follow_latest_event();
        self.feed.latest.subscribe()
    }

    /// Ends every change-feed stream of this process once it has delivered what is
    /// committed; called at shutdown so watchers do not hold the drain open.
    pub fn close_feeds(&self) {
        self.closing.cancel();
    }

    /// Deletes the events older than the retention; returns how many.
    pub async fn purge_events(&self) -> Result<u64, ServiceError> {
        let before = OffsetDateTime::now_utc() - self.feed.config.retention;
        Ok(self.store.purge_events(before).await?)
    }

    /// Purges expired events until `stop`, at a tenth of the retention (between
    /// 10 ms and 10 minutes).
    pub async fn run_event_retention(self, stop: tokio_util::sync::CancellationToken) {
        let every = (self.feed.config.retention / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(600));
        loop {
            match self.purge_events().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired change-feed events deleted"),
                Err(e) => tracing::warn!(error.message = %e, "cannot delete expired events"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Numbers committed events every [`SEQUENCE_SWEEP`] until `stop`: reads of the
    /// feed number what they read, this numbers the rest (events written while nobody
    /// reads, or by a process that died before a read), so they reach the feed and
    /// retention. Announces newly numbered events to this process's readers.
    pub async fn run_event_sequencer(self, stop: tokio_util::sync::CancellationToken) {
        loop {
            match self.store.sequence_events().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(numbered = n, "change-feed events numbered");
                    match self.store.latest_event_id().await {
                        Ok(id) => self.feed.publish_latest(id),
                        Err(e) => {
                            tracing::warn!(error.message = %e, "cannot read the latest event id")
                        }
                    }
                }
                Err(e) => tracing::warn!(error.message = %e, "cannot number change-feed events"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SEQUENCE_SWEEP) => {}
            }
        }
    }

    /// Starts, once per process, the task that publishes the latest event id.
    fn follow_latest_event(&self) {
        if self.feed.following.swap(true, Ordering::SeqCst) {
            return;
        }
        let service = self.clone();
        self.tasks.spawn(async move {
            let mut notices = service.change_notices();
            loop {
                match service.store.latest_event_id().await {
                    Ok(id) => service.feed.publish_latest(id),
                    Err(e) => tracing::warn!(error.message = %e, "cannot read the latest event id"),
                }
                tokio::select! {
                    _ = service.closing.cancelled() => return,
                    _ = notices.recv() => {
                        // One read covers every change announced meanwhile.
                        while notices.try_recv().is_ok() {}
                    }
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }
}

impl Cursor {
    /// Buffers what follows the cursor; `false` when it is caught up.
    async fn fill(&mut self) -> Result<bool, ServiceError> {
        if self.snapshot.is_some() {
            self.fill_snapshot().await?;
            return Ok(true);
        }
        // Read before the store: every event up to it is committed, so if the read
        // finds none of this reader's up to it, none can appear later.
        let latest = *self.latest.borrow_and_update();
        if self.read_once && latest <= self.after {
            return Ok(false);
        }
        self.read_once = true;
        let store = self.service.store();
        crate::metrics::feed_read(self.slot.client.as_str());
        let events = store
            .events_after(self.after, BATCH, self.client.as_ref())
            .await?;
        // Read after the events: retention raises the horizon before it deletes, so
        // a deletion that cut into this read shows here.
        if self.after < store.events_horizon().await? {
            let position = store.latest_event_id().await?;
            self.snapshot = Some(Snapshot {
                position,
                token: None,
            });
            self.after = position;
            self.fill_snapshot().await?;
            return Ok(true);
        }
        match events.last() {
            Some(last) => {
                self.after = last.id;
                self.buffered
                    .extend(events.into_iter().map(|e| FeedItem::Event(Box::new(e))));
                Ok(true)
            }
            None => {
                self.after = self.after.max(latest);
                Ok(false)
            }
        }
    }

    /// Buffers the next page of the snapshot (the `Expired` notice first).
    async fn fill_snapshot(&mut self) -> Result<(), ServiceError> {
        let Some(snapshot) = &mut self.snapshot else {
            return Ok(());
        };
        let first = snapshot.token.is_none();
        let filter = LicenseFilter {
            client: self.client.clone(),
            ..LicenseFilter::default()
        };
        let page = self
            .service
            .store()
            .list_licenses(&filter, SNAPSHOT_PAGE, snapshot.token.as_deref())
            .await?;
        let done = page.next_token.is_none();
        let position = snapshot.position;
        if first {
            let empty = done && page.items.is_empty();
            self.buffered.push_back(FeedItem::Expired {
                position: empty.then_some(position),
            });
        }
        let count = page.items.len();
        for (i, license) in page.items.into_iter().enumerate() {
            let last = done && i + 1 == count;
            self.buffered.push_back(FeedItem::Snapshot {
                license: Box::new(license),
                position: last.then_some(position),
            });
        }
        match page.next_token {
            Some(token) => snapshot.token = Some(token),
            None => self.snapshot = None,
        }
        Ok(())
    }
}
