//! A license as the shop shows a `soft` item: its status code, a row of the `soft`
//! list and the `soft.edit` form. The id is the license's item id, never the
//! upstream's; the key shows only once the license is active with it. `licname` and
//! `remoteid` are the account's own labels of the item when it set them, else the
//! license's host name and server id; a parked license shows the address it is
//! parked on upstream.

use crate::domain::{ItemLabels, License, LicenseState, PARKED_IP, PanelCatalog};
use crate::protocol::{Doc, Node, period_name, status, status_name};

/// The shop's status code of a license: 5 (processing) until it is active with a key
/// and while a person must look at it; a refused order (nothing bought) reads as
/// deleted, like a cancelled license.
pub fn status_of(l: &License) -> u32 {
    match l.state {
        LicenseState::Active if l.license_key.is_some() => status::ACTIVE,
        LicenseState::Pending
        | LicenseState::Provisioning
        | LicenseState::Active
        | LicenseState::NeedsAttention => status::PROCESSING,
        // Parked: suspended upstream, as the shop parks its own.
        LicenseState::Suspended | LicenseState::Parked => status::SUSPENDED,
        // Its license went on under another item.
        LicenseState::Cancelled | LicenseState::Failed | LicenseState::Reused => status::DELETED,
    }
}

/// The key, empty until the license is active with it.
fn key_of(l: &License) -> &str {
    match status_of(l) {
        status::ACTIVE | status::SUSPENDED => l.license_key.as_deref().unwrap_or_default(),
        _ => "",
    }
}

/// The item's `licname`: the account's label, else the license's host name.
fn licname<'a>(l: &'a License, labels: Option<&'a ItemLabels>) -> &'a str {
    labels
        .and_then(|x| x.licname.as_deref())
        .unwrap_or_else(|| l.hostname.as_ref().map_or("", |h| h.as_str()))
}

/// The item's `remoteid`: the account's label, else the license's server id.
fn remoteid<'a>(l: &'a License, labels: Option<&'a ItemLabels>) -> &'a str {
    labels
        .and_then(|x| x.remoteid.as_deref())
        .unwrap_or_else(|| l.server_id.as_str())
}

/// The item's `ip`: where the license is bound upstream.
fn ip_of(l: &License) -> String {
    if l.state == LicenseState::Parked {
        PARKED_IP.to_owned()
    } else {
        l.ip.to_string()
    }
}

fn date(t: Option<time::OffsetDateTime>) -> String {
    t.map(|t| t.date().to_string()).unwrap_or_default()
}

fn tariff_name(catalog: &PanelCatalog, l: &License) -> String {
    catalog
        .panels()
        .iter()
        .find(|p| p.tariff_id == l.tariff_id)
        .map_or_else(|| l.panel.clone(), |p| p.name.clone())
}

fn autoprolong(l: &License) -> String {
    if l.auto_renew {
        l.period.upstream_value().to_string()
    } else {
        "null".into()
    }
}

/// A message column: the text, with the raw value in `orig`.
fn message(name: &str, raw: impl ToString, text: impl ToString) -> Node {
    Node::text(name, text).with_attr("orig", raw)
}

/// One `<elem>` of the `soft` list: the shop's documented columns
/// (billmanager-api.md §10.3) plus `status`.
pub fn list_elem(
    catalog: &PanelCatalog,
    l: &License,
    item: u64,
    labels: Option<&ItemLabels>,
) -> Node {
    let code = status_of(l);
    let period = l.period.upstream_value();
    let mut e = Node::new("elem");
    e.add_field("id", item);
    e.add_field("licname", licname(l, labels));
    e.add_field("ip", ip_of(l));
    e.children
        .push(message("period", period, period_name(period)));
    e.add_field("update_expiredate", date(l.expire_time));
    e.add_field("real_ipchange", "");
    e.add_field("real_keychange", "");
    e.children
        .push(message("pricelist", l.tariff_id, tariff_name(catalog, l)));
    e.add_field("account", l.client.as_str());
    e.add_field("project", 1);
    e.add_field("datacentername", "");
    e.add_field("processingmodule", "license-facade");
    e.add_field("createdate", l.create_time.date());
    e.add_field("expiredate", date(l.expire_time));
    e.children.push(if l.auto_renew {
        message("autoprolong", period, period_name(period))
    } else {
        message("autoprolong", "null", "Off")
    });
    e.children
        .push(message("status_msg", code, status_name(code)));
    e.children
        .push(message("item_status", code, status_name(code)));
    e.add_field("status", code);
    e.add_field("special_status", 0);
    e.add_field("cost", "");
    e
}

/// The flat fields of the `soft.edit` form (what noc reads at `/doc/lickey`,
/// `/doc/expiredate`, …).
pub fn form_fields(
    catalog: &PanelCatalog,
    l: &License,
    item: u64,
    labels: Option<&ItemLabels>,
) -> Vec<Node> {
    let licname = licname(l, labels);
    let mut fields = vec![
        Node::text("elid", item),
        Node::text("id", item),
        Node::text("name", licname),
        Node::text("licname", licname),
        Node::text("ip", ip_of(l)),
        Node::text("remoteid", remoteid(l, labels)),
        Node::text("lickey", key_of(l)),
        Node::text("status", status_of(l)),
        Node::text("pricelist", l.tariff_id),
        Node::text("pricelist_name", tariff_name(catalog, l)),
        Node::text("period", l.period.upstream_value()),
        Node::text("autoprolong", autoprolong(l)),
        Node::text("createdate", l.create_time.date()),
        Node::text("expiredate", date(l.expire_time)),
        Node::text("ip_change_date", ""),
        Node::text("lickey_change_date", ""),
    ];
    let addon = catalog
        .panels()
        .iter()
        .find(|p| p.tariff_id == l.tariff_id)
        .and_then(|p| p.nodes_addon);
    if let Some(addon) = addon {
        fields.push(Node::text(format!("addon_{addon}"), l.nodes.unwrap_or(0)));
    }
    fields
}

/// The `soft.edit` form.
pub fn form(catalog: &PanelCatalog, l: &License, item: u64, labels: Option<&ItemLabels>) -> Doc {
    Doc::form(form_fields(catalog, l, item, labels))
}
