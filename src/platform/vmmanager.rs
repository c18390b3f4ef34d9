//! VMmanager 6: hosts (virtual machines) at `GET /vm/v3/host`, each with `id`, `name`,
//! `comment`, `domain`, `state`, `ip4` (a list of objects with `ip`) and `os`
//! (platforms.md §2: the Go client and the Terraform provider read these fields). Tags
//! are inferred: read from the configured field when the platform has it.

use serde_json::Value;

use super::config::PlatformConfig;
use super::{ServerRecord, fields};

/// The hosts list.
pub const LIST_PATH: &str = "/vm/v3/host";

/// One host of the list; `None` without a numeric `id`.
pub fn parse(row: &Value, config: &PlatformConfig) -> Option<ServerRecord> {
    Some(ServerRecord {
        id: row.get("id")?.as_u64()?,
        name: fields::text(&row["name"]),
        domain: fields::text(&row["domain"]),
        comment: fields::text(&row["comment"]),
        tags: fields::tags(&row[config.tags_field.as_str()]),
        state: fields::text(&row["state"]),
        ipv4: fields::ipv4_list(&row["ip4"]),
        os: fields::text(&row["os"]),
    })
}
