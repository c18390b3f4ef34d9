//! What a client has spent in the last day against its caps, for the console's
//! overview: the same counts the spend guard checks before a paid call.

use time::OffsetDateTime;

use super::{LicenseService, ServiceError};
use crate::domain::{ClientName, cents_text};

/// A client's paid calls of the last 24 hours and its caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUsage {
    /// The client.
    pub client: ClientName,
    /// Paid calls (orders, renewals, panel changes) accepted in the last 24 hours.
    pub paid_calls: u64,
    /// Its cap on paid calls per day, if any.
    pub per_day: Option<u32>,
    /// Its cap on paid calls per hour, if any.
    pub per_hour: Option<u32>,
    /// What the paid calls of the last 24 hours with a known price cost in all
    /// (account currency; every paid call is priced when it is accepted).
    pub spent: String,
    /// Paid calls of the last 24 hours whose price is unknown (not in `spent`).
    pub unpriced: u64,
    /// Its money cap per day, if any.
    pub spend_cap: Option<String>,
}

impl LicenseService {
    /// `client`'s paid calls and spending of the last 24 hours (the spend guard's
    /// sliding day) with its caps.
    pub async fn client_usage(&self, client: &ClientName) -> Result<ClientUsage, ServiceError> {
        let since = OffsetDateTime::now_utc() - time::Duration::DAY;
        let (paid_calls, _) = self.store.orders_since(client, since).await?;
        let spent = self.store.spend_since(client, since).await?;
        let caps = self.spend.caps_of(client);
        Ok(ClientUsage {
            client: client.clone(),
            paid_calls,
            per_day: caps.per_day,
            per_hour: caps.per_hour,
            spent: cents_text(spent.cents),
            unpriced: spent.unpriced,
            spend_cap: caps.spend_per_day_cents.map(cents_text),
        })
    }
}
