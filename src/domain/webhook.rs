//! Webhook subscriptions: a client's URL that receives the change feed's events as
//! HTTP POSTs, signed with the subscription's secret, in feed order, retried with
//! exponential back-off for up to [`RETRY_FOR`], then marked failing. What is pure
//! lives here: the subscription, the signature, the back-off and the rules for the
//! address a delivery may go to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{ClientName, EventKind, FieldViolation, LicenseIp};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "License-Facade-Signature";
/// The header that carries the event id (for de-duplication).
pub const EVENT_ID_HEADER: &str = "License-Facade-Event-Id";
/// The header that carries the event kind.
pub const EVENT_TYPE_HEADER: &str = "License-Facade-Event-Type";

/// How long an event is retried before its subscription is marked failing.
pub const RETRY_FOR: Duration = Duration::from_secs(72 * 3600);
/// The first retry's delay; each further one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    /// Deliveries go on.
    Active,
    /// An event could not be delivered for [`RETRY_FOR`]; nothing is sent until the
    /// subscription is resumed. Its events wait (the backlog).
    Failing,
}

impl WebhookState {
    /// The stable stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Failing => "FAILING",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Failing]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for WebhookState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subscription as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The client that owns it.
    pub client: ClientName,
    /// Whether it receives every client's events (an admin's subscription); else
    /// only its client's.
    pub all_clients: bool,
    /// Where events are sent.
    pub url: String,
    /// The kinds it receives; empty: all.
    pub event_types: Vec<EventKind>,
    /// The signing key.
    pub secret: String,
    /// The last event delivered (or passed over as another kind).
    pub last_event_id: i64,
    /// Where it stands.
    pub state: WebhookState,
    /// Failed attempts at the next event.
    pub attempts: u32,
    /// When the next event first failed.
    pub first_failure: Option<OffsetDateTime>,
    /// When the next attempt is due.
    pub next_attempt: OffsetDateTime,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Events delivered so far.
    pub delivered: u64,
    /// When it was created.
    pub create_time: OffsetDateTime,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("client", &self.client)
            .field("url", &self.url)
            .field("state", &self.state)
            .field("last_event_id", &self.last_event_id)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&kind)
    }
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA-256 of "<timestamp>.<body>" keyed with secret>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The delay before attempt `failures + 1` after `failures` failed ones: 1 s, 2 s,
/// 4 s, … up to an hour.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// Checks a subscription's URL: `http` or `https`, a host, no user info, at most
/// [`MAX_URL_BYTES`]; where it resolves is checked by [`check_target`].
pub fn check_url(url: &str) -> Result<reqwest::Url, FieldViolation> {
    let bad = |why: &str| FieldViolation::new("url", why);
    if url.len() > MAX_URL_BYTES {
        return Err(bad("must be at most 2048 bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry a user name or password"));
    }
    Ok(parsed)
}

/// Whether a delivery may go to `ip`: never to loopback, link-local (which holds the
/// cloud metadata address 169.254.169.254), unspecified, multicast, broadcast or
/// reserved addresses, in any spelling, nor to the other known metadata addresses,
/// unless `allow_private` (tests, a receiver on the same host).
pub fn check_target(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    const METADATA: [IpAddr; 3] = [
        // Alibaba Cloud's metadata service.
        IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
        // AWS's over IPv6.
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
        // Oracle Cloud's second address beside 169.254.169.254.
        IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    ];
    let ip = super::canonical_ip(ip);
    if METADATA.contains(&ip) {
        return Err(format!("{ip} is a cloud metadata address"));
    }
    LicenseIp::new(ip)
        .map(|_| ())
        .map_err(|why| format!("{ip} {why}"))
}

/// Parses event kind names (`CREATED`, `RENEWED`, …) into kinds.
pub fn event_types(names: &[String]) -> Result<Vec<EventKind>, FieldViolation> {
    let mut kinds = Vec::new();
    for name in names {
        let kind = EventKind::parse(name.trim()).ok_or_else(|| {
            FieldViolation::new(
                "eventTypes",
                format!("{name:?} is not an event kind such as CREATED or RENEWED"),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_sha256_of_the_timestamp_and_the_body() {
        // What Python's hmac.new(secret, b"1700000000." + body, "sha256") gives.
        let header = signature("whsec_test_secret", 1_700_000_000, b"{\"id\":\"1\"}");

        assert_eq!(
            header,
            "t=1700000000,v1=c10a092032b032422619ec21b90dd2523fd5b2be59ed619283f25aa7c1d57567"
        );
        assert_ne!(
            signature("another secret", 1_700_000_000, b"{\"id\":\"1\"}"),
            header
        );
    }

    #[test]
    fn backoff_doubles_from_a_second_up_to_an_hour() {
        let delays: Vec<u64> = (1..=14).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(
            delays,
            [
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600
            ]
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn loopback_link_local_and_metadata_targets_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "100.100.100.200",
            "fd00:ec2::254",
            "224.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_target(ip, false).is_err(), "{ip}");
            assert!(check_target(ip, true).is_ok(), "{ip}");
        }
        for ip in ["10.0.0.5", "192.168.1.10", "203.0.113.7", "2001:db8::1"] {
            assert!(check_target(ip.parse().unwrap(), false).is_ok(), "{ip}");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(check_url("https://hooks.example.com/license").is_ok());
        assert!(check_url("http://10.0.0.5:8080/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "http://",
            &format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES)),
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_types_are_kind_names() {
        let kinds = event_types(&["CREATED".into(), "RENEWED".into(), "CREATED".into()]).unwrap();
        assert_eq!(kinds, [EventKind::Created, EventKind::Renewed]);
        assert!(event_types(&["created".into()]).is_err());
    }
}
