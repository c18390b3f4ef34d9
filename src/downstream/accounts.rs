//! Log-ins on the downstream API: `authinfo=user:password` on each call, or
//! `func=auth` once and `auth=SID` after. Passwords are argon2id hashes in the clients
//! file; verifying one costs tens of milliseconds of CPU, so it runs on a blocking
//! thread, concurrent checks of the same credentials share one verification, and a
//! success is remembered for [`VERIFIED_TTL`] under a keyed hash of user and password
//! (never the password itself). Failures are counted per user and per address; after
//! [`FREE_FAILURES`] the next attempt must wait, doubling up to [`MAX_BACKOFF`], and is
//! refused unchecked until then.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::auth::{Authenticator, verify_password};
use crate::domain::ClientName;

/// A session ends this long after its last request (the shop's own rule).
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// How long a verified `user:password` is taken without verifying it again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Failed log-ins (per user and per address) before each further one must wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between failed log-ins.
pub const MAX_BACKOFF: Duration = Duration::from_secs(900);
/// Entries kept in each table before old ones are dropped.
const MAX_ENTRIES: usize = 10_000;

type Verification = Arc<OnceCell<Option<ClientName>>>;

struct Verified {
    cell: Verification,
    at: Instant,
}

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
}

/// Sessions, verified credentials and failure counts of one process.
pub struct Accounts {
    auth: Arc<Authenticator>,
    /// Keys the credential hashes, so the cache holds nothing that a dump could test
    /// passwords against offline.
    secret: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    sessions: Mutex<HashMap<String, (ClientName, Instant)>>,
    failures: Mutex<HashMap<String, Failures>>,
}

/// Why a log-in was refused; the answer is the same `auth`/`badpassword` error
/// either way, so a guesser learns nothing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong user, password or session.
    BadCredentials,
    /// Too many failures from this user or address; not checked.
    BackingOff,
}

impl Accounts {
    /// Log-ins against the accounts of `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Self {
            auth,
            secret,
            verified: Mutex::default(),
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// The client of `user:password`, from `remote`.
    pub async fn log_in(
        &self,
        user: &str,
        password: &str,
        remote: Option<IpAddr>,
    ) -> Result<ClientName, Refused> {
        let keys = [
            format!("user:{user}"),
            remote.map_or_else(String::new, |a| format!("addr:{a}")),
        ];
        if self.backing_off(&keys) {
            tracing::info!(user, "downstream log-in refused unchecked: backing off");
            return Err(Refused::BackingOff);
        }
        match self.verify(user, password).await {
            Some(client) => {
                let mut failures = self.failures.lock().expect("not poisoned");
                for key in &keys {
                    failures.remove(key);
                }
                Ok(client)
            }
            None => {
                self.count_failure(&keys);
                tracing::info!(user, "downstream log-in refused: bad credentials");
                Err(Refused::BadCredentials)
            }
        }
    }

    /// Opens a session for `client`; returns its id.
    pub fn open_session(&self, client: ClientName) -> String {
        let mut raw = [0u8; 12];
        rand::fill(&mut raw);
        let sid = hex::encode(raw);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("not poisoned");
        if sessions.len() >= MAX_ENTRIES {
            sessions.retain(|_, (_, last)| now.duration_since(*last) < SESSION_TTL);
        }
        sessions.insert(sid.clone(), (client, now));
        sid
    }

    /// The client of a live session, which this request keeps alive.
    pub fn session(&self, sid: &str) -> Option<ClientName> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("not poisoned");
        match sessions.get_mut(sid) {
            Some((client, last)) if now.duration_since(*last) < SESSION_TTL => {
                *last = now;
                Some(client.clone())
            }
            Some(_) => {
                sessions.remove(sid);
                None
            }
            None => None,
        }
    }

    fn backing_off(&self, keys: &[String]) -> bool {
        let failures = self.failures.lock().expect("not poisoned");
        keys.iter().filter_map(|k| failures.get(k)).any(|f| {
            let wait = f.wait();
            !wait.is_zero() && f.last.elapsed() < wait
        })
    }

    fn count_failure(&self, keys: &[String]) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, f| now.duration_since(f.last) < MAX_BACKOFF);
        }
        for key in keys.iter().filter(|k| !k.is_empty()) {
            let f = failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            f.count += 1;
            f.last = now;
        }
    }

    /// The client whose password `password` is, verified once for all concurrent
    /// callers and remembered for [`VERIFIED_TTL`] when right.
    async fn verify(&self, user: &str, password: &str) -> Option<ClientName> {
        let key = self.credential_key(user, password);
        let cell = {
            let now = Instant::now();
            let mut verified = self.verified.lock().expect("not poisoned");
            if verified.len() >= MAX_ENTRIES {
                verified.retain(|_, v| now.duration_since(v.at) < VERIFIED_TTL);
            }
            let entry = verified.entry(key).or_insert_with(|| Verified {
                cell: Verification::default(),
                at: now,
            });
            if now.duration_since(entry.at) >= VERIFIED_TTL {
                *entry = Verified {
                    cell: Verification::default(),
                    at: now,
                };
            }
            entry.cell.clone()
        };
        let account = self.auth.billmgr_account(user);
        let password = password.to_owned();
        let result = cell
            .get_or_init(|| async move {
                // An unknown user costs as much as a known one, so the time of the
                // answer does not tell which user names exist.
                let (client, hash) = match account {
                    Some((client, hash)) => (Some(client), hash),
                    None => (None, decoy_hash().to_owned()),
                };
                let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
                    .await
                    .unwrap_or(false);
                client.filter(|_| ok)
            })
            .await
            .clone();
        if result.is_none() {
            // Failures are not remembered: each one is counted for the back-off.
            let mut verified = self.verified.lock().expect("not poisoned");
            if verified
                .get(&key)
                .is_some_and(|v| Arc::ptr_eq(&v.cell, &cell))
            {
                verified.remove(&key);
            }
        }
        result
    }

    fn credential_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update((user.len() as u64).to_le_bytes());
        hasher.update(user.as_bytes());
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }
}

/// A hash no password is checked against successfully in practice, verified for
/// unknown user names.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut raw = [0u8; 24];
        rand::fill(&mut raw);
        crate::auth::hash_password(&hex::encode(raw))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Clients, hash_password, token_sha256_hex};

    fn accounts() -> Accounts {
        let text = format!(
            "[[client]]\nname = \"shop\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.write\"]\n\
             billmgr_user = \"reseller\"\nbillmgr_password_hash = \"{}\"\n",
            token_sha256_hex("t"),
            hash_password("right"),
        );
        let auth = Authenticator::new(&Clients::from_toml(&text).unwrap());
        Accounts::new(Arc::new(auth))
    }

    #[tokio::test]
    async fn the_right_password_logs_in_and_a_session_stays_alive() {
        let a = accounts();
        let client = a.log_in("reseller", "right", None).await.unwrap();
        assert_eq!(client.as_str(), "shop");
        let sid = a.open_session(client);
        assert_eq!(
            a.session(&sid).map(|c| c.as_str().to_owned()),
            Some("shop".into())
        );
        assert_eq!(a.session("nope"), None);
    }

    #[tokio::test]
    async fn repeated_failures_back_off_even_for_the_right_password() {
        let a = accounts();
        let from: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                a.log_in("reseller", "wrong", from).await,
                Err(Refused::BadCredentials)
            );
        }
        assert_eq!(
            a.log_in("reseller", "right", from).await,
            Err(Refused::BackingOff)
        );
        assert_eq!(
            a.log_in("someone", "x", from).await,
            Err(Refused::BackingOff),
            "the address backs off for every user"
        );
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
}
