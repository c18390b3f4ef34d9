//! Read-only answers: the `soft` list, the `soft.edit` form, `subaccount` and
//! `pricelist.export`, built as [`Doc`] trees.

use std::time::Duration;

use time::OffsetDateTime;

use super::config::{ListPricelist, SandboxConfig};
use super::doc::{Doc, Node};
use super::rules::to_time;
use super::state::{Record, State};

/// Cents as BILLmanager prints money: `1234` → `12.34`.
pub(crate) fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `ip_change_date` / `lickey_change_date` as configured: the day of the last change,
/// or the day the next one is allowed (how joonte reads them).
fn change_date(cfg: &SandboxConfig, at: Option<OffsetDateTime>, cooldown: Duration) -> String {
    match at {
        None => String::new(),
        Some(t) if cfg.change_dates_as_next_allowed => (t + to_time(cooldown)).date().to_string(),
        Some(t) => t.date().to_string(),
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

/// One `<elem>` of the `soft` list. Its columns are [INFERRED] from `softexternal`.
fn list_elem(cfg: &SandboxConfig, rec: &Record) -> Node {
    let l = &rec.lic;
    let pricelist = match cfg.list_pricelist {
        ListPricelist::Id => l.tariff_id.to_string(),
        ListPricelist::Name => tariff_name(cfg, l.tariff_id),
    };
    let mut e = Node::new("elem");
    e.field("id", l.id);
    e.field("ip", &l.ip);
    e.field("licname", &l.licname);
    e.field("pricelist", pricelist);
    e.field("status", l.status);
    e.field("item_status", l.status);
    e.field("createdate", l.create_time.date());
    e.field("expiredate", l.expire_date);
    e.field("remoteid", &l.remote_id);
    e.field("period", l.period);
    e.field("autoprolong", autoprolong(l.auto_prolong));
    e
}

/// `func=soft`: every license (deleted ones too), by id, optionally paged with
/// `p_num` (1-based) and `p_cnt`.
pub(crate) fn soft_list(
    cfg: &SandboxConfig,
    st: &mut State,
    p_num: Option<usize>,
    p_cnt: Option<usize>,
) -> Doc {
    let all: Vec<&Record> = st.settled().collect();
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

/// `func=soft.edit` without `sok`: the license form.
pub(crate) fn soft_edit_form(cfg: &SandboxConfig, rec: &Record) -> Doc {
    let l = &rec.lic;
    let mut d = Node::new("doc");
    d.field("elid", l.id);
    d.field("id", l.id);
    d.field("name", &l.licname);
    d.field("licname", &l.licname);
    d.field("ip", &l.ip);
    d.field("remoteid", &l.remote_id);
    d.field("lickey", &l.license_key);
    d.field("status", l.status);
    d.field("pricelist", l.tariff_id);
    d.field("pricelist_name", tariff_name(cfg, l.tariff_id));
    d.field("period", l.period);
    d.field("autoprolong", autoprolong(l.auto_prolong));
    d.field("createdate", l.create_time.date());
    d.field("expiredate", l.expire_date);
    d.field(
        "ip_change_date",
        change_date(cfg, rec.ip_changed_at, cfg.ip_change_cooldown),
    );
    d.field(
        "lickey_change_date",
        change_date(cfg, rec.key_changed_at, cfg.key_change_cooldown),
    );
    let addon_ids = cfg
        .prices
        .tariff(l.tariff_id)
        .map(|t| t.addons.clone())
        .unwrap_or_default();
    for id in addon_ids {
        let n = l.addons.get(&id).copied().unwrap_or(0);
        d.field(&format!("addon_{id}"), n);
    }
    Doc {
        root: d,
        list: false,
    }
}

/// `func=subaccount`: the account with its balance.
pub(crate) fn subaccount(cfg: &SandboxConfig, st: &State) -> Doc {
    let mut e = Node::new("elem");
    e.field("id", 1);
    e.field("name", &cfg.user);
    e.field("balance", money(st.balance));
    e.field("currency", &cfg.currency);
    Doc::list(vec![e], 1, 1, 1)
}

fn price_node(cfg: &SandboxConfig, periods: &[(i32, i64)]) -> Node {
    let mut price = Node::new("price").attr("currency", &cfg.currency);
    for (len, cost) in periods {
        price = price.child(
            Node::new("period")
                .attr("length", len)
                .attr("cost", money(*cost)),
        );
    }
    price
}

/// `func=pricelist.export`: the tariffs with their period prices and add-ons.
pub(crate) fn pricelist_export(cfg: &SandboxConfig) -> Doc {
    let mut out = Vec::new();
    for t in &cfg.prices.tariffs {
        let periods: Vec<(i32, i64)> = if t.trial {
            vec![(-100, 0)]
        } else {
            vec![(1, t.month_cents), (12, t.year_cents)]
        };
        let mut p = Node::new("pricelist");
        p.field("id", t.id);
        p.field("name", &t.name);
        p.field("itemtype", "soft");
        p.children.push(price_node(cfg, &periods));
        for addon in t.addons.iter().filter_map(|a| cfg.prices.addon(*a)) {
            let mut a = Node::new("addon");
            a.field("id", addon.id);
            a.field("intname", format!("addon_{}", addon.id));
            a.field("name", &addon.name);
            a.field("addontype", "integer");
            a.field("addonmax", addon.max);
            a.children.push(price_node(
                cfg,
                &[(1, addon.month_cents), (12, addon.year_cents)],
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
    let mut slist = Node::new("slist").attr("name", "pricelist");
    for t in cfg.prices.tariffs.iter() {
        if t.family == family && !t.trial && t.id != rec.lic.tariff_id {
            slist = slist.child(Node::text("val", &t.name).attr("key", t.id));
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
