//! What one client may spend: caps on its paid calls, set in the clients file and
//! enforced by the service's spend guard.

/// Caps on the paid calls one client may make (the spend guard): orders, renewals and
/// panel changes; `None` is no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCaps {
    /// Paid calls in any sliding hour.
    pub per_hour: Option<u32>,
    /// Paid calls in any sliding day.
    pub per_day: Option<u32>,
    /// How far ahead a paid call may pay: no order, trial conversion or renewal may
    /// leave a license paid beyond this many months from now.
    pub max_prepaid_months: u32,
    /// What the paid calls of any sliding day may cost in all, in hundredths of the
    /// account's currency, at the prices recorded with them (add-ons included).
    pub spend_per_day_cents: Option<i64>,
}

/// The default of [`OrderCaps::max_prepaid_months`].
pub const DEFAULT_MAX_PREPAID_MONTHS: u32 = 24;

impl Default for OrderCaps {
    fn default() -> Self {
        Self {
            per_hour: None,
            per_day: None,
            max_prepaid_months: DEFAULT_MAX_PREPAID_MONTHS,
            spend_per_day_cents: None,
        }
    }
}
