//! The upstream: a client for BILLmanager's HTTP API (the `soft` functions that resell
//! ISPmanager licenses). This module knows the wire format and nothing of our business
//! rules; the service layer talks to it through the [`Billmanager`] trait so that tests
//! can substitute the upstream.

mod breaker;
mod client;
mod config;
mod convert;
mod error;
mod scrub;
#[cfg(test)]
mod tests;
pub(crate) mod transport;

pub use breaker::{BreakerConfig, CircuitBreaker};
pub use client::{BillmanagerClient, ListShape, OrderAnswer};
pub use config::{ClientConfig, PriceListFilter, WireFormat, check_url};
pub use error::UpstreamError;
pub use scrub::{MAX_UPSTREAM_TEXT, bounded};

use std::net::IpAddr;

use async_trait::async_trait;

/// BILLmanager's item id of a license (`elid`).
pub type UpstreamId = u64;

/// Parameters of `soft.order.param`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderParams {
    /// `pricelist`: the tariff id.
    pub tariff_id: u32,
    /// `ip`: the address the license is bound to.
    pub ip: IpAddr,
    /// `period`: 1 or 12 months; -100 for trials.
    pub period: i32,
    /// `autoprolong`: `Some(1 | 12)` or `None` (sent as the literal `null`).
    pub autoprolong: Option<i32>,
    /// `remoteid`: our own license id, so that a lost answer can be matched later.
    pub remote_id: String,
    /// `licname`: the license name shown upstream.
    pub licname: String,
    /// `addon_<id>=<n>` pairs, e.g. the Business node count `addon_55236`.
    pub addons: Vec<(u32, u32)>,
}

/// Upstream license status (`status` in `soft` and `soft.edit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStatus {
    /// 1: ordered, awaiting payment.
    Ordered,
    /// 2: active.
    Active,
    /// 3: suspended.
    Suspended,
    /// 4: deleted.
    Deleted,
    /// 5: processing (being set up or changed).
    Processing,
    /// Any other code the upstream may send.
    Other(u32),
}

impl UpstreamStatus {
    /// Maps the numeric wire code.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Ordered,
            2 => Self::Active,
            3 => Self::Suspended,
            4 => Self::Deleted,
            5 => Self::Processing,
            other => Self::Other(other),
        }
    }

    /// The numeric wire code.
    pub fn code(self) -> u32 {
        match self {
            Self::Ordered => 1,
            Self::Active => 2,
            Self::Suspended => 3,
            Self::Deleted => 4,
            Self::Processing => 5,
            Self::Other(c) => c,
        }
    }
}

/// One license as the upstream shows it (a `soft` list element or `soft.edit` details).
/// Fields the upstream left out are `None`/empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamLicense {
    /// `id` / `elid`.
    pub id: UpstreamId,
    /// `ip`.
    pub ip: Option<String>,
    /// `licname`.
    pub licname: Option<String>,
    /// `remoteid`.
    pub remote_id: Option<String>,
    /// `status`.
    pub status: UpstreamStatus,
    /// `pricelist` as a tariff id when it is numeric (details); the list may carry a name.
    pub tariff_id: Option<u32>,
    /// `pricelist_name` (details) or a non-numeric `pricelist` (list).
    pub tariff_name: Option<String>,
    /// `lickey`; `None` when empty (the key appears some time after the order).
    pub license_key: Option<String>,
    /// `period` in months (-100 for trials).
    pub period: Option<i32>,
    /// `createdate`, `YYYY-MM-DD`.
    pub create_date: Option<String>,
    /// `expiredate`, `YYYY-MM-DD`.
    pub expire_date: Option<String>,
    /// `ip_change_date`.
    pub ip_change_date: Option<String>,
    /// `lickey_change_date`.
    pub key_change_date: Option<String>,
    /// `real_ipchange` (list): the day of the last IP change, `YYYY-MM-DD`.
    pub ip_changed: Option<String>,
    /// `real_keychange` (list): the day of the last new key.
    pub key_changed: Option<String>,
}

/// The `soft` list as read, with whether it can prove an absence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LicenseList {
    /// Every row read, in the upstream's order.
    pub licenses: Vec<UpstreamLicense>,
    /// Why the list may not show every license of the account (an active or saved
    /// filter, paging that did not add up, an answer that does not look like a list);
    /// `None` when nothing suggests that. A license missing from an incomplete list
    /// may still exist upstream.
    pub incomplete: Option<String>,
}

impl LicenseList {
    /// The statuses of `sought` that no row of the list is in. A list narrowed by a
    /// filter on the status (say "active only") shows no row in the statuses it
    /// hides, so a status that no row shows may be hidden.
    pub fn statuses_not_shown(&self, sought: &[UpstreamStatus]) -> Vec<UpstreamStatus> {
        sought
            .iter()
            .copied()
            .filter(|s| !self.licenses.iter().any(|l| l.status == *s))
            .collect()
    }
}

/// One tariff of `pricelist.export`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTariff {
    /// `id`.
    pub id: u32,
    /// A name if the upstream gives one.
    pub name: Option<String>,
    /// `price/@currency`.
    pub currency: Option<String>,
    /// Cost per period: (`period` in months, cost). Trials may carry -100.
    pub prices: Vec<(i32, String)>,
    /// The per-unit add-ons the tariff takes (`addon`), e.g. Business nodes.
    pub addons: Vec<UpstreamAddon>,
}

/// One `addon` of a tariff in `pricelist.export`: a per-unit add-on and the cost of
/// one unit per period.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamAddon {
    /// `id` (ordered as `addon_<id>`).
    pub id: u32,
    /// Cost of one unit per period: (`period` in months, cost).
    pub prices: Vec<(i32, String)>,
}

/// The upstream operations the service uses. Every method is one upstream call (plus
/// a session log-in when the client uses sessions). Mutating calls are never retried
/// here: whether a repeat is safe is the workflow's decision, not the client's.
#[async_trait]
pub trait Billmanager: Send + Sync + 'static {
    /// `soft.order.param` with `skipbasket=on`, `sok=ok`, `clicked_button=finish`.
    /// Returns the new license's upstream id.
    async fn order_license(&self, params: &OrderParams) -> Result<UpstreamId, UpstreamError>;
    /// `soft.edit` with `elid` and no `sok`: the license's details.
    async fn license_details(&self, id: UpstreamId) -> Result<UpstreamLicense, UpstreamError>;
    /// `soft`: every license of the account (all pages), with whether the list is
    /// known to be complete.
    async fn list_licenses(&self) -> Result<LicenseList, UpstreamError>;
    /// A cheap read that shows the upstream answers and accepts the credentials
    /// (`subaccount`; a refusal of it counts as an answer). Readiness and the circuit
    /// breaker's trial use it.
    async fn ping(&self) -> Result<(), UpstreamError>;
    /// `pricelist.export`: the tariffs and prices.
    async fn price_list(&self) -> Result<Vec<UpstreamTariff>, UpstreamError>;
    /// `service.prolong` (`elid`, `period`, `sok=ok`). Returns the new expiry date
    /// (`newexpiredate`, `YYYY-MM-DD`) when the upstream sends it.
    async fn renew_license(
        &self,
        id: UpstreamId,
        period: i32,
    ) -> Result<Option<String>, UpstreamError>;
    /// `soft.edit` with `elid`, `ip`, `sok=ok`.
    async fn change_ip(&self, id: UpstreamId, ip: IpAddr) -> Result<(), UpstreamError>;
    /// `service.changepricelist` (`elid`, `pricelist`, `period`, `sok=ok`).
    async fn change_tariff(
        &self,
        id: UpstreamId,
        tariff_id: u32,
        period: i32,
    ) -> Result<(), UpstreamError>;
    /// `soft.suspend` (`elid`, `sok=ok`).
    async fn suspend_license(&self, id: UpstreamId) -> Result<(), UpstreamError>;
    /// `soft.resume` (`elid`, `sok=ok`).
    async fn resume_license(&self, id: UpstreamId) -> Result<(), UpstreamError>;
    /// `soft.delete` (`elid`, `sok=ok`).
    async fn delete_license(&self, id: UpstreamId) -> Result<(), UpstreamError>;
    /// `soft.edit` with `elid`, `clicked_button=newkey`, `sok=ok`.
    async fn reissue_key(&self, id: UpstreamId) -> Result<(), UpstreamError>;
    /// `soft.edit` with `elid`, `ip`, `licname` and `remoteid` set to `name`,
    /// `sok=ok`: moves a (parked) license to another server and names it ours.
    async fn move_license(
        &self,
        id: UpstreamId,
        ip: IpAddr,
        name: &str,
    ) -> Result<(), UpstreamError>;
    /// Why calls are held back because the upstream refused the credentials, with
    /// when the next log-in may be tried; `None` while the credentials are not in
    /// doubt.
    fn auth_refused(&self) -> Option<String> {
        None
    }
}
