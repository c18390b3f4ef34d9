//! Client authentication, shared by both transports: a bearer token, or else a
//! verified TLS client certificate, maps to a [`Principal`] (the client, its scopes),
//! and each client's calls are rate limited.
//! The REST middleware (`http::auth`) and the gRPC layer (`grpc::auth`) are thin
//! wrappers over [`Authenticator`].

mod clients;
mod password;

pub use clients::{
    BillmgrAccount, CertIdentity, ClientSpec, Clients, DEFAULT_MAX_PREPAID_MONTHS,
    DEFAULT_REQUESTS_PER_SECOND, MAX_BILLMGR_USER_BYTES, OrderCaps, SANDBOX_BILLMGR_USER,
    SANDBOX_TOKEN, Scope, token_sha256_hex,
};
pub use password::{check_hash, hash_password, verify_password};

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::ClientName;

/// Why a caller was refused; the service maps each to its own error (and so to one
/// status and reason code per transport), so this layer needs no service type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token, or one that no client has.
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// The client lacks the named scope.
    #[error("this call needs the {0} scope")]
    PermissionDenied(&'static str),
    /// The client made too many calls; allowed again after the wait.
    #[error("too many requests")]
    RateLimited {
        /// When a call is allowed again.
        retry_after: std::time::Duration,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The client; licenses it creates are its own.
    pub client: ClientName,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Whether the principal may make a call that needs `scope`; `admin` may make
    /// every call.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// [`AuthError::PermissionDenied`] unless the principal holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.allows(scope) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied(scope.as_str()))
        }
    }

    /// Whose licenses the principal sees: only its own, or every client's (`None`)
    /// for an admin.
    pub fn owner_filter(&self) -> Option<&ClientName> {
        (!self.scopes.contains(&Scope::Admin)).then_some(&self.client)
    }
}

/// The names of a TLS client certificate that the listener verified against the
/// configured CA; a client whose `cert_subject` or `cert_san` is among them is the
/// caller when no bearer token is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// Its DNS and URI subject alternative names.
    pub sans: Vec<String>,
}

struct Registered {
    token_sha256: Option<[u8; 32]>,
    cert: CertIdentity,
    billmgr: Option<BillmgrAccount>,
    principal: Principal,
    limiter: Option<DefaultDirectRateLimiter>,
}

/// Maps bearer tokens to principals and applies each client's request rate limit.
pub struct Authenticator {
    clients: Vec<Registered>,
    clock: DefaultClock,
    sandbox: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("clients", &self.clients.len())
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl Authenticator {
    /// An authenticator of `clients`.
    pub fn new(clients: &Clients) -> Self {
        let sandbox = clients.sandbox;
        let clients = clients
            .clients
            .iter()
            .map(|spec| Registered {
                token_sha256: spec.token_sha256,
                cert: spec.cert.clone(),
                billmgr: spec.billmgr.clone(),
                principal: Principal {
                    client: spec.name.clone(),
                    scopes: spec.scopes.clone(),
                },
                limiter: spec
                    .requests_per_second
                    .and_then(NonZeroU32::new)
                    .map(|rps| {
                        let burst = rps.saturating_mul(NonZeroU32::MIN.saturating_add(1));
                        RateLimiter::direct(Quota::per_second(rps).allow_burst(burst))
                    }),
            })
            .collect();
        Self {
            clients,
            clock: DefaultClock::default(),
            sandbox,
        }
    }

    /// Whether this is the built-in sandbox client.
    pub fn is_sandbox(&self) -> bool {
        self.sandbox
    }

    /// The principal of an `Authorization` header value (`Bearer TOKEN`), or
    /// [`AuthError::Unauthenticated`]. The token is hashed and compared with every
    /// configured hash in constant time, so the answer's timing tells nothing about
    /// how close a guess was.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(AuthError::Unauthenticated)?;
        let presented: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for client in &self.clients {
            // No early exit: every hash is compared whatever matched before.
            if let Some(hash) = &client.token_sha256
                && bool::from(hash.ct_eq(&presented))
            {
                found = Some(client);
            }
        }
        found
            .map(|c| c.principal.clone())
            .ok_or(AuthError::Unauthenticated)
    }

    /// The principal of a request: its bearer token when it sends one (a wrong token
    /// is refused even with a good certificate, so a token is never silently
    /// ignored), else the client its verified TLS certificate names. A certificate
    /// that names no client, or more than one (its subject one client's and an
    /// alternative name another's), is [`AuthError::Unauthenticated`].
    pub fn identify(
        &self,
        authorization: Option<&[u8]>,
        peer: Option<&PeerCertificate>,
    ) -> Result<Principal, AuthError> {
        match (authorization, peer) {
            (None, Some(peer)) => {
                let mut matching = self.clients.iter().filter(|c| {
                    c.cert
                        .matches(peer.common_name.as_deref(), peer.sans.as_slice())
                });
                match (matching.next(), matching.next()) {
                    (Some(client), None) => Ok(client.principal.clone()),
                    _ => Err(AuthError::Unauthenticated),
                }
            }
            (authorization, _) => self.authenticate(authorization),
        }
    }

    /// The configured clients' names, in file order.
    pub fn client_names(&self) -> Vec<ClientName> {
        self.clients
            .iter()
            .map(|c| c.principal.client.clone())
            .collect()
    }

    /// The principal of the configured client `name`, as its token would
    /// authenticate it now (a console session names its client; the scopes come from
    /// the clients file, so a session never holds more than the token does).
    pub fn principal_of(&self, name: &ClientName) -> Option<Principal> {
        self.clients
            .iter()
            .find(|c| &c.principal.client == name)
            .map(|c| c.principal.clone())
    }

    /// The client whose downstream (`/billmgr`) user name is `user`, with the
    /// password hash to check.
    pub fn billmgr_account(&self, user: &str) -> Option<(ClientName, String)> {
        self.clients.iter().find_map(|c| {
            c.billmgr
                .as_ref()
                .filter(|a| a.user == user)
                .map(|a| (c.principal.client.clone(), a.password_hash.clone()))
        })
    }

    /// Counts one call of `principal` against its rate limit;
    /// [`AuthError::RateLimited`] with the wait when it is over.
    pub fn admit(&self, principal: &Principal) -> Result<(), AuthError> {
        let Some(client) = self
            .clients
            .iter()
            .find(|c| c.principal.client == principal.client)
        else {
            return Ok(());
        };
        match &client.limiter {
            Some(limiter) => limiter.check().map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                AuthError::RateLimited {
                    retry_after: wait.max(Duration::from_millis(1)),
                }
            }),
            None => Ok(()),
        }
    }

    /// [`identify`](Self::identify), then [`admit`](Self::admit), then a check that
    /// the principal holds `scope`.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        peer: Option<&PeerCertificate>,
        scope: Scope,
    ) -> Result<Principal, AuthError> {
        let principal = self.identify(authorization, peer)?;
        // The request's span (REST and gRPC) names the client in every log line.
        tracing::Span::current().record("client", principal.client.as_str());
        self.admit(&principal)?;
        principal.require(scope)?;
        Ok(principal)
    }
}

/// The token of `Bearer TOKEN` (scheme case-insensitive), if well-formed.
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The order caps of every client that has any, for the service's spend guard.
pub fn order_caps(clients: &Clients) -> HashMap<ClientName, OrderCaps> {
    clients
        .clients
        .iter()
        .filter(|c| c.caps != OrderCaps::default())
        .map(|c| (c.name.clone(), c.caps))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(extra: &str) -> Authenticator {
        let text = format!(
            "[[client]]\nname = \"reader\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.read\"]\n\
             [[client]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"admin\"]\n{extra}",
            token_sha256_hex("reader-token"),
            token_sha256_hex("ops-token"),
        );
        Authenticator::new(&Clients::from_toml(&text).unwrap())
    }

    #[test]
    fn a_bearer_token_maps_to_its_client() {
        let auth = authenticator("");

        let reader = auth.authenticate(Some(b"Bearer reader-token")).unwrap();
        let ops = auth.authenticate(Some(b"bearer ops-token")).unwrap();

        assert_eq!(reader.client.as_str(), "reader");
        assert_eq!(reader.owner_filter(), Some(&reader.client));
        assert_eq!(ops.client.as_str(), "ops");
        assert_eq!(ops.owner_filter(), None, "an admin sees every client's");
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthenticated() {
        let auth = authenticator("");
        for header in [
            None,
            Some(&b""[..]),
            Some(b"Bearer "),
            Some(b"Basic reader-token"),
            Some(b"reader-token"),
            Some(b"Bearer reader-token2"),
        ] {
            assert!(
                matches!(auth.authenticate(header), Err(AuthError::Unauthenticated)),
                "{header:?}"
            );
        }
    }

    #[test]
    fn scopes_are_checked_and_admin_holds_them_all() {
        let auth = authenticator("");
        let reader = auth.authenticate(Some(b"Bearer reader-token")).unwrap();
        let ops = auth.authenticate(Some(b"Bearer ops-token")).unwrap();

        assert!(reader.require(Scope::Read).is_ok());
        assert!(matches!(
            reader.require(Scope::Write),
            Err(AuthError::PermissionDenied("licenses.write"))
        ));
        assert!(ops.require(Scope::Write).is_ok() && ops.require(Scope::Admin).is_ok());
    }

    #[test]
    fn a_certificate_names_its_client_unless_a_token_is_sent() {
        let auth = authenticator(
            "[[client]]\nname = \"watcher\"\ncert_subject = \"watcher.example\"\n\
             scopes = [\"licenses.read\"]\n\
             [[client]]\nname = \"mesh\"\ncert_san = \"spiffe://example/mesh\"\n\
             scopes = [\"licenses.read\"]\n",
        );
        let cert = |cn: &str, sans: &[&str]| PeerCertificate {
            common_name: Some(cn.to_owned()),
            sans: sans.iter().map(|s| s.to_string()).collect(),
        };

        let by_cn = auth
            .identify(None, Some(&cert("watcher.example", &[])))
            .unwrap();
        let by_san = auth
            .identify(None, Some(&cert("x", &["spiffe://example/mesh"])))
            .unwrap();
        let token_wins = auth
            .identify(
                Some(b"Bearer ops-token"),
                Some(&cert("watcher.example", &[])),
            )
            .unwrap();

        assert_eq!(by_cn.client.as_str(), "watcher");
        assert_eq!(by_san.client.as_str(), "mesh");
        assert_eq!(token_wins.client.as_str(), "ops");
        for refused in [
            auth.identify(None, Some(&cert("stranger", &["dns.example"]))),
            auth.identify(
                None,
                Some(&cert("watcher.example", &["spiffe://example/mesh"])),
            ),
            auth.identify(Some(b"Bearer wrong"), Some(&cert("watcher.example", &[]))),
            auth.identify(None, None),
        ] {
            assert_eq!(refused, Err(AuthError::Unauthenticated));
        }
    }

    #[test]
    fn a_client_over_its_rate_is_told_when_to_retry() {
        let text = format!(
            "[[client]]\nname = \"slow\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.read\"]\n\
             max_requests_per_second = 1\n",
            token_sha256_hex("slow-token"),
        );
        let auth = Authenticator::new(&Clients::from_toml(&text).unwrap());

        let results: Vec<_> = (0..3)
            .map(|_| auth.check(Some(b"Bearer slow-token"), None, Scope::Read))
            .collect();

        assert!(results[0].is_ok() && results[1].is_ok(), "a burst of two");
        match &results[2] {
            Err(AuthError::RateLimited { retry_after }) => {
                assert!(*retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
    }
}
