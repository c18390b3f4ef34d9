//! The address a license is bound to, in one canonical form.
//!
//! A license is bound to the address its panel sees on its own server, and the rule
//! "one live license per IP" compares addresses, so every spelling of one address
//! must become one value before anything compares it. IPv6 has several standard ways
//! of carrying an IPv4 address; each is either **folded** to that IPv4 (it *is* the
//! IPv4 address, spelled in IPv6) or **refused** with the IPv4 named (it is the
//! address of a translator or tunnel that leads to the IPv4 host, not of the server):
//!
//! | form | prefix | here |
//! |---|---|---|
//! | IPv4-mapped (RFC 4291) | `::ffff:0:0/96` | folded: how a dual-stack socket shows an IPv4 peer |
//! | IPv4-compatible (RFC 4291, deprecated) | `::/96` | folded: the original spelling of the IPv4 itself |
//! | IPv4-translated (RFC 2765 SIIT) | `::ffff:0:0:0/96` | refused: a translator's address |
//! | NAT64 well-known prefix (RFC 6052) | `64:ff9b::/96` | refused: a NAT64 gateway's address |
//! | NAT64 local-use prefix (RFC 8215) | `64:ff9b:1::/48` | refused: a NAT64 gateway's address; where in it the IPv4 sits depends on the operator's prefix length |
//! | 6to4 (RFC 3056, deprecated) | `2002::/16` | refused: a tunnel prefix that every host behind the IPv4 shares |
//! | Teredo (RFC 4380) | `2001::/32` | refused: a tunnel address that carries the IPv4 of a relay and of a NAT |
//!
//! The forbidden ranges apply after folding, so `::127.0.0.1` is a loopback address
//! like `127.0.0.1`; a refused form is refused whatever it carries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::FieldViolation;
use super::ids::serde_as_text;

serde_as_text!(LicenseIp, LicenseIp::read_stored);

/// A unicast IPv4 or IPv6 address that a license may be bound to, in its canonical
/// form (see the module comment). Documentation ranges (203.0.113.0/24,
/// 2001:db8::/32, …) and private ranges are accepted: a license only needs an address
/// the panel will see, and operators test with documentation ranges. Loopback,
/// link-local, multicast, broadcast, unspecified and reserved addresses are refused,
/// in every spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LicenseIp(IpAddr);

impl LicenseIp {
    /// Parses and validates; `field` names the request field in the error.
    pub fn parse(s: &str, field: &str) -> Result<Self, FieldViolation> {
        if s.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        let ip: IpAddr = s
            .parse()
            .map_err(|_| FieldViolation::new(field, "must be an IPv4 or IPv6 address"))?;
        Self::new(ip).map_err(|why| FieldViolation::new(field, why))
    }

    /// Validates an address that is already parsed, folding the IPv6 spellings of an
    /// IPv4 address to it.
    pub fn new(ip: IpAddr) -> Result<Self, String> {
        let ip = canonical(ip);
        match ip {
            IpAddr::V4(v4) => check_v4(v4)?,
            IpAddr::V6(v6) => check_v6(v6)?,
        }
        Ok(Self(ip))
    }

    /// Reads an address this service stored or showed earlier. It was valid under
    /// the rules of the version that wrote it: an older version kept the translated
    /// and tunnel forms that are refused now, and reading such a row must not fail.
    /// The spellings folded now are folded here too.
    pub fn read_stored(s: &str) -> Result<Self, FieldViolation> {
        match Self::parse(s, "ip") {
            Ok(ip) => Ok(ip),
            Err(refused) => match s.parse::<IpAddr>().map(canonical) {
                Ok(IpAddr::V6(v6)) if carrier(v6).is_some() => Ok(Self(IpAddr::V6(v6))),
                _ => Err(refused),
            },
        }
    }

    /// The address.
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

/// The canonical form of `ip`: an IPv6 spelling of an IPv4 address (mapped or
/// compatible) becomes that IPv4; everything else is itself. `::` and `::1` are IPv6
/// addresses of their own (unspecified, loopback), not compatible spellings.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match folded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The IPv4 address `ip` spells, for the folded forms.
fn folded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    // `::` and `::1` keep their IPv6 meaning; `::0.0.0.2` and the like fold, and
    // are then refused as IPv4 addresses of "this network".
    if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(low_v4(s));
    }
    None
}

/// The translation or tunnel that an IPv6 address belongs to, for the refused forms.
fn carrier(ip: Ipv6Addr) -> Option<Carrier> {
    let s = ip.segments();
    let (form, v4, whose) = if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        (
            "the IPv4-translated form (::ffff:0:0:0/96)",
            Some(low_v4(s)),
            "a translator's address",
        )
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        (
            "the NAT64 form (64:ff9b::/96)",
            Some(low_v4(s)),
            "a NAT64 gateway's address",
        )
    } else if s[..3] == [0x64, 0xff9b, 0x0001] {
        // Where the IPv4 sits depends on the prefix length the operator chose
        // (RFC 6052 §2.2), which the address does not say.
        (
            "in the local-use NAT64 prefix 64:ff9b:1::/48",
            None,
            "a NAT64 gateway's address",
        )
    } else if s[0] == 0x2002 {
        (
            "a 6to4 address (2002::/16)",
            Some(Ipv4Addr::new(
                (s[1] >> 8) as u8,
                s[1] as u8,
                (s[2] >> 8) as u8,
                s[2] as u8,
            )),
            "a tunnel prefix shared by every host behind that address",
        )
    } else if s[..2] == [0x2001, 0] {
        (
            "a Teredo tunnel address (2001::/32)",
            None,
            "which carries the IPv4 addresses of a relay and a NAT",
        )
    } else {
        return None;
    };
    Some(Carrier { form, v4, whose })
}

/// An IPv6 form that leads to an IPv4 host through a translator or a tunnel.
struct Carrier {
    /// The form, as the refusal names it.
    form: &'static str,
    /// The IPv4 address it carries, where the form says where.
    v4: Option<Ipv4Addr>,
    /// Whose address it is instead of the server's.
    whose: &'static str,
}

impl Carrier {
    fn refusal(&self) -> String {
        let form = self.form;
        match self.v4 {
            Some(v4) => match check_v4(v4) {
                Err(why) => format!("is {form} of {v4}, which {why}"),
                Ok(()) => format!(
                    "is {form} of {v4}, {}: give the server's own address ({v4} if that is it)",
                    self.whose
                ),
            },
            None => format!("is {form}, {}: give the server's own address", self.whose),
        }
    }
}

fn low_v4(s: [u16; 8]) -> Ipv4Addr {
    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)
}

fn check_v4(ip: Ipv4Addr) -> Result<(), String> {
    let why = if ip.is_unspecified() {
        "must not be the unspecified address"
    } else if ip.is_loopback() {
        "must not be a loopback address"
    } else if ip.is_multicast() {
        "must not be a multicast address"
    } else if ip.is_broadcast() {
        "must not be the broadcast address"
    } else if ip.is_link_local() {
        // 169.254.0.0/16: valid only on one link, so no panel is reached through it.
        "must not be a link-local address"
    } else if ip.octets()[0] == 0 || ip.octets()[0] >= 240 {
        // 0.0.0.0/8 ("this network") and 240.0.0.0/4 (reserved) never reach a server.
        "must be a unicast address"
    } else {
        return Ok(());
    };
    Err(why.to_owned())
}

fn check_v6(ip: Ipv6Addr) -> Result<(), String> {
    let why = if ip.is_unspecified() {
        "must not be the unspecified address"
    } else if ip.is_loopback() {
        "must not be a loopback address"
    } else if ip.is_multicast() {
        "must not be a multicast address"
    } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
        // fe80::/10: valid only on one link, so no panel is reached through it.
        "must not be a link-local address"
    } else if let Some(carrier) = carrier(ip) {
        return Err(carrier.refusal());
    } else {
        return Ok(());
    };
    Err(why.to_owned())
}

impl fmt::Display for LicenseIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_text(s: &str) -> String {
        LicenseIp::parse(s, "ip")
            .unwrap_or_else(|e| panic!("{s} refused: {e}"))
            .to_string()
    }

    fn refusal(s: &str) -> String {
        match LicenseIp::parse(s, "server.ip") {
            Ok(ip) => panic!("{s} was accepted as {ip}"),
            Err(e) => {
                assert_eq!(e.field, "server.ip", "the violation names the field");
                e.message
            }
        }
    }

    #[test]
    fn accepts_unicast_including_documentation_and_private_ranges() {
        for ok in [
            "203.0.113.10",
            "198.51.100.1",
            "10.0.0.1",
            "2001:db8::1",
            "2a01:4f8::1",
            "fd00::1",
        ] {
            assert_eq!(canonical_text(ok), ok);
        }
    }

    #[test]
    fn mapped_and_compatible_spellings_fold_to_the_ipv4_they_spell() {
        for (spelled, v4) in [
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("::FFFF:cb00:7109", "203.0.113.9"),
            ("0:0:0:0:0:ffff:203.0.113.9", "203.0.113.9"),
            ("::203.0.113.9", "203.0.113.9"),
            ("::cb00:7109", "203.0.113.9"),
            ("::10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(canonical_text(spelled), v4, "{spelled}");
        }
        assert_eq!(
            LicenseIp::parse("::203.0.113.9", "ip").unwrap(),
            LicenseIp::parse("203.0.113.9", "ip").unwrap(),
            "one address, one value"
        );
    }

    #[test]
    fn translated_and_tunnel_forms_are_refused_naming_the_ipv4() {
        for (form, says) in [
            (
                "64:ff9b::203.0.113.9",
                "the NAT64 form (64:ff9b::/96) of 203.0.113.9",
            ),
            (
                "64:ff9b::cb00:7109",
                "the NAT64 form (64:ff9b::/96) of 203.0.113.9",
            ),
            (
                "64:ff9b:1::cb00:7109",
                "local-use NAT64 prefix 64:ff9b:1::/48",
            ),
            (
                "64:ff9b:1:cb00:71:900::",
                "local-use NAT64 prefix 64:ff9b:1::/48",
            ),
            (
                "2002:cb00:7109::1",
                "a 6to4 address (2002::/16) of 203.0.113.9",
            ),
            (
                "::ffff:0:203.0.113.9",
                "the IPv4-translated form (::ffff:0:0:0/96) of 203.0.113.9",
            ),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ] {
            let message = refusal(form);
            assert!(message.contains(says), "{form}: {message}");
        }
    }

    #[test]
    fn refuses_malformed_unspecified_loopback_multicast_broadcast() {
        for bad in [
            "",
            "300.1.1.1",
            "1.2.3",
            "abc",
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "::1",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "240.0.0.1",
        ] {
            refusal(bad);
        }
    }

    #[test]
    fn forbidden_ipv4_ranges_apply_in_every_embedded_form() {
        for (bad, says) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::127.0.0.1", "loopback"),
            ("::7f00:1", "loopback"),
            ("::ffff:169.254.0.1", "link-local"),
            ("::169.254.1.1", "link-local"),
            ("::224.0.0.1", "multicast"),
            ("::0.0.0.2", "unicast"),
            ("::255.255.255.255", "broadcast"),
            (
                "64:ff9b::127.0.0.1",
                "of 127.0.0.1, which must not be a loopback",
            ),
            (
                "64:ff9b::7f00:1",
                "of 127.0.0.1, which must not be a loopback",
            ),
            ("64:ff9b::0.0.0.0", "NAT64"),
            ("64:ff9b:1::7f00:1", "NAT64"),
            ("64:ff9b:1:7f00:0:100::", "NAT64"),
            (
                "2002:7f00:0001::1",
                "6to4 address (2002::/16) of 127.0.0.1, which",
            ),
            ("2002:a9fe:0101::1", "6to4"),
            ("2002::1", "6to4"),
            ("::ffff:0:127.0.0.1", "translated"),
            ("169.254.10.20", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
        ] {
            let message = refusal(bad);
            assert!(message.contains(says), "{bad}: {message}");
        }
    }

    #[test]
    fn stored_addresses_of_refused_forms_are_still_read() {
        let stored = LicenseIp::read_stored("64:ff9b::cb00:7109").unwrap();
        assert_eq!(stored.to_string(), "64:ff9b::cb00:7109");
        assert_eq!(
            LicenseIp::read_stored("::203.0.113.9").unwrap().to_string(),
            "203.0.113.9"
        );
        assert!(LicenseIp::read_stored("127.0.0.1").is_err());
        assert!(LicenseIp::read_stored("not an address").is_err());
    }
}
