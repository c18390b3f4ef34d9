//! Identifier newtypes.

use std::fmt;

use super::FieldViolation;

/// Serializes through `Display` and parses back through `$parse`, so stored snapshots
/// hold the same text the APIs show.
macro_rules! serde_as_text {
    ($ty:ty, $parse:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                let parse: fn(&str) -> Result<$ty, $crate::domain::FieldViolation> = $parse;
                parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_text;

serde_as_text!(LicenseId, LicenseId::parse);
serde_as_text!(ServerId, |s| ServerId::parse(s, "serverId"));
serde_as_text!(ClientName, |s| Ok(ClientName::new(s)));
serde_as_text!(Hostname, |s| Hostname::parse(s, "hostname").and_then(
    |h| h.ok_or_else(|| FieldViolation::new("hostname", "is empty"))
));

/// Our id of a license: a UUIDv7 (time ordered, so ids sort by creation). It is also
/// sent upstream as `remoteid`, which is how a lost order answer is found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LicenseId(uuid::Uuid);

impl LicenseId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses the canonical hyphenated form.
    pub fn parse(s: &str) -> Result<Self, FieldViolation> {
        uuid::Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| FieldViolation::new("id", "must be a license id (a UUID)"))
    }
}

impl fmt::Display for LicenseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Whether `c` is in the Unicode general categories Cf (format: zero-width spaces and
/// joiners, direction marks, the BOM, tags), Zl or Zp (line and paragraph
/// separators), as of Unicode 16.0. The standard library has no category table; this
/// is the complete list of those three categories.
fn is_format_or_separator(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// The caller's id of a server: 1 to 128 printable characters, compared exactly
/// (case-sensitive: `srv-1` and `SRV-1` are two servers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(String);

impl ServerId {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 128;

    /// Validates a server id; `field` names it in the error.
    pub fn parse(s: &str, field: &str) -> Result<Self, FieldViolation> {
        if s.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        // Printable means no control characters and no leading or trailing blanks that
        // would make two ids look equal in a log or a table.
        if s.chars().any(char::is_control) || s.trim() != s {
            return Err(FieldViolation::new(
                field,
                "must be printable, without control characters or surrounding spaces",
            ));
        }
        // Invisible characters would make two ids that look the same different keys
        // (`srv-1` and `srv-1` + U+200B), i.e. two licenses for one server.
        if let Some(c) = s.chars().find(|&c| is_format_or_separator(c)) {
            return Err(FieldViolation::new(
                field,
                format!(
                    "must not contain invisible format or separator characters (found U+{:04X})",
                    u32::from(c)
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An optional server host name, kept for people reading lists; at most 253 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    /// Validates a host name; empty means none.
    pub fn parse(s: &str, field: &str) -> Result<Option<Self>, FieldViolation> {
        if s.is_empty() {
            return Ok(None);
        }
        let valid = s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if valid {
            Ok(Some(Self(s.to_owned())))
        } else {
            Err(FieldViolation::new(field, "must be a DNS host name"))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of an authenticated API client; licenses and request ids are scoped by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientName(String);

impl ClientName {
    /// A placeholder client (`default`) for tests and tools that act outside an
    /// authenticated call; API calls carry the authenticated client's name.
    pub fn anonymous() -> Self {
        Self("default".to_owned())
    }

    /// Wraps a configured client name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_id_refuses_invisible_format_and_separator_characters() {
        for bad in [
            "srv-1\u{200B}",
            "srv\u{200D}-1",
            "\u{FEFF}srv-1",
            "srv-\u{202E}1",
            "srv\u{2028}-1",
            "srv\u{2029}-1",
            "srv-\u{00AD}1",
            "srv-1\u{E0041}",
        ] {
            let refused = ServerId::parse(bad, "server.id").expect_err(bad);
            assert!(refused.message.contains("invisible"), "{refused:?}");
        }
        // Visible non-ASCII text stays allowed, and ids are compared as given.
        assert!(ServerId::parse("сервер-1", "server.id").is_ok());
        assert_ne!(
            ServerId::parse("srv-1", "f").unwrap(),
            ServerId::parse("SRV-1", "f").unwrap()
        );
    }

    #[test]
    fn server_id_accepts_printable_text_up_to_128_chars() {
        assert!(ServerId::parse("srv-1", "f").is_ok());
        assert!(ServerId::parse("сервер 7", "f").is_ok());
        assert!(ServerId::parse(&"x".repeat(128), "f").is_ok());
    }

    #[test]
    fn server_id_refuses_empty_long_and_control_characters() {
        assert!(ServerId::parse("", "f").is_err());
        assert!(ServerId::parse(&"x".repeat(129), "f").is_err());
        assert!(ServerId::parse("a\nb", "f").is_err());
        assert!(ServerId::parse(" a", "f").is_err());
    }

    #[test]
    fn license_id_round_trips_through_text() {
        let id = LicenseId::generate();
        assert_eq!(LicenseId::parse(&id.to_string()).unwrap(), id);
        assert!(LicenseId::parse("nope").is_err());
    }

    #[test]
    fn hostname_is_optional_and_validated() {
        assert_eq!(Hostname::parse("", "h").unwrap(), None);
        assert!(Hostname::parse("web-1.example.com", "h").unwrap().is_some());
        assert!(Hostname::parse("bad host", "h").is_err());
    }
}
