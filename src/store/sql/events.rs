//! The change feed: recording events inside a write's transaction, reading them in
//! feed-position order (`seq`, read as the event's id), and retention (the horizon
//! below which events were deleted). Positions must become visible in increasing
//! order: SQLite's single writer gives it for free (`seq` is the row id there), and
//! PostgreSQL numbers committed events after their commit
//! ([`Dialect::sequence_events`], `store::sequencer`), which every read that shows
//! positions runs first.

use anyhow::Context;
use time::OffsetDateTime;

use super::exec::{Conn, Row as _, args, dynamic, fixed};
use crate::domain::{CallPrice, ClientName, Event, EventKind, License, LicenseId};
use crate::store::codec::{self, to_micros};
use crate::store::dialect::Dialect;

/// The change feed's read of one client's events after a position, served by the
/// index `events_client`. A separate statement from [`EVENTS_AFTER_ALL`]: one
/// statement with `($1 IS NULL OR client = $1)` is planned once, without the index.
pub(crate) const EVENTS_AFTER_OF_CLIENT: &str = "SELECT seq AS id, kind, license, time, \
     cost_cents, cost_currency, cost_unknown \
     FROM events WHERE client = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// The change feed's read of every client's events after a position.
const EVENTS_AFTER_ALL: &str = "SELECT seq AS id, kind, license, time, cost_cents, \
     cost_currency, cost_unknown FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";

/// Records `kinds` for `license` inside a write transaction, without a feed position
/// on PostgreSQL (numbered after commit; SQLite's `seq` is the row id).
pub(crate) async fn insert_events<D: Dialect>(
    conn: &mut D::WriteConn,
    kinds: &[EventKind],
    license: &License,
) -> anyhow::Result<()> {
    insert_priced_events::<D>(conn, kinds, license, None).await
}

/// [`insert_events`], with the price of the paid call they result from on the event
/// of kind `priced.0` (an order's CREATED, a renewal's RENEWED, a panel change's
/// PANEL_CHANGED).
pub(crate) async fn insert_priced_events<D: Dialect>(
    conn: &mut D::WriteConn,
    kinds: &[EventKind],
    license: &License,
    priced: Option<(EventKind, &CallPrice)>,
) -> anyhow::Result<()> {
    if kinds.is_empty() {
        return Ok(());
    }
    let snapshot = codec::license_to_json(license);
    // One statement for all of them (a step that ends often records two): each is a
    // round trip to SQLite's connection thread, on the one writer.
    let mut sql = String::from(
        "INSERT INTO events (license_id, client, kind, license, time, cost_cents, \
         cost_currency, cost_unknown) VALUES ",
    );
    let mut values = Vec::with_capacity(kinds.len() * 8);
    for (i, kind) in kinds.iter().enumerate() {
        let price = codec::PriceColumns::of(
            priced
                .filter(|(paid, _)| paid == kind)
                .map(|(_, price)| price),
        );
        if i > 0 {
            sql.push_str(", ");
        }
        let n = i * 8;
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8
        ));
        values.extend(args![
            license.id.to_string(),
            license.client.as_str(),
            kind.as_str(),
            snapshot.as_str(),
            to_micros(license.update_time),
            price.cents,
            price.currency,
            price.unknown,
        ]);
    }
    conn.execute(dynamic(sql), values)
        .await
        .context("cannot record an event")?;
    Ok(())
}

/// Events after `after_id`, oldest first, at most `limit`; only `client`'s when set.
pub(crate) async fn events_after<C: Conn>(
    conn: &mut C,
    after_id: i64,
    limit: u32,
    client: Option<&ClientName>,
) -> anyhow::Result<Vec<Event>> {
    let (sql, args) = match client {
        Some(client) => (
            EVENTS_AFTER_OF_CLIENT,
            args![client.as_str(), after_id, i64::from(limit)],
        ),
        None => (EVENTS_AFTER_ALL, args![after_id, i64::from(limit)]),
    };
    let rows = conn
        .fetch_all(fixed(sql), args)
        .await
        .context("cannot read events")?;
    rows.iter().map(codec::event_from_row).collect()
}

/// One license's latest events, newest first, at most `limit`.
pub(crate) async fn license_events<C: Conn>(
    conn: &mut C,
    id: LicenseId,
    limit: u32,
) -> anyhow::Result<Vec<Event>> {
    let rows = conn
        .fetch_all(
            fixed(
                "SELECT seq AS id, kind, license, time, cost_cents, cost_currency, cost_unknown \
                 FROM events WHERE license_id = $1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT $2",
            ),
            args![id.to_string(), i64::from(limit)],
        )
        .await
        .context("cannot read the license's events")?;
    rows.iter().map(codec::event_from_row).collect()
}

/// The id of the latest event, or the horizon when retention deleted every event: the
/// feed then still stands where it was.
pub(crate) async fn latest_event_id<C: Conn>(conn: &mut C) -> anyhow::Result<i64> {
    let row = conn
        .fetch_one(
            fixed(
                "SELECT CASE WHEN e.latest > h.purged_through THEN e.latest \
                 ELSE h.purged_through END AS latest \
                 FROM (SELECT COALESCE(MAX(seq), 0) AS latest FROM events) AS e, \
                 events_horizon AS h",
            ),
            args![],
        )
        .await
        .context("cannot read the latest event id")?;
    Ok(row.int("latest")?)
}

/// The highest event id that retention has deleted.
pub(crate) async fn events_horizon<C: Conn>(conn: &mut C) -> anyhow::Result<i64> {
    let row = conn
        .fetch_one(fixed("SELECT purged_through FROM events_horizon"), args![])
        .await
        .context("cannot read the events horizon")?;
    Ok(row.int("purged_through")?)
}

/// Deletes the events recorded before `before` (and any with a lower id); returns
/// how many.
pub(crate) async fn purge_events<C: Conn>(
    conn: &mut C,
    before: OffsetDateTime,
) -> anyhow::Result<u64> {
    // The horizon is raised before the delete: after a crash in between, readers are
    // told of a loss a little early, never left to miss events silently. Unnumbered
    // events stay: they have no position the horizon could cover yet.
    conn.execute(
        fixed(
            "UPDATE events_horizon SET purged_through = expired.id \
             FROM (SELECT COALESCE(MAX(seq), 0) AS id FROM events WHERE time < $1) AS expired \
             WHERE expired.id > events_horizon.purged_through",
        ),
        args![to_micros(before)],
    )
    .await
    .context("cannot raise the events horizon")?;
    conn.execute(
        fixed("DELETE FROM events WHERE seq <= (SELECT purged_through FROM events_horizon)"),
        args![],
    )
    .await
    .context("cannot delete expired events")
}
