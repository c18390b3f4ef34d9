//! Sessions of `func=auth`: a session ends `idle` after its last request (the shop's
//! own rule) and in any case `lifetime` after it was opened, so a stolen id is not
//! good forever however busy it is kept. Ended sessions are pruned as requests come
//! (every [`PRUNE_EVERY`] at most), and the table has a fixed capacity: when it is
//! full of live sessions, the least recently used one ends.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::ClientName;

use super::bounded::LruMap;

/// How often ended sessions are swept out (at most; sweeps ride on requests).
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

struct Session {
    client: ClientName,
    opened: Instant,
    last: Instant,
}

struct Table {
    sessions: LruMap<String, Session>,
    pruned: Instant,
}

/// The sessions of one process.
pub struct Sessions {
    idle: Duration,
    lifetime: Duration,
    table: Mutex<Table>,
}

impl Sessions {
    /// No sessions yet; at most `capacity` at once.
    pub fn new(idle: Duration, lifetime: Duration, capacity: usize) -> Self {
        Self {
            idle,
            lifetime,
            table: Mutex::new(Table {
                sessions: LruMap::new(capacity),
                pruned: Instant::now(),
            }),
        }
    }

    /// Opens a session of `client` at `now`; returns its id.
    pub fn open(&self, client: ClientName, now: Instant) -> String {
        let mut raw = [0u8; 16];
        rand::fill(&mut raw);
        let sid = hex::encode(raw);
        let mut table = self.table.lock().expect("not poisoned");
        self.prune_if_due(&mut table, now);
        table.sessions.insert(
            sid.clone(),
            Session {
                client,
                opened: now,
                last: now,
            },
        );
        crate::metrics::billmgr_sessions(table.sessions.len());
        sid
    }

    /// The client of the live session `sid`, which this request at `now` keeps alive.
    pub fn client(&self, sid: &str, now: Instant) -> Option<ClientName> {
        let mut table = self.table.lock().expect("not poisoned");
        self.prune_if_due(&mut table, now);
        let key = sid.to_owned();
        let live = table.sessions.get(&key).map(|s| self.live(s, now))?;
        if !live {
            table.sessions.remove(&key);
            crate::metrics::billmgr_sessions(table.sessions.len());
            return None;
        }
        let session = table.sessions.touch(&key)?;
        session.last = now;
        Some(session.client.clone())
    }

    /// Sessions held (ended ones not yet pruned included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.lock().expect("not poisoned").sessions.len()
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last) < self.idle
            && now.saturating_duration_since(s.opened) < self.lifetime
    }

    fn prune_if_due(&self, table: &mut Table, now: Instant) {
        if now.saturating_duration_since(table.pruned) < PRUNE_EVERY.min(self.idle) {
            return;
        }
        table.pruned = now;
        table.sessions.retain(|s| self.live(s, now));
        crate::metrics::billmgr_sessions(table.sessions.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientName {
        ClientName::new("shop")
    }

    const IDLE: Duration = Duration::from_secs(3600);
    const LIFETIME: Duration = Duration::from_secs(8 * 3600);

    #[test]
    fn a_session_used_within_the_idle_time_stays_alive_until_its_lifetime() {
        let s = Sessions::new(IDLE, LIFETIME, 100);
        let t0 = Instant::now();
        let sid = s.open(client(), t0);
        let mut t = t0;
        while t + Duration::from_secs(1800) < t0 + LIFETIME {
            t += Duration::from_secs(1800);
            assert_eq!(s.client(&sid, t), Some(client()), "at {:?}", t - t0);
        }
        assert_eq!(s.client(&sid, t0 + LIFETIME), None, "past its lifetime");
        assert_eq!(s.client(&sid, t0 + Duration::from_secs(1)), None, "gone");
    }

    #[test]
    fn a_session_ends_when_idle_and_unknown_ids_are_refused() {
        let s = Sessions::new(IDLE, LIFETIME, 100);
        let t0 = Instant::now();
        let sid = s.open(client(), t0);
        assert_eq!(s.client("nope", t0), None);
        assert_eq!(s.client(&sid, t0 + IDLE), None);
    }

    #[test]
    fn ended_sessions_are_pruned_without_being_asked_for() {
        let s = Sessions::new(IDLE, LIFETIME, 100);
        let t0 = Instant::now();
        for _ in 0..50 {
            s.open(client(), t0);
        }
        assert_eq!(s.len(), 50);
        // A request after they all ended sweeps them out.
        let later = t0 + IDLE + PRUNE_EVERY;
        let fresh = s.open(client(), later);
        assert_eq!(s.len(), 1);
        assert_eq!(s.client(&fresh, later), Some(client()));
    }

    #[test]
    fn a_full_table_ends_the_least_recently_used_session() {
        let s = Sessions::new(IDLE, LIFETIME, 2);
        let t0 = Instant::now();
        let first = s.open(client(), t0);
        let second = s.open(client(), t0);
        assert!(s.client(&first, t0).is_some());
        let third = s.open(client(), t0);
        assert_eq!(s.len(), 2);
        assert!(s.client(&second, t0).is_none());
        assert!(s.client(&first, t0).is_some() && s.client(&third, t0).is_some());
    }
}
