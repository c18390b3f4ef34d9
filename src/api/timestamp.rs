//! `google.protobuf.Timestamp` with the exact proto3 JSON mapping.
//!
//! pbjson-types' own `Timestamp` writes chrono's `to_rfc3339()`, whose offset is
//! `+00:00`; the mapping says generated output is "always Z-normalized" with 0, 3, 6 or
//! 9 fractional digits, and strict parsers (and clients that compare strings) expect
//! exactly that. The build maps the well-known type here instead (`build.rs`,
//! `extern_path`); on the wire it is the same message (fields 1 and 2).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds of 0001-01-01T00:00:00Z, the first instant a Timestamp may hold.
const MIN_SECONDS: i64 = -62_135_596_800;
/// Seconds of 9999-12-31T23:59:59Z, the last whole second a Timestamp may hold.
const MAX_SECONDS: i64 = 253_402_300_799;

/// A point in time: seconds since the Unix epoch and a non-negative nanosecond part.
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
#[prost(skip_debug)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, 0 to 999,999,999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Why a Timestamp has no JSON form.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Before 0001-01-01 or after 9999-12-31, or nanos outside 0..1e9.
    #[error("timestamp out of range: seconds {seconds}, nanos {nanos}")]
    OutOfRange {
        /// The seconds.
        seconds: i64,
        /// The nanoseconds.
        nanos: i32,
    },
    /// Not an RFC 3339 date-time.
    #[error("not an RFC 3339 timestamp: {0}")]
    Syntax(String),
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self {
            seconds: t.unix_timestamp(),
            nanos: t.nanosecond() as i32,
        }
    }
}

impl Timestamp {
    /// The proto3 JSON text: `YYYY-MM-DDThh:mm:ss[.fff[fff[fff]]]Z`, in UTC, with the
    /// fewest of 0, 3, 6 or 9 fractional digits that represent the value exactly.
    pub fn to_rfc3339(self) -> Result<String, TimestampError> {
        let out_of_range = TimestampError::OutOfRange {
            seconds: self.seconds,
            nanos: self.nanos,
        };
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds)
            || !(0..1_000_000_000).contains(&self.nanos)
        {
            return Err(out_of_range);
        }
        let t = OffsetDateTime::from_unix_timestamp(self.seconds).map_err(|_| out_of_range)?;
        let mut text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let nanos = self.nanos;
        if nanos != 0 {
            if nanos % 1_000_000 == 0 {
                text.push_str(&format!(".{:03}", nanos / 1_000_000));
            } else if nanos % 1_000 == 0 {
                text.push_str(&format!(".{:06}", nanos / 1_000));
            } else {
                text.push_str(&format!(".{nanos:09}"));
            }
        }
        text.push('Z');
        Ok(text)
    }

    /// Parses an RFC 3339 date-time: any offset (converted to UTC), 0 to 9 fractional
    /// digits, within the years 0001 to 9999, as proto3 JSON parsers accept.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        let t = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| TimestampError::Syntax(format!("{text:?}: {e}")))?;
        let stamp = Self::from(t);
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&stamp.seconds) {
            return Err(TimestampError::OutOfRange {
                seconds: stamp.seconds,
                nanos: stamp.nanos,
            });
        }
        Ok(stamp)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_rfc3339() {
            Ok(text) => f.write_str(&text),
            Err(_) => f
                .debug_struct("Timestamp")
                .field("seconds", &self.seconds)
                .field("nanos", &self.nanos)
                .finish(),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.to_rfc3339().map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::parse_rfc3339(text).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(seconds: i64, nanos: i32) -> String {
        Timestamp { seconds, nanos }.to_rfc3339().unwrap()
    }

    #[test]
    fn json_is_utc_with_z_and_0_3_6_or_9_fraction_digits() {
        assert_eq!(text(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(text(1_893_456_000, 0), "2030-01-01T00:00:00Z");
        assert_eq!(text(1_893_456_000, 500_000_000), "2030-01-01T00:00:00.500Z");
        assert_eq!(text(1_893_456_000, 1_000), "2030-01-01T00:00:00.000001Z");
        assert_eq!(text(1_893_456_000, 1), "2030-01-01T00:00:00.000000001Z");
        assert_eq!(text(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(text(MIN_SECONDS, 0), "0001-01-01T00:00:00Z");
        assert_eq!(
            text(MAX_SECONDS, 999_999_999),
            "9999-12-31T23:59:59.999999999Z"
        );
        let json = serde_json::to_string(&Timestamp {
            seconds: 1_893_456_000,
            nanos: 0,
        })
        .unwrap();
        assert_eq!(json, "\"2030-01-01T00:00:00Z\"");
    }

    #[test]
    fn out_of_range_values_have_no_json() {
        for (seconds, nanos) in [
            (MIN_SECONDS - 1, 0),
            (MAX_SECONDS + 1, 0),
            (0, -1),
            (0, 1_000_000_000),
        ] {
            assert!(Timestamp { seconds, nanos }.to_rfc3339().is_err());
            assert!(serde_json::to_string(&Timestamp { seconds, nanos }).is_err());
        }
    }

    #[test]
    fn parsing_accepts_offsets_and_any_fraction_and_normalises_to_utc() {
        let utc = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(utc.seconds, 1_893_456_000);
        let offset = Timestamp::parse_rfc3339("2030-01-01T03:00:00+03:00").unwrap();
        assert_eq!(offset, utc);
        let fraction = Timestamp::parse_rfc3339("2030-01-01T00:00:00.12Z").unwrap();
        assert_eq!(fraction.nanos, 120_000_000);
        assert_eq!(fraction.to_rfc3339().unwrap(), "2030-01-01T00:00:00.120Z");
        let parsed: Timestamp = serde_json::from_str("\"2030-01-01T00:00:00Z\"").unwrap();
        assert_eq!(parsed, utc);
        assert!(Timestamp::parse_rfc3339("2030-01-01").is_err());
        assert!(Timestamp::parse_rfc3339("0000-12-31T23:59:59Z").is_err());
        assert!(serde_json::from_str::<Timestamp>("1893456000").is_err());
    }

    #[test]
    fn the_wire_form_is_the_well_known_message() {
        use prost::Message;
        let ours = Timestamp {
            seconds: 1_893_456_000,
            nanos: 7,
        };
        let theirs = pbjson_types::Timestamp {
            seconds: 1_893_456_000,
            nanos: 7,
        };
        assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
        assert_eq!(
            Timestamp::decode(theirs.encode_to_vec().as_slice()).unwrap(),
            ours
        );
    }
}
