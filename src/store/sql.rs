//! The one [`Store`] implementation, for SQLite and PostgreSQL alike: every query is
//! written once (with `$N` parameters and SQL both accept) and every row is mapped
//! once; what the databases do differently is the [`Dialect`]'s.

pub(crate) mod events;
pub(crate) mod exec;
mod labels;
pub(crate) mod orders;
mod pool;
mod progress;
mod reads;
pub(crate) mod reserve;
pub(crate) mod rows;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use time::OffsetDateTime;

use self::exec::Conn as _;
use self::orders::OrderAttempt;
use super::cache::LicenseCache;
use super::dialect::{Dialect, WriteFn};
use super::group_commit::Written;
use super::retry::retrying;
use super::{
    Inserted, IpTaken, LicenseFilter, Page, ParkedLicense, RequestRecord, Resolution, Resolved,
    SpendLimit, Store, StoreError, TakeOrder, audit, costs, resolve, webhooks,
};
use crate::domain::{
    AuditEntry, AuditFilter, ClientName, Event, EventKind, ItemLabels, License, LicenseId,
    Operation, OperationKind, PoolPick, ServerId,
};

/// A [`Store`] on the database of the dialect `D`.
#[derive(Debug, Clone)]
pub struct SqlStore<D> {
    pub(super) db: D,
    /// Set by `with_license_cache` for a process that is the database's only writer.
    pub(super) cache: Option<Arc<LicenseCache>>,
}

/// A write for [`Dialect::write`] and its kin: `f` run on the transaction's connection.
fn write_fn<C, T, F>(f: F) -> WriteFn<C, T>
where
    F: for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, Result<Written<T>, StoreError>> + Send + 'static,
{
    Box::new(f)
}

impl<D: Dialect> SqlStore<D> {
    pub(super) fn new(db: D) -> Self {
        Self { db, cache: None }
    }

    /// A connection for a read or a single-statement write.
    async fn conn(&self) -> Result<PoolConnection<D::Db>, StoreError> {
        Ok(self
            .db
            .pools()
            .acquire(false)
            .await
            .context("cannot get a database connection")?)
    }

    /// Runs one statement that changes only leases as the dialect's lease-only write:
    /// on SQLite in the writer's next group, so that it never holds the write lock
    /// while a group waits for it (SQLite's busy handler sleeps a millisecond and more
    /// before it tries again), and without an fsync when the group has nothing else.
    async fn lease_only<T, E, F>(&self, statement: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        E: Into<StoreError> + 'static,
        F: for<'c> FnOnce(&'c mut D::WriteConn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        self.db
            .lease_write(write_fn(move |conn| {
                Box::pin(
                    async move { Ok(Written::kept(statement(conn).await.map_err(Into::into)?)) },
                )
            }))
            .await
    }

    /// Holds the cache entry of `id` for the length of a write (see `store::cache`).
    fn writing(&self, id: LicenseId) -> Option<Box<dyn Send>> {
        self.cache
            .as_ref()
            .map(|c| Box::new(c.writing(id)) as Box<dyn Send>)
    }

    /// One attempt at an order.
    #[allow(clippy::too_many_arguments)]
    async fn try_insert_order(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
        pick: Option<&PoolPick>,
        take: Option<&TakeOrder>,
    ) -> Result<Option<Inserted>, StoreError> {
        // No cache guard: the id is new, and a read that found nothing fills nothing.
        let order = orders::Order {
            license: license.clone(),
            op: op.clone(),
            request: request.cloned(),
            audit: audit.to_vec(),
            limit: limit.cloned(),
            pick: pick.cloned(),
            take: take.cloned(),
        };
        let write =
            write_fn(move |tx| Box::pin(async move { orders::order_in::<D>(tx, &order).await }));
        match self.db.write(None, write).await? {
            OrderAttempt::Done(inserted) => Ok(Some(*inserted)),
            OrderAttempt::Vanished => Ok(None),
            OrderAttempt::IpTaken => {
                let holder =
                    rows::live_license_on_ip(&mut *self.conn().await?, &license.ip.to_string())
                        .await?;
                Ok(orders::ip_holder(license, holder))
            }
        }
    }

    /// One attempt at queueing operations.
    async fn try_insert_operations(
        &self,
        license_id: LicenseId,
        ops: &[Operation],
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        // An unpark changes the license in this transaction: its cached entry is held.
        let hold = ops
            .iter()
            .any(|op| matches!(op.kind, OperationKind::Unpark { .. }))
            .then(|| self.writing(license_id))
            .flatten();
        let ops = ops.to_vec();
        let (request, audit, limit) = (request.cloned(), audit.to_vec(), limit.cloned());
        let write = write_fn(move |tx| {
            Box::pin(async move {
                orders::operations_in::<D>(
                    tx,
                    license_id,
                    &ops,
                    request.as_ref(),
                    &audit,
                    limit.as_ref(),
                )
                .await
            })
        });
        self.db.write(hold, write).await
    }

    /// One attempt at an adoption.
    async fn try_insert_adopted(&self, license: &License) -> Result<Option<Inserted>, StoreError> {
        let license = license.clone();
        let write =
            write_fn(move |tx| Box::pin(async move { orders::adopt_in::<D>(tx, &license).await }));
        self.db.transaction(write).await
    }

    /// One attempt at a resolution.
    async fn try_resolve(&self, resolution: &Resolution) -> Result<Option<Resolved>, StoreError> {
        let hold = self.writing(resolution.license.id);
        let resolution = resolution.clone();
        let write = write_fn(move |tx| {
            Box::pin(async move { resolve::resolve_in::<D>(tx, &resolution).await })
        });
        self.db.write(hold, write).await
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    async fn close(&self) {
        self.db.close().await;
    }

    async fn insert_order_from_pool(
        &self,
        license: &License,
        op: &Operation,
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
        pick: Option<&PoolPick>,
        take: Option<&TakeOrder>,
    ) -> Result<Inserted, StoreError> {
        let inserted = retrying("the order insert", || {
            self.try_insert_order(license, op, request, audit, limit, pick, take)
        })
        .await?;
        // The parked license it took changed in the order's transaction: its cached
        // entry (PARKED) is dropped now. A change of it accepted from the stale entry
        // meanwhile is refused by the store, which reads its state under the lock.
        if let (Some(cache), Inserted::Created(created)) = (&self.cache, &inserted)
            && let Some(from) = created.reused_from
        {
            drop(cache.writing(from));
        }
        Ok(inserted)
    }

    async fn set_pool_changes(
        &self,
        id: LicenseId,
        ip_changed: OffsetDateTime,
        key_changed: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let write = write_fn(move |tx| {
            Box::pin(async move {
                pool::set_changes(tx, id, ip_changed, key_changed).await?;
                Ok(Written::kept(()))
            })
        });
        self.db.write(None, write).await
    }

    async fn give_back_to_pool(
        &self,
        retry_from: OffsetDateTime,
    ) -> Result<Vec<LicenseId>, StoreError> {
        let write = write_fn(move |tx| {
            Box::pin(async move {
                let given = pool::give_back(tx, retry_from, OffsetDateTime::now_utc()).await?;
                Ok(Written::kept(given))
            })
        });
        let given = self.db.write(None, write).await?;
        if let Some(cache) = &self.cache {
            for id in &given {
                drop(cache.writing(*id));
            }
        }
        Ok(given)
    }

    async fn parked_licenses(&self) -> Result<Vec<ParkedLicense>, StoreError> {
        Ok(pool::parked(&mut *self.conn().await?).await?)
    }

    async fn reuse_counts(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        Ok(pool::reuses(&mut *self.conn().await?).await?)
    }

    async fn insert_operations(
        &self,
        license_id: LicenseId,
        ops: &[Operation],
        request: Option<&RequestRecord>,
        audit: &[AuditEntry],
        limit: Option<&SpendLimit>,
    ) -> Result<Vec<i64>, StoreError> {
        retrying("queueing the operations", || {
            self.try_insert_operations(license_id, ops, request, audit, limit)
        })
        .await
    }

    async fn find_request(
        &self,
        client: &ClientName,
        key: &str,
    ) -> Result<Option<RequestRecord>, StoreError> {
        Ok(reads::find_request(&mut *self.conn().await?, client, key).await?)
    }

    async fn complete_request(
        &self,
        client: &ClientName,
        key: &str,
        response: &str,
    ) -> Result<(), StoreError> {
        Ok(reads::complete_request(&mut *self.conn().await?, client, key, response).await?)
    }

    async fn reap_requests(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(reads::reap_requests(&mut *self.conn().await?, before).await?)
    }

    async fn get_operation(&self, id: i64) -> Result<Option<Operation>, StoreError> {
        Ok(rows::operation(&mut *self.conn().await?, id).await?)
    }

    async fn latest_event_id(&self) -> Result<i64, StoreError> {
        self.db.sequence_events().await?;
        Ok(events::latest_event_id(&mut *self.conn().await?).await?)
    }

    async fn events_horizon(&self) -> Result<i64, StoreError> {
        Ok(events::events_horizon(&mut *self.conn().await?).await?)
    }

    async fn sequence_events(&self) -> Result<u64, StoreError> {
        Ok(self.db.sequence_events().await?)
    }

    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(events::purge_events(&mut *self.conn().await?, before).await?)
    }

    async fn has_open_operation(&self, license_id: LicenseId) -> Result<bool, StoreError> {
        let open = self
            .conn()
            .await?
            .fetch_optional(
                rows::open_operation_sql(),
                exec::args![license_id.to_string()],
            )
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
        let license = reads::license(&mut *self.conn().await?, id).await?;
        if let (Some(cache), Some(seen), Some(license)) = (&self.cache, seen, &license) {
            cache.fill(seen, license);
        }
        Ok(license)
    }

    async fn item_ids(&self, ids: &[LicenseId]) -> Result<Vec<(LicenseId, u64)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(reads::item_ids(&mut *self.conn().await?, ids).await?)
    }

    async fn item_labels(
        &self,
        client: &ClientName,
        ids: &[LicenseId],
    ) -> Result<Vec<(LicenseId, ItemLabels)>, StoreError> {
        Ok(labels::labels(&mut *self.conn().await?, client, ids).await?)
    }

    async fn set_item_labels(
        &self,
        client: &ClientName,
        id: LicenseId,
        labels: &ItemLabels,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        Ok(labels::set(&mut *self.conn().await?, client, id, labels, now).await?)
    }

    async fn license_by_item(&self, item: u64) -> Result<Option<LicenseId>, StoreError> {
        Ok(reads::license_by_item(&mut *self.conn().await?, item).await?)
    }

    async fn server_license(
        &self,
        client: Option<&ClientName>,
        server_id: &ServerId,
    ) -> Result<Option<License>, StoreError> {
        Ok(reads::server_license(&mut *self.conn().await?, client, server_id).await?)
    }

    async fn list_licenses(
        &self,
        filter: &LicenseFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<License>, StoreError> {
        let mut conn = self.conn().await?;
        reads::list_licenses(&mut *conn, filter, page_size, page_token, D::CLIENT_COLUMN).await
    }

    async fn claim_operation(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<Operation>, StoreError> {
        let owner = owner.to_owned();
        let write = write_fn(move |tx| {
            Box::pin(async move { progress::claim_in::<D>(tx, &owner, now, now + lease).await })
        });
        self.db.lease_write(write).await
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
        let (hold, ended) = match &self.cache {
            Some(cache) => {
                let (guard, ended) = cache.writing_to_fill(license.id);
                (Some(Box::new(guard) as Box<dyn Send>), Some(ended))
            }
            None => (None, None),
        };
        let step = progress::Step {
            owner: owner.to_owned(),
            op: op.clone(),
            license: license.clone(),
            events: events.to_vec(),
            release,
            ending: ending.cloned(),
        };
        // With a cache, the license is read back as committed: whoever waits for the
        // step reads it next, from memory.
        let read_back = ended.is_some();
        let id = license.id;
        let write = write_fn(move |tx| {
            Box::pin(async move {
                let saved = progress::progress_in::<D>(tx, &step).await?;
                let stored = if read_back && saved.keep {
                    reads::license(tx, id).await?
                } else {
                    None
                };
                Ok(Written {
                    value: (saved.value, stored),
                    keep: saved.keep,
                })
            })
        });
        let (closed, stored) = self.db.write(hold, write).await?;
        if let (Some(cache), Some(ended), Some(stored)) = (&self.cache, &ended, &stored) {
            cache.fill_written(ended, stored);
        }
        Ok(closed)
    }

    async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
        client: Option<&ClientName>,
    ) -> Result<Vec<Event>, StoreError> {
        // What committed before this read is read with its position.
        self.db.sequence_events().await?;
        Ok(events::events_after(&mut *self.conn().await?, after_id, limit, client).await?)
    }

    async fn license_events(&self, id: LicenseId, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.db.sequence_events().await?;
        Ok(events::license_events(&mut *self.conn().await?, id, limit).await?)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(progress::next_due(&mut *self.conn().await?).await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn()
            .await?
            .execute(exec::fixed("SELECT 1"), exec::args![])
            .await
            .context("the database does not answer")?;
        Ok(())
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(reads::count_by_state(&mut *self.conn().await?).await?)
    }

    async fn licenses_with_upstream_id(&self) -> Result<Vec<License>, StoreError> {
        Ok(reads::licenses_with_upstream_id(&mut *self.conn().await?).await?)
    }

    async fn insert_adopted(&self, license: &License) -> Result<Inserted, StoreError> {
        retrying("the adoption", || self.try_insert_adopted(license)).await
    }

    async fn insert_adopted_batch(&self, licenses: &[License]) -> Result<u64, StoreError> {
        if !D::ONE_WRITER {
            return super::adopt_concurrently(self, licenses).await;
        }
        // One transaction for the batch: it holds the database's write lock, so no
        // adoption can collide with a row that leaves before it is read.
        let licenses = licenses.to_vec();
        let write = write_fn(move |tx| {
            Box::pin(async move {
                let mut created = 0;
                for license in &licenses {
                    let adopted = orders::adopt_in::<D>(tx, license).await?;
                    if matches!(adopted.value, Some(Inserted::Created(_))) {
                        created += 1;
                    }
                }
                Ok(Written::kept(created))
            })
        });
        self.db.transaction(write).await
    }

    async fn resolve_license(&self, resolution: &Resolution) -> Result<Resolved, StoreError> {
        retrying("the resolution", || self.try_resolve(resolution)).await
    }

    async fn ip_holder(
        &self,
        ip: &str,
        except: Option<LicenseId>,
    ) -> Result<Option<IpTaken>, StoreError> {
        let mut conn = self.conn().await?;
        reserve::holder(&mut *conn, ip, except).await
    }

    async fn latest_operation(
        &self,
        license_id: LicenseId,
    ) -> Result<Option<Operation>, StoreError> {
        let row = self
            .conn()
            .await?
            .fetch_optional(
                resolve::latest_operation_sql(),
                exec::args![license_id.to_string()],
            )
            .await
            .context("cannot read the license's latest operation")?;
        Ok(row.as_ref().map(rows::operation_from_row).transpose()?)
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        audit::insert(&mut *self.conn().await?, entry).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        audit::list(&mut *self.conn().await?, filter, page_size, page_token).await
    }

    async fn orders_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<(u64, Option<OffsetDateTime>), StoreError> {
        audit::orders_since(&mut *self.conn().await?, client, since).await
    }

    async fn spend_since(
        &self,
        client: &ClientName,
        since: OffsetDateTime,
    ) -> Result<crate::store::Spent, StoreError> {
        audit::spend_since(&mut *self.conn().await?, client, since).await
    }

    async fn paid_calls(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        client: Option<&ClientName>,
    ) -> Result<Vec<crate::domain::PaidCall>, StoreError> {
        costs::paid_calls(&mut *self.conn().await?, since, until, client).await
    }

    async fn licenses_live_at(
        &self,
        at: OffsetDateTime,
        client: Option<&ClientName>,
    ) -> Result<Vec<License>, StoreError> {
        costs::licenses_live_at(&mut *self.conn().await?, at, client).await
    }

    async fn insert_webhook(&self, webhook: &crate::domain::Webhook) -> Result<(), StoreError> {
        webhooks::insert(&mut *self.conn().await?, webhook).await
    }

    async fn list_webhooks(
        &self,
        client: Option<&ClientName>,
        id: Option<&str>,
    ) -> Result<Vec<(crate::domain::Webhook, u64)>, StoreError> {
        webhooks::list(&mut *self.conn().await?, client, id).await
    }

    async fn delete_webhook(
        &self,
        id: &str,
        client: Option<&ClientName>,
    ) -> Result<bool, StoreError> {
        webhooks::delete(&mut *self.conn().await?, id, client).await
    }

    async fn resume_webhook(
        &self,
        id: &str,
        client: Option<&ClientName>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        webhooks::resume(&mut *self.conn().await?, id, client, now).await
    }

    async fn claim_webhook(
        &self,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Option<crate::domain::Webhook>, StoreError> {
        // Woken by every event, the dispatcher mostly finds nothing to deliver: a read
        // says so without queueing a write (on SQLite, behind every order's commit).
        if !webhooks::claimable(&mut *self.conn().await?, now).await? {
            return Ok(None);
        }
        let owner = owner.to_owned();
        self.lease_only(move |conn| {
            Box::pin(async move { webhooks::claim(conn, &owner, now, now + ttl).await })
        })
        .await
    }

    async fn record_webhook(
        &self,
        id: &str,
        owner: &str,
        now: OffsetDateTime,
        progress: &crate::store::WebhookProgress,
    ) -> Result<bool, StoreError> {
        let (id, owner, progress) = (id.to_owned(), owner.to_owned(), progress.clone());
        self.lease_only(move |conn| {
            Box::pin(async move { webhooks::record(conn, &id, &owner, now, &progress).await })
        })
        .await
    }

    async fn save_drift_report(
        &self,
        generate_time: OffsetDateTime,
        report: &str,
    ) -> Result<(), StoreError> {
        Ok(reads::save_drift_report(&mut *self.conn().await?, generate_time, report).await?)
    }

    async fn latest_drift_report(
        &self,
        newer_than: Option<OffsetDateTime>,
    ) -> Result<Option<(OffsetDateTime, String)>, StoreError> {
        Ok(reads::latest_drift_report(&mut *self.conn().await?, newer_than).await?)
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.lease_only(move |conn| {
            Box::pin(async move { progress::release_leases(conn, &owner).await })
        })
        .await
    }

    async fn renew_lease(
        &self,
        id: i64,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.lease_only(move |conn| {
            Box::pin(async move { progress::renew_lease(conn, id, &owner, until).await })
        })
        .await
    }

    async fn release_all_leases(&self, not_before: OffsetDateTime) -> Result<u64, StoreError> {
        self.lease_only(move |conn| {
            Box::pin(async move { progress::release_all_leases(conn, not_before).await })
        })
        .await
    }

    async fn revoke_session(
        &self,
        session: &str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        Ok(sessions::revoke(&mut *self.conn().await?, session, expires, now).await?)
    }

    async fn session_revoked(&self, session: &str) -> Result<bool, StoreError> {
        Ok(sessions::is_revoked(&mut *self.conn().await?, session).await?)
    }

    async fn try_take_lease(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.lease_only(move |conn| {
            Box::pin(
                async move { progress::try_take_lease(conn, &name, &owner, now, now + ttl).await },
            )
        })
        .await
    }
}
