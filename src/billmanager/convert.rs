//! From parsed answers ([`Doc`], [`Node`]) to the types of the [`Billmanager`] trait.
//!
//! [`Billmanager`]: super::Billmanager

use super::scrub::bounded;
use super::{
    UpstreamAddon, UpstreamError, UpstreamId, UpstreamLicense, UpstreamStatus, UpstreamTariff,
};
use crate::protocol::{Doc, Node};

/// The new license's id in a `soft.order.param` answer: `doc/id`, else `doc/item.id`
/// (either also inside a nested `doc`), else `id/v` (the `bjson` shape). The answer
/// carried no `doc/error`, so the order was most likely placed: an answer without a
/// readable id is [`UpstreamError::Unreadable`], which is never sent again.
pub(crate) fn order_id(doc: &Doc) -> Result<UpstreamId, UpstreamError> {
    order_id_at(doc).map(|(id, _)| id)
}

/// [`order_id`] and where it was found: `doc/id`, `doc/item.id` or `doc/id/v`.
pub(crate) fn order_id_at(doc: &Doc) -> Result<(UpstreamId, &'static str), UpstreamError> {
    let (raw, at) = doc
        .field("id")
        .map(|raw| (raw, "doc/id"))
        .or_else(|| doc.field("item.id").map(|raw| (raw, "doc/item.id")))
        .or_else(|| {
            doc.node("id")
                .and_then(|id| id.field("v"))
                .map(|raw| (raw, "doc/id/v"))
        })
        .ok_or_else(|| UpstreamError::Unreadable("order answer carried no license id".into()))?;
    match raw.parse::<UpstreamId>() {
        Ok(id) if id > 0 => Ok((id, at)),
        _ => Err(UpstreamError::Unreadable(
            "order answer carried a license id that is not a positive number".into(),
        )),
    }
}

/// `soft.edit` details. When the answer names no id the requested one is used.
pub(crate) fn license_details(
    doc: &Doc,
    requested: UpstreamId,
) -> Result<UpstreamLicense, UpstreamError> {
    license(|name| doc.field(name), Some(requested))
}

/// One row (`elem`) of the `soft` list; a row without a numeric id is an error because
/// silently dropping a license would mislead reconciliation.
pub(crate) fn license_row(elem: &Node) -> Result<UpstreamLicense, UpstreamError> {
    license(|name| elem.field(name), None)
}

fn license<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    fallback_id: Option<UpstreamId>,
) -> Result<UpstreamLicense, UpstreamError> {
    let id = match get("id").or_else(|| get("elid")) {
        Some(raw) => raw.parse::<UpstreamId>().map_err(|_| {
            UpstreamError::Indeterminate("license id in the answer is not numeric".into())
        })?,
        None => fallback_id
            .ok_or_else(|| UpstreamError::Indeterminate("license row without an id".into()))?,
    };
    // Bounded: these fields are stored (drift reports, adopted licenses) and shown.
    let owned = |name: &str| get(name).map(bounded);
    // `pricelist` is the tariff id in details but may be the tariff's name in the list.
    let pricelist = get("pricelist");
    let tariff_id = pricelist.and_then(|p| p.parse::<u32>().ok());
    let tariff_name = owned("pricelist_name")
        .or_else(|| pricelist.filter(|p| p.parse::<u32>().is_err()).map(bounded));
    Ok(UpstreamLicense {
        id,
        ip: owned("ip"),
        licname: owned("licname"),
        remote_id: owned("remoteid"),
        status: status(
            get("status")
                .or_else(|| get("item_status"))
                .or_else(|| get("status_msg")),
        ),
        tariff_id,
        tariff_name,
        license_key: owned("lickey"),
        period: get("period").and_then(|p| p.parse().ok()),
        create_date: owned("createdate"),
        expire_date: owned("expiredate"),
        ip_change_date: owned("ip_change_date"),
        key_change_date: owned("lickey_change_date"),
        ip_changed: owned("real_ipchange"),
        key_changed: owned("real_keychange"),
    })
}

/// A numeric status maps through [`UpstreamStatus::from_code`]; so do the English
/// names clients show for the codes (a translated column without its raw value). A
/// missing or unknown one is `Other(0)` ("Unknown"), which no real code uses.
fn status(raw: Option<&str>) -> UpstreamStatus {
    let Some(raw) = raw.map(str::trim) else {
        return UpstreamStatus::Other(0);
    };
    if let Ok(code) = raw.parse::<u32>() {
        return UpstreamStatus::from_code(code);
    }
    let code = match raw.to_ascii_lowercase().as_str() {
        "ordered" => 1,
        "active" => 2,
        "suspended" | "stopped" => 3,
        "deleted" => 4,
        "processing" => 5,
        _ => 0,
    };
    UpstreamStatus::from_code(code)
}

/// The `pricelist` elements of `pricelist.export`. Elements without a numeric id, and
/// periods without a length or a cost, are skipped.
pub(crate) fn tariffs(doc: &Doc) -> Vec<UpstreamTariff> {
    doc.all("pricelist")
        .into_iter()
        .filter_map(|pricelist| {
            let id = pricelist.attr_or_field("id")?.parse::<u32>().ok()?;
            let name = ["name", "pricelist_name", "intname", "additionintname"]
                .iter()
                .find_map(|n| pricelist.field(n))
                .map(bounded);
            let price = pricelist.child("price");
            let currency = price.and_then(|p| p.attr_or_field("currency")).map(bounded);
            let prices = period_prices(price);
            // Add-ons without a numeric id cannot be ordered by id: skipped, so an
            // order that needs one is priced as unknown rather than without it.
            let addons = pricelist
                .children_named("addon")
                .filter_map(|addon| {
                    Some(UpstreamAddon {
                        id: addon.attr_or_field("id")?.trim().parse::<u32>().ok()?,
                        prices: period_prices(addon.child("price")),
                    })
                })
                .collect();
            Some(UpstreamTariff {
                id,
                name,
                currency,
                prices,
                addons,
            })
        })
        .collect()
}

/// The periods of a `price` element (none without one).
fn period_prices(price: Option<&Node>) -> Vec<(i32, String)> {
    price
        .map(|p| {
            p.children_named("period")
                .filter_map(period_price)
                .collect()
        })
        .unwrap_or_default()
}

/// One `price/period`: the length from a `length` attribute or field (or the element's
/// own text), in months when `type` is `month` (or absent) and in years when it is
/// `year`; periods of other units (days) are not monthly prices and are skipped. The
/// cost from a `cost` attribute or field, kept even when empty so that a quote can
/// say the price is unknown rather than miss the period.
fn period_price(period: &Node) -> Option<(i32, String)> {
    let length = period
        .attr_or_field("length")
        .or(Some(period.text.as_str()).filter(|t| !t.is_empty()))?
        .parse::<i32>()
        .ok()?;
    let months = match period.attr_or_field("type") {
        None | Some("month") => length,
        Some("year") if length > 0 => length.checked_mul(12)?,
        Some(_) => return None,
    };
    let cost = period.attr_or_field("cost").unwrap_or_default();
    Some((months, cost.to_owned()))
}

/// The session id of a `func=auth` answer: `doc/auth/@id`, else the element's text.
pub(crate) fn session_id(doc: &Doc) -> Option<String> {
    let auth = doc.node("auth")?;
    auth.attr("id")
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .or(Some(auth.text.as_str()).filter(|t| !t.is_empty()))
        .map(str::to_owned)
}
