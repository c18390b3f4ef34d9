//! Errors of the upstream client.

use super::scrub::bounded;

/// What went wrong talking to BILLmanager. The variants split by what the caller may
/// safely do next: a [`Refused`](UpstreamError::Refused) call did nothing upstream; an
/// [`Indeterminate`](UpstreamError::Indeterminate) one may have been carried out.
/// No variant ever carries credentials, the upstream URL or a raw response body, and
/// the rendered error (what is stored as a license's or an operation's last error) is
/// at most [`MAX_UPSTREAM_TEXT`](super::MAX_UPSTREAM_TEXT) bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered with a `doc/error` (HTTP 200): a definite refusal.
    #[error("{}", bounded(&format!("upstream refused ({kind}{}): {message}", object.as_deref().map(|o| format!(", {o}")).unwrap_or_default())))]
    Refused {
        /// `error/@type`: `missed`, `value`, `exists`, `access`, or a module string.
        kind: String,
        /// `error/@object`, when present.
        object: Option<String>,
        /// `error/msg`.
        message: String,
    },
    /// The credentials or the session were rejected (`doc/error` of type `auth`).
    #[error("{}", bounded(&format!("upstream rejected the credentials: {_0}")))]
    Auth(String),
    /// The request never reached the upstream (connection refused, DNS failure): nothing
    /// happened there and a retry is safe.
    #[error("{}", bounded(&format!("upstream unreachable: {_0}")))]
    Unavailable(String),
    /// The request may have been carried out but no usable answer came back (timeout,
    /// connection reset, HTTP 5xx, an unparseable or empty body).
    #[error("{}", bounded(&format!("upstream outcome unknown: {_0}")))]
    Indeterminate(String),
    /// The upstream answered without a `doc/error`, but the answer lacks what the
    /// caller needs from it (an order answer with no license id we can read). The call
    /// was most likely carried out, so it must never be sent again blindly.
    #[error("upstream answer not understood: {0}")]
    Unreadable(String),
}

/// The message of the circuit breaker's refusal while it is open.
pub(crate) const BREAKER_OPEN: &str =
    "circuit breaker open: the upstream failed repeatedly; not called";

/// The message of a call held back while the credentials' back-off runs.
pub(crate) const AUTH_BACKOFF: &str =
    "the upstream refused the credentials; no log-in is tried until the back-off ends; not called";

impl UpstreamError {
    /// Whether this process held the call back without sending it: its circuit
    /// breaker is open, or the credentials were refused and their back-off runs. It
    /// says only that the upstream failed recently, not that this call would.
    pub fn is_shed(&self) -> bool {
        matches!(self, Self::Unavailable(m) if m == BREAKER_OPEN || m == AUTH_BACKOFF)
    }

    /// Whether the upstream definitely did not carry out the call.
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. } | Self::Auth(_) | Self::Unavailable(_)
        )
    }
}
