//! The price of a paid call (design §11 "One price"): what the call buys — a tariff
//! for a period, with the add-on units it carries (Business nodes) — and what that
//! costs from the upstream price list, recorded with the call whether or not a cap
//! is set. A price that cannot be read is unknown with its reason, never a guess and
//! never zero.

use std::fmt;

use super::Period;

/// The most bytes of an unknown price's reason that are kept (it may quote an
/// upstream error).
pub const MAX_REASON_BYTES: usize = 512;

/// What a paid call buys, to price it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The panel's canonical name (for reasons people read).
    pub panel: String,
    /// The upstream tariff id.
    pub tariff_id: u32,
    /// The period paid for.
    pub period: Period,
    /// The add-on units the call pays for with the tariff (a Business license's
    /// nodes), if any.
    pub addon: Option<AddonUnits>,
}

/// Units of a per-unit add-on, e.g. 100 nodes of add-on 55236.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddonUnits {
    /// The add-on id (`addon_<id>` upstream).
    pub addon_id: u32,
    /// How many units.
    pub units: u32,
}

/// An amount in hundredths of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Hundredths (cents).
    pub cents: i64,
    /// The currency code as the price list states it, e.g. `EUR` (empty when it
    /// states none: the account's currency).
    pub currency: String,
}

impl Money {
    /// The amount with two decimals, e.g. `525.00`.
    pub fn amount(&self) -> String {
        cents_text(self.cents)
    }
}

/// The recorded price of a paid call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallPrice {
    /// What the call costs, add-ons included.
    Known(Money),
    /// The price could not be read; why (the price list was unavailable, or lacks
    /// the tariff, the period or the add-on).
    Unknown(String),
}

impl CallPrice {
    /// An unknown price, its reason cut to [`MAX_REASON_BYTES`].
    pub fn unknown(reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES - '…'.len_utf8();
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push('…');
        }
        Self::Unknown(reason)
    }

    /// The amount in hundredths, when known.
    pub fn cents(&self) -> Option<i64> {
        match self {
            Self::Known(m) => Some(m.cents),
            Self::Unknown(_) => None,
        }
    }

    /// Why the price is unknown, when it is.
    pub fn unknown_reason(&self) -> Option<&str> {
        match self {
            Self::Known(_) => None,
            Self::Unknown(why) => Some(why),
        }
    }
}

impl fmt::Display for CallPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(m) if m.currency.is_empty() => f.write_str(&m.amount()),
            Self::Known(m) => write!(f, "{} {}", m.amount(), m.currency),
            Self::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// A price as the price list states it (`490.0000`, `9.5`, `12`) in ten-thousandths,
/// the precision of the export; further nonzero digits round up (a cap must not let
/// a fraction through). `None` for an empty, negative or malformed price: that is
/// not a price of 0.
pub fn parse_price(price: &str) -> Option<i64> {
    const DIGITS: usize = 4;
    let price = price.trim();
    let (whole, fraction) = price.split_once('.').unwrap_or((price, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 15 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut value: i64 = whole.parse::<i64>().ok()?.checked_mul(10_000)?;
    let mut scale = 1_000;
    for digit in fraction.bytes().take(DIGITS) {
        value += i64::from(digit - b'0') * scale;
        scale /= 10;
    }
    if fraction.bytes().skip(DIGITS).any(|b| b != b'0') {
        value += 1;
    }
    Some(value)
}

/// Ten-thousandths as hundredths, rounded up.
pub fn to_cents(ten_thousandths: i64) -> i64 {
    (ten_thousandths + 99).div_euclid(100)
}

/// Hundredths as a decimal amount, e.g. `1234` → `12.34`.
pub fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// The parts of a price as the price list states them, for [`price_of`].
#[derive(Debug, Clone, Copy)]
pub struct ListedPrice<'a> {
    /// The tariff's cost for the period, as stated (`None`: the list has no such
    /// period for it).
    pub tariff_cost: Option<&'a str>,
    /// The add-on's cost of one unit for the period, as stated (`None`: the list has
    /// no such add-on or period); looked at only when the purchase has add-on units.
    pub addon_cost: Option<&'a str>,
    /// The currency the list states for the tariff.
    pub currency: Option<&'a str>,
}

/// The price of `purchase` from what the price list states for it: the tariff's
/// cost for the period plus the add-on's cost per unit times the units, rounded up
/// to hundredths once. Unknown (with the reason) when any needed part is missing or
/// unreadable.
pub fn price_of(purchase: &Purchase, listed: ListedPrice<'_>) -> CallPrice {
    let what = format!(
        "{} (tariff {}) for {}",
        purchase.panel,
        purchase.tariff_id,
        period_text(purchase.period)
    );
    let Some(cost) = listed.tariff_cost else {
        return CallPrice::unknown(format!("the price list has no price of {what}"));
    };
    let Some(mut total) = parse_price(cost) else {
        return CallPrice::unknown(format!("the price list states {cost:?} for {what}"));
    };
    if let Some(addon) = purchase.addon.filter(|a| a.units > 0) {
        let Some(unit) = listed.addon_cost else {
            return CallPrice::unknown(format!(
                "the price list has no price of add-on {} ({} units) with {what}",
                addon.addon_id, addon.units
            ));
        };
        let Some(unit_price) = parse_price(unit) else {
            return CallPrice::unknown(format!(
                "the price list states {unit:?} for add-on {} with {what}",
                addon.addon_id
            ));
        };
        match unit_price
            .checked_mul(i64::from(addon.units))
            .and_then(|a| a.checked_add(total))
        {
            Some(sum) => total = sum,
            None => return CallPrice::unknown(format!("the price of {what} is out of range")),
        }
    }
    CallPrice::Known(Money {
        cents: to_cents(total),
        currency: listed.currency.unwrap_or_default().to_owned(),
    })
}

fn period_text(period: Period) -> String {
    match period {
        Period::Trial => "the trial period".to_owned(),
        Period::Month => "1 month".to_owned(),
        other => format!("{} months", other.months()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn business(units: u32) -> Purchase {
        Purchase {
            panel: "ISPmanager 6 Business".into(),
            tariff_id: 55230,
            period: Period::Month,
            addon: Some(AddonUnits {
                addon_id: 55236,
                units,
            }),
        }
    }

    fn listed<'a>(tariff: Option<&'a str>, addon: Option<&'a str>) -> ListedPrice<'a> {
        ListedPrice {
            tariff_cost: tariff,
            addon_cost: addon,
            currency: Some("EUR"),
        }
    }

    #[test]
    fn prices_are_read_in_ten_thousandths_rounding_further_digits_up() {
        assert_eq!(parse_price("490.0000"), Some(4_900_000));
        assert_eq!(parse_price("9.5"), Some(95_000));
        assert_eq!(parse_price("12"), Some(120_000));
        assert_eq!(parse_price("0.00001"), Some(1));
        assert_eq!(parse_price("0.12500"), Some(1_250));
        for bad in ["", " ", "-1.00", "1,50", "abc", "1.2.3", ".5"] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
        assert_eq!(to_cents(1_250), 13);
        assert_eq!(to_cents(1_200), 12);
        assert_eq!(cents_text(1_234), "12.34");
        assert_eq!(cents_text(5), "0.05");
    }

    #[test]
    fn a_business_price_includes_its_nodes() {
        let price = price_of(&business(100), listed(Some("25.0000"), Some("5.0000")));

        assert_eq!(
            price,
            CallPrice::Known(Money {
                cents: 52_500,
                currency: "EUR".into()
            })
        );
        assert_eq!(price.to_string(), "525.00 EUR");
    }

    #[test]
    fn units_are_multiplied_before_rounding() {
        let price = price_of(&business(100), listed(Some("0"), Some("0.1250")));

        assert_eq!(price.cents(), Some(1_250));
    }

    #[test]
    fn a_missing_or_unreadable_part_makes_the_price_unknown_never_zero() {
        let no_tariff = price_of(&business(1), listed(None, Some("5")));
        let empty_tariff = price_of(&business(1), listed(Some(""), Some("5")));
        let no_addon = price_of(&business(3), listed(Some("25"), None));
        let bad_addon = price_of(&business(3), listed(Some("25"), Some("n/a")));
        let no_units = price_of(&business(0), listed(Some("25"), None));

        for unknown in [&no_tariff, &empty_tariff, &no_addon, &bad_addon] {
            assert_eq!(unknown.cents(), None, "{unknown}");
        }
        assert!(
            no_addon.unknown_reason().unwrap().contains("add-on 55236"),
            "{no_addon}"
        );
        assert!(
            empty_tariff
                .unknown_reason()
                .unwrap()
                .contains("ISPmanager 6 Business (tariff 55230) for 1 month"),
            "{empty_tariff}"
        );
        assert_eq!(
            no_units.cents(),
            Some(2_500),
            "no units need no add-on price"
        );
    }

    #[test]
    fn a_long_reason_is_cut() {
        let price = CallPrice::unknown("x".repeat(5_000));

        assert!(price.unknown_reason().unwrap().len() <= MAX_REASON_BYTES);
        assert!(price.unknown_reason().unwrap().ends_with('…'));
    }
}
