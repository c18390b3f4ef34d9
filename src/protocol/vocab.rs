//! The shop's vocabulary for licenses: the numeric `status` codes (billmanager-api.md
//! §1.4) and the English names list columns show for statuses and periods.

/// `status` of a `soft` item.
pub(crate) mod status {
    /// Ordered, awaiting payment (`skipbasket=off`).
    pub(crate) const ORDERED: u32 = 1;
    /// Active.
    pub(crate) const ACTIVE: u32 = 2;
    /// Suspended.
    pub(crate) const SUSPENDED: u32 = 3;
    /// Deleted (still listed).
    pub(crate) const DELETED: u32 = 4;
    /// Processing: ordered and paid, key not issued yet (or a change under way).
    pub(crate) const PROCESSING: u32 = 5;
}

/// The English name of a status code, as the list's message columns show it.
pub(crate) fn status_name(code: u32) -> &'static str {
    match code {
        status::ORDERED => "Ordered",
        status::ACTIVE => "Active",
        status::SUSPENDED => "Suspended",
        status::DELETED => "Deleted",
        status::PROCESSING => "Processing",
        _ => "Unknown",
    }
}

/// The English name of a period in months (-100: a trial).
pub(crate) fn period_name(period: i32) -> String {
    match period {
        -100 => "Trial".into(),
        1 => "1 month".into(),
        12 => "1 year".into(),
        n => format!("{n} months"),
    }
}

/// The numeric item type of ISPmanager licenses in `pricelist.export`. [INFERRED]
pub(crate) const SOFT_ITEMTYPE: u32 = 21;

/// `<price currency="…">` of `pricelist.export`, one `<period cost type length>` per
/// (length in months, cost as printed, label), as the recorded exports show them.
pub(crate) fn price_node(currency: &str, periods: &[(i32, String, &str)]) -> super::Node {
    let mut price = super::Node::new("price").with_attr("currency", currency);
    for (len, cost, label) in periods {
        price = price.with_child(
            super::Node::text("period", label)
                .with_attr("cost", cost)
                .with_attr("type", "month")
                .with_attr("length", len),
        );
    }
    price
}
