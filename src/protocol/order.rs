//! The parameters of `soft.order.param` (and of its pre-check `soft.checkip`): one
//! shape, written by the client and read by the sandbox and the downstream `/billmgr`
//! endpoint, so that what one side sends is what the others read.

use std::collections::BTreeMap;

use super::{ApiError, Params};

/// An order as its form carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderForm {
    /// `pricelist`: the tariff id.
    pub(crate) tariff_id: u32,
    /// `ip`, as sent: each reader checks it as its rules say.
    pub(crate) ip: String,
    /// `period`: 1 or 12 months; -100 for trials.
    pub(crate) period: i32,
    /// `autoprolong`: `Some(1 | 12)`, or `None` (sent as the literal `null`; `off`
    /// and an absent value read the same).
    pub(crate) autoprolong: Option<i32>,
    /// `remoteid`: the caller's own id of the license; empty when absent.
    pub(crate) remote_id: String,
    /// `licname`: the name shown upstream; empty when absent.
    pub(crate) licname: String,
    /// `addon_<id>=<n>` pairs, e.g. the Business node count `addon_55236`.
    pub(crate) addons: BTreeMap<u32, u32>,
    /// `skipbasket=on`: paid at once, no cart.
    pub(crate) skipbasket: bool,
}

impl OrderForm {
    /// The form of a committed order (`sok`, `clicked_button=finish`), in the order the
    /// shop's own pages send it.
    pub(crate) fn to_params(&self) -> Vec<(String, String)> {
        let param = |k: &str, v: String| (k.to_owned(), v);
        let mut form = vec![
            param("sok", "ok".into()),
            param("clicked_button", "finish".into()),
        ];
        if self.skipbasket {
            form.push(param("skipbasket", "on".into()));
        }
        form.extend([
            param("pricelist", self.tariff_id.to_string()),
            param("ip", self.ip.clone()),
            param("period", self.period.to_string()),
            param(
                "autoprolong",
                self.autoprolong
                    .map_or_else(|| "null".to_owned(), |m| m.to_string()),
            ),
            param("remoteid", self.remote_id.clone()),
            param("licname", self.licname.clone()),
        ]);
        form.extend(
            self.addons
                .iter()
                .map(|(addon, count)| (format!("addon_{addon}"), count.to_string())),
        );
        form
    }

    /// Reads the form, refusing with the shop's own `missed` / `value` errors. The
    /// tariff, period and add-ons are only parsed here; whether the tariff takes them
    /// is the reader's rule.
    pub(crate) fn read(p: &Params) -> Result<Self, ApiError> {
        let tariff_id = p.pricelist()?;
        let ip = p.require("ip")?.to_owned();
        let period = p.require_parsed("period")?;
        let autoprolong =
            match p.get("autoprolong") {
                None | Some("null" | "off") => None,
                Some(v) => Some(v.parse().ok().filter(|n| [1, 12].contains(n)).ok_or_else(
                    || ApiError::value("autoprolong", v, "Invalid auto-renewal period"),
                )?),
            };
        Ok(Self {
            tariff_id,
            ip,
            period,
            autoprolong,
            remote_id: p.get("remoteid").unwrap_or_default().to_owned(),
            licname: p.get("licname").unwrap_or_default().to_owned(),
            addons: p.addons()?,
            skipbasket: p.get("skipbasket") == Some("on"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_client_writes_reads_back_the_same() {
        let form = OrderForm {
            tariff_id: 55230,
            ip: "203.0.113.5".into(),
            period: 12,
            autoprolong: Some(12),
            remote_id: "lic-1".into(),
            licname: "srv1".into(),
            addons: BTreeMap::from([(55236, 3)]),
            skipbasket: true,
        };
        let read = OrderForm::read(&Params(form.to_params())).expect("reads");
        assert_eq!(read, form);
        let off = OrderForm {
            autoprolong: None,
            skipbasket: false,
            ..form
        };
        assert_eq!(OrderForm::read(&Params(off.to_params())).unwrap(), off);
    }

    #[test]
    fn a_bad_auto_renewal_period_is_a_value_error() {
        let mut params = OrderForm {
            tariff_id: 1,
            ip: "203.0.113.5".into(),
            period: 1,
            autoprolong: None,
            remote_id: String::new(),
            licname: String::new(),
            addons: BTreeMap::new(),
            skipbasket: true,
        }
        .to_params();
        params.push(("autoprolong".into(), "6".into()));
        let e = OrderForm::read(&Params(params)).unwrap_err();
        assert!(format!("{e:?}").contains("autoprolong"), "{e:?}");
    }
}
