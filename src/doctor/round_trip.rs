//! `doctor --sandbox`: its own sandbox starts empty, so there is nothing to read the
//! shapes of. There, and only there (it spends the sandbox's play money), one license
//! is ordered and read back the ways recovery after a lost answer would: through
//! `soft.edit` until it is active with its key, and through the `soft` list.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{Check, status_name};
use crate::billmanager::{Billmanager, BillmanagerClient, OrderParams, UpstreamId, UpstreamStatus};
use crate::domain::PanelCatalog;

/// The address and name of the license `doctor --sandbox` orders from its sandbox
/// (TEST-NET-1, never a real server).
const SANDBOX_ORDER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SANDBOX_ORDER_NAME: &str = "doctor-check";
/// How long `doctor --sandbox` waits for its license's key.
const KEY_WAIT: Duration = Duration::from_secs(30);
/// How often it reads the license while it waits.
const KEY_POLL: Duration = Duration::from_millis(100);

/// Orders one license from the doctor's own sandbox and reads it back through
/// `soft.edit` (until it is active with a key) and the `soft` list, as recovery after
/// a lost answer would: one check per step, each saying what shape it saw.
pub(super) async fn sandbox_round_trip(
    client: &BillmanagerClient,
    catalog: &PanelCatalog,
) -> Vec<Check> {
    let Some(panel) = catalog.panels().iter().find(|p| !p.trial) else {
        return vec![Check::fail(
            "sandbox order",
            "the catalog has no paid panel to order",
        )];
    };
    let params = OrderParams {
        tariff_id: panel.tariff_id,
        ip: IpAddr::V4(SANDBOX_ORDER_IP),
        period: 1,
        autoprolong: None,
        remote_id: SANDBOX_ORDER_NAME.to_owned(),
        licname: SANDBOX_ORDER_NAME.to_owned(),
        addons: Vec::new(),
    };
    let ordered = match client.order_license_answer(&params).await {
        Ok(ordered) => ordered,
        Err(e) => return vec![Check::fail("sandbox order", format!("refused: {e}"))],
    };
    let mut checks = vec![Check::pass(
        "sandbox order",
        format!(
            "bought license {} ({}, {}) from the sandbox; the answer carried its id at `{}`",
            ordered.id, panel.name, SANDBOX_ORDER_IP, ordered.id_at
        ),
    )];
    checks.push(read_back_details(client, ordered.id, &params).await);
    checks.push(read_back_listed(client, ordered.id).await);
    checks
}

/// Reads license `id` with `soft.edit` until it is active with a key (at most
/// [`KEY_WAIT`]); passes when it is, on the IP and tariff ordered. Says which status
/// codes it went through.
async fn read_back_details(
    client: &BillmanagerClient,
    id: UpstreamId,
    ordered: &OrderParams,
) -> Check {
    const NAME: &str = "read back (soft.edit)";
    let started = tokio::time::Instant::now();
    let mut seen: Vec<u32> = Vec::new();
    loop {
        let details = match client.license_details(id).await {
            Ok(details) => details,
            Err(e) => return Check::fail(NAME, format!("cannot read license {id}: {e}")),
        };
        let code = details.status.code();
        if seen.last() != Some(&code) {
            seen.push(code);
        }
        let keyed = details.license_key.is_some();
        if details.status == UpstreamStatus::Active && keyed {
            let statuses = seen.iter().map(|&c| status_name(c)).collect::<Vec<_>>();
            let ip = ordered.ip.to_string();
            if details.ip.as_deref() != Some(ip.as_str()) {
                return Check::fail(
                    NAME,
                    format!("license {id} shows IP {:?}, ordered {ip}", details.ip),
                );
            }
            if details.tariff_id != Some(ordered.tariff_id) {
                return Check::fail(
                    NAME,
                    format!(
                        "license {id} shows tariff {:?}, ordered {}",
                        details.tariff_id, ordered.tariff_id
                    ),
                );
            }
            return Check::pass(
                NAME,
                format!(
                    "status {} with a key after {:.1} s; IP and tariff as ordered",
                    statuses.join(" → "),
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        if started.elapsed() >= KEY_WAIT {
            let statuses = seen.iter().map(|&c| status_name(c)).collect::<Vec<_>>();
            return Check::fail(
                NAME,
                format!(
                    "license {id} is not active with a key after {} s (status {})",
                    KEY_WAIT.as_secs(),
                    statuses.join(" → ")
                ),
            );
        }
        tokio::time::sleep(KEY_POLL).await;
    }
}

/// Finds license `id` in the `soft` list, as a look-up after a lost answer would;
/// passes when it is there, saying by which column recovery could match it.
async fn read_back_listed(client: &BillmanagerClient, id: UpstreamId) -> Check {
    const NAME: &str = "read back (list)";
    let list = match client.list_licenses().await {
        Ok(list) => list,
        Err(e) => return Check::fail(NAME, format!("cannot list the licenses: {e}")),
    };
    let Some(row) = list.licenses.iter().find(|l| l.id == id) else {
        return Check::fail(
            NAME,
            format!(
                "license {id} is not in the list of {}: a look-up after a lost answer would not find it{}",
                list.licenses.len(),
                list.incomplete
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            ),
        );
    };
    let by = if row.remote_id.as_deref() == Some(SANDBOX_ORDER_NAME) {
        "its remoteid"
    } else if row.licname.as_deref() == Some(SANDBOX_ORDER_NAME) {
        "its licname (no remoteid listed)"
    } else {
        "neither remoteid nor licname; only IP + tariff + creation date"
    };
    Check::pass(
        NAME,
        format!(
            "listed with status {}; a look-up would match it by {by}",
            status_name(row.status.code())
        ),
    )
}
