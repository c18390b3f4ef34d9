//! `soft` (the list) and `soft.edit` (the form; a save moves the license to another
//! IP or asks for a new key). `licname` is the name the license was ordered with,
//! kept by the facade; upstream the facade names each license by its own id, which
//! its recovery relies on, so a save that renames is refused.

use crate::domain::{License, LicenseIp};
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
    let elems = rows
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|(item, l)| items::list_elem(catalog, l, item))
        .collect();
    Ok(Doc::list(elems, total, page, p_cnt.unwrap_or(total)))
}

/// `func=soft.edit`: without `sok` the form; with `sok` and `clicked_button=newkey` a
/// new key; with `sok` otherwise a save of `ip` (a move, sent upstream). The answer of a save is `ok` with the form's fields as they are after
/// it (noc reads the new key at `/doc/lickey`).
pub async fn edit(r: &Req<'_>) -> Result<Doc, ApiError> {
    let (item, license) = r.license().await?;
    let catalog = r.service.catalog();
    if !r.params.sok() {
        return Ok(items::form(catalog, &license, item));
    }
    let id = license.id.to_string();
    let call = r.change_call();
    let mut after = license.clone();
    if r.params.get("clicked_button") == Some("newkey") {
        after = r
            .service
            .reissue_key(&call, &id)
            .await
            .map_err(|e| r.fail(&e))?
            .license;
    } else {
        if let Some(remoteid) = r.params.get("remoteid")
            && remoteid != license.server_id.as_str()
        {
            return Err(ApiError::value(
                "remoteid",
                remoteid,
                "The remoteid of a license is the id it was ordered with and cannot be changed",
            ));
        }
        // Checked before anything is sent, so a refused save changes nothing.
        let current = license.hostname.as_ref().map_or("", |h| h.as_str());
        if let Some(licname) = r.params.get("licname")
            && licname != current
        {
            return Err(ApiError::value(
                "licname",
                licname,
                "The name a license was ordered with cannot be changed here",
            ));
        }
        // Another spelling of the license's own address is no move; anything that
        // is not an address goes to the change, which refuses it naming the field.
        if let Some(ip) = r.params.get("ip")
            && LicenseIp::parse(ip, "ip").ok() != Some(license.ip)
        {
            after = r
                .service
                .change_ip(&call, &id, ip)
                .await
                .map_err(|e| r.fail(&e))?
                .license;
        }
    }
    let mut answer = vec![Node::new("ok")];
    answer.extend(items::form_fields(catalog, &after, item));
    Ok(Doc::form(answer))
}
