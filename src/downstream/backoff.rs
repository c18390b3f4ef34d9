//! The back-off against password guessing on `/billmgr`, kept per (user name, client
//! network): after [`FREE_FAILURES`] failed log-ins of one name from one network, each
//! further log-in of that name from there waits (1 s, doubling, at most
//! [`MAX_BACKOFF`]) and is refused unchecked until then.
//!
//! Per pair, not per name or per address, so that a guesser locks out only itself: the
//! same name from another address (the shop itself, while someone guesses its password
//! elsewhere) and other names from the same address (everyone behind one proxy) still
//! log in with the right password. The network is the IPv4 address or the IPv6 /64, as
//! one IPv6 client holds a whole /64.
//!
//! Entries are keyed by a keyed hash of the pair, so each is a few dozen bytes whatever
//! the name's length and none holds a name, in a map of fixed capacity
//! ([`LruMap`](super::bounded::LruMap)): a flood of names or addresses evicts the
//! oldest counts and never grows memory. An entry quiet for [`MAX_BACKOFF`] is
//! forgotten.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::bounded::LruMap;

/// Failed log-ins of one name from one network before each further one must wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between failed log-ins; a pair with no failure for this long
/// starts afresh.
pub const MAX_BACKOFF: Duration = Duration::from_secs(900);

/// The key of one (user name, network) pair.
pub type PairKey = [u8; 32];

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    fn wait(&self) -> Duration {
        match self.count.checked_sub(FREE_FAILURES) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(10)).min(MAX_BACKOFF),
        }
    }

    fn forgotten(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= MAX_BACKOFF
    }
}

/// Failure counts of one process.
pub struct Backoff {
    /// Keys the pair hashes, so that the table names nobody.
    secret: [u8; 32],
    table: Mutex<LruMap<PairKey, Failures>>,
}

impl Backoff {
    /// An empty table of at most `capacity` pairs.
    pub fn new(capacity: usize) -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Self {
            secret,
            table: Mutex::new(LruMap::new(capacity)),
        }
    }

    /// The key of `user` logging in from `remote`.
    pub fn key(&self, user: &str, remote: Option<IpAddr>) -> PairKey {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update((user.len() as u64).to_le_bytes());
        hasher.update(user.as_bytes());
        match remote.map(network) {
            Some(IpAddr::V4(v4)) => hasher.update(v4.octets()),
            Some(IpAddr::V6(v6)) => hasher.update(v6.octets()),
            None => {}
        }
        hasher.finalize().into()
    }

    /// Whether the pair must still wait before a log-in is checked.
    pub fn waiting(&self, key: &PairKey, now: Instant) -> bool {
        let table = self.table.lock().expect("not poisoned");
        table.get(key).is_some_and(|f| {
            let wait = f.wait();
            !wait.is_zero() && now.saturating_duration_since(f.last) < wait
        })
    }

    /// Counts a failed log-in of the pair.
    pub fn failed(&self, key: PairKey, now: Instant) {
        let mut table = self.table.lock().expect("not poisoned");
        match table.touch(&key) {
            Some(f) if !f.forgotten(now) => {
                f.count = f.count.saturating_add(1);
                f.last = now;
            }
            _ => table.insert(
                key,
                Failures {
                    count: 1,
                    last: now,
                },
            ),
        }
        crate::metrics::billmgr_backoff_entries(table.len());
    }

    /// Clears the pair's failures after a successful log-in.
    pub fn succeeded(&self, key: &PairKey) {
        let mut table = self.table.lock().expect("not poisoned");
        if table.remove(key).is_some() {
            crate::metrics::billmgr_backoff_entries(table.len());
        }
    }

    /// Pairs held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.lock().expect("not poisoned").len()
    }
}

/// The network a client address stands for: an IPv4 address (also when it comes
/// IPv4-mapped), else the IPv6 /64.
fn network(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_wait_doubles_up_to_the_cap() {
        let f = |count| Failures {
            count,
            last: Instant::now(),
        };
        assert_eq!(f(FREE_FAILURES - 1).wait(), Duration::ZERO);
        assert_eq!(f(FREE_FAILURES).wait(), Duration::from_secs(1));
        assert_eq!(f(FREE_FAILURES + 3).wait(), Duration::from_secs(8));
        assert_eq!(f(FREE_FAILURES + 40).wait(), MAX_BACKOFF);
    }

    #[test]
    fn failures_of_one_pair_make_only_that_pair_wait() {
        let b = Backoff::new(100);
        let now = Instant::now();
        let attacked = b.key("reseller", addr("198.51.100.7"));
        for _ in 0..FREE_FAILURES {
            assert!(!b.waiting(&attacked, now));
            b.failed(attacked, now);
        }
        assert!(b.waiting(&attacked, now));
        assert!(!b.waiting(&b.key("reseller", addr("203.0.113.9")), now));
        assert!(!b.waiting(&b.key("other", addr("198.51.100.7")), now));
        // The wait passes; a success clears the count.
        assert!(!b.waiting(&attacked, now + Duration::from_secs(1)));
        b.succeeded(&attacked);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn a_pair_quiet_for_the_longest_wait_starts_afresh() {
        let b = Backoff::new(100);
        let then = Instant::now();
        let key = b.key("reseller", addr("198.51.100.7"));
        for _ in 0..FREE_FAILURES + 6 {
            b.failed(key, then);
        }
        let later = then + MAX_BACKOFF;
        b.failed(key, later);
        assert!(!b.waiting(&key, later), "one fresh failure waits nothing");
    }

    #[test]
    fn one_ipv6_network_is_one_client_and_mapped_ipv4_is_ipv4() {
        let b = Backoff::new(100);
        assert_eq!(
            b.key("u", addr("2001:db8:1:2::1")),
            b.key("u", addr("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            b.key("u", addr("2001:db8:1:2::1")),
            b.key("u", addr("2001:db8:1:3::1"))
        );
        assert_eq!(
            b.key("u", addr("::ffff:192.0.2.1")),
            b.key("u", addr("192.0.2.1"))
        );
    }

    #[test]
    fn a_flood_of_pairs_keeps_the_table_at_its_capacity() {
        let b = Backoff::new(64);
        let now = Instant::now();
        for n in 0..5_000u32 {
            let name = format!("guess-{n}-{}", "x".repeat(200));
            b.failed(b.key(&name, addr("198.51.100.7")), now);
        }
        assert_eq!(b.len(), 64);
    }
}
