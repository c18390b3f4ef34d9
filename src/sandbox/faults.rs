//! Fault injection: which failure to simulate for a request, and the canned responses
//! for the failures that never reach the BILLmanager logic.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::protocol::Format;

/// One injected failure: for requests to `func` (or `*` for all), with probability `rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The BILLmanager function name (`soft.order.param`) or `*`.
    pub func: String,
    /// What goes wrong.
    pub kind: FaultKind,
    /// Probability in 0.0..=1.0 that a matching request is hit.
    pub rate: f64,
}

/// The failures the sandbox can simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 502 with an HTML body, as a reverse proxy sends; nothing is performed.
    Error5xx,
    /// The request hangs (for `timeout_hang`, or until shutdown); nothing is performed.
    Timeout,
    /// The operation is performed and committed, then the connection is closed without
    /// a complete HTTP response: the case that makes a retried order buy twice.
    DropAfterCommit,
    /// HTTP 200 with a truncated body; nothing is performed.
    Malformed,
    /// An upstream `doc/error` of type `api_error`; nothing is performed.
    DocError,
    /// The request is held this long, then performed and answered as usual: a slow
    /// upstream call, with its outcome still to come while it is held (`delay-500ms`).
    Delay(Duration),
}

/// Why a `FUNC:KIND:RATE` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    /// Not three `:`-separated parts.
    #[error("fault {0:?} is not FUNC:KIND:RATE (e.g. soft.order.param:drop-after-commit:0.5)")]
    Shape(String),
    /// The function part is empty.
    #[error("fault {0:?} has an empty function name (use * for all functions)")]
    EmptyFunc(String),
    /// The kind is not one of the six names.
    #[error(
        "unknown fault kind {0:?}; expected one of error5xx, timeout, drop-after-commit, malformed, doc-error, delay-<N>ms"
    )]
    Kind(String),
    /// The rate is not a number in 0.0..=1.0.
    #[error("fault rate {0:?} is not a number between 0.0 and 1.0")]
    Rate(String),
}

impl FromStr for FaultKind {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error5xx" => Ok(Self::Error5xx),
            "timeout" => Ok(Self::Timeout),
            "drop-after-commit" => Ok(Self::DropAfterCommit),
            "malformed" => Ok(Self::Malformed),
            "doc-error" => Ok(Self::DocError),
            other => other
                .strip_prefix("delay-")
                .and_then(|ms| ms.strip_suffix("ms"))
                .and_then(|ms| ms.parse::<u64>().ok())
                .map(|ms| Self::Delay(Duration::from_millis(ms)))
                .ok_or_else(|| FaultParseError::Kind(s.to_owned())),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error5xx => "error5xx",
            Self::Timeout => "timeout",
            Self::DropAfterCommit => "drop-after-commit",
            Self::Malformed => "malformed",
            Self::DocError => "doc-error",
            Self::Delay(held) => return write!(f, "delay-{}ms", held.as_millis()),
        })
    }
}

impl FromStr for Fault {
    type Err = FaultParseError;

    /// Parses `FUNC:KIND:RATE`. Function names contain dots but never colons, so the
    /// string is split from the right.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().rsplitn(3, ':');
        let (Some(rate), Some(kind), Some(func)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(FaultParseError::Shape(s.to_owned()));
        };
        let func = func.trim();
        if func.is_empty() {
            return Err(FaultParseError::EmptyFunc(s.to_owned()));
        }
        let kind = kind.parse()?;
        let rate = rate
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| FaultParseError::Rate(rate.to_owned()))?;
        Ok(Self {
            func: func.to_owned(),
            kind,
            rate,
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.func, self.kind, self.rate)
    }
}

impl Fault {
    /// Whether this fault applies to `func`.
    fn matches(&self, func: &str) -> bool {
        self.func == "*" || self.func == func
    }
}

/// Rolls the dice of every fault matching `func`, in order; the first hit wins.
pub(crate) fn pick(faults: &[Fault], func: &str) -> Option<FaultKind> {
    let mut rng = rand::rng();
    faults
        .iter()
        .filter(|f| f.matches(func))
        // `random::<f64>()` is in [0, 1), so rate 1.0 always fires and 0.0 never does.
        .find(|f| rng.random::<f64>() < f.rate)
        .map(|f| f.kind)
}

/// What a reverse proxy in front of BILLmanager answers when the backend is down.
pub(crate) fn bad_gateway() -> Response {
    let body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                </body>\r\n</html>\r\n";
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/html")],
        body,
    )
        .into_response()
}

/// HTTP 200 whose body stops in the middle of a document.
pub(crate) fn malformed(format: Format) -> Response {
    let body = match format {
        Format::Xml => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc><elem><id>10",
        Format::Json | Format::Sjson | Format::Bjson => "{\"doc\":{\"elem\":[{\"id\":{\"$\":\"10",
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_func_kind_and_rate() {
        let f: Fault = "soft.order.param:drop-after-commit:0.5".parse().unwrap();
        assert_eq!(f.func, "soft.order.param");
        assert_eq!(f.kind, FaultKind::DropAfterCommit);
        assert_eq!(f.rate, 0.5);
        assert_eq!(f.to_string(), "soft.order.param:drop-after-commit:0.5");
        let all: Fault = "*:error5xx:1".parse().unwrap();
        assert_eq!((all.func.as_str(), all.kind), ("*", FaultKind::Error5xx));
        let slow: Fault = "soft.edit:delay-1500ms:1".parse().unwrap();
        assert_eq!(slow.kind, FaultKind::Delay(Duration::from_millis(1500)));
        assert_eq!(slow.to_string(), "soft.edit:delay-1500ms:1");
    }

    #[test]
    fn refuses_bad_fault_strings_with_a_clear_reason() {
        let bad_kind = "soft:explode:0.5".parse::<Fault>().unwrap_err();
        assert!(
            bad_kind.to_string().contains("drop-after-commit"),
            "{bad_kind}"
        );
        assert!(matches!(
            "soft:timeout:1.5".parse::<Fault>(),
            Err(FaultParseError::Rate(_))
        ));
        assert!(matches!(
            "timeout:1".parse::<Fault>(),
            Err(FaultParseError::Shape(_))
        ));
        assert!(matches!(
            ":timeout:1".parse::<Fault>(),
            Err(FaultParseError::EmptyFunc(_))
        ));
        for bad in ["soft:delay:1", "soft:delay-ms:1", "soft:delay-2s:1"] {
            assert!(
                matches!(bad.parse::<Fault>(), Err(FaultParseError::Kind(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn pick_honours_function_and_rate() {
        let faults = vec![
            "soft:malformed:0".parse().unwrap(),
            "soft:timeout:1".parse().unwrap(),
        ];
        assert_eq!(pick(&faults, "soft"), Some(FaultKind::Timeout));
        assert_eq!(pick(&faults, "soft.edit"), None);
    }
}
