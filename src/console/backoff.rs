//! The back-off of the console's token log-in, per client address. A wrong token
//! costs nothing to try, so after [`FREE_FAILURES`] wrong tokens from one address each
//! further attempt from it must wait, the wait doubling up to [`MAX_BACKOFF`]; until
//! then its attempts are refused unchecked, even with the right token (checking it
//! would tell a guesser when it guessed right). Other addresses are never slowed by
//! it, and a log-in with the right token ends its address's back-off.
//!
//! The table is in memory and bounded ([`MAX_ADDRESSES`]): an address's failures are
//! forgotten [`MAX_BACKOFF`] after its last one, and when the table is full of recent
//! ones the address whose last failure is oldest makes room. IPv6 addresses count per
//! /64, the block one host usually holds, so a guesser cannot take a fresh address for
//! every attempt. Each replica keeps its own table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens from one address before each further attempt must wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts from one address.
pub const MAX_BACKOFF: Duration = Duration::from_secs(900);
/// Addresses kept at most.
pub const MAX_ADDRESSES: usize = 10_000;

/// Failed log-ins of one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long after the last failure the next attempt must wait.
    fn wait(&self) -> Duration {
        match self.count.checked_sub(FREE_FAILURES) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(10)).min(MAX_BACKOFF),
        }
    }
}

/// The failures of each client address, in this process.
#[derive(Debug, Default)]
pub struct LoginBackoff {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Where an attempt came from, as the table counts it: an IPv6 address by its /64,
/// an IPv4 address in IPv6 as itself; no address at all (not served over a socket)
/// as one shared source.
fn source(from: Option<IpAddr>) -> IpAddr {
    match from.map(|a| a.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let mask = !0u128 << 64;
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl LoginBackoff {
    /// How long attempts from `from` must still wait at `now`; `None` when one may
    /// be checked now.
    pub fn wait(&self, from: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("not poisoned");
        let f = failures.get(&source(from))?;
        let until = f.last + f.wait();
        (until > now).then(|| until - now)
    }

    /// Counts a wrong token from `from` at `now`.
    pub fn failed(&self, from: Option<IpAddr>, now: Instant) {
        let key = source(from);
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&key) {
            make_room(&mut failures, now);
        }
        let f = failures.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        // Failures long past are forgotten: a typo next week starts afresh.
        if now.saturating_duration_since(f.last) >= MAX_BACKOFF {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// A log-in from `from` with the right token: its failures are forgotten.
    pub fn succeeded(&self, from: Option<IpAddr>) {
        self.failures
            .lock()
            .expect("not poisoned")
            .remove(&source(from));
    }

    /// How many addresses the table holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.lock().expect("not poisoned").len()
    }
}

/// Drops the failures that are forgotten by `now`; when none are, the address whose
/// last failure is oldest.
fn make_room(failures: &mut HashMap<IpAddr, Failures>, now: Instant) {
    failures.retain(|_, f| now.saturating_duration_since(f.last) < MAX_BACKOFF);
    if failures.len() >= MAX_ADDRESSES
        && let Some(oldest) = failures.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
    {
        failures.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_waits_after_its_free_failures_and_others_do_not() {
        let backoff = LoginBackoff::default();
        let t0 = Instant::now();
        let guesser = addr("198.51.100.7");
        for _ in 0..FREE_FAILURES - 1 {
            backoff.failed(guesser, t0);
        }
        assert_eq!(backoff.wait(guesser, t0), None, "still free");
        backoff.failed(guesser, t0);
        assert_eq!(backoff.wait(guesser, t0), Some(Duration::from_secs(1)));
        assert_eq!(backoff.wait(addr("198.51.100.8"), t0), None);
        assert_eq!(
            backoff.wait(guesser, t0 + Duration::from_secs(1)),
            None,
            "the wait is over"
        );
        backoff.failed(guesser, t0 + Duration::from_secs(1));
        assert_eq!(
            backoff.wait(guesser, t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(2)),
            "doubled"
        );
        backoff.succeeded(guesser);
        assert_eq!(backoff.wait(guesser, t0 + Duration::from_secs(1)), None);
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
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_itself() {
        let backoff = LoginBackoff::default();
        let t0 = Instant::now();
        for n in 0..FREE_FAILURES {
            backoff.failed(addr(&format!("2001:db8:1:2::{n}")), t0);
            backoff.failed(addr("::ffff:192.0.2.1"), t0);
        }
        assert!(backoff.wait(addr("2001:db8:1:2::ffff"), t0).is_some());
        assert!(backoff.wait(addr("2001:db8:1:3::1"), t0).is_none());
        assert!(backoff.wait(addr("192.0.2.1"), t0).is_some());
    }

    #[test]
    fn failures_long_past_are_forgotten() {
        let backoff = LoginBackoff::default();
        let t0 = Instant::now();
        let from = addr("203.0.113.5");
        for _ in 0..FREE_FAILURES + 4 {
            backoff.failed(from, t0);
        }
        let later = t0 + MAX_BACKOFF;
        backoff.failed(from, later);
        assert_eq!(backoff.wait(from, later), None, "one failure, afresh");
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_latest_guessers() {
        let backoff = LoginBackoff::default();
        let t0 = Instant::now();
        let guesser = addr("203.0.113.9");
        for _ in 0..FREE_FAILURES {
            backoff.failed(guesser, t0 + Duration::from_secs(5));
        }
        for n in 0..MAX_ADDRESSES as u32 + 50 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            backoff.failed(Some(a), t0 + Duration::from_secs(u64::from(n % 3)));
        }
        assert!(backoff.len() <= MAX_ADDRESSES);
        assert!(
            backoff.wait(guesser, t0 + Duration::from_secs(5)).is_some(),
            "the oldest entries made room, not the latest"
        );
    }
}
