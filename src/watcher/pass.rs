//! One pass: read the panel catalog, the platform and the watcher's licenses; decide
//! (`plan`); write the bookkeeping; then make the calls — cancellations (or releases
//! to the pool) first, then moves and panel changes, then orders — each with a request
//! id derived from the server and its license's generation, so a pass cut short
//! anywhere and run again repeats nothing. A release waits for its park, so the same
//! pass's orders can take the parked licenses instead of buying.

use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt as _;

use super::Watcher;
use super::api::{EnsureCall, Ensured};
use super::config::ReleasePolicy;
use super::desired::{Catalog, Observed, observe};
use super::plan::{self, EnsureWhy, Inputs, Plan};
use super::report::{ListingSummary, PassReport, StepResult};

/// How a pass runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassMode {
    /// Decide and report, but send nothing and write no bookkeeping.
    pub dry_run: bool,
    /// Lift the share limit on cancellations for this pass.
    pub allow_mass_cancel: bool,
}

/// Runs one pass. An error means nothing was decided (the catalog or the licenses
/// could not be read, or the bookkeeping could not be written); failed calls are in
/// the report instead.
pub async fn run(w: &Watcher, mode: PassMode) -> anyhow::Result<PassReport> {
    let started = Instant::now();
    let now = w.now();
    let prefix = w.config.server_prefix();
    let panels = w.api.panels().await.context("reading the panel catalog")?;
    let catalog = Catalog::new(panels.iter().map(|(n, a)| (n.as_str(), a.as_slice())));
    let listing = w.platform.list_servers().await;
    let (licenses, list_calls) = w
        .api
        .licenses(&prefix)
        .await
        .context("listing the watcher's licenses")?;
    let mut listing_summary = ListingSummary {
        complete: listing.is_complete(),
        reason: match &listing.completeness {
            crate::platform::Completeness::Complete => None,
            crate::platform::Completeness::Incomplete(why) => Some(why.clone()),
        },
        servers: listing.servers.len(),
        requests: listing.requests,
    };
    let live = licenses.iter().filter(|l| l.is_live()).count();
    if listing_summary.complete
        && listing.servers.is_empty()
        && live > 0
        && !w.config.trust_empty_listing
    {
        listing_summary.complete = false;
        listing_summary.reason = Some(format!(
            "the platform listed no servers while {live} licenses are live; an empty listing is \
             not believed (platform.trust_empty_listing)"
        ));
    }
    let observed: Vec<(u64, Observed)> = listing
        .servers
        .iter()
        .map(|s| {
            (
                s.id,
                observe(s, &w.config.markers, w.config.address, &catalog),
            )
        })
        .collect();
    let state = w.state_file.load()?;
    let plan = plan::decide(&Inputs {
        prefix: &prefix,
        listing_complete: listing_summary.complete,
        observed: &observed,
        licenses: &licenses,
        state: &state,
        now,
        defaults: &w.config.licenses,
        cancel: &w.config.cancel,
        allow_mass_cancel: mode.allow_mass_cancel,
    });
    if !mode.dry_run {
        // Before any call: a pass killed after this point counts its listing once,
        // and a cancellation decided here is decided again by the next pass.
        w.state_file.save(&plan.state)?;
    }
    let steps = if mode.dry_run {
        planned(&plan)
    } else {
        execute(w, &plan).await
    };
    let report = report(
        now,
        started,
        mode,
        listing_summary,
        list_calls + 1,
        &observed,
        &plan,
        steps,
    );
    if !mode.dry_run {
        w.board.record(
            &prefix,
            &report,
            &listing.servers,
            &observed,
            &licenses,
            &plan,
        );
    }
    Ok(report)
}

fn ensure_action(why: EnsureWhy) -> &'static str {
    match why {
        EnsureWhy::Order => "order",
        EnsureWhy::Move => "move",
        EnsureWhy::Panel => "panel",
        EnsureWhy::MoveAndPanel => "move_and_panel",
    }
}

fn ensure_step(why: EnsureWhy, call: &EnsureCall, license_id: Option<String>) -> StepResult {
    StepResult {
        action: ensure_action(why),
        server_id: call.server_id.clone(),
        license_id,
        ip: Some(call.ip.clone()),
        panel: Some(call.panel.clone()),
        request_id: call.request_id.clone(),
        result: "planned",
        outcome: None,
        reason: None,
        error: None,
    }
}

fn planned(plan: &Plan) -> Vec<StepResult> {
    let cancels = plan.cancels.iter().map(planned_cancel);
    let ensures = plan
        .ensures
        .iter()
        .map(|e| ensure_step(e.why, &e.call, e.license_id.clone()));
    cancels.chain(ensures).collect()
}

/// Makes the calls, `concurrency` at a time: cancellations or releases, then changes,
/// then orders.
async fn execute(w: &Watcher, plan: &Plan) -> Vec<StepResult> {
    let n = w.config.concurrency;
    // Each call owns what it needs: futures that borrow from a closure's argument are
    // not `Send` for every lifetime, and the serving loop runs passes in a task.
    let cancels: Vec<_> = plan
        .cancels
        .iter()
        .map(|c| end(w.api.clone(), c.clone()))
        .collect();
    let mut steps: Vec<StepResult> = futures::stream::iter(cancels)
        .buffer_unordered(n)
        .collect()
        .await;
    let (changes, orders): (Vec<_>, Vec<_>) =
        plan.ensures.iter().partition(|e| e.why != EnsureWhy::Order);
    for phase in [changes, orders] {
        let calls: Vec<_> = phase
            .into_iter()
            .map(|e| ensure(w.api.clone(), e.clone()))
            .collect();
        let done: Vec<StepResult> = futures::stream::iter(calls)
            .buffer_unordered(n)
            .collect()
            .await;
        steps.extend(done);
    }
    steps
}

/// Ends the license of a gone server: cancels it, or releases it to the pool.
async fn end(api: super::api::LicenseApi, c: plan::CancelStep) -> StepResult {
    let mut step = planned_cancel(&c);
    match c.policy {
        ReleasePolicy::Cancel => match api.cancel(&c.license_id, &c.request_id).await {
            Ok(license) => {
                step.result = "done";
                tracing::info!(
                    server_id = %c.server_id, license_id = %license.id, reason = c.reason,
                    state = license.state, "license cancelled"
                );
            }
            Err(e) => fail(&mut step, &e),
        },
        ReleasePolicy::Park => match api.release(&c.license_id, &c.request_id).await {
            Ok(released) => {
                step.result = "done";
                step.outcome = Some(if released.parked {
                    "parked"
                } else {
                    "cancelled"
                });
                step.reason = Some(released.reason.clone()).filter(|r| !r.is_empty());
                tracing::info!(
                    server_id = %c.server_id, license_id = %released.license.id,
                    reason = c.reason, state = released.license.state,
                    outcome = step.outcome, pool_reason = %released.reason,
                    "license released"
                );
            }
            Err(e) => fail(&mut step, &e),
        },
    }
    step
}

async fn ensure(api: super::api::LicenseApi, e: plan::EnsureStep) -> StepResult {
    let mut step = ensure_step(e.why, &e.call, e.license_id.clone());
    match api.ensure(&e.call).await {
        Ok((license, action)) => {
            step.result = if action == Ensured::None {
                "unchanged"
            } else {
                "done"
            };
            step.license_id = Some(license.id.clone());
            tracing::info!(
                server_id = %e.call.server_id, license_id = %license.id, ip = %e.call.ip,
                panel = %e.call.panel, action = step.action, result = step.result,
                "license ensured"
            );
        }
        Err(err) => fail(&mut step, &err),
    }
    step
}

fn planned_cancel(c: &plan::CancelStep) -> StepResult {
    StepResult {
        action: match c.policy {
            ReleasePolicy::Cancel => "cancel",
            ReleasePolicy::Park => "release",
        },
        server_id: c.server_id.clone(),
        license_id: Some(c.license_id.clone()),
        ip: None,
        panel: None,
        request_id: c.request_id.clone(),
        result: "planned",
        outcome: None,
        reason: None,
        error: None,
    }
}

fn fail(step: &mut StepResult, e: &super::api::ApiError) {
    tracing::warn!(server_id = %step.server_id, action = step.action, error.message = %e, "call failed; retried at the next pass");
    step.result = "error";
    step.error = Some(e.to_string());
}

#[allow(clippy::too_many_arguments)]
fn report(
    now: i64,
    started: Instant,
    mode: PassMode,
    listing: ListingSummary,
    read_calls: u64,
    observed: &[(u64, Observed)],
    plan: &Plan,
    steps: Vec<StepResult>,
) -> PassReport {
    let count = |action: &[&str]| {
        steps
            .iter()
            .filter(|s| s.result == "done" && action.contains(&s.action))
            .count()
    };
    let calls = steps.iter().filter(|s| s.result != "planned").count() as u64;
    let released = |outcome: &str| {
        steps
            .iter()
            .filter(|s| s.action == "release" && s.outcome == Some(outcome))
            .count()
    };
    PassReport {
        started_at: now,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: mode.dry_run,
        listing,
        api_calls: read_calls + calls,
        servers_marked: observed
            .iter()
            .filter(|(_, o)| !matches!(o, Observed::Unmarked))
            .count(),
        licenses_live: plan.live_licenses,
        in_order: plan.in_order,
        ordered: count(&["order"]),
        moved: count(&["move", "move_and_panel"]),
        panel_changed: count(&["panel", "move_and_panel"]),
        cancelled: count(&["cancel"]) + released("cancelled"),
        released: count(&["release"]),
        parked: released("parked"),
        errors: steps.iter().filter(|s| s.result == "error").count(),
        steps,
        pending: plan.pending.clone(),
        held: plan.held.clone(),
        blocked: plan.blocked.clone(),
    }
}
