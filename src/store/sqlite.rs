//! The SQLite store: one file (or memory) database, WAL with `synchronous=FULL` so an
//! acknowledged commit survives power loss. Writers take the lock up front
//! (`BEGIN IMMEDIATE`) so that two transactions never deadlock upgrading it.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use time::OffsetDateTime;

use super::cache::LicenseCache;
use super::codec::{self, from_micros, to_micros};
use super::group_commit::{GroupCommit, WriteKind, Written};
use super::resolve;
use super::{
    Inserted, LicenseFilter, Page, RequestRecord, Resolution, Resolved, SpendLimit, Store,
    StoreError,
};
use crate::domain::{
    AuditEntry, ClientName, Event, EventKind, Hostname, License, LicenseId, Operation, Phase,
    ServerId, UpstreamFailure,
};

/// SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// For lease-only writes (groups of claims, releases, the named leases):
    /// connections with `synchronous=NORMAL`, whose WAL commits skip the fsync. A process crash keeps
    /// them (the WAL is written before the commit returns); a power loss may undo
    /// one, which only hands a lease back, and the next FULL commit (INTENT, before
    /// any upstream call) syncs the WAL with it in anyway. An in-memory database has
    /// nothing to sync and shares `pool`.
    lease_pool: SqlitePool,
    /// For an in-memory database: a connection outside the pool that is never used,
    /// only held, because a shared in-memory database lives exactly as long as one
    /// connection to it is open — and the pool may close and replace its connection
    /// (it does when a query is cancelled mid-flight).
    _keeper: Option<Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>>,
    /// Set by [`with_license_cache`](Self::with_license_cache) for a process that is
    /// the database's only writer.
    cache: Option<Arc<LicenseCache>>,
    /// Commits the hot writes in groups (see `store::group_commit`).
    writer: GroupCommit,
}

/// The change feed's read of one client's events after a position, served by the
/// index `events_client`. A separate statement from [`EVENTS_AFTER_ALL`]: one
/// statement with `(?2 IS NULL OR client = ?2)` is planned once, without the index.
/// The position `seq` is the id here (migration 0014); PostgreSQL assigns it after
/// commit.
pub(crate) const EVENTS_AFTER_OF_CLIENT: &str = "SELECT seq AS id, kind, license, time \
     FROM events WHERE client = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";

/// The change feed's read of every client's events after a position.
const EVENTS_AFTER_ALL: &str =
    "SELECT seq AS id, kind, license, time FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

const LICENSE_COLUMNS: &str = "id, client, server_id, ip, hostname, panel, tariff_id, nodes, \
     period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
     last_error_message, create_time, update_time";

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:path` or
    /// `sqlite::memory:`) and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let in_memory = is_in_memory(url);
        // A named shared-cache database, so that every connection of this store (and
        // only of this store) sees the same data.
        let url = if url.contains(":memory:") {
            format!(
                "sqlite:file:license-facade-{}?mode=memory&cache=shared",
                uuid::Uuid::now_v7().simple()
            )
        } else {
            url.to_owned()
        };
        let options = SqliteConnectOptions::from_str(&url)
            .context("invalid SQLite database URL")?
            .create_if_missing(true)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let keeper = if in_memory {
            use sqlx::Connection;
            let conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .context("cannot open the in-memory SQLite database")?;
            Some(Arc::new(tokio::sync::Mutex::new(conn)))
        } else {
            None
        };
        let lease_pool = if in_memory {
            None
        } else {
            Some(
                SqlitePoolOptions::new()
                    .max_connections(2)
                    .connect_lazy_with(options.clone().synchronous(SqliteSynchronous::Normal)),
            )
        };
        let pool = if in_memory {
            // Shared-cache connections lock whole tables against each other; one pooled
            // connection avoids those conflicts (an in-memory database is for demos
            // and tests, not for load).
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .connect_with(options)
        .await
        .context("cannot open the SQLite database")?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("cannot apply the SQLite migrations")?;
        let lease_pool = lease_pool.unwrap_or_else(|| pool.clone());
        Ok(Self {
            writer: GroupCommit::start(pool.clone(), lease_pool.clone()),
            lease_pool,
            pool,
            _keeper: keeper,
            cache: None,
        })
    }

    /// Answers reads of one license from memory (see `store::cache`). Only for the
    /// database's one writing process: `serve` holds the SQLite file for itself
    /// (`startup`); writes made by another process would not be seen.
    pub fn with_license_cache(mut self) -> Self {
        self.cache = Some(Arc::default());
        self
    }

    /// Holds the cache entry of `id` for the length of a write (see `store::cache`).
    fn writing(&self, id: LicenseId) -> Option<Box<dyn Send>> {
        self.cache
            .as_ref()
            .map(|c| Box::new(c.writing(id)) as Box<dyn Send>)
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("cannot begin a write transaction")
            .map_err(StoreError::from)
    }
}

/// Whether a SQLite URL names an in-memory database (`sqlite::memory:`, `mode=memory`).
pub(super) fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Takes the lock that keeps a SQLite database to one `serve` process: an exclusive
/// `flock` on `<database>.lock`, created beside it. A separate file, because closing
/// any descriptor of the database itself would drop SQLite's own POSIX locks on it.
pub(super) fn lock_file(url: &str) -> anyhow::Result<super::file_lock::FileLock> {
    let options = SqliteConnectOptions::from_str(url).context("invalid SQLite database URL")?;
    let mut path = options.get_filename().as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    match super::file_lock::try_lock(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => anyhow::bail!(
            "another license-facade process is serving {} (it holds {}); SQLite serves \
             one process, use PostgreSQL for replicas",
            options.get_filename().display(),
            path.display()
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display()))),
    }
}

fn license_from_row(row: &SqliteRow) -> anyhow::Result<License> {
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

fn operation_from_row(row: &SqliteRow) -> anyhow::Result<Operation> {
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

async fn live_license(
    tx: &mut SqliteConnection,
    client: &ClientName,
    server_id: &ServerId,
) -> anyhow::Result<Option<License>> {
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE client = ?1 AND server_id = ?2 \
         AND state NOT IN ('CANCELLED', 'FAILED')"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(client.as_str())
        .bind(server_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(license_from_row).transpose()
}

async fn live_license_on_ip(
    tx: &mut SqliteConnection,
    ip: &str,
) -> anyhow::Result<Option<License>> {
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE ip = ?1 \
         AND state NOT IN ('CANCELLED', 'FAILED')"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ip)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(license_from_row).transpose()
}

async fn insert_event(
    tx: &mut SqliteConnection,
    kind: EventKind,
    license: &License,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO events (license_id, client, kind, license, time) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(license.id.to_string())
    .bind(license.client.as_str())
    .bind(kind.as_str())
    .bind(codec::license_to_json(license))
    .bind(to_micros(license.update_time))
    .execute(&mut *tx)
    .await
    .context("cannot record an event")?;
    Ok(())
}

/// One [`Store::insert_adopted`] inside `tx`, which holds the write lock from BEGIN
/// IMMEDIATE; commits nothing, and has stored nothing when it returns
/// [`Inserted::Existing`].
async fn adopt_in(tx: &mut SqliteConnection, license: &License) -> Result<Inserted, StoreError> {
    // The write lock is held, so this check cannot race.
    let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE upstream_id = ?1");
    let known = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(license.upstream_id.map(|id| id as i64))
        .fetch_optional(&mut *tx)
        .await
        .context("cannot look the upstream id up")?;
    if let Some(row) = known {
        return Ok(Inserted::Existing(license_from_row(&row)?));
    }
    let inserted = sqlx::query(
        "INSERT INTO licenses (id, client, server_id, ip, hostname, panel, tariff_id, nodes, \
         period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
         last_error_message, create_time, update_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, NULL, NULL, ?15, ?16)",
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
    .bind(license.upstream_id.map(|id| id as i64))
    .bind(license.expire_time.map(to_micros))
    .bind(to_micros(license.create_time))
    .bind(to_micros(license.update_time))
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            if let Some(existing) = live_license(tx, &license.client, &license.server_id)
                .await
                .context("cannot read the server's live license")?
            {
                return Ok(Inserted::Existing(existing));
            }
            let holder = live_license_on_ip(tx, &license.ip.to_string())
                .await
                .context("cannot read the IP's live license")?
                .context("a unique violation without a live license")?;
            return Ok(Inserted::IpTaken(holder));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("cannot insert the adopted license")
                .into());
        }
    }
    insert_event(tx, EventKind::Created, license).await?;
    Ok(Inserted::Created(license.clone()))
}

async fn insert_operation(tx: &mut SqliteConnection, op: &Operation) -> anyhow::Result<i64> {
    let now = to_micros(OffsetDateTime::now_utc());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO operations (license_id, kind, params, phase, attempt, checks, run_after, \
         create_time, update_time, sent_at) \
         VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?6, ?6, ?7) RETURNING id",
    )
    .bind(op.license_id.to_string())
    .bind(op.kind.name())
    .bind(codec::kind_to_json(&op.kind))
    .bind(op.phase.as_str())
    .bind(to_micros(op.run_after))
    .bind(now)
    .bind(op.sent_at.map(to_micros))
    .fetch_one(&mut *tx)
    .await
    .context("cannot insert the operation")?;
    Ok(id)
}

/// Records a request id in the transaction of its work; a taken key aborts it.
async fn insert_request(
    tx: &mut SqliteConnection,
    request: &RequestRecord,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO request_keys (client, key, fingerprint, response, busy_until, create_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(request.client.as_str())
    .bind(&request.key)
    .bind(&request.fingerprint)
    .bind(&request.response)
    .bind(request.busy_until.map(to_micros))
    .bind(to_micros(request.create_time))
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::RequestKeyTaken)
        }
        Err(e) => Err(anyhow::Error::new(e)
            .context("cannot record the request id")
            .into()),
    }
}

/// [`Store::insert_order`] inside the group's transaction (see `group_commit`).
async fn order_in(
    tx: &mut SqliteConnection,
    license: &License,
    op: &Operation,
    request: Option<&RequestRecord>,
    audit: &[AuditEntry],
    limit: Option<&SpendLimit>,
) -> Result<Written<Inserted>, StoreError> {
    if let Some(request) = request {
        insert_request(tx, request).await?;
    }
    // The partial unique index decides; a pre-check would race.
    let inserted = sqlx::query(
        "INSERT INTO licenses (id, client, server_id, ip, hostname, panel, tariff_id, nodes, \
         period, auto_renew, state, license_key, upstream_id, expire_time, last_error_code, \
         last_error_message, create_time, update_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL, NULL, NULL, NULL, ?12, ?12)",
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
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // The request id stored above goes too: nothing is kept.
            if let Some(existing) = live_license(tx, &license.client, &license.server_id)
                .await
                .context("cannot read the server's live license")?
            {
                return Ok(Written::discarded(Inserted::Existing(existing)));
            }
            let holder = live_license_on_ip(tx, &license.ip.to_string())
                .await
                .context("cannot read the IP's live license")?
                .context("a unique violation without a live license")?;
            return Ok(Written::discarded(Inserted::IpTaken(holder)));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("cannot insert the license")
                .into());
        }
    }
    // Only an order that creates a license buys: the limit is checked here, with the
    // new license counted (the write is rolled back when it does not fit).
    if let Some(limit) = limit {
        super::check_spend_sqlite(tx, limit, true).await?;
    }
    insert_operation(tx, op).await?;
    insert_event(tx, EventKind::Created, license).await?;
    for entry in audit {
        super::audit::insert_sqlite(&mut *tx, entry).await?;
    }
    Ok(Written::kept(Inserted::Created(license.clone())))
}

/// [`Store::insert_operations`] inside the group's transaction.
async fn operations_in(
    tx: &mut SqliteConnection,
    license_id: LicenseId,
    ops: &[Operation],
    request: Option<&RequestRecord>,
    audit: &[AuditEntry],
    limit: Option<&SpendLimit>,
) -> Result<Written<Vec<i64>>, StoreError> {
    if let Some(request) = request {
        insert_request(tx, request).await?;
    }
    // The write lock is held from BEGIN IMMEDIATE, and the group's writes run one
    // after another, so this check and the inserts cannot interleave with another
    // request's.
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM operations WHERE license_id = ?1 \
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
        super::check_spend_sqlite(tx, limit, false).await?;
    }
    let mut ids = Vec::with_capacity(ops.len());
    for op in ops {
        ids.push(insert_operation(tx, op).await?);
    }
    for entry in audit {
        super::audit::insert_sqlite(&mut *tx, entry).await?;
    }
    Ok(Written::kept(ids))
}

/// [`Store::save_progress`] inside the group's transaction.
async fn progress_in(
    tx: &mut SqliteConnection,
    owner: &str,
    op: &Operation,
    license: &License,
    events: &[EventKind],
    release: bool,
    ending: Option<&AuditEntry>,
) -> Result<Written<bool>, StoreError> {
    // Only a save to DONE or FAILED can close the operation; the others skip the read
    // (each statement is a round trip to the connection's thread).
    let closes = if op.phase.is_open() {
        false
    } else {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT phase FROM operations WHERE id = ?1")
                .bind(op.id)
                .fetch_optional(&mut *tx)
                .await
                .context("cannot read the operation")?;
        stored.is_some_and(|p| Phase::parse(&p).is_some_and(|p| p.is_open()))
    };
    let updated = sqlx::query(
        "UPDATE operations SET phase = ?1, attempt = ?2, checks = ?3, run_after = ?4, \
         last_error = ?5, update_time = ?6, \
         lease_owner = CASE WHEN ?7 THEN NULL ELSE lease_owner END, \
         lease_until = CASE WHEN ?7 THEN NULL ELSE lease_until END, failures = ?10, \
         sent_at = ?11 \
         WHERE id = ?8 AND lease_owner = ?9",
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
        "UPDATE licenses SET ip = ?1, panel = ?2, tariff_id = ?3, nodes = ?4, period = ?5, \
         auto_renew = ?6, state = ?7, license_key = ?8, upstream_id = ?9, expire_time = ?10, \
         last_error_code = ?11, last_error_message = ?12, update_time = ?13 WHERE id = ?14",
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
    for kind in events {
        insert_event(tx, *kind, license).await?;
    }
    if let Some(entry) = ending.filter(|_| closes) {
        super::audit::append_ending_sqlite(tx, entry).await?;
    }
    Ok(Written::kept(closes))
}

/// [`Store::resolve_license`] inside the group's transaction, which holds the write
/// lock: the checks and the writes cannot interleave with another writer's.
async fn resolve_in(
    tx: &mut SqliteConnection,
    resolution: &Resolution,
) -> Result<Written<Resolved>, StoreError> {
    let license = &resolution.license;
    let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = ?1");
    let current = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(license.id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .context("cannot read the license")?
        .as_ref()
        .map(license_from_row)
        .transpose()?;
    let holder = match current
        .as_ref()
        .and_then(|c| resolve::new_binding(resolution, c))
    {
        Some(upstream_id) => {
            let sql = resolve::sqlite(&resolve::holder_sql(LICENSE_COLUMNS));
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
        return Ok(Written::discarded(refused));
    }
    if let Some(request) = &resolution.request {
        insert_request(tx, request).await?;
    }
    let update = resolve::sqlite(resolve::UPDATE_LICENSE);
    resolve::bind_update(sqlx::query(sqlx::AssertSqlSafe(update)), license)
        .execute(&mut *tx)
        .await
        .context("cannot resolve the license")?;
    let op = match &resolution.op {
        Some(op) => Some(insert_operation(tx, op).await?),
        None => None,
    };
    for kind in &resolution.events {
        insert_event(tx, *kind, license).await?;
    }
    super::audit::insert_sqlite(&mut *tx, &resolution.audit).await?;
    Ok(Written::kept(Resolved::Stored(op)))
}

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        // The writer first: it may hold a connection of either pool, and `close` on a
        // pool waits for its connections to come back.
        self.writer.stop().await;
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
             WHERE client = ?1 AND key = ?2",
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
            "UPDATE request_keys SET response = ?1, busy_until = NULL WHERE client = ?2 AND key = ?3",
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
        let done = sqlx::query("DELETE FROM request_keys WHERE create_time < ?1")
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
        // No cache guard: the id is new, and a read that found nothing fills nothing.
        let (license, op) = (license.clone(), op.clone());
        let limit = limit.cloned();
        let (request, audit) = (request.cloned(), audit.to_vec());
        self.writer
            .run(WriteKind::Durable, None, move |tx| {
                Box::pin(async move {
                    order_in(tx, &license, &op, request.as_ref(), &audit, limit.as_ref()).await
                })
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
        let ops = ops.to_vec();
        let limit = limit.cloned();
        let (request, audit) = (request.cloned(), audit.to_vec());
        self.writer
            .run(WriteKind::Durable, None, move |tx| {
                Box::pin(async move {
                    operations_in(
                        tx,
                        license_id,
                        &ops,
                        request.as_ref(),
                        &audit,
                        limit.as_ref(),
                    )
                    .await
                })
            })
            .await
    }

    async fn get_operation(&self, id: i64) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(
            "SELECT id, license_id, params, phase, attempt, checks, failures, run_after, \
             last_error, sent_at FROM operations WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the operation")?;
        Ok(row.as_ref().map(operation_from_row).transpose()?)
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        // The horizon counts: once retention has deleted every event, the feed still
        // stands where it was.
        let latest: i64 = sqlx::query_scalar(
            "SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM events), \
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

    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        // The horizon is raised before the delete: after a crash in between, readers
        // are told of a loss a little early, never left to miss events silently.
        sqlx::query(
            "UPDATE events_horizon SET purged_through = MAX(purged_through, \
             (SELECT COALESCE(MAX(seq), 0) FROM events WHERE time < ?1))",
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
            "SELECT id FROM operations WHERE license_id = ?1 \
             AND phase NOT IN ('DONE', 'FAILED') LIMIT 1",
        )
        .bind(license_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the license's open operations")?;
        Ok(open.is_some())
    }

    async fn get_license(&self, id: LicenseId) -> Result<Option<License>, StoreError> {
        let seen = match &self.cache {
            Some(cache) => match cache.get(id) {
                Some(license) => return Ok(Some(license)),
                None => Some(cache.generation()),
            },
            None => None,
        };
        let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = ?1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .context("cannot read the license")?;
        let license = row.as_ref().map(license_from_row).transpose()?;
        if let (Some(cache), Some(seen), Some(license)) = (&self.cache, seen, &license) {
            cache.fill(seen, license);
        }
        Ok(license)
    }

    async fn item_ids(&self, ids: &[LicenseId]) -> Result<Vec<(LicenseId, u64)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = codec::item_ids_sql(ids.len(), |i| format!("?{i}"));
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
            sqlx::query_as(sqlx::AssertSqlSafe(codec::license_by_item_sql("?1")))
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
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE server_id = ?1 \
             AND (?2 IS NULL OR client = ?2) \
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
            codec::license_list_sql(LICENSE_COLUMNS, filter, after, page_size, "+client", |n| {
                format!("?{n}")
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
        let owner = owner.to_owned();
        let now_us = to_micros(now);
        let until = to_micros(now + lease);
        // One statement: SQLite runs it under the write lock, so two workers can
        // never claim the same row.
        self.writer
            .run(WriteKind::LeaseOnly, None, move |tx| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "UPDATE operations SET lease_owner = ?1, lease_until = ?2, update_time = ?3 \
                         WHERE id = (SELECT o.id FROM operations o \
                                     WHERE o.phase NOT IN ('DONE', 'FAILED') AND o.run_after <= ?3 \
                                       AND (o.lease_until IS NULL OR o.lease_until < ?3) \
                                       AND NOT EXISTS (SELECT 1 FROM operations p \
                                           WHERE p.license_id = o.license_id AND p.id < o.id \
                                             AND p.phase NOT IN ('DONE', 'FAILED')) \
                                     ORDER BY o.run_after, o.id LIMIT 1) \
                         RETURNING id, license_id, params, phase, attempt, checks, failures, run_after, \
                         last_error, sent_at",
                    )
                    .bind(&owner)
                    .bind(until)
                    .bind(now_us)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("cannot claim an operation")?;
                    Ok(Written::kept(
                        row.as_ref().map(operation_from_row).transpose()?,
                    ))
                })
            })
            .await
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
        let hold = self.writing(license.id);
        let (owner, op, license) = (owner.to_owned(), op.clone(), license.clone());
        let (events, ending) = (events.to_vec(), ending.cloned());
        self.writer
            .run(WriteKind::Durable, hold, move |tx| {
                Box::pin(async move {
                    progress_in(tx, &owner, &op, &license, &events, release, ending.as_ref()).await
                })
            })
            .await
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
        client: Option<&ClientName>,
    ) -> Result<Vec<Event>, StoreError> {
        let query = match client {
            Some(client) => sqlx::query(EVENTS_AFTER_OF_CLIENT).bind(client.as_str().to_owned()),
            None => sqlx::query(EVENTS_AFTER_ALL),
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
        let rows = sqlx::query(
            "SELECT seq AS id, kind, license, time FROM events \
             WHERE license_id = ?1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT ?2",
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
            "SELECT MIN(MAX(run_after, COALESCE(lease_until, 0))) FROM operations \
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
        let mut tx = self.write_tx().await?;
        let inserted = adopt_in(&mut tx, license).await?;
        if matches!(inserted, Inserted::Created(_)) {
            tx.commit().await.context("cannot commit the adoption")?;
        }
        Ok(inserted)
    }

    async fn insert_adopted_batch(&self, licenses: &[License]) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut created = 0;
        for license in licenses {
            if matches!(adopt_in(&mut tx, license).await?, Inserted::Created(_)) {
                created += 1;
            }
        }
        tx.commit().await.context("cannot commit the adoptions")?;
        Ok(created)
    }

    async fn resolve_license(&self, resolution: &Resolution) -> Result<Resolved, StoreError> {
        let hold = self.writing(resolution.license.id);
        let resolution = resolution.clone();
        self.writer
            .run(WriteKind::Durable, hold, move |tx| {
                Box::pin(async move { resolve_in(tx, &resolution).await })
            })
            .await
    }

    async fn latest_operation(
        &self,
        license_id: LicenseId,
    ) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(resolve::sqlite(
            resolve::LATEST_OPERATION,
        )))
        .bind(license_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the license's latest operation")?;
        Ok(row.as_ref().map(operation_from_row).transpose()?)
    }

    async fn insert_audit(&self, entry: &crate::domain::AuditEntry) -> Result<i64, StoreError> {
        super::audit::insert_sqlite(&self.pool, entry).await
    }

    async fn list_audit(
        &self,
        filter: &crate::domain::AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<crate::domain::AuditEntry>, StoreError> {
        super::audit::list_sqlite(&self.pool, filter, page_size, page_token).await
    }

    async fn orders_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
        super::audit::orders_since_sqlite(&self.pool, client, since).await
    }

    async fn spend_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
        super::audit::spend_since_sqlite(&self.pool, client, since).await
    }

    async fn save_drift_report(
        &self,
        generate_time: OffsetDateTime,
        report: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO drift_reports (id, generate_time, report) VALUES (1, ?1, ?2) \
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
             WHERE id = 1 AND (?1 IS NULL OR generate_time > ?1)",
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
             run_after = MAX(run_after, ?1) \
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
             WHERE lease_owner = ?1 AND phase NOT IN ('DONE', 'FAILED')",
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
        // One statement: the write lock makes the check and the take atomic.
        let taken = sqlx::query(
            "INSERT INTO leases (name, owner, lease_until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
             lease_until = excluded.lease_until WHERE leases.lease_until < ?4",
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
