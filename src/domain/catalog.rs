//! The panel catalog: which control panels can be ordered and under which upstream
//! tariff id. Tariff ids differ by region, so the whole catalog is configuration; the
//! defaults are ISPmanager 6 on the international endpoint.

use std::collections::HashMap;

use serde::Deserialize;

use super::Period;
use super::price::{parse_price, to_cents};

/// One orderable panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panel {
    /// Canonical display name, e.g. `ISPmanager 6 Pro`.
    pub name: String,
    /// Upstream tariff (pricelist) id.
    pub tariff_id: u32,
    /// Trial tariffs are ordered with period -100, once per IP, and cannot be renewed.
    pub trial: bool,
    /// The add-on that carries the node count, for panels sold per node (Business).
    pub nodes_addon: Option<u32>,
    /// Extra names this panel answers to.
    pub aliases: Vec<String>,
}

/// The panel section of the configuration file. When `panels` is non-empty it replaces
/// the defaults entirely; `aliases` adds names (alias → panel name) in either case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelCatalogConfig {
    /// The whole catalog, replacing the defaults.
    #[serde(default)]
    pub panels: Vec<PanelConfig>,
    /// Extra aliases: alias → panel name (or another alias of it).
    #[serde(default)]
    pub aliases: HashMap<String, String>,
    /// The reseller's own selling prices, per panel and period: the cost report sets
    /// the revenue and the margin beside the cost.
    #[serde(default)]
    pub selling_prices: Vec<SellingPriceConfig>,
    /// The currency of the selling prices, e.g. `EUR`; required when any is set.
    #[serde(default)]
    pub selling_currency: Option<String>,
}

/// One selling price in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellingPriceConfig {
    /// The panel (its name or an alias).
    pub panel: String,
    /// The period in months: 1 or 12.
    pub period_months: i32,
    /// What the reseller charges for the panel for the period, e.g. `"12.50"`.
    pub price: String,
}

/// One panel in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelConfig {
    /// Canonical name.
    pub name: String,
    /// Upstream tariff id.
    pub tariff_id: u32,
    /// Whether this is a trial tariff.
    #[serde(default)]
    pub trial: bool,
    /// Node-count add-on id, if the panel is sold per node.
    #[serde(default)]
    pub nodes_addon: Option<u32>,
    /// Extra names.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A panel name that is not in the catalog; the message lists the known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown panel {given:?}; known panels: {}", known.join(", "))]
pub struct UnknownPanel {
    /// The name asked for.
    pub given: String,
    /// The canonical names of every panel.
    pub known: Vec<String>,
}

/// The catalog with a lookup index over folded names.
#[derive(Debug, Clone)]
pub struct PanelCatalog {
    panels: Vec<Panel>,
    index: HashMap<String, usize>,
    /// Selling prices in hundredths, by panel (its index) and period (months).
    selling: HashMap<(usize, i32), i64>,
    selling_currency: String,
}

impl PanelCatalog {
    /// The ISPmanager 6 defaults.
    pub fn defaults() -> Self {
        let panel = |name: &str, tariff_id, trial, nodes_addon| PanelConfig {
            name: name.to_owned(),
            tariff_id,
            trial,
            nodes_addon,
            aliases: Vec::new(),
        };
        Self::build(PanelCatalogConfig {
            panels: vec![
                panel("ISPmanager 6 Lite", 55227, false, None),
                panel("ISPmanager 6 Pro", 55228, false, None),
                panel("ISPmanager 6 Host", 55229, false, None),
                panel("ISPmanager 6 Business", 55230, false, Some(55236)),
                panel("ISPmanager 6 Trial", 55239, true, None),
                panel("ISPmanager 6 Business Trial", 55240, true, None),
            ],
            aliases: HashMap::new(),
            selling_prices: Vec::new(),
            selling_currency: None,
        })
        .expect("the default catalog is consistent")
    }

    /// The catalog a configuration asks for: the defaults unless it lists panels,
    /// plus its aliases. Refuses duplicate names or tariff ids and dangling aliases.
    pub fn from_config(config: PanelCatalogConfig) -> Result<Self, String> {
        if config.panels.is_empty() {
            let mut with_defaults = config;
            with_defaults.panels = Self::defaults()
                .panels
                .into_iter()
                .map(|p| PanelConfig {
                    name: p.name,
                    tariff_id: p.tariff_id,
                    trial: p.trial,
                    nodes_addon: p.nodes_addon,
                    aliases: p.aliases,
                })
                .collect();
            Self::build(with_defaults)
        } else {
            Self::build(config)
        }
    }

    fn build(config: PanelCatalogConfig) -> Result<Self, String> {
        let mut catalog = Self {
            panels: Vec::new(),
            index: HashMap::new(),
            selling: HashMap::new(),
            selling_currency: String::new(),
        };
        for p in config.panels {
            if catalog.panels.iter().any(|q| q.tariff_id == p.tariff_id) {
                return Err(format!("tariff id {} is listed twice", p.tariff_id));
            }
            let at = catalog.panels.len();
            for name in std::iter::once(&p.name).chain(&p.aliases) {
                catalog.insert_name(name, at)?;
            }
            catalog.panels.push(Panel {
                name: p.name,
                tariff_id: p.tariff_id,
                trial: p.trial,
                nodes_addon: p.nodes_addon,
                aliases: p.aliases,
            });
        }
        let mut aliases: Vec<_> = config.aliases.into_iter().collect();
        aliases.sort();
        for (alias, target) in aliases {
            let at = *catalog
                .index
                .get(&fold(&target))
                .ok_or_else(|| format!("alias {alias:?} points at unknown panel {target:?}"))?;
            catalog.insert_name(&alias, at)?;
            catalog.panels[at].aliases.push(alias);
        }
        if catalog.panels.is_empty() {
            return Err("the panel catalog is empty".to_owned());
        }
        catalog.set_selling_prices(&config.selling_prices, config.selling_currency)?;
        Ok(catalog)
    }

    fn set_selling_prices(
        &mut self,
        prices: &[SellingPriceConfig],
        currency: Option<String>,
    ) -> Result<(), String> {
        let currency = currency.map(|c| c.trim().to_owned()).unwrap_or_default();
        if !prices.is_empty() && currency.is_empty() {
            return Err("selling_prices need a selling_currency".to_owned());
        }
        for p in prices {
            let at = *self
                .index
                .get(&fold(&p.panel))
                .ok_or_else(|| format!("a selling price names unknown panel {:?}", p.panel))?;
            let period = Period::paid_months(p.period_months, "period_months")
                .ok()
                .filter(|_| p.period_months != 0)
                .ok_or_else(|| {
                    format!(
                        "the selling price of {:?} has period_months {}; it must be 1 or 12",
                        p.panel, p.period_months
                    )
                })?;
            let cents = parse_price(&p.price).map(to_cents).ok_or_else(|| {
                format!(
                    "the selling price of {:?} is {:?}, not an amount such as \"12.50\"",
                    p.panel, p.price
                )
            })?;
            if self.selling.insert((at, period.months()), cents).is_some() {
                return Err(format!(
                    "{:?} has two selling prices for {} months",
                    p.panel, p.period_months
                ));
            }
        }
        self.selling_currency = currency;
        Ok(())
    }

    fn insert_name(&mut self, name: &str, at: usize) -> Result<(), String> {
        let key = fold(name);
        if key.is_empty() {
            return Err(format!("panel name {name:?} is empty"));
        }
        match self.index.insert(key, at) {
            Some(other) if other != at => Err(format!("panel name {name:?} is used by two panels")),
            _ => Ok(()),
        }
    }

    /// Every panel, in catalog order.
    pub fn panels(&self) -> &[Panel] {
        &self.panels
    }

    /// Finds a panel by name or alias: case-insensitive, with spaces, dashes and
    /// underscores ignored, so `ISPmanager 6 Pro`, `ispmanager-6-pro` and
    /// `ispmanager6_pro` are one panel.
    pub fn resolve(&self, name: &str) -> Result<&Panel, UnknownPanel> {
        self.index
            .get(&fold(name))
            .map(|&at| &self.panels[at])
            .ok_or_else(|| UnknownPanel {
                given: name.to_owned(),
                known: self.panels.iter().map(|p| p.name.clone()).collect(),
            })
    }

    /// Finds a panel by its upstream tariff id.
    pub fn by_tariff(&self, tariff_id: u32) -> Option<&Panel> {
        self.panels.iter().find(|p| p.tariff_id == tariff_id)
    }
}

impl super::cost::SellingPrices for PanelCatalog {
    fn selling_cents(&self, panel: &str, period: Period) -> Option<i64> {
        let at = self.index.get(&fold(panel))?;
        self.selling.get(&(*at, period.months())).copied()
    }

    fn selling_currency(&self) -> &str {
        &self.selling_currency
    }
}

/// The catalog compared with the tariffs the upstream offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogCheck {
    /// Configured panels whose tariff the upstream offers.
    pub present: Vec<Panel>,
    /// Configured panels whose tariff id the upstream does not know: orders for them
    /// would be refused.
    pub missing: Vec<Panel>,
}

impl PanelCatalog {
    /// Splits the catalog by whether `upstream_tariffs` holds each panel's tariff.
    pub fn check(&self, upstream_tariffs: &[u32]) -> CatalogCheck {
        let (present, missing) = self
            .panels
            .iter()
            .cloned()
            .partition(|p| upstream_tariffs.contains(&p.tariff_id));
        CatalogCheck { present, missing }
    }
}

/// Folds a panel name for matching.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_') && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_the_six_ispmanager_6_tariffs() {
        let c = PanelCatalog::defaults();
        let ids: Vec<u32> = c.panels().iter().map(|p| p.tariff_id).collect();
        assert_eq!(ids, [55227, 55228, 55229, 55230, 55239, 55240]);
        assert_eq!(
            c.resolve("ISPmanager 6 Business").unwrap().nodes_addon,
            Some(55236)
        );
    }

    #[test]
    fn names_match_with_case_spaces_dashes_and_underscores_folded() {
        let c = PanelCatalog::defaults();
        for name in [
            "ISPmanager 6 Pro",
            "ispmanager-6-pro",
            "ispmanager6_pro",
            "ISPMANAGER6PRO",
        ] {
            assert_eq!(c.resolve(name).unwrap().tariff_id, 55228, "{name}");
        }
    }

    #[test]
    fn unknown_panel_lists_the_known_names() {
        let err = PanelCatalog::defaults().resolve("cPanel").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cPanel") && text.contains("ISPmanager 6 Lite"),
            "{text}"
        );
    }

    #[test]
    fn aliases_from_config_add_names_to_the_defaults() {
        let config: PanelCatalogConfig = toml::from_str(
            r#"
            [aliases]
            pro = "ISPmanager 6 Pro"
            "#,
        )
        .unwrap();
        let c = PanelCatalog::from_config(config).unwrap();
        assert_eq!(c.resolve("PRO").unwrap().tariff_id, 55228);
        assert_eq!(c.panels().len(), 6);
    }

    #[test]
    fn a_configured_catalog_replaces_the_defaults() {
        let config: PanelCatalogConfig = toml::from_str(
            r#"
            [[panels]]
            name = "ISPmanager 6 Lite RU"
            tariff_id = 4001
            aliases = ["lite"]
            "#,
        )
        .unwrap();
        let c = PanelCatalog::from_config(config).unwrap();
        assert_eq!(c.panels().len(), 1);
        assert_eq!(c.resolve("lite").unwrap().tariff_id, 4001);
        assert!(c.resolve("ISPmanager 6 Pro").is_err());
    }

    #[test]
    fn the_check_splits_panels_by_upstream_tariffs() {
        let check = PanelCatalog::defaults().check(&[55227, 55228, 9999]);
        let names = |ps: &[Panel]| ps.iter().map(|p| p.tariff_id).collect::<Vec<_>>();
        assert_eq!(names(&check.present), [55227, 55228]);
        assert_eq!(names(&check.missing), [55229, 55230, 55239, 55240]);
    }

    #[test]
    fn inconsistent_catalogs_are_refused() {
        let dup: PanelCatalogConfig = toml::from_str(
            "[[panels]]\nname='A'\ntariff_id=1\n[[panels]]\nname='a'\ntariff_id=2\n",
        )
        .unwrap();
        assert!(PanelCatalog::from_config(dup).is_err());
        let dangling: PanelCatalogConfig = toml::from_str("[aliases]\nx = 'nope'\n").unwrap();
        assert!(PanelCatalog::from_config(dangling).is_err());
    }

    #[test]
    fn selling_prices_are_set_per_panel_and_period_over_the_defaults() {
        use crate::domain::SellingPrices;
        let price = |panel: &str, months, price: &str| SellingPriceConfig {
            panel: panel.into(),
            period_months: months,
            price: price.into(),
        };
        let config = |prices: Vec<SellingPriceConfig>, currency: Option<&str>| PanelCatalogConfig {
            selling_prices: prices,
            selling_currency: currency.map(str::to_owned),
            ..PanelCatalogConfig::default()
        };

        let catalog = PanelCatalog::from_config(config(
            vec![
                price("ispmanager-6-pro", 1, "12.5"),
                price("ISPmanager 6 Pro", 12, "120"),
            ],
            Some("EUR"),
        ))
        .unwrap();

        assert_eq!(
            catalog.selling_cents("ISPmanager 6 Pro", Period::Month),
            Some(1_250)
        );
        assert_eq!(
            catalog.selling_cents("ISPmanager 6 Pro", Period::Year),
            Some(12_000)
        );
        assert_eq!(
            catalog.selling_cents("ISPmanager 6 Lite", Period::Month),
            None
        );
        assert_eq!(catalog.selling_currency(), "EUR");
        for (bad, why) in [
            (
                config(vec![price("Pro", 1, "1")], Some("EUR")),
                "unknown panel",
            ),
            (
                config(vec![price("ISPmanager 6 Pro", 3, "1")], Some("EUR")),
                "1 or 12",
            ),
            (
                config(vec![price("ISPmanager 6 Pro", 1, "-1")], Some("EUR")),
                "not an amount",
            ),
            (
                config(vec![price("ISPmanager 6 Pro", 1, "1")], None),
                "selling_currency",
            ),
        ] {
            let err = PanelCatalog::from_config(bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
