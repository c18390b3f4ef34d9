//! `license-facade doctor`: a read-only look at the upstream account before any money
//! is spent. It logs in once, reads the licenses, the price list and the balance,
//! checks that every catalog tariff is orderable, and says which answer shapes it saw
//! and what they mean for recovery after a lost order answer. It calls no function
//! that changes anything upstream.
//!
//! With `--sandbox` the upstream is a sandbox of its own, empty at first, so there is
//! nothing to read; there (and only there) it orders one license and reads it back the
//! ways recovery would, through `soft.edit` and the `soft` list, so that the report
//! shows the shapes of answers that carry a license.

mod round_trip;

use anyhow::Context;

use crate::billmanager::{
    Billmanager, BillmanagerClient, ListShape, UpstreamError, UpstreamStatus,
};
use crate::config::{ServeArgs, Settings};
use crate::sandbox::Sandbox;

use round_trip::sandbox_round_trip;

/// Flags of `license-facade doctor`.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The same settings as `serve` (upstream, credentials, catalog file, …).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Whether the check passed.
    pub passed: bool,
    /// What was checked, e.g. `log-in`.
    pub name: String,
    /// What was found.
    pub detail: String,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            passed: true,
            name: name.into(),
            detail: detail.into(),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            passed: false,
            name: name.into(),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.passed { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}: {}", self.name, self.detail)
    }
}

/// Runs the command: prints one line per check; returns 0 when every check passed,
/// 1 otherwise.
pub async fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    let checks = examine(Settings::from_args(args.serve)?).await?;
    for check in &checks {
        println!("{check}");
    }
    Ok(if checks.iter().all(|c| c.passed) {
        0
    } else {
        1
    })
}

/// Runs every check against the configured upstream (or the in-process sandbox with
/// `--sandbox`).
pub async fn examine(mut settings: Settings) -> anyhow::Result<Vec<Check>> {
    let own_sandbox = settings.sandbox.is_some();
    let _sandbox = match settings.sandbox.take() {
        Some(config) => {
            let sandbox = Sandbox::bind("127.0.0.1:0".parse().expect("valid"), config).await?;
            settings.billmanager.url = sandbox.url();
            let stop = tokio_util::sync::CancellationToken::new();
            tokio::spawn(sandbox.run(stop.clone().cancelled_owned()));
            Some(stop.drop_guard())
        }
        None => None,
    };
    let client = BillmanagerClient::new(settings.billmanager).context("cannot build the client")?;
    let mut checks = Vec::new();

    // The first call logs in; after a refusal nothing more is tried (a panel blocks
    // addresses whose log-ins keep failing).
    let shape = match client.list_shape().await {
        Ok(shape) => {
            checks.push(Check::pass(
                "log-in",
                "the upstream accepted the credentials",
            ));
            shape
        }
        Err(e) => {
            let what = match e {
                UpstreamError::Auth(_) => "the upstream refused the credentials",
                _ => "the upstream could not be asked",
            };
            checks.push(Check::fail("log-in", format!("{what}: {e}")));
            return Ok(checks);
        }
    };
    let shape = if own_sandbox {
        checks.extend(sandbox_round_trip(&client, &settings.catalog).await);
        // Read again: the list now holds the license just ordered.
        match client.list_shape().await {
            Ok(shape) => shape,
            Err(e) => {
                checks.push(Check::fail(
                    "answer shapes",
                    format!("cannot read the list again: {e}"),
                ));
                return Ok(checks);
            }
        }
    } else {
        shape
    };
    checks.push(shapes(&shape));
    checks.push(match client.list_licenses().await {
        Ok(list) => match &list.incomplete {
            // Normal for an account: a silent saved filter cannot be told from an
            // account without licenses in these statuses, so nothing to fix here.
            None => match crate::workflow::unseen_statuses(&list) {
                Some(why) => Check::pass(
                    "licenses",
                    format!(
                        "{} listed and no filter shows, but {why}: an order whose outcome is unknown will go to a person instead of being sent again",
                        list.licenses.len()
                    ),
                ),
                None => Check::pass(
                    "licenses",
                    format!(
                        "{} listed; no filter shows and every status an order may be in is listed, so a look-up can prove an order absent",
                        list.licenses.len()
                    ),
                ),
            },
            Some(why) => Check::fail(
                "licenses",
                format!(
                    "{} listed, but the list may leave licenses out ({why}); an order whose answer is lost will go to a person instead of being sent again — clear the account's saved filters",
                    list.licenses.len()
                ),
            ),
        },
        Err(e) => Check::fail("licenses", format!("cannot list the licenses: {e}")),
    });
    match client.price_list().await {
        Ok(tariffs) => {
            checks.push(Check::pass(
                "price list",
                format!("{} tariffs offered", tariffs.len()),
            ));
            for panel in settings.catalog.panels() {
                let name = format!("tariff {} ({})", panel.tariff_id, panel.name);
                let offered = tariffs.iter().find(|t| t.id == panel.tariff_id);
                checks.push(match offered {
                    None => Check::fail(name, "not offered upstream: orders would be refused"),
                    Some(_) if panel.trial => Check::pass(name, "offered (trial)"),
                    Some(t) => match t.prices.iter().find(|(months, _)| *months == 1) {
                        Some((_, cost)) if !cost.trim().is_empty() => {
                            Check::pass(name, format!("offered at {cost}{} a month", currency(t)))
                        }
                        _ => Check::fail(name, "offered without a monthly price"),
                    },
                });
            }
        }
        Err(e) => checks.push(Check::fail(
            "price list",
            format!("cannot read the price list: {e}"),
        )),
    }
    checks.push(match client.balance().await {
        Ok(Some((balance, currency))) => {
            Check::pass("balance", format!("{balance} {currency}").trim().to_owned())
        }
        Ok(None) => Check::pass("balance", "the API does not show it"),
        Err(e) => Check::pass("balance", format!("the API does not show it ({e})")),
    });
    Ok(checks)
}

fn currency(t: &crate::billmanager::UpstreamTariff) -> String {
    t.currency
        .as_deref()
        .map(|c| format!(" {c}"))
        .unwrap_or_default()
}

/// A status code with its meaning, e.g. `5 (processing)`.
fn status_name(code: u32) -> String {
    let meaning = match UpstreamStatus::from_code(code) {
        UpstreamStatus::Ordered => "ordered, unpaid",
        UpstreamStatus::Active => "active",
        UpstreamStatus::Suspended => "suspended",
        UpstreamStatus::Deleted => "deleted",
        UpstreamStatus::Processing => "processing",
        UpstreamStatus::Other(_) => "unknown",
    };
    format!("{code} ({meaning})")
}

/// What the list's columns mean for finding an order whose answer was lost.
fn shapes(shape: &ListShape) -> Check {
    if shape.rows == 0 {
        return Check::pass(
            "answer shapes",
            format!(
                "no license listed yet, so the list's columns are unknown; recovery matches by licname, else by IP + tariff + creation date; {}",
                filters(shape)
            ),
        );
    }
    let Some(id) = shape.id_column else {
        return Check::fail(
            "answer shapes",
            "list rows carry no `id`: licenses cannot be told apart",
        );
    };
    let matching = match (shape.remoteid, shape.licname) {
        (true, _) => "recovery matches by remoteid (listed), then licname",
        (false, true) => "no remoteid column; recovery matches by licname (our license id)",
        (false, false) => {
            "neither remoteid nor licname listed; recovery matches by IP + tariff + creation date, and two licenses on one IP and tariff go to a person"
        }
    };
    let raw = if shape.orig {
        "raw values in `orig`"
    } else {
        "no raw `orig` values (translated text is read)"
    };
    let statuses = shape
        .statuses
        .iter()
        .map(|(&code, n)| format!("{} ×{n}", status_name(code)))
        .collect::<Vec<_>>();
    let statuses = match shape.status_column {
        None => "rows without a status column".to_owned(),
        Some(column) => format!("status in `{column}`: {}", statuses.join(", ")),
    };
    Check::pass(
        "answer shapes",
        format!(
            "the id in `{id}`; {matching}; {raw}; {statuses}; {}",
            filters(shape)
        ),
    )
}

/// What the list answer said about filters (the `licenses` check judges them).
fn filters(shape: &ListShape) -> String {
    match (&shape.filter, shape.saved_filters) {
        (Some(why), _) => why.clone(),
        (None, true) => "`saved_filters` present and empty".to_owned(),
        (None, false) => "no `saved_filters` in the answer".to_owned(),
    }
}
