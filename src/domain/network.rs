//! The address a license is bound to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::FieldViolation;
use super::ids::serde_as_text;

serde_as_text!(LicenseIp, |s| LicenseIp::parse(s, "ip"));

/// A unicast IPv4 or IPv6 address that a license may be bound to. Documentation ranges
/// (203.0.113.0/24, 2001:db8::/32, …) and private ranges are accepted: a license only
/// needs an address the panel will see, and operators test with documentation ranges.
/// Loopback, link-local, multicast and unspecified addresses are refused, and so is an
/// IPv6 address that carries such an IPv4 address (IPv4-compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`): another spelling of an address does not change
/// where it leads.
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

    /// Validates an address that is already parsed.
    pub fn new(ip: IpAddr) -> Result<Self, &'static str> {
        // Mapped IPv4 addresses are judged (and stored) as the IPv4 they carry.
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => check_v4(v4)?,
            IpAddr::V6(v6) => check_v6(v6)?,
        }
        Ok(Self(ip))
    }

    /// The address.
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), &'static str> {
    if ip.is_unspecified() {
        return Err("must not be the unspecified address");
    }
    if ip.is_loopback() {
        return Err("must not be a loopback address");
    }
    if ip.is_multicast() {
        return Err("must not be a multicast address");
    }
    if ip.is_broadcast() {
        return Err("must not be the broadcast address");
    }
    // 169.254.0.0/16: valid only on one link, so no panel is reached through it.
    if ip.is_link_local() {
        return Err("must not be a link-local address");
    }
    // 0.0.0.0/8 ("this network") and 240.0.0.0/4 (reserved) never reach a server.
    if ip.octets()[0] == 0 || ip.octets()[0] >= 240 {
        return Err("must be a unicast address");
    }
    Ok(())
}

fn check_v6(ip: Ipv6Addr) -> Result<(), &'static str> {
    if ip.is_unspecified() {
        return Err("must not be the unspecified address");
    }
    if ip.is_loopback() {
        return Err("must not be a loopback address");
    }
    if ip.is_multicast() {
        return Err("must not be a multicast address");
    }
    // fe80::/10: valid only on one link, so no panel is reached through it.
    if ip.segments()[0] & 0xffc0 == 0xfe80 {
        return Err("must not be a link-local address");
    }
    match embedded_v4(ip) {
        Some(v4) => check_v4(v4),
        None => Ok(()),
    }
}

/// The IPv4 address an IPv6 address carries by a standard translation: IPv4-compatible
/// (`::a.b.c.d`, RFC 4291), the NAT64 well-known prefix (`64:ff9b::/96`, RFC 6052) and
/// 6to4 (`2002:aabb:ccdd::/48`, RFC 3056). Mapped addresses are converted before this.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

impl fmt::Display for LicenseIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unicast_including_documentation_ranges() {
        for ok in [
            "203.0.113.10",
            "198.51.100.1",
            "10.0.0.1",
            "2001:db8::1",
            // Private ranges are accepted in every spelling, as in their plain form.
            "::10.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:0a00:0001::1",
            "64:ff9b::203.0.113.7",
            "2002:cb00:7107::1",
        ] {
            assert!(LicenseIp::parse(ok, "ip").is_ok(), "{ok}");
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
            "::ffff:127.0.0.1",
        ] {
            assert!(LicenseIp::parse(bad, "ip").is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_link_local_and_loopback_or_link_local_in_another_form() {
        for bad in [
            "169.254.10.20",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.0.1",
            "::127.0.0.1",
            "::169.254.1.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::169.254.1.1",
            "64:ff9b::0.0.0.0",
            "64:ff9b::224.0.0.1",
            "2002:7f00:0001::1",
            "2002:a9fe:0101::1",
            "2002::1",
        ] {
            let refused = LicenseIp::parse(bad, "ip");
            assert!(refused.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn mapped_ipv4_is_stored_as_ipv4() {
        let ip = LicenseIp::parse("::ffff:203.0.113.9", "ip").unwrap();
        assert_eq!(ip.to_string(), "203.0.113.9");
    }
}
