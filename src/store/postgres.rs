//! The PostgreSQL store, for several replicas sharing one database. Transactions run at
//! READ COMMITTED: uniqueness is decided by the partial unique index (`ON CONFLICT`),
//! work is shared by claiming rows with `FOR UPDATE SKIP LOCKED`, and progress is fenced
//! by the lease owner, so no stronger isolation is needed.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Row};
use time::OffsetDateTime;

use super::codec::{self, from_micros, to_micros};
use super::resolve;
use super::sequencer::Sequencer;
use super::{
    Inserted, LicenseFilter, Page, RequestRecord, Resolution, Resolved, SpendLimit, Store,
    StoreError,
};
use crate::domain::{
    AuditEntry, ClientName, Event, EventKind, Hostname, License, LicenseId, Operation, Phase,
    ServerId, UpstreamFailure,
};

/// PostgreSQL-backed [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// For lease-only writes (claims, releases, the named leases): these sessions
    /// commit with `synchronous_commit = off`. Losing such a commit to a database
    /// crash only hands the lease back, and the next synchronous commit (INTENT
    /// before any upstream call) flushes it anyway; the claim saves an fsync per step.
    lease_pool: PgPool,
    /// Numbers committed events for the feed (see `store::sequencer`).
    sequencer: Arc<Sequencer>,
}

const LICENSE_COLUMNS: &str = "id, client, server_id, ip, hostname, panel, tariff_id, nodes, \
     period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
     last_error_message, create_time, update_time";

/// Connections per process by default; every replica has its own pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The advisory lock key that serialises migrations across replicas ("lfmigrat").
/// Advisory locks are scoped to the current database, so one constant suffices.
const MIGRATION_LOCK: i64 = 0x6c66_6d69_6772_6174;

/// How many times a transaction that hit a serialization failure or a deadlock
/// (SQLSTATE 40001 / 40P01) is run in all.
const MAX_ATTEMPTS: u32 = 5;

impl PgStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`) and
    /// applies the migrations. Replicas starting together are safe: migrations run
    /// under an advisory lock.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_sized(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`connect`](Self::connect) with at most `max_connections` connections, and a
    /// quarter more (at least 2) for lease-only writes.
    pub async fn connect_sized(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("invalid PostgreSQL database URL")?
            .application_name("license-facade");
        migrate(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .context("cannot connect to PostgreSQL")?;
        let lease_pool = PgPoolOptions::new()
            .max_connections((max_connections / 4).max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.options([("synchronous_commit", "off")]))
            .await
            .context("cannot connect to PostgreSQL")?;
        Ok(Self {
            pool,
            lease_pool,
            sequencer: Arc::default(),
        })
    }

    /// One attempt at [`Store::insert_order`]; `Ok(None)` means the live license we
    /// collided with left the live states before we could read it, so inserting again
    /// may now succeed.
    async fn try_insert_order(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Option<Inserted>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("cannot begin a transaction")?;
        if let Some(request) = request {
            insert_request(&mut tx, request).await?;
        }
        // The partial unique index decides; a pre-check would race. `ON CONFLICT` on
        // it waits for a concurrent insert of the same server to commit or roll back,
        // and then skips the row instead of aborting the transaction.
        let inserted = sqlx::query(
            "INSERT INTO licenses (id, client, server_id, ip, hostname, panel, tariff_id, nodes, \
             period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
             last_error_message, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, NULL, NULL, $12, $12) \
             ON CONFLICT (client, server_id) WHERE state NOT IN ('CANCELLED', 'FAILED') DO NOTHING",
        )
        .bind(license.id.to_string())
        .bind(license.client.as_str())
        .bind(license.server_id.as_str())
        .bind(license.ip.to_string())
        .bind(license.hostname.as_ref().map(|h| h.as_str().to_owned()))
        .bind(&license.panel)
        .bind(i64::from(license.tariff_id))
        .bind(license.nodes.map(i64::from))
        .bind(i64::from(license.period.upstream_value()))
        .bind(license.auto_renew)
        .bind(license.state.as_str())
        .bind(to_micros(license.create_time))
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(inserted) => inserted,
            // Another live license has the IP (the server's own conflict is skipped by
            // `ON CONFLICT` above). The transaction is aborted: read the holder afresh;
            // if it has gone meanwhile, the caller tries again.
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("licenses_one_live_per_ip") => {
                tx.rollback().await.context("cannot roll back")?;
                let holder = live_license_on_ip(&self.pool, &license.ip.to_string())
                    .await
                    .context("cannot read the IP's live license")?;
                // A concurrent order of the same server can meet the IP index before
                // the server's: then it is that server's license, not another's.
                return Ok(holder.map(|holder| {
                    if holder.client == license.client && holder.server_id == license.server_id {
                        Inserted::Existing(holder)
                    } else {
                        Inserted::IpTaken(holder)
                    }
                }));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context("cannot insert the license")
                    .into());
            }
        };
        if inserted.rows_affected() == 0 {
            // READ COMMITTED: this new statement's snapshot includes the conflicting
            // row, whose transaction has committed by now.
            let existing = live_license(&mut *tx, &license.client, &license.server_id)
                .await
                .context("cannot read the server's live license")?;
            tx.rollback().await.context("cannot roll back")?;
            return Ok(existing.map(Inserted::Existing));
        }
        // Only an order that creates a license buys: the limit is checked here, with the
        // new license counted (dropping `tx` rolls it back when it does not fit).
        if let Some(limit) = limit {
            super::check_spend_pg(&mut tx, limit, true).await?;
        }
        insert_operation(&mut tx, op).await?;
        insert_events(&mut tx, &[EventKind::Created], license).await?;
        for entry in audit {
            super::audit::insert_pg(&mut *tx, entry).await?;
        }
        tx.commit().await.context("cannot commit the order")?;
        Ok(Some(Inserted::Created(license.clone())))
    }
}

/// Applies the migrations while holding [`MIGRATION_LOCK`], so replicas starting
/// together apply them one at a time (the later ones find nothing to do).
///
/// The lock is a session lock, so lock and migrations must share one session: a pool
/// of exactly one connection provides it (`Migrator::run` on a bare `&mut
/// PgConnection` makes the `connect` future non-`Send`, a known rustc limitation).
/// Should that connection drop in between, the pool's replacement runs without our
/// lock, but sqlx's migrator takes its own advisory lock (per database) as well, so
/// migrations stay serialised either way. Closing the pool ends the session, which
/// releases both locks even when a migration fails (sqlx returns before its unlock).
async fn migrate(options: &PgConnectOptions) -> anyhow::Result<()> {
    let session = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options.clone())
        .await
        .context("cannot connect to PostgreSQL")?;
    let result = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&session)
            .await
            .context("cannot take the migration lock")?;
        MIGRATOR
            .run(&session)
            .await
            .context("cannot apply the PostgreSQL migrations")
    }
    .await;
    session.close().await;
    result
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether `error` is a serialization failure or a deadlock, after which the whole
/// transaction may simply run again.
fn is_transient(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(|e| match e {
            sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
            _ => false,
        })
}

/// Runs `attempt_once` until it settles: `Ok(None)` (the row it collided with left
/// before it could be read) and serialization failures or deadlocks run it again, up
/// to [`MAX_ATTEMPTS`] times in all.
async fn retrying<T, F, Fut>(what: &str, mut attempt_once: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    let mut attempt = 1;
    loop {
        let error = match attempt_once().await {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => anyhow::anyhow!("the conflicting license changed while being read"),
            Err(StoreError::Unexpected(e)) if is_transient(&e) => e,
            Err(e) => return Err(e),
        };
        if attempt == MAX_ATTEMPTS {
            return Err(error
                .context(format!("{what} did not settle in {MAX_ATTEMPTS} attempts"))
                .into());
        }
        tracing::debug!(attempt, error = %format_args!("{error:#}"), "retrying {what}");
        backoff(attempt).await;
        attempt += 1;
    }
}

async fn backoff(attempt: u32) {
    let jitter = rand::random_range(0..10);
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
}

fn license_from_row(row: &PgRow) -> anyhow::Result<License> {
    let error_code: Option<String> = row.try_get("last_error_code")?;
    let error_message: Option<String> = row.try_get("last_error_message")?;
    let hostname: Option<String> = row.try_get("hostname")?;
    Ok(License {
        id: codec::license_id(row.try_get("id")?)?,
        client: ClientName::new(row.try_get::<String, _>("client")?),
        server_id: ServerId::parse(row.try_get("server_id")?, "serverId")
            .map_err(|e| anyhow::anyhow!("stored server id is invalid: {e}"))?,
        ip: codec::ip(row.try_get("ip")?)?,
        hostname: match hostname {
            Some(h) => Hostname::parse(&h, "hostname")
                .map_err(|e| anyhow::anyhow!("stored hostname is invalid: {e}"))?,
            None => None,
        },
        panel: row.try_get("panel")?,
        tariff_id: u32::try_from(row.try_get::<i64, _>("tariff_id")?)?,
        nodes: row
            .try_get::<Option<i64>, _>("nodes")?
            .map(u32::try_from)
            .transpose()?,
        period: codec::period(row.try_get("period")?)?,
        auto_renew: row.try_get("auto_renew")?,
        state: codec::state(row.try_get("state")?)?,
        license_key: row.try_get("license_key")?,
        upstream_id: row
            .try_get::<Option<i64>, _>("upstream_id")?
            .map(u64::try_from)
            .transpose()?,
        expire_time: row
            .try_get::<Option<i64>, _>("expire_time")?
            .map(from_micros)
            .transpose()?,
        create_time: from_micros(row.try_get("create_time")?)?,
        update_time: from_micros(row.try_get("update_time")?)?,
        last_error: error_code.map(|code| UpstreamFailure {
            code,
            message: error_message.unwrap_or_default(),
        }),
    })
}

fn operation_from_row(row: &PgRow) -> anyhow::Result<Operation> {
    Ok(Operation {
        id: row.try_get("id")?,
        license_id: codec::license_id(row.try_get("license_id")?)?,
        kind: codec::kind_from_json(row.try_get("params")?)?,
        phase: codec::phase(row.try_get("phase")?)?,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?)?,
        checks: u32::try_from(row.try_get::<i64, _>("checks")?)?,
        failures: u32::try_from(row.try_get::<i64, _>("failures")?)?,
        run_after: from_micros(row.try_get("run_after")?)?,
        last_error: row.try_get("last_error")?,
        sent_at: row
            .try_get::<Option<i64>, _>("sent_at")?
            .map(from_micros)
            .transpose()?,
    })
}

async fn insert_operation(conn: &mut PgConnection, op: &Operation) -> anyhow::Result<i64> {
    let now = to_micros(OffsetDateTime::now_utc());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO operations (license_id, kind, params, phase, attempt, checks, run_after, \
         create_time, update_time, sent_at) \
         VALUES ($1, $2, $3, $4, 0, 0, $5, $6, $6, $7) RETURNING id",
    )
    .bind(op.license_id.to_string())
    .bind(op.kind.name())
    .bind(codec::kind_to_json(&op.kind))
    .bind(op.phase.as_str())
    .bind(to_micros(op.run_after))
    .bind(now)
    .bind(op.sent_at.map(to_micros))
    .fetch_one(conn)
    .await
    .context("cannot insert the operation")?;
    Ok(id)
}

/// Records `kinds` for `license`, without a feed position: the sequencer assigns it
/// after commit (see `store::sequencer`).
async fn insert_events(
    conn: &mut PgConnection,
    kinds: &[EventKind],
    license: &License,
) -> anyhow::Result<()> {
    if kinds.is_empty() {
        return Ok(());
    }
    let snapshot = codec::license_to_json(license);
    for kind in kinds {
        sqlx::query(
            "INSERT INTO events (license_id, client, kind, license, time) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(license.id.to_string())
        .bind(license.client.as_str())
        .bind(kind.as_str())
        .bind(&snapshot)
        .bind(to_micros(license.update_time))
        .execute(&mut *conn)
        .await
        .context("cannot record an event")?;
    }
    Ok(())
}

async fn live_license(
    executor: impl PgExecutor<'_>,
    client: &ClientName,
    server_id: &ServerId,
) -> anyhow::Result<Option<License>> {
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE client = $1 AND server_id = $2 \
         AND state NOT IN ('CANCELLED', 'FAILED')"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(client.as_str())
        .bind(server_id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(license_from_row).transpose()
}

async fn live_license_on_ip(
    executor: impl PgExecutor<'_>,
    ip: &str,
) -> anyhow::Result<Option<License>> {
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE ip = $1 \
         AND state NOT IN ('CANCELLED', 'FAILED')"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ip)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(license_from_row).transpose()
}

/// Records a request id in the transaction of its work. `ON CONFLICT DO NOTHING`
/// waits for a concurrent holder of the same key to commit or roll back, so exactly
/// one of two racing requests proceeds; the other gets [`StoreError::RequestKeyTaken`].
async fn insert_request(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    request: &RequestRecord,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO request_keys (client, key, fingerprint, response, busy_until, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client, key) DO NOTHING",
    )
    .bind(request.client.as_str())
    .bind(&request.key)
    .bind(&request.fingerprint)
    .bind(&request.response)
    .bind(request.busy_until.map(to_micros))
    .bind(to_micros(request.create_time))
    .execute(&mut **tx)
    .await
    .context("cannot record the request id")?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::RequestKeyTaken);
    }
    Ok(())
}

impl PgStore {
    /// One attempt at [`Store::resolve_license`]; `Ok(None)` when another license took
    /// the upstream id between the check and the write (the unique index refused it),
    /// so that the next attempt's check finds that license.
    async fn try_resolve(&self, resolution: &Resolution) -> Result<Option<Resolved>, StoreError> {
        let license = &resolution.license;
        let mut tx = self
            .pool
            .begin()
            .await
            .context("cannot begin a transaction")?;
        // The row lock makes a concurrent resolution (or worker save) of the license
        // wait; the state read under it is the one the update is conditional on.
        let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1 FOR UPDATE");
        let current = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(license.id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .context("cannot lock the license")?
            .as_ref()
            .map(license_from_row)
            .transpose()?;
        let holder = match current
            .as_ref()
            .and_then(|c| resolve::new_binding(resolution, c))
        {
            Some(upstream_id) => {
                let sql = resolve::holder_sql(LICENSE_COLUMNS);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(upstream_id)
                    .bind(license.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .context("cannot look the upstream id up")?
                    .as_ref()
                    .map(license_from_row)
                    .transpose()?
            }
            None => None,
        };
        if let Some(refused) = resolve::refusal(current, holder) {
            return Ok(Some(refused));
        }
        if let Some(request) = &resolution.request {
            insert_request(&mut tx, request).await?;
        }
        let updated = resolve::bind_update(sqlx::query(resolve::UPDATE_LICENSE), license)
            .execute(&mut *tx)
            .await;
        match updated {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            other => other.context("cannot resolve the license")?,
        };
        let op = match &resolution.op {
            Some(op) => Some(insert_operation(&mut tx, op).await?),
            None => None,
        };
        super::audit::insert_pg(&mut *tx, &resolution.audit).await?;
        insert_events(&mut tx, &resolution.events, license).await?;
        tx.commit().await.context("cannot commit the resolution")?;
        Ok(Some(Resolved::Stored(op)))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn close(&self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }

    async fn find_request(
        &self,
        client: &ClientName,
        key: &str,
    ) -> Result<Option<RequestRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, response, busy_until, create_time FROM request_keys \
             WHERE client = $1 AND key = $2",
        )
        .bind(client.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the request id")?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(RequestRecord {
            client: client.clone(),
            key: key.to_owned(),
            fingerprint: row.try_get("fingerprint").context("bad request row")?,
            response: row.try_get("response").context("bad request row")?,
            busy_until: row
                .try_get::<Option<i64>, _>("busy_until")
                .context("bad request row")?
                .map(from_micros)
                .transpose()?,
            create_time: from_micros(row.try_get("create_time").context("bad request row")?)?,
        }))
    }

    async fn complete_request(
        &self,
        client: &ClientName,
        key: &str,
        response: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE request_keys SET response = $1, busy_until = NULL WHERE client = $2 AND key = $3",
        )
        .bind(response)
        .bind(client.as_str())
        .bind(key)
        .execute(&self.pool)
        .await
        .context("cannot complete the request id")?;
        Ok(())
    }

    async fn reap_requests(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM request_keys WHERE create_time < $1")
            .bind(to_micros(before))
            .execute(&self.pool)
            .await
            .context("cannot reap request ids")?;
        Ok(done.rows_affected())
    }

    async fn insert_order(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Inserted, StoreError> {
        retrying("the order insert", || {
            self.try_insert_order(license, op, request, audit, limit)
        })
        .await
    }

    async fn insert_operations(
        &self,
        license_id: LicenseId,
        ops: &[Operation],
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("cannot begin a transaction")?;
        if let Some(request) = request {
            insert_request(&mut tx, request).await?;
        }
        // The license row lock serialises requests for one license: a second request
        // waits here until the first commits, and its check below (a new statement, so
        // a new snapshot under READ COMMITTED) then sees the first one's operations.
        sqlx::query("SELECT 1 FROM licenses WHERE id = $1 FOR NO KEY UPDATE")
            .bind(license_id.to_string())
            .execute(&mut *tx)
            .await
            .context("cannot lock the license")?;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operations WHERE license_id = $1 \
             AND phase NOT IN ('DONE', 'FAILED')",
        )
        .bind(license_id.to_string())
        .fetch_one(&mut *tx)
        .await
        .context("cannot read open operations")?;
        if open > 0 {
            return Err(StoreError::OperationInProgress(license_id));
        }
        if let Some(limit) = limit {
            super::check_spend_pg(&mut tx, limit, false).await?;
        }
        let mut ids = Vec::with_capacity(ops.len());
        for op in ops {
            ids.push(insert_operation(&mut tx, op).await?);
        }
        for entry in audit {
            super::audit::insert_pg(&mut *tx, entry).await?;
        }
        tx.commit().await.context("cannot commit the operations")?;
        Ok(ids)
    }

    async fn get_operation(&self, id: i64) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(
            "SELECT id, license_id, params, phase, attempt, checks, failures, run_after, \
             last_error, sent_at FROM operations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the operation")?;
        Ok(row.as_ref().map(operation_from_row).transpose()?)
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        self.sequencer.catch_up(&self.pool).await?;
        // The horizon counts: once retention has deleted every event, the feed still
        // stands where it was.
        let latest: i64 = sqlx::query_scalar(
            "SELECT GREATEST((SELECT COALESCE(MAX(seq), 0) FROM events), \
             (SELECT purged_through FROM events_horizon))",
        )
        .fetch_one(&self.pool)
        .await
        .context("cannot read the latest event id")?;
        Ok(latest)
    }

    async fn events_horizon(&self) -> Result<i64, StoreError> {
        let horizon: i64 = sqlx::query_scalar("SELECT purged_through FROM events_horizon")
            .fetch_one(&self.pool)
            .await
            .context("cannot read the events horizon")?;
        Ok(horizon)
    }

    async fn sequence_events(&self) -> Result<u64, StoreError> {
        Ok(self.sequencer.catch_up(&self.pool).await?)
    }

    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        // The horizon is raised before the delete: after a crash in between, readers
        // are told of a loss a little early, never left to miss events silently.
        // Unnumbered events stay: they have no position the horizon could cover yet.
        sqlx::query(
            "UPDATE events_horizon SET purged_through = GREATEST(purged_through, \
             (SELECT COALESCE(MAX(seq), 0) FROM events WHERE time < $1))",
        )
        .bind(to_micros(before))
        .execute(&self.pool)
        .await
        .context("cannot raise the events horizon")?;
        let done = sqlx::query(
            "DELETE FROM events WHERE seq <= (SELECT purged_through FROM events_horizon)",
        )
        .execute(&self.pool)
        .await
        .context("cannot delete expired events")?;
        Ok(done.rows_affected())
    }

    async fn has_open_operation(&self, license_id: LicenseId) -> Result<bool, StoreError> {
        // Served by the partial index operations_open_license.
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM operations WHERE license_id = $1 \
             AND phase NOT IN ('DONE', 'FAILED') LIMIT 1",
        )
        .bind(license_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the license's open operations")?;
        Ok(open.is_some())
    }

    async fn get_license(&self, id: LicenseId) -> Result<Option<License>, StoreError> {
        let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .context("cannot read the license")?;
        Ok(row.as_ref().map(license_from_row).transpose()?)
    }

    async fn item_ids(&self, ids: &[LicenseId]) -> Result<Vec<(LicenseId, u64)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = codec::item_ids_sql(ids.len(), |i| format!("${i}"));
        let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.to_string());
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .context("cannot read the item ids")?;
        Ok(rows
            .into_iter()
            .map(codec::item_pair)
            .collect::<anyhow::Result<_>>()?)
    }

    async fn license_by_item(&self, item: u64) -> Result<Option<LicenseId>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(codec::license_by_item_sql("$1")))
                .bind(codec::item_bind(item))
                .fetch_optional(&self.pool)
                .await
                .context("cannot find the license of an item id")?;
        Ok(row.map(|(id,)| codec::license_id(&id)).transpose()?)
    }

    async fn server_license(
        &self,
        client: Option<&ClientName>,
        server_id: &ServerId,
    ) -> Result<Option<License>, StoreError> {
        let sql = format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE server_id = $1 \
             AND ($2::TEXT IS NULL OR client = $2) \
             ORDER BY state NOT IN ('CANCELLED', 'FAILED') DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(server_id.as_str())
            .bind(client.map(|c| c.as_str().to_owned()))
            .fetch_optional(&self.pool)
            .await
            .context("cannot read the server's license")?;
        Ok(row.as_ref().map(license_from_row).transpose()?)
    }

    async fn list_licenses(
        &self,
        filter: &LicenseFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<License>, StoreError> {
        let after = match page_token {
            Some(t) => Some(codec::decode_page_token(t).ok_or(StoreError::BadPageToken)?),
            None => None,
        };
        let (sql, binds) =
            codec::license_list_sql(LICENSE_COLUMNS, filter, after, page_size, "client", |n| {
                format!("${n}")
            });
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                codec::ListBind::Text(v) => query.bind(v),
                codec::ListBind::Int(v) => query.bind(v),
            };
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .context("cannot list licenses")?;
        let mut items = rows
            .iter()
            .map(license_from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next_token = if items.len() > page_size as usize {
            items.truncate(page_size as usize);
            items.last().map(|l| codec::encode_page_token(&l.id))
        } else {
            None
        };
        Ok(Page { items, next_token })
    }

    async fn claim_operation(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<Operation>, StoreError> {
        let now_us = to_micros(now);
        let until = to_micros(now + lease);
        // `SKIP LOCKED` passes over a row another replica is claiming right now; a row
        // it claimed and committed meanwhile is re-checked against the lease condition
        // and skipped too, so no two workers ever get the same operation.
        let row = sqlx::query(
            "UPDATE operations SET lease_owner = $1, lease_until = $2, update_time = $3 \
             WHERE id = (SELECT o.id FROM operations o \
                         WHERE o.phase NOT IN ('DONE', 'FAILED') AND o.run_after <= $3 \
                           AND (o.lease_until IS NULL OR o.lease_until < $3) \
                           AND NOT EXISTS (SELECT 1 FROM operations p \
                               WHERE p.license_id = o.license_id AND p.id < o.id \
                                 AND p.phase NOT IN ('DONE', 'FAILED')) \
                         ORDER BY o.run_after, o.id LIMIT 1 \
                         FOR UPDATE OF o SKIP LOCKED) \
             RETURNING id, license_id, params, phase, attempt, checks, failures, run_after, \
             last_error, sent_at",
        )
        .bind(owner)
        .bind(until)
        .bind(now_us)
        .fetch_optional(&self.lease_pool)
        .await
        .context("cannot claim an operation")?;
        Ok(row.as_ref().map(operation_from_row).transpose()?)
    }

    async fn save_progress(
        &self,
        owner: &str,
        op: &Operation,
        license: &License,
        events: &[EventKind],
        release: bool,
        ending: Option<&AuditEntry>,
    ) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("cannot begin a transaction")?;
        // The fence: the row lock this takes also waits out a concurrent claim, so a
        // worker whose lease was taken over saves nothing (the update below finds no
        // row). The phase read under the lock says whether this save closes it.
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT phase FROM operations WHERE id = $1 AND lease_owner = $2 FOR UPDATE",
        )
        .bind(op.id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .context("cannot lock the operation")?;
        let closes = !op.phase.is_open()
            && stored.is_some_and(|p| Phase::parse(&p).is_some_and(|p| p.is_open()));
        let updated = sqlx::query(
            "UPDATE operations SET phase = $1, attempt = $2, checks = $3, run_after = $4, \
             last_error = $5, update_time = $6, \
             lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END, \
             lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END, failures = $10, \
             sent_at = $11 \
             WHERE id = $8 AND lease_owner = $9",
        )
        .bind(op.phase.as_str())
        .bind(i64::from(op.attempt))
        .bind(i64::from(op.checks))
        .bind(to_micros(op.run_after))
        .bind(op.last_error.as_deref())
        .bind(to_micros(license.update_time))
        .bind(release)
        .bind(op.id)
        .bind(owner)
        .bind(i64::from(op.failures))
        .bind(op.sent_at.map(to_micros))
        .execute(&mut *tx)
        .await
        .context("cannot save the operation")?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::LeaseLost(op.id));
        }
        sqlx::query(
            "UPDATE licenses SET ip = $1, panel = $2, tariff_id = $3, nodes = $4, period = $5, \
             auto_renew = $6, state = $7, license_key = $8, upstream_id = $9, expire_time = $10, \
             last_error_code = $11, last_error_message = $12, update_time = $13 WHERE id = $14",
        )
        .bind(license.ip.to_string())
        .bind(&license.panel)
        .bind(i64::from(license.tariff_id))
        .bind(license.nodes.map(i64::from))
        .bind(i64::from(license.period.upstream_value()))
        .bind(license.auto_renew)
        .bind(license.state.as_str())
        .bind(license.license_key.as_deref())
        .bind(license.upstream_id.map(|id| id as i64))
        .bind(license.expire_time.map(to_micros))
        .bind(license.last_error.as_ref().map(|e| e.code.clone()))
        .bind(license.last_error.as_ref().map(|e| e.message.clone()))
        .bind(to_micros(license.update_time))
        .bind(license.id.to_string())
        .execute(&mut *tx)
        .await
        .context("cannot save the license")?;
        insert_events(&mut tx, events, license).await?;
        if let Some(entry) = ending.filter(|_| closes) {
            super::audit::append_ending_pg(&mut tx, entry).await?;
        }
        tx.commit().await.context("cannot commit progress")?;
        Ok(closes)
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
        client: Option<&ClientName>,
    ) -> Result<Vec<Event>, StoreError> {
        // What committed before this read is read with its position.
        self.sequencer.catch_up(&self.pool).await?;
        // Two statements, not `($2 IS NULL OR client = $2)`: a generic plan of that
        // cannot use the index `events_client`.
        let query = match client {
            Some(client) => sqlx::query(
                "SELECT seq AS id, kind, license, time FROM events \
                 WHERE client = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(client.as_str().to_owned()),
            None => sqlx::query(
                "SELECT seq AS id, kind, license, time FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            ),
        };
        let rows = query
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .context("cannot read events")?;
        Ok(rows
            .iter()
            .map(codec::event_from_row)
            .collect::<anyhow::Result<Vec<Event>>>()?)
    }

    async fn license_events(&self, id: LicenseId, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.sequencer.catch_up(&self.pool).await?;
        let rows = sqlx::query(
            "SELECT seq AS id, kind, license, time FROM events \
             WHERE license_id = $1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT $2",
        )
        .bind(id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .context("cannot read the license's events")?;
        Ok(rows
            .iter()
            .map(codec::event_from_row)
            .collect::<anyhow::Result<Vec<Event>>>()?)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(GREATEST(run_after, COALESCE(lease_until, 0))) FROM operations \
             WHERE phase NOT IN ('DONE', 'FAILED')",
        )
        .fetch_one(&self.pool)
        .await
        .context("cannot read the next due operation")?;
        Ok(due.map(from_micros).transpose()?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("the database does not answer")?;
        Ok(())
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM licenses GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .context("cannot count the licenses by state")?;
        Ok(rows
            .into_iter()
            .map(|(state, n)| (state, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn licenses_with_upstream_id(&self) -> Result<Vec<License>, StoreError> {
        use futures::TryStreamExt;
        // Uses the partial index `licenses_upstream`; rows are decoded as they arrive.
        let sql = format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE upstream_id IS NOT NULL ORDER BY id"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&self.pool);
        let mut licenses = Vec::new();
        while let Some(row) = rows
            .try_next()
            .await
            .context("cannot read the licenses with an upstream id")?
        {
            licenses.push(license_from_row(&row)?);
        }
        Ok(licenses)
    }

    async fn insert_adopted(&self, license: &License) -> Result<Inserted, StoreError> {
        retrying("the adoption", || try_insert_adopted(&self.pool, license)).await
    }

    async fn resolve_license(&self, resolution: &Resolution) -> Result<Resolved, StoreError> {
        retrying("the resolution", || self.try_resolve(resolution)).await
    }

    async fn latest_operation(
        &self,
        license_id: LicenseId,
    ) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(resolve::LATEST_OPERATION)
            .bind(license_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .context("cannot read the license's latest operation")?;
        Ok(row.as_ref().map(operation_from_row).transpose()?)
    }

    async fn insert_audit(&self, entry: &crate::domain::AuditEntry) -> Result<i64, StoreError> {
        super::audit::insert_pg(&self.pool, entry).await
    }

    async fn list_audit(
        &self,
        filter: &crate::domain::AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<crate::domain::AuditEntry>, StoreError> {
        super::audit::list_pg(&self.pool, filter, page_size, page_token).await
    }

    async fn orders_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
        super::audit::orders_since_pg(&self.pool, client, since).await
    }

    async fn spend_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
        super::audit::spend_since_pg(&self.pool, client, since).await
    }

    async fn save_drift_report(
        &self,
        generate_time: OffsetDateTime,
        report: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO drift_reports (id, generate_time, report) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET generate_time = excluded.generate_time, \
             report = excluded.report WHERE drift_reports.generate_time <= excluded.generate_time",
        )
        .bind(to_micros(generate_time))
        .bind(report)
        .execute(&self.pool)
        .await
        .context("cannot save the drift report")?;
        Ok(())
    }

    async fn latest_drift_report(
        &self,
        newer_than: Option<OffsetDateTime>,
    ) -> Result<Option<(OffsetDateTime, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT generate_time, report FROM drift_reports \
             WHERE id = 1 AND ($1::BIGINT IS NULL OR generate_time > $1)",
        )
        .bind(newer_than.map(to_micros))
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the drift report")?;
        let Some(row) = row else { return Ok(None) };
        let decode = || -> anyhow::Result<(OffsetDateTime, String)> {
            Ok((
                from_micros(row.try_get("generate_time")?)?,
                row.try_get("report")?,
            ))
        };
        Ok(Some(decode()?))
    }

    async fn release_all_leases(&self, not_before: OffsetDateTime) -> Result<u64, StoreError> {
        let released = sqlx::query(
            "UPDATE operations SET lease_owner = NULL, lease_until = NULL, \
             run_after = GREATEST(run_after, $1) \
             WHERE lease_owner IS NOT NULL AND phase NOT IN ('DONE', 'FAILED')",
        )
        .bind(to_micros(not_before))
        .execute(&self.lease_pool)
        .await
        .context("cannot release the leases")?;
        Ok(released.rows_affected())
    }

    async fn renew_lease(
        &self,
        id: i64,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(codec::RENEW_LEASE_SQL)
            .bind(to_micros(until))
            .bind(id)
            .bind(owner)
            .execute(&self.lease_pool)
            .await
            .context("cannot renew the lease")?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let released = sqlx::query(
            "UPDATE operations SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1 AND phase NOT IN ('DONE', 'FAILED')",
        )
        .bind(owner)
        .execute(&self.lease_pool)
        .await
        .context("cannot release the leases")?;
        Ok(released.rows_affected())
    }

    async fn try_take_lease(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // `ON CONFLICT … DO UPDATE … WHERE` locks the row, so of two replicas taking an
        // expired lease at once the second re-checks against the first's new expiry
        // and updates nothing.
        let taken = sqlx::query(
            "INSERT INTO leases (name, owner, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
             lease_until = excluded.lease_until WHERE leases.lease_until < $4",
        )
        .bind(name)
        .bind(owner)
        .bind(to_micros(now + ttl))
        .bind(to_micros(now))
        .execute(&self.lease_pool)
        .await
        .context("cannot take a lease")?;
        Ok(taken.rows_affected() == 1)
    }
}

/// One attempt at [`Store::insert_adopted`]; `Ok(None)` means the row we collided with
/// left before we could read it, so inserting again may now succeed.
async fn try_insert_adopted(
    pool: &PgPool,
    license: &License,
) -> Result<Option<Inserted>, StoreError> {
    let mut tx = pool.begin().await.context("cannot begin a transaction")?;
    let by_upstream_id = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE upstream_id = $1");
    let upstream_id = license.upstream_id.map(|id| id as i64);
    // `ON CONFLICT DO NOTHING` covers every unique index (one live license per server
    // and per IP, one license per upstream id) and waits for a concurrent insert.
    let inserted = sqlx::query(
        "INSERT INTO licenses (id, client, server_id, ip, hostname, panel, tariff_id, nodes, \
         period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
         last_error_message, create_time, update_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, $15, $16) \
         ON CONFLICT DO NOTHING",
    )
    .bind(license.id.to_string())
    .bind(license.client.as_str())
    .bind(license.server_id.as_str())
    .bind(license.ip.to_string())
    .bind(license.hostname.as_ref().map(|h| h.as_str().to_owned()))
    .bind(&license.panel)
    .bind(i64::from(license.tariff_id))
    .bind(license.nodes.map(i64::from))
    .bind(i64::from(license.period.upstream_value()))
    .bind(license.auto_renew)
    .bind(license.state.as_str())
    .bind(license.license_key.as_deref())
    .bind(upstream_id)
    .bind(license.expire_time.map(to_micros))
    .bind(to_micros(license.create_time))
    .bind(to_micros(license.update_time))
    .execute(&mut *tx)
    .await
    .context("cannot insert the adopted license")?;
    if inserted.rows_affected() == 0 {
        // READ COMMITTED: these new statements see the committed conflicting row.
        let known = sqlx::query(sqlx::AssertSqlSafe(by_upstream_id))
            .bind(upstream_id)
            .fetch_optional(&mut *tx)
            .await
            .context("cannot look the upstream id up")?;
        let existing = match known {
            Some(row) => Some(Inserted::Existing(license_from_row(&row)?)),
            None => match live_license(&mut *tx, &license.client, &license.server_id)
                .await
                .context("cannot read the server's live license")?
            {
                Some(existing) => Some(Inserted::Existing(existing)),
                None => live_license_on_ip(&mut *tx, &license.ip.to_string())
                    .await
                    .context("cannot read the IP's live license")?
                    .map(Inserted::IpTaken),
            },
        };
        tx.rollback().await.context("cannot roll back")?;
        return Ok(existing);
    }
    insert_events(&mut tx, &[EventKind::Created], license).await?;
    tx.commit().await.context("cannot commit the adoption")?;
    Ok(Some(Inserted::Created(license.clone())))
}
