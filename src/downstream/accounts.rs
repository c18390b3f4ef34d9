//! Log-ins on the downstream API: `authinfo=user:password` on each call, or
//! `func=auth` once and `auth=SID` after ([`Sessions`]). Passwords are argon2id hashes
//! in the clients file; verifying one costs tens of milliseconds of CPU and 19 MiB, so
//! it runs on a blocking thread, one per CPU at a time, concurrent checks
//! of the same credentials share one verification, and a success is remembered for
//! [`VERIFIED_TTL`] under a keyed hash of user and password (never the password
//! itself). Failures are counted per user name and client network ([`Backoff`]).
//!
//! A user name or password longer than any account can have is refused before
//! anything is hashed, counted or stored, and names are logged cut and escaped
//! ([`super::loggable`]): a request cannot make the log or the tables grow with what
//! it sends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::auth::{Authenticator, MAX_BILLMGR_USER_BYTES, verify_password};
use crate::domain::ClientName;

use super::DownstreamConfig;
use super::backoff::Backoff;
use super::loggable::loggable;
use super::sessions::Sessions;

/// How long a verified `user:password` is taken without verifying it again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// The longest password checked; a longer one is refused unchecked.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Verifications running at once, so that a flood of log-ins holds a bounded amount
/// of memory (19 MiB each) and leaves CPU to the rest of the service.
fn max_verifying() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
/// Entries of the verified-credentials cache before old ones are dropped.
const MAX_VERIFIED: usize = 10_000;

type Verification = Arc<OnceCell<Option<ClientName>>>;

struct Verified {
    cell: Verification,
    at: Instant,
}

/// Sessions, verified credentials and failure counts of one process.
pub struct Accounts {
    auth: Arc<Authenticator>,
    /// Keys the credential hashes, so the cache holds nothing that a dump could test
    /// passwords against offline.
    secret: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    verifying: Arc<Semaphore>,
    sessions: Sessions,
    backoff: Backoff,
}

/// Why a log-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong user, password or session; answered with the same `auth`/`badpassword`
    /// error as a back-off, so a guesser learns nothing from it.
    BadCredentials,
    /// Too many failures of this user name from this network; not checked.
    BackingOff,
    /// A user name longer than [`MAX_BILLMGR_USER_BYTES`] or a password longer than
    /// [`MAX_PASSWORD_BYTES`]: no account has one, so nothing was checked or counted.
    TooLong(&'static str),
}

impl Accounts {
    /// Log-ins against the accounts of `auth`, bounded by `config`.
    pub fn new(auth: Arc<Authenticator>, config: &DownstreamConfig) -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Self {
            auth,
            secret,
            verified: Mutex::default(),
            verifying: Arc::new(Semaphore::new(max_verifying())),
            sessions: Sessions::new(
                config.session_idle,
                config.session_lifetime,
                config.max_sessions,
            ),
            backoff: Backoff::new(config.backoff_entries),
        }
    }

    /// The client of `user:password`, from `remote`.
    pub async fn log_in(
        &self,
        user: &str,
        password: &str,
        remote: Option<IpAddr>,
    ) -> Result<ClientName, Refused> {
        if user.len() > MAX_BILLMGR_USER_BYTES {
            tracing::info!(
                user = %loggable(user),
                user.bytes = user.len(),
                "downstream log-in refused unchecked: user name too long"
            );
            return Err(Refused::TooLong("username"));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            tracing::info!(user = %loggable(user), "downstream log-in refused unchecked: password too long");
            return Err(Refused::TooLong("password"));
        }
        let pair = self.backoff.key(user, remote);
        if self.backoff.waiting(&pair, Instant::now()) {
            tracing::info!(user = %loggable(user), "downstream log-in refused unchecked: backing off");
            return Err(Refused::BackingOff);
        }
        match self.verify(user, password).await {
            Some(client) => {
                self.backoff.succeeded(&pair);
                Ok(client)
            }
            None => {
                self.backoff.failed(pair, Instant::now());
                tracing::info!(user = %loggable(user), "downstream log-in refused: bad credentials");
                Err(Refused::BadCredentials)
            }
        }
    }

    /// Opens a session for `client`; returns its id.
    pub fn open_session(&self, client: ClientName) -> String {
        self.sessions.open(client, Instant::now())
    }

    /// The client of a live session, which this request keeps alive.
    pub fn session(&self, sid: &str) -> Option<ClientName> {
        self.sessions.client(sid, Instant::now())
    }

    /// The client whose password `password` is, verified once for all concurrent
    /// callers and remembered for [`VERIFIED_TTL`] when right.
    async fn verify(&self, user: &str, password: &str) -> Option<ClientName> {
        let key = self.credential_key(user, password);
        let cell = {
            let now = Instant::now();
            let mut verified = self.verified.lock().expect("not poisoned");
            if verified.len() >= MAX_VERIFIED {
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
        let verifying = self.verifying.clone();
        let result = cell
            .get_or_init(|| async move {
                // An unknown user costs as much as a known one, so the time of the
                // answer does not tell which user names exist.
                let (client, hash) = match account {
                    Some((client, hash)) => (Some(client), hash),
                    None => (None, decoy_hash().to_owned()),
                };
                let _slot = verifying.acquire_owned().await.expect("never closed");
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
    use super::super::backoff::FREE_FAILURES;
    use super::*;
    use crate::auth::{Clients, hash_password, token_sha256_hex};

    fn accounts() -> Accounts {
        let entry = |name: &str, user: &str| {
            format!(
                "[[client]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\n\
                 scopes = [\"licenses.write\"]\n\
                 billmgr_user = \"{user}\"\nbillmgr_password_hash = \"{}\"\n",
                token_sha256_hex(name),
                hash_password("right"),
            )
        };
        let text = entry("shop", "reseller") + &entry("other", "neighbour");
        let auth = Authenticator::new(&Clients::from_toml(&text).unwrap());
        Accounts::new(Arc::new(auth), &DownstreamConfig::default())
    }

    fn addr(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
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
    async fn repeated_failures_back_off_only_that_user_from_that_address() {
        let a = accounts();
        let attacker = addr("198.51.100.7");
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                a.log_in("reseller", "wrong", attacker).await,
                Err(Refused::BadCredentials)
            );
        }
        assert_eq!(
            a.log_in("reseller", "right", attacker).await,
            Err(Refused::BackingOff),
            "the attacked pair waits, even with the right password"
        );
        assert_eq!(
            a.log_in("neighbour", "right", attacker)
                .await
                .map(|c| c.as_str().to_owned()),
            Ok("other".into()),
            "another user from the same address logs in"
        );
        assert_eq!(
            a.log_in("reseller", "right", addr("203.0.113.9"))
                .await
                .map(|c| c.as_str().to_owned()),
            Ok("shop".into()),
            "the attacked user logs in from elsewhere"
        );
    }

    #[tokio::test]
    async fn overlong_names_and_passwords_are_refused_unchecked_and_uncounted() {
        let a = accounts();
        let from = addr("198.51.100.7");
        let long = "r".repeat(MAX_BILLMGR_USER_BYTES + 1);
        for _ in 0..3 * FREE_FAILURES {
            assert_eq!(
                a.log_in(&long, "x", from).await,
                Err(Refused::TooLong("username"))
            );
        }
        let password = "p".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            a.log_in("reseller", &password, from).await,
            Err(Refused::TooLong("password"))
        );
        assert_eq!(a.backoff.len(), 0, "nothing counted");
        assert!(a.log_in("reseller", "right", from).await.is_ok());
    }
}
