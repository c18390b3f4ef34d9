//! `soft.order.param` and its pre-check `soft.checkip`. An order becomes the
//! service's OrderLicense: the tariff by id from the catalog, `remoteid` as the server
//! id and (hashed) as the request id, so a repeat from the same account returns the
//! first item instead of buying again; without a `remoteid` the server id is the
//! `licname` (else the IP), and a repeat of the same name, IP and tariff returns the
//! live license it already has.

use sha2::{Digest, Sha256};

use crate::domain::{LicenseIp, PanelCatalog};
use crate::protocol::{ApiError, Doc, Node, OrderForm, Params};
use crate::service::{OrderInput, RequestKey};

use super::request::Req;

/// The request id of an order with `remoteid`: scoped by account like every request
/// id, hashed so that any `remoteid` makes a valid one.
fn request_key(remoteid: &str) -> RequestKey {
    let key = format!("billmgr-remoteid-{}", hex::encode(Sha256::digest(remoteid)));
    RequestKey::parse(&key, "remoteid").expect("a hex digest is a valid request id")
}

/// The order's parameters as the service's input.
fn order_input(catalog: &PanelCatalog, p: &Params) -> Result<OrderInput, ApiError> {
    let form = OrderForm::read(p)?;
    let tariff = form.tariff_id;
    let panel = catalog
        .panels()
        .iter()
        .find(|x| x.tariff_id == tariff)
        .ok_or_else(|| {
            ApiError::value(
                "pricelist",
                &tariff.to_string(),
                format!("Unknown tariff plan {tariff}"),
            )
        })?;
    let period = form.period;
    let period_months = match (panel.trial, period) {
        (true, -100) => 0,
        (false, 1 | 12) => period,
        _ => {
            return Err(ApiError::value(
                "period",
                &period.to_string(),
                "Invalid period for this tariff plan",
            ));
        }
    };
    // The service renews for the license's own period.
    let auto_renew = form.autoprolong.is_some();
    let mut nodes = None;
    for (&addon, &n) in &form.addons {
        if Some(addon) != panel.nodes_addon {
            let name = format!("addon_{addon}");
            return Err(ApiError::value(
                &name,
                &n.to_string(),
                format!("Unknown add-on {addon}"),
            ));
        }
        nodes = Some(n);
    }
    let ip = form.ip.as_str();
    let licname = form.licname.as_str();
    // Named by its address, a server is named by the canonical one, so two spellings
    // of one address are one server (the order refuses what is no address at all).
    let canonical_ip = LicenseIp::parse(ip, "ip").map_or_else(|_| ip.to_owned(), |i| i.to_string());
    let server_id = Some(form.remote_id.as_str())
        .filter(|r| !r.is_empty())
        .or(Some(licname).filter(|n| !n.is_empty()))
        .map_or(canonical_ip, str::to_owned);
    Ok(OrderInput {
        server_id,
        ip: ip.to_owned(),
        hostname: licname.to_owned(),
        panel: panel.name.clone(),
        period_months,
        auto_renew,
        nodes,
        trial: false,
    })
}

/// `func=soft.order.param`: `<doc><ok/><id>N</id><item.id>N</item.id></doc>`, the id
/// where each public client reads it (`/doc/id`, `item.id`, and `id.v` in bjson). The
/// license is then in status 5 until it is active with its key.
pub async fn order(r: &Req<'_>) -> Result<Doc, ApiError> {
    let p = r.params;
    if !p.sok() {
        return Err(ApiError::missed("sok"));
    }
    if p.get("skipbasket") != Some("on") {
        return Err(ApiError::value(
            "skipbasket",
            p.get("skipbasket").unwrap_or_default(),
            "Only paid orders are taken (skipbasket=on): there is no cart here",
        ));
    }
    let input = order_input(r.service.catalog(), p)?;
    let call = crate::service::Call {
        request: p.get("remoteid").map(request_key),
        ..r.call()
    };
    let outcome = r
        .service
        .order_license(&call, input)
        .await
        .map_err(|e| r.fail(&e))?;
    let item = r
        .service
        .item_id(&outcome.license)
        .await
        .map_err(|e| r.fail(&e))?;
    Ok(Doc::form(vec![
        Node::new("ok"),
        Node::text("id", item),
        Node::text("item.id", item),
    ]))
}

/// `func=soft.checkip`: whether the order would be taken now (tariff, period, IP, and
/// no live license on the IP). Buys nothing.
pub async fn checkip(r: &Req<'_>) -> Result<Doc, ApiError> {
    let input = order_input(r.service.catalog(), r.params)?;
    r.service
        .check_order(&r.call(), input)
        .await
        .map_err(|e| r.fail(&e))?;
    Ok(Doc::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_order_maps_tariff_period_addons_and_remoteid() {
        let catalog = PanelCatalog::defaults();
        let input = order_input(
            &catalog,
            &params(&[
                ("pricelist", "55230;"),
                ("period", "12"),
                ("ip", "203.0.113.5"),
                ("licname", "srv1.example.com"),
                ("remoteid", "l42"),
                ("addon_55236", "3"),
                ("autoprolong", "12"),
            ]),
        )
        .unwrap();
        assert_eq!(input.server_id, "l42");
        assert_eq!(input.panel, "ISPmanager 6 Business");
        assert_eq!(
            (input.period_months, input.nodes, input.auto_renew),
            (12, Some(3), true)
        );
        assert_eq!(input.hostname, "srv1.example.com");
    }

    #[test]
    fn without_remoteid_the_name_then_the_ip_is_the_server() {
        let catalog = PanelCatalog::defaults();
        let base = [
            ("pricelist", "55228"),
            ("period", "1"),
            ("ip", "203.0.113.5"),
        ];
        let by_ip = order_input(&catalog, &params(&base)).unwrap();
        assert_eq!(by_ip.server_id, "203.0.113.5");
        for spelled in ["::ffff:203.0.113.5", "::203.0.113.5", "::CB00:7105"] {
            let mut other = base.to_vec();
            other[2] = ("ip", spelled);
            assert_eq!(
                order_input(&catalog, &params(&other)).unwrap().server_id,
                "203.0.113.5",
                "{spelled} names the same server"
            );
        }
        let mut named = base.to_vec();
        named.push(("licname", "srv1"));
        assert_eq!(
            order_input(&catalog, &params(&named)).unwrap().server_id,
            "srv1"
        );
    }

    #[test]
    fn trials_take_period_minus_100_and_unknown_tariffs_and_addons_are_refused() {
        let catalog = PanelCatalog::defaults();
        let trial = order_input(
            &catalog,
            &params(&[
                ("pricelist", "55239"),
                ("period", "-100"),
                ("ip", "203.0.113.5"),
            ]),
        )
        .unwrap();
        assert_eq!(trial.period_months, 0);
        let kind =
            |pairs: &[(&str, &str)]| order_input(&catalog, &params(pairs)).unwrap_err().object;
        assert_eq!(
            kind(&[("pricelist", "1"), ("period", "1"), ("ip", "1.2.3.4")]),
            "pricelist"
        );
        assert_eq!(
            kind(&[
                ("pricelist", "55228"),
                ("period", "-100"),
                ("ip", "1.2.3.4")
            ]),
            "period"
        );
        assert_eq!(
            kind(&[
                ("pricelist", "55228"),
                ("period", "1"),
                ("ip", "1.2.3.4"),
                ("addon_9", "1")
            ]),
            "addon_9"
        );
        assert_eq!(kind(&[("pricelist", "55228"), ("period", "1")]), "ip");
    }

    #[test]
    fn request_keys_are_stable_and_distinct_per_remoteid() {
        assert_eq!(request_key("l1"), request_key("l1"));
        assert_ne!(request_key("l1"), request_key("l2"));
        assert!(request_key(&"ü".repeat(500)).as_str().len() < 100);
    }
}
