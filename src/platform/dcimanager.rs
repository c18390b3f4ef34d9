//! DCImanager 6: bare-metal servers at `GET /dci/v3/server` (platforms.md §3, from
//! ISPsystem's API examples). Which fields hold a server's addresses and tags is not
//! documented: both are settings (`dci_ip_field`, `tags_field`).

use serde_json::Value;

use super::config::PlatformConfig;
use super::{ServerRecord, fields};

/// The servers list.
pub const LIST_PATH: &str = "/dci/v3/server";

/// One server of the list; `None` without a numeric `id`.
pub fn parse(row: &Value, config: &PlatformConfig) -> Option<ServerRecord> {
    Some(ServerRecord {
        id: row.get("id")?.as_u64()?,
        name: fields::text(&row["name"]),
        domain: fields::text(&row["domain"]),
        comment: fields::text(&row["comment"]),
        tags: fields::tags(&row[config.tags_field.as_str()]),
        state: fields::text(&row["state"]),
        ipv4: fields::ipv4_list(&row[config.dci_ip_field.as_str()]),
        os: fields::text(&row["os"]),
    })
}
