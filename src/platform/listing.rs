//! Paging through a platform's list and judging whether the result is complete.
//!
//! A run reads pages until the elements reach the total the platform announced. The
//! listing is complete only if one run read every page without interruption and the
//! distinct elements add up to that total. A run that was interrupted after its first
//! page (a 503, an expired session), saw the total change, or came up short is started
//! over, a bounded number of times; after that the listing is reported incomplete with
//! what the last run read. Servers in an incomplete listing are real (they were listed)
//! but the listing says nothing about servers it does not hold.

use std::collections::HashSet;

use serde_json::Value;

use super::client::PlatformClient;
use super::config::{PlatformConfig, PlatformKind};
use super::error::PlatformError;
use super::{Completeness, Listing, ServerRecord, dcimanager, vmmanager};

/// Lists every server of the platform.
pub async fn list(client: &PlatformClient, config: &PlatformConfig) -> Listing {
    let before = client.requests();
    let attempts = config.listing_attempts.max(1);
    let mut last = (Vec::new(), String::new());
    for attempt in 1..=attempts {
        match run(client, config).await {
            Ok(servers) => {
                return Listing {
                    servers,
                    completeness: Completeness::Complete,
                    requests: client.requests() - before,
                };
            }
            Err(cut) => {
                tracing::info!(attempt, attempts, reason = %cut.reason, "platform listing incomplete");
                let again = cut.retry && attempt < attempts;
                last = (cut.servers, cut.reason);
                if !again {
                    break;
                }
                tokio::time::sleep(config.busy_backoff).await;
            }
        }
    }
    Listing {
        servers: last.0,
        completeness: Completeness::Incomplete(last.1),
        requests: client.requests() - before,
    }
}

/// A run that did not end complete.
struct Cut {
    servers: Vec<ServerRecord>,
    reason: String,
    /// Whether starting over may help (not after refused credentials).
    retry: bool,
}

fn parse(kind: PlatformKind, row: &Value, config: &PlatformConfig) -> Option<ServerRecord> {
    match kind {
        PlatformKind::VmManager6 => vmmanager::parse(row, config),
        PlatformKind::DciManager6 => dcimanager::parse(row, config),
    }
}

fn page_path(config: &PlatformConfig, offset: usize) -> String {
    let path = match config.kind {
        PlatformKind::VmManager6 => vmmanager::LIST_PATH,
        PlatformKind::DciManager6 => dcimanager::LIST_PATH,
    };
    let mut query = format!(
        "{path}?{}={}&{}={offset}",
        config.paging.limit_param, config.page_size, config.paging.offset_param
    );
    if let Some(filter) = config.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        // The platform's filters are written with `+` between words; quotes and spaces
        // are encoded, the rest is sent as configured.
        let filter = filter.trim().replace(' ', "+").replace('\'', "%27");
        query.push_str("&where=");
        query.push_str(&filter);
    }
    query
}

/// One run over every page.
async fn run(client: &PlatformClient, config: &PlatformConfig) -> Result<Vec<ServerRecord>, Cut> {
    let mut servers = Vec::new();
    let mut seen = HashSet::new();
    let mut total: Option<usize> = None;
    let mut offset = 0usize;
    let mut pages = 0usize;
    macro_rules! cut {
        ($retry:expr, $($reason:tt)*) => {
            return Err(Cut { servers, reason: format!($($reason)*), retry: $retry })
        };
    }
    loop {
        let exchange = match client.get_json(&page_path(config, offset)).await {
            Ok(exchange) => exchange,
            Err(e) => {
                let retry = !matches!(e, PlatformError::Unauthorized(_));
                cut!(retry, "page at {offset}: {e}")
            }
        };
        if let (Some(why), true) = (exchange.interrupted, pages > 0) {
            cut!(true, "interrupted ({why}) after {pages} page(s)")
        }
        pages += 1;
        let Some(list) = exchange.body.get("list").and_then(Value::as_array) else {
            cut!(true, "page at {offset} has no list")
        };
        let field = config.paging.total_field.as_str();
        let Some(announced) = exchange.body.get(field).and_then(Value::as_u64) else {
            cut!(
                false,
                "the answer has no total field {field:?} (set platform.total_field), so its \
                 completeness cannot be judged"
            )
        };
        let announced = announced as usize;
        if let Some(before) = total.filter(|t| *t != announced) {
            cut!(
                true,
                "the total changed from {before} to {announced} during the listing"
            )
        }
        total = Some(announced);
        for row in list {
            let Some(server) = parse(config.kind, row, config) else {
                cut!(
                    false,
                    "page at {offset} holds an element without a numeric id"
                )
            };
            if seen.insert(server.id) {
                servers.push(server);
            }
        }
        offset += list.len();
        // The page guard stops a platform that ignores the offset from looping forever.
        if list.is_empty() || offset >= announced || pages > announced + 1 {
            break;
        }
    }
    let total = total.unwrap_or(0);
    let read = servers.len();
    if read != total {
        cut!(
            true,
            "cut short: {read} distinct element(s) of {total} announced"
        )
    }
    Ok(servers)
}
