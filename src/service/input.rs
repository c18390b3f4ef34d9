//! Use-case inputs as plain values, validated here once for both transports.

use crate::domain::{
    ClientName, FieldViolation, Hostname, LicenseIp, LicenseState, MAX_NODES, NewLicense,
    PanelCatalog, Period, ServerId,
};
use crate::store::LicenseFilter;

use super::ServiceError;

/// An order as a transport received it, not yet validated.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OrderInput {
    /// `server.id`.
    pub server_id: String,
    /// `server.ip`.
    pub ip: String,
    /// `server.hostname`.
    pub hostname: String,
    /// `panel`.
    pub panel: String,
    /// `periodMonths` (0 = default).
    pub period_months: i32,
    /// `autoRenew`.
    pub auto_renew: bool,
    /// `nodes`.
    pub nodes: Option<u32>,
    /// `trial`.
    pub trial: bool,
}

/// A listing request as received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListInput {
    /// `serverId` filter ("" = any).
    pub server_id: String,
    /// `ip` filter ("" = any).
    pub ip: String,
    /// `panel` filter ("" = any).
    pub panel: String,
    /// `state` filter.
    pub state: Option<LicenseState>,
    /// `pageSize` (0 = default).
    pub page_size: i32,
    /// `pageToken` ("" = first page).
    pub page_token: String,
    /// Only this client's licenses ("" = any); a caller that sees only its own
    /// licenses sees only its own whatever this says.
    pub client: String,
    /// Only the license with this downstream item id (`/billmgr`'s `elid`).
    pub item_id: Option<u64>,
}

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: i32 = 1000;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

/// Collects every violation instead of stopping at the first, so a caller fixes a
/// request in one round trip.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn check<T>(&mut self, r: Result<T, FieldViolation>) -> Option<T> {
        r.map_err(|v| self.0.push(v)).ok()
    }

    fn finish(self) -> Result<(), ServiceError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(self.0))
        }
    }
}

impl OrderInput {
    /// Validates the order and resolves its panel.
    pub fn validate(
        self,
        client: &ClientName,
        catalog: &PanelCatalog,
    ) -> Result<NewLicense, ServiceError> {
        let mut v = Violations::default();
        let server_id = v.check(ServerId::parse(&self.server_id, "server.id"));
        let ip = v.check(LicenseIp::parse(&self.ip, "server.ip"));
        let hostname = v.check(Hostname::parse(&self.hostname, "server.hostname"));
        let panel = if self.panel.is_empty() {
            v.0.push(FieldViolation::new("panel", "is required"));
            None
        } else {
            match catalog.resolve(&self.panel) {
                Ok(p) => Some(p.clone()),
                Err(unknown) => {
                    v.finish()?;
                    return Err(unknown.into());
                }
            }
        };
        // `trial: true` on a paid panel orders that panel's trial tariff.
        let panel = match panel {
            Some(p) if self.trial && !p.trial => {
                let wanted = if p.nodes_addon.is_some() {
                    "ISPmanager 6 Business Trial"
                } else {
                    "ISPmanager 6 Trial"
                };
                match catalog.resolve(wanted) {
                    Ok(t) if t.trial => Some(t.clone()),
                    _ => {
                        v.0.push(FieldViolation::new(
                            "trial",
                            format!("{} has no trial tariff in the catalog", p.name),
                        ));
                        None
                    }
                }
            }
            other => other,
        };
        let period = match &panel {
            Some(p) if p.trial => {
                if self.period_months != 0 {
                    v.0.push(FieldViolation::new(
                        "periodMonths",
                        "must be unset for a trial (trials have a fixed period)",
                    ));
                }
                Some(Period::Trial)
            }
            _ => v.check(Period::paid_months(self.period_months, "periodMonths")),
        };
        if let (Some(p), Some(n)) = (&panel, self.nodes) {
            if p.nodes_addon.is_none() {
                v.0.push(FieldViolation::new(
                    "nodes",
                    format!("{} is not sold per node; leave nodes unset", p.name),
                ));
            } else if !(1..=MAX_NODES).contains(&n) {
                v.0.push(FieldViolation::new(
                    "nodes",
                    format!("must be between 1 and {MAX_NODES}"),
                ));
            }
        }
        if self.auto_renew && matches!(period, Some(Period::Trial)) {
            v.0.push(FieldViolation::new("autoRenew", "trials cannot be renewed"));
        }
        v.finish()?;
        let (Some(server_id), Some(ip), Some(hostname), Some(panel), Some(period)) =
            (server_id, ip, hostname, panel, period)
        else {
            unreachable!("every missing value recorded a violation");
        };
        Ok(NewLicense {
            client: client.clone(),
            server_id,
            ip,
            hostname,
            nodes: self.nodes.filter(|_| panel.nodes_addon.is_some()),
            panel: panel.name,
            tariff_id: panel.tariff_id,
            period,
            auto_renew: self.auto_renew,
        })
    }
}

impl ListInput {
    /// Validates the listing; returns the filter, the page size and the token.
    pub fn validate(
        self,
        client: Option<&ClientName>,
        catalog: &PanelCatalog,
    ) -> Result<(LicenseFilter, u32, Option<String>), ServiceError> {
        let mut v = Violations::default();
        let server_id = if self.server_id.is_empty() {
            None
        } else {
            v.check(ServerId::parse(&self.server_id, "serverId"))
        };
        let ip = if self.ip.is_empty() {
            None
        } else {
            v.check(LicenseIp::parse(&self.ip, "ip"))
                .map(|ip| ip.to_string())
        };
        let tariff_id = if self.panel.is_empty() {
            None
        } else {
            match catalog.resolve(&self.panel) {
                Ok(p) => Some(p.tariff_id),
                Err(e) => {
                    v.0.push(FieldViolation::new("panel", e.to_string()));
                    None
                }
            }
        };
        let page_size = match self.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                v.0.push(FieldViolation::new(
                    "pageSize",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        };
        v.finish()?;
        let asked = Some(self.client.trim())
            .filter(|c| !c.is_empty())
            .map(|c| ClientName::new(c.to_owned()));
        let filter = LicenseFilter {
            client: client.cloned().or(asked),
            server_id,
            ip,
            tariff_id,
            state: self.state,
            item_id: self.item_id,
        };
        let token = Some(self.page_token).filter(|t| !t.is_empty());
        Ok((filter, page_size as u32, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(panel: &str) -> OrderInput {
        OrderInput {
            server_id: "srv-1".into(),
            ip: "203.0.113.10".into(),
            panel: panel.into(),
            ..Default::default()
        }
    }

    fn validate(input: OrderInput) -> Result<NewLicense, ServiceError> {
        input.validate(&ClientName::anonymous(), &PanelCatalog::defaults())
    }

    fn fields(e: ServiceError) -> Vec<String> {
        e.violations().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_valid_order_resolves_the_tariff() {
        let new = validate(order("ispmanager-6-pro")).unwrap();
        assert_eq!(new.tariff_id, 55228);
        assert_eq!(new.panel, "ISPmanager 6 Pro");
        assert_eq!(new.period, Period::Month);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let e = validate(OrderInput {
            server_id: String::new(),
            ip: "300.1.1.1".into(),
            period_months: 7,
            ..order("ISPmanager 6 Lite")
        })
        .unwrap_err();
        assert_eq!(fields(e), ["server.id", "server.ip", "periodMonths"]);
    }

    #[test]
    fn nodes_are_only_for_business() {
        let e = validate(OrderInput {
            nodes: Some(2),
            ..order("ISPmanager 6 Lite")
        })
        .unwrap_err();
        assert_eq!(fields(e), ["nodes"]);
        let ok = validate(OrderInput {
            nodes: Some(2),
            ..order("ISPmanager 6 Business")
        })
        .unwrap();
        assert_eq!(ok.nodes, Some(2));
    }

    #[test]
    fn unknown_panel_is_its_own_error() {
        let e = validate(order("cPanel")).unwrap_err();
        assert_eq!(e.code(), "UNKNOWN_PANEL");
    }

    #[test]
    fn trial_flag_orders_the_trial_tariff() {
        let t = validate(OrderInput {
            trial: true,
            ..order("ISPmanager 6 Pro")
        })
        .unwrap();
        assert_eq!((t.tariff_id, t.period), (55239, Period::Trial));
        let b = validate(OrderInput {
            trial: true,
            ..order("ISPmanager 6 Business")
        })
        .unwrap();
        assert_eq!(b.tariff_id, 55240);
    }
}
