//! Console sessions: a signed session cookie, its revocation, CSRF tokens.
//!
//! The cookie holds the client's name, an expiry and a random nonce, signed with
//! HMAC-SHA-256 under the console key, so any replica with the key opens it without
//! the store. Ending one before it expires is the exception, and the one thing kept
//! server-side: a log-out records the session as revoked in the store every replica
//! shares (a digest of its nonce, until its expiry), and every request checks that
//! record. A restart with another key makes every signature fail, which revokes every
//! session. The scopes are not in the cookie: each request takes them from the clients
//! file, so a session never holds more than the client's token does. The CSRF token
//! of a session is a MAC of its nonce, so it dies with the session; the log-in form,
//! which has no session yet, gets a short-lived nonce cookie of its own.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::error::PageError;
use super::{BASE, ConsoleState};
use crate::auth::{Principal, Scope};
use crate::domain::ClientName;

/// The session cookie.
pub const SESSION_COOKIE: &str = "lf_console";
/// The log-in form's nonce cookie.
pub const LOGIN_COOKIE: &str = "lf_console_login";
/// The name of the CSRF field of every form that changes something.
pub const CSRF_FIELD: &str = "csrf";
/// How long a log-in form may be left open.
pub(super) const LOGIN_FORM_TTL_SECS: i64 = 1800;

type HmacSha256 = Hmac<Sha256>;

/// The signing key.
pub struct Keys {
    key: Vec<u8>,
}

impl Keys {
    /// Keys from the configured key.
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// A random key: sessions end with the process.
    pub fn random() -> Self {
        Self::new(rand::random::<[u8; 32]>().to_vec())
    }

    /// The MAC of `parts`, each length-prefixed so no two lists of parts collide.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A session cookie value for `client` until `expires`.
    pub(super) fn issue(&self, client: &ClientName, expires: i64) -> String {
        let client = hex::encode(client.as_str());
        let expires = expires.to_string();
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let mac = self.mac(&[
            b"session",
            client.as_bytes(),
            expires.as_bytes(),
            nonce.as_bytes(),
        ]);
        format!("{client}.{expires}.{nonce}.{}", hex::encode(mac))
    }

    /// What a cookie value this key signed says, if it has not expired.
    fn open(&self, value: &str, now: i64) -> Option<Opened> {
        let mut parts = value.split('.');
        let (client, expires, nonce, mac) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expected = self.mac(&[
            b"session",
            client.as_bytes(),
            expires.as_bytes(),
            nonce.as_bytes(),
        ]);
        let presented = hex::decode(mac).ok()?;
        if !bool::from(expected.as_slice().ct_eq(&presented)) {
            return None;
        }
        let expires = expires.parse::<i64>().ok()?;
        if expires <= now {
            return None;
        }
        let client = String::from_utf8(hex::decode(client).ok()?).ok()?;
        Some(Opened {
            client: ClientName::new(client),
            nonce: nonce.to_owned(),
            expires,
        })
    }

    /// The CSRF token of a nonce (`purpose`: `csrf` for sessions, `login`).
    pub(super) fn token(&self, purpose: &str, nonce: &str) -> String {
        hex::encode(self.mac(&[purpose.as_bytes(), nonce.as_bytes()]))
    }

    pub(super) fn check_token(&self, purpose: &str, nonce: &str, presented: &str) -> bool {
        let expected = self.token(purpose, nonce);
        !presented.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// What a valid session cookie says.
struct Opened {
    client: ClientName,
    nonce: String,
    /// Unix seconds.
    expires: i64,
}

/// How a session is named in the store's revocations: a digest of its nonce, so the
/// store never holds what the session's CSRF token is made from.
fn revocation_id(nonce: &str) -> String {
    hex::encode(Sha256::digest(format!("console-session:{nonce}")))
}

/// A logged-in person: the client's principal and the session's CSRF token.
pub struct Session {
    /// Who, with the scopes the clients file gives the client now.
    pub principal: Principal,
    /// The CSRF token forms of this session carry.
    pub csrf: String,
    nonce: String,
    /// When the session expires (unix seconds).
    expires: i64,
}

impl Session {
    /// [`PageError`] 403 unless the session's client holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), PageError> {
        self.principal
            .require(scope)
            .map_err(|e| PageError::from(crate::edge::auth_refusal(e)))
    }

    /// Whether the client has the admin scope.
    pub fn is_admin(&self) -> bool {
        self.principal.allows(Scope::Admin)
    }

    /// Ends this session on every replica (see the module's comment).
    pub async fn revoke(&self, state: &ConsoleState) -> Result<(), PageError> {
        let expires = OffsetDateTime::from_unix_timestamp(self.expires)
            .map_err(|_| PageError::bad_request("the session's expiry is out of range"))?;
        state
            .service
            .revoke_session(&revocation_id(&self.nonce), expires)
            .await?;
        Ok(())
    }
}

/// The value of cookie `name` in the request, if sent.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let opened = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|value| state.keys.open(value, now))
            .and_then(|o| Some((state.auth.principal_of(&o.client)?, o)));
        let Some((principal, opened)) = opened else {
            return Err(Redirect::to(&format!("{BASE}/login")).into_response());
        };
        let revoked = state
            .service
            .session_revoked(&revocation_id(&opened.nonce))
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        if revoked {
            tracing::info!(client = %principal.client, "console session refused: logged out");
            let mut response = Redirect::to(&format!("{BASE}/login")).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", 0, secure(state, &parts.headers)),
            );
            return Err(response);
        }
        // A person's clicks count against the client's rate like its API calls.
        state
            .auth
            .admit(&principal)
            .map_err(|e| PageError::from(crate::edge::auth_refusal(e)).into_response())?;
        Ok(Self {
            csrf: state.keys.token("csrf", &opened.nonce),
            principal,
            nonce: opened.nonce,
            expires: opened.expires,
        })
    }
}

/// A form posted by a logged-in person, its CSRF token checked: 403 without a valid
/// one, whatever the form is. Every handler that changes something takes its body
/// this way, so none can forget the check.
pub struct Posted<T> {
    /// The session.
    pub session: Session,
    /// The form's other fields.
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, crate::limits::MAX_BODY_BYTES)
            .await
            .map_err(|_| PageError::bad_request("the form could not be read").into_response())?;
        let csrf: CsrfField = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::bad_request("the form could not be read").into_response())?;
        if !state.keys.check_token("csrf", &session.nonce, &csrf.csrf) {
            tracing::info!(client = %session.principal.client, "console form refused: CSRF token");
            return Err(PageError::csrf().into_response());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            PageError::bad_request(format!("the form is not valid: {e}")).into_response()
        })?;
        Ok(Self { session, form })
    }
}

/// Whether cookies must be `Secure`: configured so, or the request came over TLS
/// (as a TLS-terminating proxy says). A spoofed header can only make the cookie
/// stricter.
pub(super) fn secure(state: &ConsoleState, headers: &HeaderMap) -> bool {
    state.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

pub(super) fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={BASE}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are hex, digits and dots")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_only_under_its_key_and_before_it_expires() {
        let keys = Keys::new(vec![7; 32]);
        let value = keys.issue(&ClientName::new("ops"), 1_000);
        let opened = keys.open(&value, 999).expect("valid");
        assert_eq!(opened.client.as_str(), "ops");
        assert_eq!(opened.expires, 1_000);
        assert!(keys.open(&value, 1_000).is_none(), "expired");
        assert!(
            Keys::new(vec![8; 32]).open(&value, 999).is_none(),
            "other key"
        );
        let forged = value.replacen(&hex::encode("ops"), &hex::encode("adm"), 1);
        assert!(keys.open(&forged, 999).is_none(), "changed client");
    }

    #[test]
    fn csrf_tokens_belong_to_their_nonce_and_purpose() {
        let keys = Keys::new(vec![7; 32]);
        let token = keys.token("csrf", "abc");
        assert!(keys.check_token("csrf", "abc", &token));
        assert!(!keys.check_token("csrf", "abd", &token));
        assert!(!keys.check_token("login", "abc", &token));
        assert!(!keys.check_token("csrf", "abc", ""));
    }
}
