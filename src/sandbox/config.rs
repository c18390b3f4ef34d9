//! Sandbox configuration: the account, the price table and every behaviour that
//! billmanager-api.md marks as [INFERRED] (so tests can flip it).

use std::time::Duration;

use super::faults::Fault;

/// Everything the simulator can be told. `Default` gives a demo account (`demo`/`demo`,
/// 10 000.00 EUR) with the ISPmanager 6 tariffs and the documented behaviour.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Login accepted by `authinfo` and `func=auth`. Default `demo`.
    pub user: String,
    /// Password for [`user`](Self::user). Default `demo`.
    pub password: String,
    /// Starting balance in cents. Default 1 000 000 (10 000.00).
    pub balance_cents: i64,
    /// Account currency shown by `subaccount` and `pricelist.export`. Default `EUR`.
    pub currency: String,
    /// Time between an order and the license becoming active (status 5 → 2) with a key.
    /// Computed lazily on read. Default 1 s.
    pub key_delay: Duration,
    /// Delay added to every request before it is handled. Default 0.
    pub latency: Duration,
    /// Sliding lifetime of a `func=auth` session. Default 1 h.
    pub session_ttl: Duration,
    /// A license in use: minimum time between two moves from one real address to
    /// another (the first is always allowed; parking on 0.0.0.0 and leaving the pool
    /// never count). Default 30 days.
    pub ip_change_cooldown: Duration,
    /// A license in use: minimum time between two key regenerations. Default 0.
    pub key_change_cooldown: Duration,
    /// A parked license (IP 0.0.0.0) leaves the pool for a real address only once its
    /// last IP change (`real_ipchange`, parking included) is this many days old; 0
    /// turns the rule off. Default 30. [INFERRED]
    pub ip_change_cooldown_days: u32,
    /// A parked license gets a new key only once its last key change
    /// (`real_keychange`) is this many days old; 0 turns the rule off. Default 30.
    /// [INFERRED]
    pub key_change_cooldown_days: u32,
    /// Length of a trial license. Default 14 days.
    pub trial_days: u32,
    /// Refuse a second trial for an IP that ever had one. Default true. [INFERRED]
    pub trial_once_per_ip: bool,
    /// What to do with a second live license of the same product family on one IP.
    pub duplicate_ip: DuplicateIpPolicy,
    /// What the `pricelist` column of the `soft` list holds. [INFERRED]
    pub list_pricelist: ListPricelist,
    /// With `out=json`, emit a one-element list as `[{…}]` instead of `{…}`. [INFERRED]
    pub json_single_elem_as_array: bool,
    /// Error type for "not enough money" (object `balance`). Default `value`. [INFERRED]
    pub no_money_error_type: String,
    /// Error type for a duplicate (IP already licensed). Default `exists`. [INFERRED]
    pub exists_error_type: String,
    /// Error type for an `elid` that does not exist. Default `value` (object `elid`).
    /// [INFERRED]
    pub not_found_error_type: String,
    /// Emit `ip_change_date` / `lickey_change_date` as the day the next change is
    /// allowed under the cooldown that applies (as joonte reads them) instead of the
    /// day of the last change (`real_ipchange` / `real_keychange`). Default false.
    /// [INFERRED]
    pub change_dates_as_next_allowed: bool,
    /// Id given to the first license; later ones count up. Default 1 000 001.
    pub first_id: u64,
    /// How long a `timeout` fault hangs (it also ends at shutdown). Default 1 h.
    pub timeout_hang: Duration,
    /// Tariffs and add-ons with their prices.
    pub prices: PriceTable,
    /// Injected faults, checked in order on every request.
    pub faults: Vec<Fault>,
    /// Where the `soft.order.param` answer carries the new id. Default `doc/id` only,
    /// where the client written by ISPsystem reads it. [INFERRED]
    pub order_id_at: OrderIdAt,
    /// Add a `remoteid` column to the `soft` list, which the official column list
    /// does not have. Default false.
    pub list_remoteid: bool,
    /// Show the `licname` column in the `soft` list. Default true (documented).
    pub list_licname: bool,
    /// A saved filter set on the `soft` list, hiding licenses from it. Default none.
    pub saved_filter: Option<SavedFilter>,
    /// Leave `saved_filters` empty even while [`saved_filter`](Self::saved_filter)
    /// narrows the list, as an upstream that does not say so would. Default false.
    pub saved_filter_silent: bool,
    /// When the balance is short, still create the ordered item, unpaid (status 1),
    /// before refusing the order. Default false. [INFERRED]
    pub unpaid_on_short_balance: bool,
    /// Ordered licenses stay in this status (1: ordered, not paid, nothing debited;
    /// 5: processing) instead of becoming active. Default none.
    pub stuck_status: Option<u32>,
    /// Message columns of the `soft` list carry only the translated text, without
    /// the raw value in `orig`. Default false.
    pub translated_without_orig: bool,
}

/// Where a `soft.order.param` answer carries the new license's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderIdAt {
    /// `doc/id` (the ISPsystem-written client's XPath).
    #[default]
    Id,
    /// `doc/item.id` (what joonte/jbs reads).
    ItemId,
    /// Both elements.
    Both,
    /// Neither: `<doc><ok/></doc>`.
    Nowhere,
}

/// A filter saved on the account's `soft` list. [INFERRED]: the real mechanism is
/// not recorded; these are the two shapes that matter to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedFilter {
    /// Only active licenses (status 2) are listed: a new order (status 5 or 1) is not.
    ActiveOnly,
    /// Nothing is listed.
    HideAll,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            user: "demo".into(),
            password: "demo".into(),
            balance_cents: 1_000_000,
            currency: "EUR".into(),
            key_delay: Duration::from_secs(1),
            latency: Duration::ZERO,
            session_ttl: Duration::from_secs(3600),
            ip_change_cooldown: Duration::from_secs(30 * 86_400),
            key_change_cooldown: Duration::ZERO,
            ip_change_cooldown_days: 30,
            key_change_cooldown_days: 30,
            trial_days: 14,
            trial_once_per_ip: true,
            duplicate_ip: DuplicateIpPolicy::Allow,
            list_pricelist: ListPricelist::NameWithOrig,
            json_single_elem_as_array: false,
            no_money_error_type: "value".into(),
            exists_error_type: "exists".into(),
            not_found_error_type: "value".into(),
            change_dates_as_next_allowed: false,
            first_id: 1_000_001,
            timeout_hang: Duration::from_secs(3600),
            prices: PriceTable::default(),
            faults: Vec::new(),
            order_id_at: OrderIdAt::Id,
            list_remoteid: false,
            list_licname: true,
            saved_filter: None,
            saved_filter_silent: false,
            unpaid_on_short_balance: false,
            stuck_status: None,
            translated_without_orig: false,
        }
    }
}

/// Policy for ordering (or moving) a license onto an IP that already has a live license
/// of the same product family. Whether the upstream refuses this is [INFERRED].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicateIpPolicy {
    /// Accept the order: two licenses, two debits.
    #[default]
    Allow,
    /// Refuse with an `exists` error (type per [`SandboxConfig::exists_error_type`]).
    Refuse,
}

/// Content of the `pricelist` column in the `soft` list. [INFERRED]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListPricelist {
    /// The tariff name with the numeric id in `orig`, like the recorded message
    /// columns: `<pricelist orig="55228">ispmanager 6 pro</pricelist>`.
    #[default]
    NameWithOrig,
    /// The numeric tariff id only, e.g. `55228`.
    Id,
    /// The tariff name only, e.g. `ispmanager 6 pro`.
    Name,
}

/// The tariffs and add-ons the account may order.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// Orderable tariffs.
    pub tariffs: Vec<Tariff>,
    /// Per-unit add-ons (`addon_<id>=<n>`).
    pub addons: Vec<Addon>,
}

/// One tariff (BILLmanager `pricelist`).
#[derive(Debug, Clone)]
pub struct Tariff {
    /// Pricelist id, e.g. 55228.
    pub id: u32,
    /// Name, e.g. `ispmanager 6 pro`.
    pub name: String,
    /// Product family; tariffs of one family are interchangeable through
    /// `service.changepricelist` and share the duplicate-IP rule.
    pub family: String,
    /// A trial tariff: ordered only with period -100, free, not renewable.
    pub trial: bool,
    /// Price of one month in cents.
    pub month_cents: i64,
    /// Price of twelve months in cents.
    pub year_cents: i64,
    /// Add-on ids this tariff accepts.
    pub addons: Vec<u32>,
}

/// A per-unit add-on (e.g. Business nodes, 55236).
#[derive(Debug, Clone)]
pub struct Addon {
    /// Add-on id as in `addon_<id>`.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Price of one unit for one month, cents.
    pub month_cents: i64,
    /// Price of one unit for twelve months, cents.
    pub year_cents: i64,
    /// Largest accepted unit count.
    pub max: u32,
}

impl Tariff {
    fn paid(id: u32, name: &str, month_cents: i64, year_cents: i64) -> Self {
        Self {
            id,
            name: name.into(),
            family: "ispmanager6".into(),
            trial: false,
            month_cents,
            year_cents,
            addons: Vec::new(),
        }
    }

    /// Price for `period` months (1 or 12); trials and other periods cost 0.
    pub fn price(&self, period: i32) -> i64 {
        period_price(period, self.month_cents, self.year_cents)
    }
}

impl Addon {
    /// Price of one unit for `period` months.
    pub fn price(&self, period: i32) -> i64 {
        period_price(period, self.month_cents, self.year_cents)
    }
}

fn period_price(period: i32, month: i64, year: i64) -> i64 {
    match period {
        1 => month,
        12 => year,
        _ => 0,
    }
}

impl Default for PriceTable {
    /// The ISPmanager 6 tariffs of the EU endpoint with invented prices.
    fn default() -> Self {
        let mut business = Tariff::paid(55230, "ispmanager 6 business", 2500, 25000);
        business.addons = vec![55236];
        let mut trial = Tariff::paid(55239, "ispmanager 6 trial", 0, 0);
        trial.trial = true;
        let mut business_trial = Tariff::paid(55240, "ispmanager 6 business trial", 0, 0);
        business_trial.trial = true;
        business_trial.addons = vec![55236];
        Self {
            tariffs: vec![
                Tariff::paid(55227, "ispmanager 6 lite", 600, 6000),
                Tariff::paid(55228, "ispmanager 6 pro", 900, 9000),
                Tariff::paid(55229, "ispmanager 6 host", 1600, 16000),
                business,
                trial,
                business_trial,
            ],
            addons: vec![Addon {
                id: 55236,
                name: "Nodes".into(),
                month_cents: 500,
                year_cents: 5000,
                max: 1000,
            }],
        }
    }
}

impl PriceTable {
    /// The tariff with this id.
    pub fn tariff(&self, id: u32) -> Option<&Tariff> {
        self.tariffs.iter().find(|t| t.id == id)
    }

    /// The add-on with this id.
    pub fn addon(&self, id: u32) -> Option<&Addon> {
        self.addons.iter().find(|a| a.id == id)
    }
}
