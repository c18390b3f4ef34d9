//! Conversions between domain values and their stored forms, shared by the backends.

use anyhow::{Context, anyhow};
use time::OffsetDateTime;

use crate::domain::{
    CallPrice, EventKind, License, LicenseId, LicenseIp, LicenseState, Money, OperationKind,
    Period, Phase,
};

/// Timestamps are stored as unix microseconds: exact, sortable, the same in both
/// databases.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_micros(us: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .context("stored timestamp out of range")
}

pub(crate) fn license_id(s: &str) -> anyhow::Result<LicenseId> {
    LicenseId::parse(s).map_err(|_| anyhow!("stored license id {s:?} is not a UUID"))
}

pub(crate) fn ip(s: &str) -> anyhow::Result<LicenseIp> {
    LicenseIp::read_stored(s).map_err(|e| anyhow!("stored ip {s:?} is invalid: {e}"))
}

pub(crate) fn state(s: &str) -> anyhow::Result<LicenseState> {
    LicenseState::parse(s).ok_or_else(|| anyhow!("stored state {s:?} is unknown"))
}

pub(crate) fn period(v: i64) -> anyhow::Result<Period> {
    i32::try_from(v)
        .ok()
        .and_then(Period::from_upstream)
        .ok_or_else(|| anyhow!("stored period {v} is unknown"))
}

pub(crate) fn phase(s: &str) -> anyhow::Result<Phase> {
    Phase::parse(s).ok_or_else(|| anyhow!("stored phase {s:?} is unknown"))
}

pub(crate) fn kind_to_json(kind: &OperationKind) -> String {
    serde_json::to_string(kind).expect("operation kinds serialize")
}

pub(crate) fn kind_from_json(s: &str) -> anyhow::Result<OperationKind> {
    serde_json::from_str(s).context("stored operation parameters are unreadable")
}

/// Extends an open operation's lease to `$1` while `$3` still holds it (`$2` the
/// operation): the heartbeat's renewal, one statement on both backends (sqlx numbers
/// `$N` parameters on SQLite too).
pub(crate) const RENEW_LEASE_SQL: &str = "UPDATE operations SET lease_until = $1 \
     WHERE id = $2 AND lease_owner = $3 AND phase NOT IN ('DONE', 'FAILED')";

/// Page tokens are the last id of the previous page; they are opaque to callers.
pub(crate) fn encode_page_token(last_id: &LicenseId) -> String {
    format!("a{last_id}")
}

pub(crate) fn decode_page_token(token: &str) -> Option<LicenseId> {
    token
        .strip_prefix('a')
        .and_then(|s| LicenseId::parse(s).ok())
}

pub(crate) fn license_to_json(license: &License) -> String {
    serde_json::to_string(license).expect("licenses serialize")
}

pub(crate) fn license_from_json(s: &str) -> anyhow::Result<License> {
    serde_json::from_str(s).context("stored license snapshot is unreadable")
}

/// A recorded price as its three columns (audit log and events): the amount and its
/// currency, or the reason it is unknown; all `NULL` for no price.
pub(crate) struct PriceColumns {
    pub cents: Option<i64>,
    pub currency: Option<String>,
    pub unknown: Option<String>,
}

impl PriceColumns {
    pub(crate) fn of(price: Option<&CallPrice>) -> Self {
        match price {
            None => Self {
                cents: None,
                currency: None,
                unknown: None,
            },
            Some(CallPrice::Known(m)) => Self {
                cents: Some(m.cents),
                currency: Some(m.currency.clone()),
                unknown: None,
            },
            Some(CallPrice::Unknown(why)) => Self {
                cents: None,
                currency: None,
                unknown: Some(why.clone()),
            },
        }
    }
}

/// The price of a row with the columns `cost_cents`, `cost_currency` and
/// `cost_unknown` (an audit entry written before prices had a currency reads with
/// none).
pub(crate) fn price_from_row(
    row: &impl crate::store::sql::exec::Row,
) -> anyhow::Result<Option<CallPrice>> {
    Ok(
        match (row.opt_int("cost_cents")?, row.opt_text("cost_unknown")?) {
            (Some(cents), _) => Some(CallPrice::Known(Money {
                cents,
                currency: row.opt_text("cost_currency")?.unwrap_or_default(),
            })),
            (None, Some(why)) => Some(CallPrice::Unknown(why)),
            (None, None) => None,
        },
    )
}

/// An event from a row of `SELECT id, kind, license, time, cost_cents, cost_currency,
/// cost_unknown FROM events`, on either backend.
pub(crate) fn event_from_row(
    row: &impl crate::store::sql::exec::Row,
) -> anyhow::Result<crate::domain::Event> {
    Ok(crate::domain::Event {
        id: row.int("id")?,
        kind: event_kind(row.str("kind")?)?,
        license: license_from_json(row.str("license")?)?,
        time: from_micros(row.int("time")?)?,
        price: price_from_row(row)?,
    })
}

pub(crate) fn event_kind(s: &str) -> anyhow::Result<EventKind> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .with_context(|| format!("stored event kind {s:?} is unknown"))
}

/// A value bound to a license listing.
pub(crate) enum ListBind {
    Text(String),
    Int(i64),
}

/// The SQL and bound values of a license listing, newest first: only the filters
/// that are set appear in the statement, so the database can use the index of the
/// column it filters by (`? IS NULL OR ip = ?` hides every index from the planner:
/// a listing by IP read all 100,000 licenses). `placeholder(n)` spells the n-th
/// parameter (`?n`, `$n`); `client_column` is how the client is compared (SQLite's
/// `+client` keeps its planner off the `(client, create_time)` index: a client's
/// page is found at once by walking the primary key newest first, where the index
/// would read and sort every license of the client).
pub(crate) fn license_list_sql(
    columns: &str,
    filter: &crate::store::LicenseFilter,
    after: Option<LicenseId>,
    page_size: u32,
    client_column: &str,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<ListBind>) {
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let mut add = |column: &str, op: &str, value: ListBind| {
        binds.push(value);
        conditions.push(format!("{column} {op} {}", placeholder(binds.len())));
    };
    if let Some(client) = &filter.client {
        add(
            client_column,
            "=",
            ListBind::Text(client.as_str().to_owned()),
        );
    }
    if let Some(server_id) = &filter.server_id {
        add(
            "server_id",
            "=",
            ListBind::Text(server_id.as_str().to_owned()),
        );
    }
    if let Some(ip) = &filter.ip {
        add("ip", "=", ListBind::Text(ip.clone()));
    }
    if let Some(tariff_id) = filter.tariff_id {
        add("tariff_id", "=", ListBind::Int(i64::from(tariff_id)));
    }
    if let Some(state) = filter.state {
        add("state", "=", ListBind::Text(state.as_str().to_owned()));
    }
    if let Some(item) = filter.item_id {
        // Beyond the column's range no license has it: -1 matches none.
        add(
            "item_id",
            "=",
            ListBind::Int(i64::try_from(item).unwrap_or(-1)),
        );
    }
    if let Some(after) = after {
        add("id", "<", ListBind::Text(after.to_string()));
    }
    let condition = if conditions.is_empty() {
        "TRUE".to_owned()
    } else {
        conditions.join(" AND ")
    };
    binds.push(ListBind::Int(i64::from(page_size) + 1));
    let sql = format!(
        "SELECT {columns} FROM licenses WHERE {condition} ORDER BY id DESC LIMIT {}",
        placeholder(binds.len())
    );
    (sql, binds)
}

/// `SELECT id, item_id` of `n` licenses by id, with the backend's `placeholder(i)`
/// (1-based) for each.
pub(crate) fn item_ids_sql(n: usize, placeholder: impl Fn(usize) -> String) -> String {
    let list: Vec<String> = (1..=n).map(placeholder).collect();
    format!(
        "SELECT id, item_id FROM licenses WHERE id IN ({}) AND item_id IS NOT NULL",
        list.join(", ")
    )
}

/// `SELECT id` of the license with an item id, bound at `placeholder`.
pub(crate) fn license_by_item_sql(placeholder: &str) -> String {
    format!("SELECT id FROM licenses WHERE item_id = {placeholder}")
}

/// One row of [`item_ids_sql`].
pub(crate) fn item_pair((id, item): (String, i64)) -> anyhow::Result<(LicenseId, u64)> {
    let item = u64::try_from(item).map_err(|_| anyhow!("stored item id {item} is negative"))?;
    Ok((license_id(&id)?, item))
}

/// An item id as bound in a query; one beyond the column's range matches nothing.
pub(crate) fn item_bind(item: u64) -> i64 {
    i64::try_from(item).unwrap_or(-1)
}
