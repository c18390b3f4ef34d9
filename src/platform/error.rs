//! What can go wrong talking to a platform. No variant carries a URL, a token or a
//! password.

/// A failed platform request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform kept answering 503 (suspended, starting) through every retry.
    #[error("the platform stayed busy (503) through {0} attempts")]
    Busy(u32),
    /// The credentials were refused (at log-in, or an API token at any call).
    #[error("the platform refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    /// The session expired again right after a fresh log-in.
    #[error("the platform session expired again after logging in anew")]
    SessionExpired,
    /// Any other non-success status.
    #[error("the platform answered HTTP {0}")]
    Http(u16),
    /// No answer: connection refused or cut, timeout.
    #[error("the platform could not be reached: {0}")]
    Transport(String),
    /// An answer that is not the expected JSON.
    #[error("the platform's answer was not understood: {0}")]
    Malformed(String),
}
