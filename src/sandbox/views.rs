//! Read-only answers: the `soft` list, the `soft.edit` form, `subaccount` and
//! `pricelist.export`, built as [`Doc`] trees.

use super::config::{ListPricelist, SandboxConfig, SavedFilter};
use super::cooldown;
use super::doc::{Doc, Node};
use super::state::{Record, State, status};
use crate::protocol::{SOFT_ITEMTYPE, period_name, status_name};

/// Cents as BILLmanager prints money: `1234` → `12.34`.
pub(crate) fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `ip_change_date` and `lickey_change_date` as configured: the days of the last
/// changes (what `real_ipchange` / `real_keychange` show), or the days the next ones
/// are allowed under the cooldown that applies (how joonte reads them).
fn change_dates(cfg: &SandboxConfig, rec: &Record) -> (time::Date, time::Date) {
    if cfg.change_dates_as_next_allowed {
        (
            cooldown::next_ip_change_day(cfg, rec),
            cooldown::next_key_change_day(cfg, rec),
        )
    } else {
        (rec.lic.real_ipchange, rec.lic.real_keychange)
    }
}

fn autoprolong(v: Option<i32>) -> String {
    v.map_or_else(|| "null".to_owned(), |p| p.to_string())
}

fn tariff_name(cfg: &SandboxConfig, id: u32) -> String {
    cfg.prices
        .tariff(id)
        .map(|t| t.name.clone())
        .unwrap_or_default()
}

/// A message column: the translated text, with the raw value in `orig` unless the
/// sandbox is told to leave it out.
fn message(cfg: &SandboxConfig, name: &str, raw: impl ToString, text: impl ToString) -> Node {
    let node = Node::text(name, text);
    if cfg.translated_without_orig {
        node
    } else {
        node.with_attr("orig", raw)
    }
}

/// One `<elem>` of the `soft` list: the documented columns (billmanager-api.md
/// §10.3), no `remoteid` unless configured.
fn list_elem(cfg: &SandboxConfig, rec: &Record) -> Node {
    let l = &rec.lic;
    let name = tariff_name(cfg, l.tariff_id);
    let pricelist = match cfg.list_pricelist {
        ListPricelist::NameWithOrig => message(cfg, "pricelist", l.tariff_id, &name),
        ListPricelist::Id => Node::text("pricelist", l.tariff_id),
        ListPricelist::Name => Node::text("pricelist", &name),
    };
    let auto = match l.auto_prolong {
        None => message(cfg, "autoprolong", "null", "Off"),
        Some(p) => message(cfg, "autoprolong", p, period_name(p)),
    };
    let cost = cfg
        .prices
        .tariff(l.tariff_id)
        .map(|t| money(t.price(l.period)))
        .unwrap_or_default();
    let mut e = Node::new("elem");
    e.add_field("id", l.id);
    if cfg.list_licname {
        e.add_field("licname", &l.licname);
    }
    e.add_field("ip", &l.ip);
    e.children
        .push(message(cfg, "period", l.period, period_name(l.period)));
    e.add_field("update_expiredate", l.expire_date);
    e.add_field("real_ipchange", l.real_ipchange);
    e.add_field("real_keychange", l.real_keychange);
    e.children.push(pricelist);
    e.add_field("account", &cfg.user);
    e.add_field("project", 1);
    e.add_field("datacentername", "");
    e.add_field("processingmodule", "ISPsystem");
    e.add_field("createdate", l.create_time.date());
    e.add_field("expiredate", l.expire_date);
    e.children.push(auto);
    e.children
        .push(message(cfg, "status_msg", l.status, status_name(l.status)));
    e.children
        .push(message(cfg, "item_status", l.status, status_name(l.status)));
    e.add_field("special_status", 0);
    e.add_field("cost", cost);
    if cfg.list_remoteid {
        e.add_field("remoteid", &l.remote_id);
    }
    e
}

/// `func=soft`: every license (deleted ones too) the saved filter lets through, by
/// id, optionally paged with `p_num` (1-based) and `p_cnt`. The total counts the
/// filtered rows, as a filtered list does.
pub(crate) fn soft_list(
    cfg: &SandboxConfig,
    st: &mut State,
    p_num: Option<usize>,
    p_cnt: Option<usize>,
) -> Doc {
    let filter = st.saved_filter;
    let all: Vec<&Record> = st
        .settled()
        .filter(|r| match filter {
            None => true,
            Some(SavedFilter::ActiveOnly) => r.lic.status == status::ACTIVE,
            Some(SavedFilter::HideAll) => false,
        })
        .collect();
    let total = all.len();
    let page = p_num.unwrap_or(1).max(1);
    let (skip, take) = match p_cnt {
        Some(cnt) if cnt > 0 => ((page - 1).saturating_mul(cnt), cnt),
        _ => (0, total),
    };
    let elems = all
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|r| list_elem(cfg, r))
        .collect();
    Doc::list(elems, total, page, p_cnt.unwrap_or(total))
}

/// `func=soft.edit` without `sok`: the license form; also the answer to a new key
/// (`clicked_button=newkey`), where ISPsystem's WHMCS module reads `/doc/lickey`.
pub(crate) fn soft_edit_form(cfg: &SandboxConfig, rec: &Record) -> Doc {
    let l = &rec.lic;
    let (ip_change_date, lickey_change_date) = change_dates(cfg, rec);
    let mut d = Node::new("doc");
    d.add_field("elid", l.id);
    d.add_field("id", l.id);
    d.add_field("name", &l.licname);
    d.add_field("licname", &l.licname);
    d.add_field("ip", &l.ip);
    d.add_field("remoteid", &l.remote_id);
    d.add_field("lickey", &l.license_key);
    d.add_field("status", l.status);
    d.add_field("pricelist", l.tariff_id);
    d.add_field("pricelist_name", tariff_name(cfg, l.tariff_id));
    d.add_field("period", l.period);
    d.add_field("autoprolong", autoprolong(l.auto_prolong));
    d.add_field("createdate", l.create_time.date());
    d.add_field("expiredate", l.expire_date);
    d.add_field("ip_change_date", ip_change_date);
    d.add_field("lickey_change_date", lickey_change_date);
    let addon_ids = cfg
        .prices
        .tariff(l.tariff_id)
        .map(|t| t.addons.clone())
        .unwrap_or_default();
    for id in addon_ids {
        let n = l.addons.get(&id).copied().unwrap_or(0);
        d.add_field(&format!("addon_{id}"), n);
    }
    Doc {
        root: d,
        list: false,
    }
}

/// `func=subaccount`: the account with its balance.
pub(crate) fn subaccount(cfg: &SandboxConfig, st: &State) -> Doc {
    let mut e = Node::new("elem");
    e.add_field("id", 1);
    e.add_field("name", &cfg.user);
    e.add_field("balance", money(st.balance));
    e.add_field("currency", &cfg.currency);
    Doc::list(vec![e], 1, 1, 1)
}

/// Money as `pricelist.export` prints it: four decimals (`490.0000`).
fn export_money(cents: i64) -> String {
    format!("{}00", money(cents))
}

fn price_node(cfg: &SandboxConfig, periods: &[(i32, i64, &str)]) -> Node {
    let periods: Vec<(i32, String, &str)> = periods
        .iter()
        .map(|(len, cost, label)| (*len, export_money(*cost), *label))
        .collect();
    crate::protocol::price_node(&cfg.currency, &periods)
}

/// `func=pricelist.export`: the tariffs with their period prices and add-ons, shaped
/// like the recorded exports (billmanager-api.md §10.1).
pub(crate) fn pricelist_export(cfg: &SandboxConfig) -> Doc {
    let mut out = Vec::new();
    for t in &cfg.prices.tariffs {
        let periods: Vec<(i32, i64, &str)> = if t.trial {
            vec![(-100, 0, "trial")]
        } else {
            vec![
                (1, t.month_cents, "monthly"),
                (12, t.year_cents, "annually"),
            ]
        };
        let mut p = Node::new("pricelist");
        p.add_field("id", t.id);
        p.add_field("name", &t.name);
        p.add_field("itemtype", SOFT_ITEMTYPE);
        p.children
            .push(Node::new("itemtype_info").with_child(Node::text("intname", "soft")));
        p.add_field("active", "on");
        p.add_field("hideinorder", "off");
        p.children.push(price_node(cfg, &periods));
        for addon in t.addons.iter().filter_map(|a| cfg.prices.addon(*a)) {
            let mut a = Node::new("addon");
            a.add_field("id", addon.id);
            a.add_field("intname", format!("addon_{}", addon.id));
            a.add_field("name", &addon.name);
            a.add_field("addontype", "integer");
            a.add_field("addonmax", addon.max);
            a.children.push(price_node(
                cfg,
                &[
                    (1, addon.month_cents, "monthly"),
                    (12, addon.year_cents, "annually"),
                ],
            ));
            p.children.push(a);
        }
        out.push(p);
    }
    Doc::form(out)
}

/// `service.changepricelist` without `sok`: the tariffs the license may switch to.
pub(crate) fn changepricelist_form(cfg: &SandboxConfig, rec: &Record) -> Doc {
    let family = cfg
        .prices
        .tariff(rec.lic.tariff_id)
        .map(|t| t.family.clone())
        .unwrap_or_default();
    let mut slist = Node::new("slist").with_attr("name", "pricelist");
    for t in cfg.prices.tariffs.iter() {
        if t.family == family && !t.trial && t.id != rec.lic.tariff_id {
            slist = slist.with_child(Node::text("val", &t.name).with_attr("key", t.id));
        }
    }
    Doc::form(vec![
        Node::text("elid", rec.lic.id),
        Node::text("pricelist", rec.lic.tariff_id),
        Node::text("period", rec.lic.period),
        slist,
    ])
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn money_prints_two_decimals() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(600), "6.00");
        assert_eq!(money(1_000_005), "10000.05");
        assert_eq!(money(-250), "-2.50");
    }
}
