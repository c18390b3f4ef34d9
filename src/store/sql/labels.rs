//! A downstream account's own labels of its items (`downstream_labels`): read for the
//! account's licenses, set one label at a time.

use anyhow::Context;
use time::OffsetDateTime;

use super::exec::{Conn, Row as _, Value, args, dynamic, fixed};
use crate::domain::{ClientName, ItemLabels, LicenseId};
use crate::store::codec::{license_id, to_micros};

/// The labels `client` set on any of `ids`.
pub(crate) async fn labels<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    ids: &[LicenseId],
) -> anyhow::Result<Vec<(LicenseId, ItemLabels)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT license_id, licname, remoteid FROM downstream_labels \
         WHERE client = $1 AND license_id IN ({})",
        list.join(", ")
    );
    let mut bind: Vec<Value> = vec![client.as_str().into()];
    bind.extend(ids.iter().map(|id| Value::from(id.to_string())));
    let rows = conn
        .fetch_all(dynamic(sql), bind)
        .await
        .context("cannot read the items' labels")?;
    rows.iter()
        .map(|row| {
            let labels = ItemLabels {
                licname: row.opt_text("licname")?,
                remoteid: row.opt_text("remoteid")?,
            };
            Ok((license_id(row.str("license_id")?)?, labels))
        })
        .collect()
}

/// Sets the labels of `labels` that are `Some` (an empty one included) on license `id`
/// for `client`, keeping the others.
pub(crate) async fn set<C: Conn>(
    conn: &mut C,
    client: &ClientName,
    id: LicenseId,
    labels: &ItemLabels,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    conn.execute(
        fixed(
            "INSERT INTO downstream_labels (client, license_id, licname, remoteid, update_time) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (client, license_id) DO UPDATE SET \
             licname = COALESCE(excluded.licname, downstream_labels.licname), \
             remoteid = COALESCE(excluded.remoteid, downstream_labels.remoteid), \
             update_time = excluded.update_time",
        ),
        args![
            client.as_str(),
            id.to_string(),
            labels.licname.clone(),
            labels.remoteid.clone(),
            to_micros(now),
        ],
    )
    .await
    .context("cannot store the item's labels")?;
    Ok(())
}
