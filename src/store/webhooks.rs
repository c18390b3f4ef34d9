//! Webhook subscriptions on either database: their rows, the lease a delivering
//! process holds on one (as on an operation), and the position of each in the change
//! feed (`last_event_id`), which only the lease holder moves.

use anyhow::Context;
use time::OffsetDateTime;

use super::StoreError;
use super::codec::{self, from_micros, to_micros};
use super::sql::exec::{Conn, Row, args, dynamic, fixed};
use crate::domain::{ClientName, EventKind, Webhook, WebhookState};

const COLUMNS: &str = "id, client, all_clients, url, event_types, secret, last_event_id, state, \
     attempts, first_failure, next_attempt, last_error, delivered, create_time";

/// What a delivering process records about the subscription it holds.
#[derive(Debug, Clone)]
pub enum WebhookProgress {
    /// Events through `through` were delivered (or passed over as other kinds),
    /// `delivered` of them sent; the lease runs on until `lease_until`.
    Delivered {
        through: i64,
        delivered: u64,
        lease_until: OffsetDateTime,
    },
    /// The next event failed again: `attempts` in all since `first_failure`; the next
    /// attempt is at `next_attempt`; `state` FAILING once retries are over. Ends the
    /// lease.
    Failed {
        attempts: u32,
        first_failure: OffsetDateTime,
        next_attempt: OffsetDateTime,
        error: String,
        state: WebhookState,
    },
    /// Nothing more to send now; ends the lease.
    Release,
}

fn webhook_from_row(row: &impl Row) -> anyhow::Result<Webhook> {
    let state = row.str("state")?;
    let kinds = row.str("event_types")?;
    Ok(Webhook {
        id: row.text("id")?,
        client: ClientName::new(row.text("client")?),
        all_clients: row.int("all_clients")? != 0,
        url: row.text("url")?,
        event_types: kinds
            .split(',')
            .filter(|k| !k.is_empty())
            .map(codec::event_kind)
            .collect::<anyhow::Result<_>>()?,
        secret: row.text("secret")?,
        last_event_id: row.int("last_event_id")?,
        state: WebhookState::parse(state)
            .with_context(|| format!("stored webhook state {state:?} is unknown"))?,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        first_failure: row.opt_int("first_failure")?.map(from_micros).transpose()?,
        next_attempt: from_micros(row.int("next_attempt")?)?,
        last_error: row.opt_text("last_error")?,
        delivered: u64::try_from(row.int("delivered")?).unwrap_or(0),
        create_time: from_micros(row.int("create_time")?)?,
    })
}

fn kinds_text(kinds: &[EventKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) async fn insert<C: Conn>(conn: &mut C, w: &Webhook) -> Result<(), StoreError> {
    conn.execute(
        fixed(
            "INSERT INTO webhook_subscriptions (id, client, all_clients, url, event_types, \
             secret, last_event_id, state, attempts, first_failure, next_attempt, last_error, \
             delivered, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, $9, NULL, 0, $10, $10)",
        ),
        args![
            w.id.as_str(),
            w.client.as_str(),
            i64::from(w.all_clients),
            w.url.as_str(),
            kinds_text(&w.event_types),
            w.secret.as_str(),
            w.last_event_id,
            w.state.as_str(),
            to_micros(w.next_attempt),
            to_micros(w.create_time),
        ],
    )
    .await
    .context("cannot store the webhook")?;
    Ok(())
}

/// The subscriptions (only `client`'s when set; only `id` when set), oldest first,
/// each with its backlog: the events of its scope and kinds after its position.
pub(super) async fn list<C: Conn>(
    conn: &mut C,
    client: Option<&ClientName>,
    id: Option<&str>,
) -> Result<Vec<(Webhook, u64)>, StoreError> {
    let rows = conn
        .fetch_all(
            dynamic(format!(
                "SELECT {COLUMNS}, (SELECT COUNT(*) FROM events e WHERE e.seq > w.last_event_id \
                 AND (w.all_clients = 1 OR e.client = w.client) \
                 AND (w.event_types = '' \
                   OR (',' || w.event_types || ',') LIKE ('%,' || e.kind || ',%'))) AS backlog \
                 FROM webhook_subscriptions w \
                 WHERE (CAST($1 AS TEXT) IS NULL OR client = $1) \
                 AND (CAST($2 AS TEXT) IS NULL OR id = $2) ORDER BY create_time, id"
            )),
            args![client.map(ClientName::as_str), id],
        )
        .await
        .context("cannot read the webhooks")?;
    let mut hooks = Vec::with_capacity(rows.len());
    for row in &rows {
        let backlog = u64::try_from(row.int("backlog").context("bad backlog")?).unwrap_or(0);
        hooks.push((webhook_from_row(row)?, backlog));
    }
    Ok(hooks)
}

/// Deletes a subscription (only if `client`'s, when set); whether one was.
pub(super) async fn delete<C: Conn>(
    conn: &mut C,
    id: &str,
    client: Option<&ClientName>,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            fixed(
                "DELETE FROM webhook_subscriptions WHERE id = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR client = $2)",
            ),
            args![id, client.map(ClientName::as_str)],
        )
        .await
        .context("cannot delete the webhook")?;
    Ok(n > 0)
}

/// Makes a subscription ACTIVE and due now, its failures forgotten (only if
/// `client`'s, when set); whether one was.
pub(super) async fn resume<C: Conn>(
    conn: &mut C,
    id: &str,
    client: Option<&ClientName>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            fixed(
                "UPDATE webhook_subscriptions SET state = 'ACTIVE', attempts = 0, \
                 first_failure = NULL, next_attempt = $3, update_time = $3 \
                 WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR client = $2)",
            ),
            args![id, client.map(ClientName::as_str), to_micros(now)],
        )
        .await
        .context("cannot resume the webhook")?;
    Ok(n > 0)
}

/// The subscriptions [`claim`] may lease at the time bound as `now` (a `$n`): ACTIVE,
/// due, with a free or run-out lease and an event to deliver.
fn claimable_sql(now: &str) -> String {
    format!(
        "w.state = 'ACTIVE' AND w.next_attempt <= {now} \
         AND (w.lease_until IS NULL OR w.lease_until < {now}) \
         AND EXISTS (SELECT 1 FROM events e WHERE e.seq > w.last_event_id \
           AND (w.all_clients = 1 OR e.client = w.client))"
    )
}

/// Whether [`claim`] at `now` would find a subscription: a read, so that the common
/// answer (nothing to deliver) takes no write lock. One that becomes claimable just
/// after it is taken at the next wake-up, as one just after a claim would be.
pub(super) async fn claimable<C: Conn>(
    conn: &mut C,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let row = conn
        .fetch_optional(
            dynamic(format!(
                "SELECT 1 AS found FROM webhook_subscriptions w WHERE {} LIMIT 1",
                claimable_sql("$1")
            )),
            args![to_micros(now)],
        )
        .await
        .context("cannot look for a webhook to deliver")?;
    Ok(row.is_some())
}

/// Leases the ACTIVE subscription due longest that has an event to deliver and whose
/// lease is free or has run out, to `owner` until `until`. The second test of the lease in the `UPDATE` makes two
/// processes that picked the same row take it once.
pub(super) async fn claim<C: Conn>(
    conn: &mut C,
    owner: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Option<Webhook>, StoreError> {
    let row = conn
        .fetch_optional(
            dynamic(format!(
                "UPDATE webhook_subscriptions SET lease_owner = $1, lease_until = $3 \
                 WHERE id = (SELECT w.id FROM webhook_subscriptions w WHERE {} \
                   ORDER BY w.next_attempt LIMIT 1) \
                 AND state = 'ACTIVE' AND (lease_until IS NULL OR lease_until < $2) \
                 RETURNING {COLUMNS}",
                claimable_sql("$2")
            )),
            args![owner, to_micros(now), to_micros(until)],
        )
        .await
        .context("cannot claim a webhook")?;
    Ok(row.as_ref().map(webhook_from_row).transpose()?)
}

/// Records `progress` on subscription `id`, only while `owner` holds its lease;
/// whether it did.
pub(super) async fn record<C: Conn>(
    conn: &mut C,
    id: &str,
    owner: &str,
    now: OffsetDateTime,
    progress: &WebhookProgress,
) -> Result<bool, StoreError> {
    let (sql, values) = match progress {
        WebhookProgress::Delivered {
            through,
            delivered,
            lease_until,
        } => (
            "UPDATE webhook_subscriptions SET last_event_id = $3, \
             delivered = delivered + $4, attempts = 0, first_failure = NULL, \
             last_error = NULL, lease_until = $5, update_time = $6 \
             WHERE id = $1 AND lease_owner = $2 AND last_event_id <= $3",
            args![
                id,
                owner,
                *through,
                i64::try_from(*delivered).unwrap_or(i64::MAX),
                to_micros(*lease_until),
                to_micros(now)
            ],
        ),
        WebhookProgress::Failed {
            attempts,
            first_failure,
            next_attempt,
            error,
            state,
        } => (
            "UPDATE webhook_subscriptions SET attempts = $3, first_failure = $4, \
             next_attempt = $5, last_error = $6, state = $7, lease_owner = NULL, \
             lease_until = NULL, update_time = $8 WHERE id = $1 AND lease_owner = $2",
            args![
                id,
                owner,
                i64::from(*attempts),
                to_micros(*first_failure),
                to_micros(*next_attempt),
                error.as_str(),
                state.as_str(),
                to_micros(now)
            ],
        ),
        WebhookProgress::Release => (
            "UPDATE webhook_subscriptions SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2",
            args![id, owner],
        ),
    };
    let n = conn
        .execute(fixed(sql), values)
        .await
        .context("cannot record a webhook's progress")?;
    Ok(n > 0)
}
