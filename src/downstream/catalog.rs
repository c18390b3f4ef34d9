//! `pricelist.export`: the catalog's tariffs only (whatever else the upstream
//! account may buy is not sold here), with the prices of the cached upstream price
//! list (the nodes add-on's price per unit included), shaped like the recorded
//! exports (billmanager-api.md §10.1). Without a price list (the upstream
//! unreachable) the costs are empty, as some exports show them.

use crate::protocol::{ApiError, Doc, Node, SOFT_ITEMTYPE, price_node};

use super::request::Req;

/// `func=pricelist.export`.
pub async fn export(r: &Req<'_>) -> Result<Doc, ApiError> {
    let prices = r.service.price_list().await.ok();
    let mut out = Vec::new();
    for panel in r.service.panels() {
        let upstream = prices
            .as_ref()
            .and_then(|list| list.iter().find(|t| t.id == panel.tariff_id));
        let cost = |prices: Option<&Vec<(i32, String)>>, months: i32| {
            prices
                .and_then(|p| p.iter().find(|(m, _)| *m == months))
                .map(|(_, c)| c.clone())
                .unwrap_or_default()
        };
        let own = upstream.map(|t| &t.prices);
        let periods: Vec<(i32, String, &str)> = if panel.trial {
            vec![(-100, cost(own, -100), "trial")]
        } else {
            vec![
                (1, cost(own, 1), "monthly"),
                (12, cost(own, 12), "annually"),
            ]
        };
        let currency = upstream
            .and_then(|t| t.currency.clone())
            .unwrap_or_default();
        let mut p = Node::new("pricelist");
        p.add_field("id", panel.tariff_id);
        p.add_field("name", &panel.name);
        p.add_field("itemtype", SOFT_ITEMTYPE);
        p.children
            .push(Node::new("itemtype_info").with_child(Node::text("intname", "soft")));
        p.add_field("active", "on");
        p.add_field("hideinorder", "off");
        p.children.push(price_node(&currency, &periods));
        if let Some(addon) = panel.nodes_addon {
            let mut a = Node::new("addon");
            a.add_field("id", addon);
            a.add_field("intname", format!("addon_{addon}"));
            a.add_field("addontype", "integer");
            // The price of one unit, as the upstream states it: a shop (or a facade in
            // front of this one) prices the nodes it orders from it.
            let unit = upstream
                .and_then(|t| t.addons.iter().find(|a| a.id == addon))
                .map(|a| &a.prices);
            a.children.push(price_node(
                &currency,
                &[
                    (1, cost(unit, 1), "monthly"),
                    (12, cost(unit, 12), "annually"),
                ],
            ));
            p.children.push(a);
        }
        out.push(p);
    }
    Ok(Doc::form(out))
}
