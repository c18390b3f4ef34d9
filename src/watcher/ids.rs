//! Server ids and request ids.
//!
//! A server id names the platform instance and the host: `vm6-<instance>:<host id>`
//! (`dci6-…` for DCImanager), stable for the host's life.
//!
//! A request id is derived from everything the call sends plus the generation of the
//! server's license it acts on (the latest license's id and last change), so:
//! - a watcher killed after sending a call and restarted sends the same id, and the
//!   service answers with the first result instead of acting twice;
//! - a later, different need of the same server (it moved back, was re-marked after a
//!   cancellation) gets a new id, because the license it starts from has changed —
//!   never a stale replay of an earlier call.

use sha2::{Digest, Sha256};

use super::api::License;
use super::desired::Wanted;

/// `vm6-<instance>:<host id>`, given the prefix `vm6-<instance>:`.
pub fn server_id(prefix: &str, host: u64) -> String {
    format!("{prefix}{host}")
}

fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        // Length-prefixed, so that no two different part lists hash alike.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// The request id of `EnsureServerLicense` for `wanted`, starting from `latest` (the
/// server's newest license, live or not).
pub fn ensure_request_id(
    server_id: &str,
    wanted: &Wanted,
    period_months: i32,
    auto_renew: bool,
    latest: Option<&License>,
) -> String {
    let (latest_id, latest_updated) = latest.map_or(("-", "-"), |l| (&l.id, &l.updated));
    let ip = wanted.ip.to_string();
    let period = period_months.to_string();
    let parts = [
        "ensure",
        server_id,
        &ip,
        &wanted.panel,
        &wanted.hostname,
        &period,
        if auto_renew { "auto" } else { "manual" },
        latest_id,
        latest_updated,
    ];
    format!("lfw-ens-{}", digest(&parts))
}

/// The request id of cancelling `license_id` of `server_id`.
pub fn cancel_request_id(server_id: &str, license_id: &str) -> String {
    format!("lfw-can-{}", digest(&["cancel", server_id, license_id]))
}

/// The request id of releasing `license_id` of `server_id` to the pool. Not the
/// cancellation's: the service refuses one request id for two different calls.
pub fn release_request_id(server_id: &str, license_id: &str) -> String {
    format!("lfw-rel-{}", digest(&["release", server_id, license_id]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(ip: &str, panel: &str) -> Wanted {
        Wanted {
            ip: ip.parse().unwrap(),
            panel: panel.into(),
            hostname: String::new(),
        }
    }

    fn license(id: &str, updated: &str) -> License {
        License {
            id: id.into(),
            server_id: "vm6-a:1".into(),
            ip: "203.0.113.1".into(),
            panel: "ISPmanager 6 Pro".into(),
            state: "ACTIVE",
            updated: updated.into(),
            updated_secs: 0,
        }
    }

    #[test]
    fn a_server_id_names_the_instance_and_the_host() {
        assert_eq!(server_id("vm6-dc1:", 17), "vm6-dc1:17");
    }

    #[test]
    fn the_same_need_from_the_same_generation_has_the_same_id() {
        let w = wanted("203.0.113.2", "ISPmanager 6 Pro");
        let l = license("L1", "100.0");
        let a = ensure_request_id("vm6-a:1", &w, 1, true, Some(&l));
        assert_eq!(a, ensure_request_id("vm6-a:1", &w, 1, true, Some(&l)));
        assert!(a.starts_with("lfw-ens-") && a.len() <= 255);
    }

    #[test]
    fn any_difference_in_the_call_or_the_generation_changes_the_id() {
        let w = wanted("203.0.113.2", "ISPmanager 6 Pro");
        let l = license("L1", "100.0");
        let base = ensure_request_id("vm6-a:1", &w, 1, true, Some(&l));
        let others = [
            ensure_request_id("vm6-a:2", &w, 1, true, Some(&l)),
            ensure_request_id(
                "vm6-a:1",
                &wanted("203.0.113.3", "ISPmanager 6 Pro"),
                1,
                true,
                Some(&l),
            ),
            ensure_request_id(
                "vm6-a:1",
                &wanted("203.0.113.2", "ISPmanager 6 Lite"),
                1,
                true,
                Some(&l),
            ),
            ensure_request_id("vm6-a:1", &w, 12, true, Some(&l)),
            ensure_request_id("vm6-a:1", &w, 1, false, Some(&l)),
            ensure_request_id("vm6-a:1", &w, 1, true, None),
            ensure_request_id("vm6-a:1", &w, 1, true, Some(&license("L2", "100.0"))),
            ensure_request_id("vm6-a:1", &w, 1, true, Some(&license("L1", "101.0"))),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        assert_ne!(
            cancel_request_id("vm6-a:1", "L1"),
            cancel_request_id("vm6-a:1", "L2")
        );
        assert_ne!(
            release_request_id("vm6-a:1", "L1"),
            release_request_id("vm6-a:1", "L2")
        );
        assert_ne!(
            release_request_id("vm6-a:1", "L1"),
            cancel_request_id("vm6-a:1", "L1")
        );
    }
}
