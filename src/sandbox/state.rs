//! The simulator's mutable world: one account (balance, sessions) and its licenses.
//!
//! Time is read from a clock that tests can move forward, and the status change 5 → 2
//! is computed from it when a license is read ("settled"), so no timer task exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use rand::Rng;
use time::{Date, OffsetDateTime};
use tokio_util::sync::CancellationToken;

use super::config::{SandboxConfig, SavedFilter};
use super::doc::ApiError;
use super::faults::Fault;

/// How many `traceparent` headers the sandbox keeps per function.
const TRACEPARENTS_KEPT: usize = 64;

pub(crate) use crate::protocol::status;

/// A license as the sandbox holds it (a snapshot when returned by the handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLicense {
    /// Upstream item id (`elid`).
    pub id: u64,
    /// Bound IP address.
    pub ip: String,
    /// License name.
    pub licname: String,
    /// The reseller's id for the service (`remoteid`).
    pub remote_id: String,
    /// Tariff (pricelist) id.
    pub tariff_id: u32,
    /// Period in months, or -100 for a trial.
    pub period: i32,
    /// Effective status: 1 ordered, 2 active, 3 suspended, 4 deleted, 5 processing.
    pub status: u32,
    /// License key; empty until the license becomes active.
    pub license_key: String,
    /// When the order was placed.
    pub create_time: OffsetDateTime,
    /// Last day of the paid period.
    pub expire_date: Date,
    /// Day of the last IP change, if any (parking and leaving the pool included).
    pub ip_change_date: Option<Date>,
    /// Day of the last key regeneration, if any.
    pub key_change_date: Option<Date>,
    /// The `real_ipchange` column: the day of the last IP change, the creation day
    /// until the first.
    pub real_ipchange: Date,
    /// The `real_keychange` column: the day of the last new key, the creation day
    /// until the first.
    pub real_keychange: Date,
    /// Add-on id → unit count (e.g. 55236 → Business nodes).
    pub addons: BTreeMap<u32, u32>,
    /// `autoprolong` as ordered: `Some(1 | 12)` or `None`.
    pub auto_prolong: Option<i32>,
}

/// One renewal (`service.prolong`) the sandbox carried out: a period bought and paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRenewal {
    /// The renewed license (`elid`).
    pub license: u64,
    /// Months bought.
    pub months: i32,
    /// What was debited, in cents.
    pub cost_cents: i64,
    /// The paid period's end before the renewal.
    pub expire_before: Date,
    /// The paid period's end after it.
    pub expire_after: Date,
}

/// A license to plant directly in the sandbox ("bought behind the service's back").
/// Nothing is debited and the tariff is not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSandboxLicense {
    /// Bound IP address.
    pub ip: String,
    /// Tariff (pricelist) id.
    pub tariff_id: u32,
    /// Period in months (-100 for a trial).
    pub period: i32,
    /// License name.
    pub licname: String,
    /// `remoteid`.
    pub remote_id: String,
    /// Status to start in; 2 (active, with a key) by default.
    pub status: u32,
    /// Expiry; default: now + period.
    pub expire_date: Option<Date>,
    /// Add-on counts.
    pub addons: BTreeMap<u32, u32>,
    /// `autoprolong`.
    pub auto_prolong: Option<i32>,
}

impl NewSandboxLicense {
    /// An active one-month license of `tariff_id` on `ip`, with empty name and remoteid.
    pub fn new(ip: impl Into<String>, tariff_id: u32) -> Self {
        Self {
            ip: ip.into(),
            tariff_id,
            period: 1,
            licname: String::new(),
            remote_id: String::new(),
            status: status::ACTIVE,
            expire_date: None,
            addons: BTreeMap::new(),
            auto_prolong: None,
        }
    }
}

/// A stored license plus the instants the rules need at sub-day precision.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) lic: SandboxLicense,
    /// When a processing license becomes active (status 5 → 2).
    pub(crate) activates_at: Option<OffsetDateTime>,
    /// The last move from one real address to another (what the cooldown of a license
    /// in use counts from; parking and leaving the pool are not such moves).
    pub(crate) ip_moved_at: Option<OffsetDateTime>,
    /// The last new key.
    pub(crate) key_changed_at: Option<OffsetDateTime>,
}

impl Record {
    /// Whether the license is parked: bound to the unspecified address (0.0.0.0),
    /// as a reseller's pool keeps a license between two servers.
    pub(crate) fn parked(&self) -> bool {
        is_parking_ip(&self.lic.ip)
    }

    /// Makes the last IP change and the last new key `by` older.
    pub(crate) fn age_changes(&mut self, by: time::Duration) {
        let l = &mut self.lic;
        l.real_ipchange -= by;
        l.real_keychange -= by;
        l.ip_change_date = l.ip_change_date.map(|d| d - by);
        l.key_change_date = l.key_change_date.map(|d| d - by);
        self.ip_moved_at = self.ip_moved_at.map(|t| t - by);
        self.key_changed_at = self.key_changed_at.map(|t| t - by);
    }

    /// Applies the lazy 5 → 2 transition if its time has come.
    fn settle(&mut self, now: OffsetDateTime) {
        if self.lic.status == status::PROCESSING && self.activates_at.is_some_and(|t| t <= now) {
            self.lic.status = status::ACTIVE;
            self.activates_at = None;
            if self.lic.license_key.is_empty() {
                self.lic.license_key = random_hex(32);
            }
        }
    }
}

/// Everything behind the one mutex.
pub(crate) struct State {
    pub(crate) balance: i64,
    pub(crate) records: BTreeMap<u64, Record>,
    next_id: u64,
    /// Session id → instant of its last use (the TTL slides).
    sessions: HashMap<String, OffsetDateTime>,
    /// IPs that ever had a trial.
    pub(crate) trial_ips: HashSet<String>,
    /// Added to the wall clock; lets tests jump forward in time.
    clock_offset: time::Duration,
    calls: HashMap<String, u64>,
    /// The W3C `traceparent` headers received, by function, the last few of each.
    traceparents: HashMap<String, Vec<String>>,
    /// Requests with `sok` (the ones that act) that were carried out, by `func`.
    carried_out: HashMap<String, u64>,
    /// Every renewal carried out, oldest first: what was paid for, where the state
    /// alone (an expiry date) cannot tell one period from two.
    pub(crate) renewals: Vec<SandboxRenewal>,
    pub(crate) faults: Vec<Fault>,
    /// The filter set on the `soft` list (starts as configured; tests may change it).
    pub(crate) saved_filter: Option<SavedFilter>,
}

/// What the handler and the [`SandboxHandle`](super::SandboxHandle) share.
pub(crate) struct Shared {
    pub(crate) config: SandboxConfig,
    // A std mutex: every critical section is short and synchronous, never held across
    // an await, so an async mutex would only add overhead.
    state: Mutex<State>,
    /// Cancelled at shutdown, so that hanging `timeout` faults end.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn new(config: SandboxConfig) -> Self {
        let state = State {
            balance: config.balance_cents,
            records: BTreeMap::new(),
            next_id: config.first_id,
            sessions: HashMap::new(),
            trial_ips: HashSet::new(),
            clock_offset: time::Duration::ZERO,
            calls: HashMap::new(),
            traceparents: HashMap::new(),
            carried_out: HashMap::new(),
            renewals: Vec::new(),
            faults: config.faults.clone(),
            saved_filter: config.saved_filter,
        };
        Self {
            config,
            state: Mutex::new(state),
            shutdown: CancellationToken::new(),
        }
    }

    /// Locks the state. A panic while holding the lock leaves the data consistent
    /// enough for a simulator, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The sandbox's notion of now.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    pub(crate) fn advance_clock(&mut self, by: time::Duration) {
        self.clock_offset += by;
    }

    pub(crate) fn count_call(&mut self, func: &str) {
        *self.calls.entry(func.to_owned()).or_default() += 1;
    }

    /// Notes the `traceparent` a request for `func` came with (the last
    /// [`TRACEPARENTS_KEPT`] of each function are kept).
    pub(crate) fn note_traceparent(&mut self, func: &str, traceparent: &str) {
        let kept = self.traceparents.entry(func.to_owned()).or_default();
        if kept.len() == TRACEPARENTS_KEPT {
            kept.remove(0);
        }
        kept.push(traceparent.to_owned());
    }

    pub(crate) fn traceparents(&self, func: &str) -> Vec<String> {
        self.traceparents.get(func).cloned().unwrap_or_default()
    }

    pub(crate) fn call_count(&self, func: &str) -> u64 {
        self.calls.get(func).copied().unwrap_or(0)
    }

    pub(crate) fn count_carried_out(&mut self, func: &str) {
        *self.carried_out.entry(func.to_owned()).or_default() += 1;
    }

    pub(crate) fn carried_out(&self, func: &str) -> u64 {
        self.carried_out.get(func).copied().unwrap_or(0)
    }

    /// Opens a session and returns its id.
    pub(crate) fn open_session(&mut self) -> String {
        let sid = random_hex(24);
        let now = self.now();
        self.sessions.insert(sid.clone(), now);
        sid
    }

    /// Whether `sid` is a live session; a hit extends it.
    pub(crate) fn touch_session(&mut self, sid: &str, ttl: time::Duration) -> bool {
        let now = self.now();
        self.sessions.retain(|_, last| *last + ttl > now);
        match self.sessions.get_mut(sid) {
            Some(last) => {
                *last = now;
                true
            }
            None => false,
        }
    }

    pub(crate) fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The settled record `id`, or the not-found error.
    pub(crate) fn record(&mut self, cfg: &SandboxConfig, id: u64) -> Result<&mut Record, ApiError> {
        let now = self.now();
        let rec = self
            .records
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found(&cfg.not_found_error_type, &id.to_string()))?;
        rec.settle(now);
        Ok(rec)
    }

    /// The settled record `id`, refusing deleted licenses.
    pub(crate) fn live_record(
        &mut self,
        cfg: &SandboxConfig,
        id: u64,
    ) -> Result<&mut Record, ApiError> {
        let rec = self.record(cfg, id)?;
        if rec.lic.status == status::DELETED {
            return Err(ApiError::value(
                "elid",
                &id.to_string(),
                "The license is deleted",
            ));
        }
        Ok(rec)
    }

    /// Settles every record and returns them in id order.
    pub(crate) fn settled(&mut self) -> impl Iterator<Item = &Record> {
        let now = self.now();
        self.records.values_mut().for_each(|r| r.settle(now));
        self.records.values()
    }

    /// Debits `cents`, or refuses with the configured "not enough money" error.
    pub(crate) fn debit(&mut self, cfg: &SandboxConfig, cents: i64) -> Result<(), ApiError> {
        if cents > self.balance {
            return Err(ApiError::new(
                &cfg.no_money_error_type,
                "balance",
                "Not enough money on the balance",
            ));
        }
        self.balance -= cents;
        Ok(())
    }

    /// Stores a new license record and returns its id.
    pub(crate) fn insert(
        &mut self,
        new: NewSandboxLicense,
        activates_at: Option<OffsetDateTime>,
    ) -> u64 {
        let id = self.alloc_id();
        self.insert_at(id, new, activates_at)
    }

    /// Stores a new license record under an id obtained from [`alloc_id`](Self::alloc_id).
    pub(crate) fn insert_at(
        &mut self,
        id: u64,
        new: NewSandboxLicense,
        activates_at: Option<OffsetDateTime>,
    ) -> u64 {
        let now = self.now();
        let key = if new.status == status::ACTIVE || new.status == status::SUSPENDED {
            random_hex(32)
        } else {
            String::new()
        };
        let lic = SandboxLicense {
            id,
            ip: new.ip,
            licname: new.licname,
            remote_id: new.remote_id,
            tariff_id: new.tariff_id,
            period: new.period,
            status: new.status,
            license_key: key,
            create_time: now,
            expire_date: new
                .expire_date
                .unwrap_or_else(|| add_months(now.date(), new.period.max(1))),
            ip_change_date: None,
            key_change_date: None,
            real_ipchange: now.date(),
            real_keychange: now.date(),
            addons: new.addons,
            auto_prolong: new.auto_prolong,
        };
        let rec = Record {
            lic,
            activates_at,
            ip_moved_at: None,
            key_changed_at: None,
        };
        self.records.insert(id, rec);
        id
    }
}

/// Whether `ip` is the unspecified address (0.0.0.0 or ::), where parked licenses
/// wait: any number of licenses may sit there, and it is never a duplicate.
pub(crate) fn is_parking_ip(ip: &str) -> bool {
    ip.trim()
        .parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_unspecified())
}

/// `len` random lowercase hex digits.
pub(crate) fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// `date` plus `months`, clamping the day to the end of a shorter month
/// (31 Jan + 1 month = 28/29 Feb), as billing systems do.
pub(crate) fn add_months(date: Date, months: i32) -> Date {
    let zero_based = date.year() * 12 + (date.month() as i32 - 1) + months;
    let year = zero_based.div_euclid(12);
    let month = time::Month::try_from((zero_based.rem_euclid(12) + 1) as u8)
        .unwrap_or(time::Month::January);
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn add_months_clamps_to_the_end_of_the_month() {
        assert_eq!(add_months(date!(2025 - 01 - 31), 1), date!(2025 - 02 - 28));
        assert_eq!(add_months(date!(2024 - 01 - 31), 1), date!(2024 - 02 - 29));
        assert_eq!(add_months(date!(2025 - 12 - 15), 1), date!(2026 - 01 - 15));
        assert_eq!(add_months(date!(2025 - 03 - 10), 12), date!(2026 - 03 - 10));
    }

    #[test]
    fn processing_license_activates_lazily_once_its_time_has_come() {
        let shared = Shared::new(SandboxConfig::default());
        let mut st = shared.lock();
        let mut new = NewSandboxLicense::new("192.0.2.1", 55228);
        new.status = status::PROCESSING;
        let at = st.now() + time::Duration::seconds(10);
        let id = st.insert(new, Some(at));
        let cfg = SandboxConfig::default();

        let rec = st.record(&cfg, id).unwrap();
        assert_eq!((rec.lic.status, rec.lic.license_key.as_str()), (5, ""));

        st.advance_clock(time::Duration::seconds(11));
        let rec = st.record(&cfg, id).unwrap();
        assert_eq!(rec.lic.status, 2);
        assert_eq!(rec.lic.license_key.len(), 32);
    }
}
