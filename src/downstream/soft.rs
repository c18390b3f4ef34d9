//! `soft` (the list) and `soft.edit` (the form; a save renames, moves, parks or asks
//! for a new key). `licname` and `remoteid` are the account's own labels of the
//! item: a save that changes them stores them for the account and shows them back,
//! and sends nothing upstream, where the facade names each license by its own id
//! (its recovery relies on it). A save to `ip=0.0.0.0` parks the license, as
//! ISPsystem's own WHMCS module does when it ends a service, and a save of a parked
//! item to an address takes it back out of the pool there (suspended until
//! `soft.resume`), as that module does when it reuses its parked license.

use std::net::IpAddr;

use crate::domain::{ItemLabels, License, LicenseIp, LicenseState};
use crate::protocol::{ApiError, Doc, Node};
use crate::service::{ListInput, MAX_PAGE_SIZE};

use super::items;
use super::request::Req;

/// `func=soft`: the account's licenses by item id, paged with `p_num` (1-based) and
/// `p_cnt` like the shop's list; `p_elems` counts them all.
pub async fn list(r: &Req<'_>) -> Result<Doc, ApiError> {
    let p_num: Option<usize> = r.params.parse("p_num")?;
    let p_cnt: Option<usize> = r.params.parse("p_cnt")?;
    let mut licenses: Vec<License> = Vec::new();
    let mut token = String::new();
    loop {
        let input = ListInput {
            page_size: MAX_PAGE_SIZE,
            page_token: std::mem::take(&mut token),
            ..ListInput::default()
        };
        let page = r
            .service
            .list_licenses(r.owner(), input)
            .await
            .map_err(|e| r.fail(&e))?;
        licenses.extend(page.items);
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    let ids = r
        .service
        .item_ids(&licenses)
        .await
        .map_err(|e| r.fail(&e))?;
    let mut rows: Vec<(u64, &License)> = licenses
        .iter()
        .filter_map(|l| ids.get(&l.id).map(|item| (*item, l)))
        .collect();
    rows.sort_by_key(|(item, _)| *item);
    let total = rows.len();
    let page = p_num.unwrap_or(1).max(1);
    let (skip, take) = match p_cnt {
        Some(cnt) if cnt > 0 => ((page - 1).saturating_mul(cnt), cnt),
        _ => (0, total),
    };
    let catalog = r.service.catalog();
    let shown: Vec<(u64, &License)> = rows.into_iter().skip(skip).take(take).collect();
    let page_licenses: Vec<License> = shown.iter().map(|(_, l)| (*l).clone()).collect();
    let labels = r
        .service
        .item_labels(&r.principal.client, &page_licenses)
        .await
        .map_err(|e| r.fail(&e))?;
    let elems = shown
        .into_iter()
        .map(|(item, l)| items::list_elem(catalog, l, item, labels.get(&l.id)))
        .collect();
    Ok(Doc::list(elems, total, page, p_cnt.unwrap_or(total)))
}

/// `func=soft.edit`: without `sok` the form; with `sok` and `clicked_button=newkey` a
/// new key (waited for, so that the answer's `/doc/lickey` is the new one, where noc
/// reads it); with `sok` otherwise a save ([`save`]). The answer of a save is `ok`
/// with the form's fields as they are after it.
pub async fn edit(r: &Req<'_>) -> Result<Doc, ApiError> {
    let (item, license) = r.license().await?;
    let catalog = r.service.catalog();
    if !r.params.sok() {
        let labels = r.labels(&license).await?;
        return Ok(items::form(catalog, &license, item, labels.as_ref()));
    }
    let after = if r.params.get("clicked_button") == Some("newkey") {
        r.service
            .reissue_key(&r.change_call(), &license.id.to_string())
            .await
            .map_err(|e| r.fail(&e))?
            .license
    } else {
        save(r, license).await?
    };
    let labels = r.labels(&after).await?;
    let mut answer = vec![Node::new("ok")];
    answer.extend(items::form_fields(catalog, &after, item, labels.as_ref()));
    Ok(Doc::form(answer))
}

/// A save of the form: `ip` 0.0.0.0 (any spelling of "no address") parks the license
/// ([`park`]); another address takes a parked license back out of the pool there, or
/// moves a live one; the license's own address changes nothing. Then `licname` and
/// `remoteid`, when sent, become the account's labels of the item. Labels are checked
/// before anything is sent, and stored only once the change is accepted, so a refused
/// save changes nothing.
async fn save(r: &Req<'_>, license: License) -> Result<License, ApiError> {
    let labels = ItemLabels {
        licname: r.params.get("licname").map(str::to_owned),
        remoteid: r.params.get("remoteid").map(str::to_owned),
    };
    labels.check().map_err(|v| {
        let value = r.params.get(&v.field).unwrap_or_default();
        // Never echoed in full: it may be the oversized text itself.
        let value: String = value.chars().take(64).collect();
        ApiError::value(&v.field, &value, v.message)
    })?;
    let id = license.id.to_string();
    let call = r.change_call();
    let after = match r.params.get("ip") {
        Some(ip) if parks(ip) => park(r, license.clone()).await?,
        Some(ip) if license.state == LicenseState::Parked => {
            r.service
                .unpark(&call, &id, ip)
                .await
                .map_err(|e| r.fail(&e))?
                .license
        }
        // Another spelling of the license's own address is no move; anything that is
        // not an address goes to the change, which refuses it naming the field.
        Some(ip) if LicenseIp::parse(ip, "ip").ok() != Some(license.ip) => {
            r.service
                .change_ip(&call, &id, ip)
                .await
                .map_err(|e| r.fail(&e))?
                .license
        }
        _ => license.clone(),
    };
    r.service
        .set_item_labels(&r.principal.client, &license, &labels)
        .await
        .map_err(|e| r.fail(&e))?;
    Ok(after)
}

/// Whether `ip` is the address a shop parks a license on (`0.0.0.0`, or `::`).
fn parks(ip: &str) -> bool {
    ip.trim()
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

/// Parks the license through the service's release: to the pool by the pool's rules
/// of its tariff, else cancelled (a license with too little paid time left, a full
/// pool; the shop's next reuse of the item is then refused and it orders anew). A
/// license parked already stays as it is.
async fn park(r: &Req<'_>, license: License) -> Result<License, ApiError> {
    if license.state == LicenseState::Parked {
        return Ok(license);
    }
    let released = r
        .service
        .release(&r.change_call(), &license.id.to_string())
        .await
        .map_err(|e| r.fail(&e))?;
    if let Some(why) = &released.cancelled {
        tracing::info!(license_id = %license.id, reason = %why, "downstream park: cancelled by the pool's rules");
    }
    Ok(released.outcome.license)
}

#[cfg(test)]
mod tests {
    use super::parks;

    #[test]
    fn only_the_unspecified_address_parks() {
        for ip in ["0.0.0.0", " 0.0.0.0", "::", "0:0:0:0:0:0:0:0"] {
            assert!(parks(ip), "{ip}");
        }
        for ip in ["", "free.lic", "203.0.113.5", "0.0.0.1", "::1"] {
            assert!(!parks(ip), "{ip}");
        }
    }
}
