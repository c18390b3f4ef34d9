//! What a platform server should have: the panel its markers name (resolved against
//! license-facade's panel catalog) bound to the address the rules pick.
//!
//! Markers are read in this order, the first one found wins: `panel=<name>` in the
//! comment, a tag `panel=<name>`, ISPsystem's recipe tag `lic_ISPmanager_6_<Tier>` (in
//! the tags or the comment), the OS template's name. `panel=none` unmarks a server
//! whatever else it carries.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::config::{AddressPick, MarkerRules};
use crate::platform::ServerRecord;

/// license-facade's panels by every name they answer to, folded as the service folds
/// them (case, spaces, dashes and underscores ignored).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_name: HashMap<String, String>,
}

impl Catalog {
    /// A catalog of `(canonical name, aliases)`.
    pub fn new<'a>(panels: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut by_name = HashMap::new();
        for (name, aliases) in panels {
            by_name.insert(fold(name), name.to_owned());
            for alias in aliases {
                by_name.insert(fold(alias), name.to_owned());
            }
        }
        Self { by_name }
    }

    /// The canonical name of the panel `name` names.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        self.by_name.get(&fold(name)).map(String::as_str)
    }
}

fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// What a listed server should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A license of `panel` on `ip`.
    Wanted(Wanted),
    /// No marker (or `panel=none`): no license.
    Unmarked,
    /// Marked, but without an address the rules accept: its license is left as it is.
    NoAddress {
        /// The canonical panel.
        panel: String,
    },
    /// A marker naming no panel license-facade knows: its license is left as it is.
    UnknownPanel {
        /// The marker's text.
        marker: String,
    },
}

/// The license a server should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The address.
    pub ip: Ipv4Addr,
    /// The canonical panel name.
    pub panel: String,
    /// A DNS host name for people reading lists (empty when the server has none).
    pub hostname: String,
}

/// What `server` should have under `rules`.
pub fn observe(
    server: &ServerRecord,
    rules: &MarkerRules,
    pick: AddressPick,
    catalog: &Catalog,
) -> Observed {
    let Some(marker) = marker(server, rules) else {
        return Observed::Unmarked;
    };
    let Some(panel) = catalog.resolve(&marker) else {
        return Observed::UnknownPanel { marker };
    };
    let panel = panel.to_owned();
    match address(&server.ipv4, pick) {
        Some(ip) => Observed::Wanted(Wanted {
            ip,
            panel,
            hostname: hostname(server),
        }),
        None => Observed::NoAddress { panel },
    }
}

/// The panel text a server's markers name; `None` when unmarked.
fn marker(server: &ServerRecord, rules: &MarkerRules) -> Option<String> {
    let found = rules
        .comment_key
        .as_deref()
        .and_then(|key| keyed(words(&server.comment), key))
        .or_else(|| {
            let key = rules.tag_key.as_deref()?;
            keyed(server.tags.iter().map(String::as_str), key)
        })
        .or_else(|| {
            rules.recipe_tags.then_some(())?;
            server
                .tags
                .iter()
                .map(String::as_str)
                .chain(words(&server.comment))
                .find_map(recipe_tag)
        })
        .or_else(|| rules.os.get(&server.os).cloned())?;
    (!found.eq_ignore_ascii_case("none")).then_some(found)
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';'))
        .filter(|w| !w.is_empty())
}

/// The value of the first `key=value` among `words`.
fn keyed<'a>(mut words: impl Iterator<Item = &'a str>, key: &str) -> Option<String> {
    words.find_map(|w| {
        let (k, v) = w.split_once('=')?;
        (k.eq_ignore_ascii_case(key) && !v.is_empty()).then(|| v.to_owned())
    })
}

/// `lic_ISPmanager_6_Pro` → `ISPmanager 6 Pro` (BILLmanager's tag convention: the
/// license name with spaces as `_`, after `lic_`).
fn recipe_tag(word: &str) -> Option<String> {
    let name = word
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("lic_"))
        .map(|_| &word[4..])?;
    (!name.is_empty()).then(|| name.replace('_', " "))
}

/// The address the license is bound to.
pub fn address(ips: &[Ipv4Addr], pick: AddressPick) -> Option<Ipv4Addr> {
    match pick {
        AddressPick::First => ips.first().copied(),
        AddressPick::FirstPublic => ips.iter().copied().find(|ip| is_public(*ip)),
    }
}

/// Not private (RFC 1918), shared (RFC 6598), loopback, link-local, unspecified,
/// broadcast or multicast. (The documentation ranges count as public: the simulator
/// hands them out.)
fn is_public(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_private()
        || shared
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0)
}

/// The server's domain if it is a DNS name, else its name if that is one, else none.
fn hostname(server: &ServerRecord) -> String {
    [&server.domain, &server.name]
        .into_iter()
        .find(|n| is_dns_name(n))
        .cloned()
        .unwrap_or_default()
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let pro = ["pro".to_owned()];
        Catalog::new([
            ("ISPmanager 6 Lite", &[][..]),
            ("ISPmanager 6 Pro", &pro[..]),
        ])
    }

    fn server(comment: &str, tags: &[&str], os: &str, ips: &[&str]) -> ServerRecord {
        ServerRecord {
            id: 7,
            name: "web 1".into(),
            domain: "web1.example.com".into(),
            comment: comment.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            state: "active".into(),
            ipv4: ips.iter().map(|i| i.parse().unwrap()).collect(),
            os: os.into(),
        }
    }

    fn rules() -> MarkerRules {
        MarkerRules {
            comment_key: Some("panel".into()),
            tag_key: Some("panel".into()),
            recipe_tags: true,
            os: [(
                "ISPmanager on Alma".to_owned(),
                "ispmanager-6-lite".to_owned(),
            )]
            .into(),
        }
    }

    fn wanted(s: &ServerRecord) -> Observed {
        observe(s, &rules(), AddressPick::FirstPublic, &catalog())
    }

    #[test]
    fn each_marker_kind_names_a_panel_in_order() {
        let pro = |ip: &str| {
            Observed::Wanted(Wanted {
                ip: ip.parse().unwrap(),
                panel: "ISPmanager 6 Pro".into(),
                hostname: "web1.example.com".into(),
            })
        };
        let ips = ["10.0.0.5", "203.0.113.9"];
        assert_eq!(
            wanted(&server("client 12, panel=ispmanager-6-pro", &[], "", &ips)),
            pro("203.0.113.9")
        );
        assert_eq!(
            wanted(&server("", &["panel=PRO"], "", &ips)),
            pro("203.0.113.9")
        );
        assert_eq!(
            wanted(&server("", &["lic_ISPmanager_6_Pro"], "", &ips)),
            pro("203.0.113.9")
        );
        assert_eq!(
            wanted(&server("order lic_ISPmanager_6_Pro", &[], "", &ips)),
            pro("203.0.113.9")
        );
        let lite = wanted(&server("", &[], "ISPmanager on Alma", &ips));
        assert!(matches!(lite, Observed::Wanted(w) if w.panel == "ISPmanager 6 Lite"));
        // The comment wins over a tag.
        let both = wanted(&server("panel=ispmanager-6-lite", &["panel=pro"], "", &ips));
        assert!(matches!(both, Observed::Wanted(w) if w.panel == "ISPmanager 6 Lite"));
    }

    #[test]
    fn unmarked_none_unknown_and_private_only_servers_are_told_apart() {
        let ips = ["203.0.113.9"];
        assert_eq!(
            wanted(&server("web server", &[], "Ubuntu", &ips)),
            Observed::Unmarked
        );
        assert_eq!(
            wanted(&server("panel=none", &["lic_ISPmanager_6_Pro"], "", &ips)),
            Observed::Unmarked
        );
        assert_eq!(
            wanted(&server("panel=cpanel", &[], "", &ips)),
            Observed::UnknownPanel {
                marker: "cpanel".into()
            }
        );
        assert_eq!(
            wanted(&server(
                "panel=pro",
                &[],
                "",
                &["10.1.2.3", "100.64.0.1", "127.0.0.1"]
            )),
            Observed::NoAddress {
                panel: "ISPmanager 6 Pro".into()
            }
        );
        let natted = observe(
            &server("panel=pro", &[], "", &["10.1.2.3"]),
            &rules(),
            AddressPick::First,
            &catalog(),
        );
        assert!(matches!(natted, Observed::Wanted(w) if w.ip == Ipv4Addr::new(10, 1, 2, 3)));
    }

    #[test]
    fn the_host_name_is_sent_only_when_it_is_a_dns_name() {
        let mut s = server("panel=pro", &[], "", &["203.0.113.9"]);
        s.domain.clear();
        s.name = "web-1".into();
        assert!(matches!(wanted(&s), Observed::Wanted(w) if w.hostname == "web-1"));
        s.name = "web 1 (old)".into();
        assert!(matches!(wanted(&s), Observed::Wanted(w) if w.hostname.is_empty()));
    }
}
