//! The business rules of the simulated BILLmanager: ordering, renewing, moving, re-keying
//! and switching tariffs, each checking everything before it changes anything (a refused
//! request must leave no trace).

use std::collections::BTreeMap;
use std::net::IpAddr;

use time::Date;

use super::config::{DuplicateIpPolicy, SandboxConfig, Tariff};
use super::cooldown;
use super::doc::ApiError;
use super::state::{
    NewSandboxLicense, SandboxRenewal, State, add_months, is_parking_ip, random_hex, status,
};

/// A validated-on-use order (`soft.order.param`) or pre-check (`soft.checkip`): the
/// protocol's form, its IP checked and canonical.
pub(crate) type OrderRequest = crate::protocol::OrderForm;

/// The trial period code.
const TRIAL_PERIOD: i32 = -100;

/// A std duration as a `time` one (saturating; configured values are never huge).
pub(crate) fn to_time(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Checks an IP address (v4 or v6) and returns its canonical text.
pub(crate) fn check_ip(ip: &str) -> Result<String, ApiError> {
    ip.trim()
        .parse::<IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| ApiError::value("ip", ip, format!("Invalid IP address '{ip}'")))
}

fn tariff(cfg: &SandboxConfig, id: u32) -> Result<&Tariff, ApiError> {
    cfg.prices.tariff(id).ok_or_else(|| {
        ApiError::value(
            "pricelist",
            &id.to_string(),
            format!("Unknown tariff plan {id}"),
        )
    })
}

/// Trial tariffs take period -100 and only that; paid ones take 1 or 12.
fn check_period(t: &Tariff, period: i32) -> Result<(), ApiError> {
    let ok = if t.trial {
        period == TRIAL_PERIOD
    } else {
        period == 1 || period == 12
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::value(
            "period",
            &period.to_string(),
            format!("Period {period} is not available for tariff plan {}", t.id),
        ))
    }
}

/// Price of the add-on units for `period`, refusing add-ons the tariff does not take.
fn addons_price(
    cfg: &SandboxConfig,
    t: &Tariff,
    addons: &BTreeMap<u32, u32>,
    period: i32,
) -> Result<i64, ApiError> {
    let mut total = 0;
    for (&id, &n) in addons {
        let field = format!("addon_{id}");
        let addon = cfg
            .prices
            .addon(id)
            .filter(|_| t.addons.contains(&id))
            .ok_or_else(|| ApiError::value(&field, &n.to_string(), "Unknown add-on"))?;
        if n > addon.max {
            return Err(ApiError::value(
                &field,
                &n.to_string(),
                "Too many add-on units",
            ));
        }
        total += addon.price(period) * i64::from(n);
    }
    Ok(total)
}

impl State {
    /// Whether another live license of `family` is bound to `ip`. The parking address
    /// is never taken: any number of licenses may wait there.
    fn ip_taken(&self, cfg: &SandboxConfig, family: &str, ip: &str, except: u64) -> bool {
        !is_parking_ip(ip)
            && self.records.values().any(|r| {
                r.lic.id != except
                    && r.lic.status != status::DELETED
                    && r.lic.ip == ip
                    && cfg
                        .prices
                        .tariff(r.lic.tariff_id)
                        .is_some_and(|t| t.family == family)
            })
    }

    /// Every check of an order except money; returns the total price.
    pub(crate) fn check_order(
        &self,
        cfg: &SandboxConfig,
        req: &OrderRequest,
    ) -> Result<i64, ApiError> {
        let t = tariff(cfg, req.tariff_id)?;
        check_period(t, req.period)?;
        let addons = addons_price(cfg, t, &req.addons, req.period)?;
        if t.trial && cfg.trial_once_per_ip && self.trial_ips.contains(&req.ip) {
            return Err(ApiError::new(
                &cfg.exists_error_type,
                "ip",
                "A trial license has already been issued for this IP address",
            )
            .with_value(&req.ip));
        }
        if cfg.duplicate_ip == DuplicateIpPolicy::Refuse
            && self.ip_taken(cfg, &t.family, &req.ip, 0)
        {
            return Err(ApiError::new(
                &cfg.exists_error_type,
                "ip",
                "A license for this IP address already exists",
            )
            .with_value(&req.ip));
        }
        Ok(t.price(req.period) + addons)
    }

    /// `soft.order.param`: with `skipbasket` pays and starts processing, otherwise
    /// leaves the item unpaid (status 1).
    pub(crate) fn order(
        &mut self,
        cfg: &SandboxConfig,
        req: OrderRequest,
    ) -> Result<u64, ApiError> {
        let cost = self.check_order(cfg, &req)?;
        let trial = tariff(cfg, req.tariff_id)?.trial;
        // Stuck at 1: the item is created but never paid, so nothing is debited.
        let paid = req.skipbasket && cfg.stuck_status != Some(status::ORDERED);
        if paid && let Err(no_money) = self.debit(cfg, cost) {
            if cfg.unpaid_on_short_balance {
                // The shop keeps the unpaid item although it refuses the order.
                let mut unpaid = req;
                unpaid.skipbasket = false;
                self.order(cfg, unpaid)?;
            }
            return Err(no_money);
        }
        let now = self.now();
        let expire_date = if trial {
            now.date() + time::Duration::days(i64::from(cfg.trial_days))
        } else {
            add_months(now.date(), req.period)
        };
        if trial {
            self.trial_ips.insert(req.ip.clone());
        }
        let new = NewSandboxLicense {
            ip: req.ip,
            tariff_id: req.tariff_id,
            period: req.period,
            licname: req.licname,
            remote_id: req.remote_id,
            status: if paid {
                status::PROCESSING
            } else {
                status::ORDERED
            },
            expire_date: Some(expire_date),
            addons: req.addons,
            auto_prolong: req.autoprolong,
        };
        let activates_at =
            (paid && cfg.stuck_status.is_none()).then(|| now + to_time(cfg.key_delay));
        let id = self.insert(new, activates_at);
        // Settle at once so that a zero key delay answers status 2 on the next read.
        self.record(cfg, id)?;
        Ok(id)
    }

    /// `soft.edit` with `sok`: changes the IP (within the cooldowns), the name and the
    /// remoteid. Parking (`ip=0.0.0.0`) is always allowed, on an active or suspended
    /// license alike.
    pub(crate) fn edit(
        &mut self,
        cfg: &SandboxConfig,
        id: u64,
        ip: Option<String>,
        licname: Option<String>,
        remote_id: Option<String>,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let rec = self.live_record(cfg, id)?.clone();
        let new_ip = match ip {
            Some(ip) if ip != rec.lic.ip => Some(ip),
            _ => None,
        };
        if let Some(ip) = &new_ip {
            cooldown::check_ip_change(cfg, &rec, ip, now)?;
            let family = tariff(cfg, rec.lic.tariff_id)
                .map(|t| t.family.clone())
                .unwrap_or_default();
            if self.ip_taken(cfg, &family, ip, id) {
                return Err(ApiError::new(
                    &cfg.exists_error_type,
                    "ip",
                    "A license for this IP address already exists",
                )
                .with_value(ip));
            }
        }
        let rec = self.live_record(cfg, id)?;
        if let Some(ip) = new_ip {
            if !rec.parked() && !is_parking_ip(&ip) {
                rec.ip_moved_at = Some(now);
            }
            rec.lic.ip = ip;
            rec.lic.ip_change_date = Some(now.date());
            rec.lic.real_ipchange = now.date();
        }
        if let Some(name) = licname {
            rec.lic.licname = name;
        }
        if let Some(remote_id) = remote_id {
            rec.lic.remote_id = remote_id;
        }
        Ok(())
    }

    /// `soft.edit` with `clicked_button=newkey`: issues a new key (within the
    /// cooldowns).
    pub(crate) fn new_key(&mut self, cfg: &SandboxConfig, id: u64) -> Result<(), ApiError> {
        let now = self.now();
        let rec = self.live_record(cfg, id)?;
        if !matches!(rec.lic.status, status::ACTIVE | status::SUSPENDED) {
            return Err(ApiError::value(
                "elid",
                &id.to_string(),
                "The license has no key yet",
            ));
        }
        cooldown::check_new_key(cfg, rec, now)?;
        rec.lic.license_key = random_hex(32);
        rec.lic.key_change_date = Some(now.date());
        rec.lic.real_keychange = now.date();
        rec.key_changed_at = Some(now);
        Ok(())
    }

    /// `service.prolong`: extends the expiry by `period` months and debits the price.
    pub(crate) fn prolong(
        &mut self,
        cfg: &SandboxConfig,
        id: u64,
        period: i32,
    ) -> Result<Date, ApiError> {
        let rec = self.live_record(cfg, id)?.clone();
        let t = tariff(cfg, rec.lic.tariff_id)?;
        let sid = id.to_string();
        if t.trial {
            return Err(ApiError::value(
                "elid",
                &sid,
                "Trial licenses cannot be renewed",
            ));
        }
        if rec.lic.status == status::ORDERED {
            return Err(ApiError::value(
                "elid",
                &sid,
                "The license is awaiting payment",
            ));
        }
        check_period(t, period)?;
        let cost = t.price(period) + addons_price(cfg, t, &rec.lic.addons, period)?;
        self.debit(cfg, cost)?;
        let rec = self.live_record(cfg, id)?;
        let expire_before = rec.lic.expire_date;
        rec.lic.expire_date = add_months(expire_before, period);
        let expire_after = rec.lic.expire_date;
        self.renewals.push(SandboxRenewal {
            license: id,
            months: period,
            cost_cents: cost,
            expire_before,
            expire_after,
        });
        Ok(expire_after)
    }

    /// `service.changepricelist`. Charging rule: paid → paid debits the price difference
    /// between the new and the old tariff for `period` (no refund on a downgrade) and
    /// keeps the expiry; trial → paid debits the full price of the new tariff and starts
    /// a fresh paid period today. Moving to a trial, or across families, is refused.
    pub(crate) fn change_tariff(
        &mut self,
        cfg: &SandboxConfig,
        id: u64,
        new_tariff: u32,
        period: Option<i32>,
    ) -> Result<(), ApiError> {
        let rec = self.live_record(cfg, id)?.clone();
        let old = tariff(cfg, rec.lic.tariff_id)?;
        let new = tariff(cfg, new_tariff)?;
        let value = new_tariff.to_string();
        if new.trial || new.family != old.family || new.id == old.id {
            return Err(ApiError::value(
                "pricelist",
                &value,
                format!("The license cannot be switched to tariff plan {new_tariff}"),
            ));
        }
        let period = match period {
            Some(p) => p,
            None if !old.trial => rec.lic.period,
            None => return Err(ApiError::missed("period")),
        };
        check_period(new, period)?;
        // Keep the add-ons the new tariff also takes; drop the others.
        let addons: BTreeMap<u32, u32> = rec
            .lic
            .addons
            .iter()
            .filter(|(a, _)| new.addons.contains(a))
            .map(|(a, n)| (*a, *n))
            .collect();
        let new_price = new.price(period) + addons_price(cfg, new, &addons, period)?;
        let cost = if old.trial {
            new_price
        } else {
            (new_price - old.price(period) - addons_price(cfg, old, &rec.lic.addons, period)?)
                .max(0)
        };
        self.debit(cfg, cost)?;
        let today = self.now().date();
        let rec = self.live_record(cfg, id)?;
        if old.trial {
            rec.lic.expire_date = add_months(today, period);
        }
        rec.lic.tariff_id = new_tariff;
        rec.lic.period = period;
        rec.lic.addons = addons;
        Ok(())
    }

    /// `soft.suspend` (2 → 3), `soft.resume` (3 → 2) and `soft.delete` (→ 4).
    /// Repeating a suspend or resume is a no-op, as BILLmanager group actions are.
    pub(crate) fn set_status(
        &mut self,
        cfg: &SandboxConfig,
        id: u64,
        to: u32,
    ) -> Result<(), ApiError> {
        let rec = self.live_record(cfg, id)?;
        let from = rec.lic.status;
        let allowed = match to {
            status::SUSPENDED => matches!(from, status::ACTIVE | status::SUSPENDED),
            status::ACTIVE => matches!(from, status::ACTIVE | status::SUSPENDED),
            _ => true,
        };
        if !allowed {
            return Err(ApiError::value(
                "elid",
                &id.to_string(),
                format!("The operation is not available in status {from}"),
            ));
        }
        rec.lic.status = to;
        rec.activates_at = None;
        Ok(())
    }
}
