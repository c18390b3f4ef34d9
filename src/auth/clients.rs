//! The clients file (`--clients-file`): who may call, with which scopes and limits.
//! Only SHA-256 hashes of the tokens are read; the tokens themselves never reach this
//! process except inside a request's `Authorization` header.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::ClientName;

/// The token `serve --sandbox` accepts when no clients file is given.
pub const SANDBOX_TOKEN: &str = "sandbox-token";

/// The `/billmgr` user name of the sandbox client; its password is [`SANDBOX_TOKEN`].
pub const SANDBOX_BILLMGR_USER: &str = "sandbox";

/// The argon2id hash (default cost) of [`SANDBOX_TOKEN`], the sandbox account's
/// `/billmgr` password, made once with `license-facade hash-password`. Hashing it at
/// every start cost 19 MiB of memory that the allocator kept (the idle footprint) and
/// tens of milliseconds per start; the password is public, so a fixed salt hides
/// nothing.
const SANDBOX_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$2UW8ZRZtglwX0Dn9yaIABA$F9Muw65YWaY/6NruuDah75A5yMjtPLzdR5ywozIJg7U";

/// The requests per second a client may make when its entry does not say
/// (`max_requests_per_second`); bursts of twice that are allowed.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 100;

/// A permission a client holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `licenses.read`: read licenses, panels, quotes and the change feed.
    Read,
    /// `licenses.write`: order and change licenses.
    Write,
    /// `admin`: everything, on every client's licenses, plus drift, reconciliation,
    /// adoption and the audit log.
    Admin,
}

impl Scope {
    /// The name used in the clients file and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "licenses.read",
            Self::Write => "licenses.write",
            Self::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Read, Self::Write, Self::Admin]
            .into_iter()
            .find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::domain::{DEFAULT_MAX_PREPAID_MONTHS, OrderCaps};

/// One client as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// Its name; licenses and request ids are scoped by it.
    pub name: ClientName,
    /// SHA-256 of its bearer token; `None` for a client known only by its TLS
    /// certificate.
    pub token_sha256: Option<[u8; 32]>,
    /// The TLS client certificates that identify it, as an alternative to a token.
    pub cert: CertIdentity,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The spend guard.
    pub caps: OrderCaps,
    /// Requests per second allowed (bursts of twice that); `None` is unlimited.
    pub requests_per_second: Option<u32>,
    /// Its account on the downstream BILLmanager API (`/billmgr`), if it has one.
    pub billmgr: Option<BillmgrAccount>,
}

/// Which verified TLS client certificates identify a client (`cert_subject`,
/// `cert_san` in the clients file): the subject's common name, or one subject
/// alternative name (a DNS name or a URI). Empty matches no certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject common name (CN), exactly.
    pub subject: Option<String>,
    /// A DNS or URI subject alternative name, exactly.
    pub san: Option<String>,
}

impl CertIdentity {
    /// Whether a certificate with these names is this identity.
    pub fn matches(&self, common_name: Option<&str>, sans: &[String]) -> bool {
        let subject = self
            .subject
            .as_deref()
            .is_some_and(|s| common_name == Some(s));
        let san = self
            .san
            .as_deref()
            .is_some_and(|wanted| sans.iter().any(|s| s == wanted));
        subject || san
    }

    fn is_empty(&self) -> bool {
        self.subject.is_none() && self.san.is_none()
    }
}

/// The longest `billmgr_user`, in bytes: a log-in naming a longer one is refused
/// before anything is hashed or counted.
pub const MAX_BILLMGR_USER_BYTES: usize = 256;

/// A client's log-in on the downstream BILLmanager API: the user name its
/// `authinfo=user:password` or `func=auth` names, and the argon2id hash of the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BillmgrAccount {
    /// The user name.
    pub user: String,
    /// The password's argon2id hash (PHC string).
    pub password_hash: String,
}

impl fmt::Debug for BillmgrAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillmgrAccount")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

// The hash is not a secret, but nothing gains from printing it either.
impl fmt::Debug for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpec")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("cert", &self.cert)
            .field("caps", &self.caps)
            .field("requests_per_second", &self.requests_per_second)
            .field("billmgr", &self.billmgr)
            .finish_non_exhaustive()
    }
}

/// The configured clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clients {
    /// Every client.
    pub clients: Vec<ClientSpec>,
    /// Whether this is the built-in sandbox client (no clients file with `--sandbox`).
    pub sandbox: bool,
}

/// `[[client]]` in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    name: String,
    token_sha256: Option<String>,
    /// Subject common name of the TLS client certificate that identifies the client.
    cert_subject: Option<String>,
    /// A DNS or URI subject alternative name of that certificate.
    cert_san: Option<String>,
    scopes: Vec<String>,
    max_orders_per_hour: Option<u32>,
    max_orders_per_day: Option<u32>,
    max_prepaid_months: Option<u32>,
    max_spend_per_day: Option<f64>,
    max_requests_per_second: Option<u32>,
    billmgr_user: Option<String>,
    billmgr_password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default)]
    client: Vec<ClientEntry>,
}

/// The SHA-256 of a token, as the clients file holds it (lowercase hex).
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Clients {
    /// Reads and validates a clients file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the clients file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("invalid clients file {}", path.display()))
    }

    /// Parses and validates the text of a clients file.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let file: ClientsFile = toml::from_str(text)?;
        if file.client.is_empty() {
            bail!("no [[client]] entries: nobody could call the service");
        }
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut cert_names = HashSet::new();
        let mut users = HashSet::new();
        let clients = file
            .client
            .into_iter()
            .map(|entry| {
                let spec = entry_to_spec(entry)?;
                if !names.insert(spec.name.as_str().to_owned()) {
                    bail!("client {:?} is listed twice", spec.name.as_str());
                }
                if let Some(hash) = spec.token_sha256
                    && !hashes.insert(hash)
                {
                    bail!(
                        "client {:?} has the same token as another client",
                        spec.name.as_str()
                    );
                }
                // A certificate names one client; two entries naming the same subject
                // or alternative name would make it ambiguous.
                let names = [
                    spec.cert
                        .subject
                        .as_ref()
                        .map(|s| ("cert_subject", s.clone())),
                    spec.cert.san.as_ref().map(|s| ("cert_san", s.clone())),
                ];
                for (key, value) in names.into_iter().flatten() {
                    if !cert_names.insert(value) {
                        bail!(
                            "client {:?} has the same {key} as another client's certificate \
                             identity",
                            spec.name.as_str()
                        );
                    }
                }
                if let Some(account) = &spec.billmgr
                    && !users.insert(account.user.clone())
                {
                    bail!(
                        "client {:?} has the same billmgr_user as another client",
                        spec.name.as_str()
                    );
                }
                Ok(spec)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            clients,
            sandbox: false,
        })
    }

    /// The one client of `serve --sandbox` without a clients file: token
    /// [`SANDBOX_TOKEN`], every scope, no caps, no rate limit; on `/billmgr` the user
    /// [`SANDBOX_BILLMGR_USER`] with the token as its password.
    pub fn sandbox() -> Self {
        let mut token_sha256 = [0; 32];
        token_sha256.copy_from_slice(&Sha256::digest(SANDBOX_TOKEN.as_bytes()));
        Self {
            clients: vec![ClientSpec {
                name: ClientName::new("sandbox"),
                token_sha256: Some(token_sha256),
                cert: CertIdentity::default(),
                scopes: vec![Scope::Read, Scope::Write, Scope::Admin],
                caps: OrderCaps::default(),
                requests_per_second: None,
                billmgr: Some(BillmgrAccount {
                    user: SANDBOX_BILLMGR_USER.to_owned(),
                    password_hash: SANDBOX_PASSWORD_HASH.to_owned(),
                }),
            }],
            sandbox: true,
        }
    }
}

fn entry_to_spec(entry: ClientEntry) -> anyhow::Result<ClientSpec> {
    let name = entry.name.trim();
    if name.is_empty() || name != entry.name || name.chars().any(char::is_control) {
        bail!(
            "client name {:?} must be non-empty printable text",
            entry.name
        );
    }
    let token_sha256 = match &entry.token_sha256 {
        Some(text) => {
            let mut hash = [0; 32];
            hex::decode_to_slice(text.trim(), &mut hash).map_err(|_| {
                anyhow::anyhow!("client {name:?}: token_sha256 must be 64 hex digits (a SHA-256)")
            })?;
            Some(hash)
        }
        None => None,
    };
    let cert_name = |key: &str, value: Option<String>| match value {
        Some(v) if v.is_empty() || v.trim() != v || v.chars().any(char::is_control) => {
            bail!("client {name:?}: {key} must be non-empty printable text")
        }
        other => Ok(other),
    };
    let cert = CertIdentity {
        subject: cert_name("cert_subject", entry.cert_subject)?,
        san: cert_name("cert_san", entry.cert_san)?,
    };
    if token_sha256.is_none() && cert.is_empty() {
        bail!(
            "client {name:?} needs token_sha256, or cert_subject / cert_san to be known by \
             its TLS client certificate"
        );
    }
    let scopes = entry
        .scopes
        .iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| {
                anyhow::anyhow!(
                    "client {name:?}: unknown scope {s:?} (expected licenses.read, licenses.write or admin)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if scopes.is_empty() {
        bail!("client {name:?} has no scopes");
    }
    if entry.max_orders_per_hour == Some(0) || entry.max_orders_per_day == Some(0) {
        bail!("client {name:?}: an order cap of 0 forbids ordering; drop licenses.write instead");
    }
    Ok(ClientSpec {
        name: ClientName::new(name),
        token_sha256,
        cert,
        scopes,
        caps: OrderCaps {
            per_hour: entry.max_orders_per_hour,
            per_day: entry.max_orders_per_day,
            max_prepaid_months: match entry.max_prepaid_months {
                Some(0) => bail!(
                    "client {name:?}: max_prepaid_months = 0 forbids every paid period (orders, renewals)"
                ),
                Some(n) => n,
                None => DEFAULT_MAX_PREPAID_MONTHS,
            },
            spend_per_day_cents: match entry.max_spend_per_day {
                Some(amount) if amount.is_finite() && amount > 0.0 => {
                    Some((amount * 100.0).round() as i64)
                }
                Some(_) => bail!(
                    "client {name:?}: max_spend_per_day must be a positive amount in the \
                     account's currency"
                ),
                None => None,
            },
        },
        requests_per_second: match entry.max_requests_per_second {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(DEFAULT_REQUESTS_PER_SECOND),
        },
        billmgr: billmgr_account(name, entry.billmgr_user, entry.billmgr_password_hash)?,
    })
}

/// `billmgr_user` and `billmgr_password_hash`: both or neither.
fn billmgr_account(
    name: &str,
    user: Option<String>,
    hash: Option<String>,
) -> anyhow::Result<Option<BillmgrAccount>> {
    match (user, hash) {
        (None, None) => Ok(None),
        (Some(user), Some(hash)) => {
            let printable = !user.is_empty()
                && user.len() <= MAX_BILLMGR_USER_BYTES
                && user.trim() == user
                && !user.contains(':')
                && !user.chars().any(char::is_control);
            if !printable {
                bail!(
                    "client {name:?}: billmgr_user must be non-empty printable text without ':' \
                     (authinfo=user:password splits at the first ':'), at most \
                     {MAX_BILLMGR_USER_BYTES} bytes"
                );
            }
            let hash = hash.trim().to_owned();
            super::password::check_hash(&hash)
                .map_err(|e| anyhow::anyhow!("client {name:?}: billmgr_password_hash: {e}"))?;
            Ok(Some(BillmgrAccount {
                user,
                password_hash: hash,
            }))
        }
        _ => bail!("client {name:?}: billmgr_user and billmgr_password_hash go together"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &str) -> anyhow::Result<Clients> {
        Clients::from_toml(entries)
    }

    #[test]
    fn a_full_entry_parses_with_its_caps() {
        let hash = token_sha256_hex("t1");
        let clients = file(&format!(
            "[[client]]\nname = \"dcimanager\"\ntoken_sha256 = \"{hash}\"\n\
             scopes = [\"licenses.read\", \"licenses.write\"]\n\
             max_orders_per_hour = 100\nmax_orders_per_day = 1000\n"
        ))
        .unwrap();

        let spec = &clients.clients[0];
        assert_eq!(spec.name.as_str(), "dcimanager");
        assert_eq!(hex::encode(spec.token_sha256.unwrap()), hash);
        assert_eq!(spec.scopes, vec![Scope::Read, Scope::Write]);
        assert_eq!(spec.caps.per_hour, Some(100));
        assert_eq!(spec.caps.per_day, Some(1000));
        assert_eq!(spec.requests_per_second, Some(DEFAULT_REQUESTS_PER_SECOND));
        assert!(!clients.sandbox);
    }

    #[test]
    fn bad_hashes_scopes_duplicates_and_empty_files_are_refused() {
        let hash = token_sha256_hex("t1");
        let entry = |name: &str, hash: &str, scopes: &str| {
            format!("[[client]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nscopes = {scopes}\n")
        };
        assert!(file("").is_err());
        assert!(file(&entry("a", "abc", "[\"admin\"]")).is_err());
        assert!(file(&entry("a", &hash, "[\"root\"]")).is_err());
        assert!(file(&entry("a", &hash, "[]")).is_err());
        assert!(
            file(
                &(entry("a", &hash, "[\"admin\"]")
                    + &entry("a", &token_sha256_hex("t2"), "[\"admin\"]"))
            )
            .is_err()
        );
        assert!(
            file(&(entry("a", &hash, "[\"admin\"]") + &entry("b", &hash, "[\"admin\"]"))).is_err()
        );
        assert!(file(&(entry("a", &hash, "[\"admin\"]") + "token = \"plain\"\n")).is_err());
    }

    #[test]
    fn the_sandbox_accounts_password_is_its_token() {
        assert!(crate::auth::verify_password(
            SANDBOX_PASSWORD_HASH,
            SANDBOX_TOKEN
        ));
        assert!(!crate::auth::verify_password(
            SANDBOX_PASSWORD_HASH,
            "another-token"
        ));
        assert!(crate::auth::check_hash(SANDBOX_PASSWORD_HASH).is_ok());
    }

    #[test]
    fn a_billmgr_account_needs_a_user_and_an_argon2id_hash() {
        let base = format!(
            "[[client]]\nname = \"shop\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.write\"]\n",
            token_sha256_hex("t1")
        );
        let hash = crate::auth::hash_password("pw");
        let ok = file(&format!(
            "{base}billmgr_user = \"reseller\"\nbillmgr_password_hash = \"{hash}\"\n"
        ))
        .unwrap();
        let account = ok.clients[0].billmgr.as_ref().unwrap();
        assert_eq!(account.user, "reseller");
        assert!(
            !format!("{:?}", ok.clients[0]).contains(&hash),
            "the hash is not printed"
        );

        assert!(file(&format!("{base}billmgr_user = \"reseller\"\n")).is_err());
        assert!(file(&format!("{base}billmgr_password_hash = \"{hash}\"\n")).is_err());
        assert!(
            file(&format!(
                "{base}billmgr_user = \"a:b\"\nbillmgr_password_hash = \"{hash}\"\n"
            ))
            .is_err()
        );
        assert!(
            file(&format!(
                "{base}billmgr_user = \"reseller\"\nbillmgr_password_hash = \"plain\"\n"
            ))
            .is_err()
        );
        let long = "r".repeat(MAX_BILLMGR_USER_BYTES + 1);
        assert!(
            file(&format!(
                "{base}billmgr_user = \"{long}\"\nbillmgr_password_hash = \"{hash}\"\n"
            ))
            .is_err()
        );
    }

    #[test]
    fn a_client_may_be_known_by_its_certificate_instead_of_a_token() {
        let clients = file(
            "[[client]]\nname = \"watcher\"\ncert_subject = \"watcher.example\"\n\
             cert_san = \"spiffe://example/watcher\"\nscopes = [\"licenses.read\"]\n",
        )
        .unwrap();
        let spec = &clients.clients[0];
        assert_eq!(spec.token_sha256, None);
        assert!(spec.cert.matches(Some("watcher.example"), &[]));
        assert!(
            spec.cert
                .matches(None, &["spiffe://example/watcher".to_owned()])
        );
        assert!(!spec.cert.matches(Some("other"), &["other".to_owned()]));

        let neither = "[[client]]\nname = \"x\"\nscopes = [\"admin\"]\n";
        assert!(file(neither).is_err(), "no token and no certificate");
        let entry = |name: &str| {
            format!(
                "[[client]]\nname = \"{name}\"\ncert_subject = \"same\"\nscopes = [\"admin\"]\n"
            )
        };
        assert!(file(&(entry("a") + &entry("b"))).is_err(), "ambiguous");
        assert!(file("[[client]]\nname = \"x\"\ncert_san = \"\"\nscopes = [\"admin\"]\n").is_err());
    }

    #[test]
    fn the_sandbox_client_holds_every_scope_and_no_limits() {
        let clients = Clients::sandbox();
        let spec = &clients.clients[0];
        assert!(clients.sandbox);
        assert_eq!(
            hex::encode(spec.token_sha256.unwrap()),
            token_sha256_hex(SANDBOX_TOKEN)
        );
        assert!(spec.scopes.contains(&Scope::Admin));
        assert_eq!(spec.caps, OrderCaps::default());
        assert_eq!(spec.requests_per_second, None);
    }
}
