//! Crash points for tests: named places in the workflow where a test can make the
//! process abort, to prove that a restart on the same database resumes from the last
//! recovery point without ordering twice or applying a change twice.
//!
//! Only builds with `debug_assertions` (what `cargo test` and `cargo build` produce) have
//! the switch; in `--release` builds [`point`] is an empty function the optimiser removes,
//! so no environment variable can make a production process abort.
//!
//! - `LICENSE_FACADE_CRASH_AT`: comma-separated point names, e.g. `after-intent` or
//!   `after-send,after-response`.
//! - `LICENSE_FACADE_CRASH_AFTER=N` (optional, default 1): abort on the N-th time a
//!   named point is reached in this process (hits of all named points are counted
//!   together).
//!
//! The points, in the order an order passes them (see `service::worker`):
//! [`BEFORE_INTENT`], [`AFTER_INTENT`], [`AFTER_SEND`], [`AFTER_RESPONSE`],
//! [`AFTER_CONFIRMED`]. A change of an existing license (renew, change IP or panel,
//! suspend, resume, reissue key, cancel; see `service::changes`) passes the same
//! points: its upstream call is sent between INTENT and the response, and
//! [`AFTER_CONFIRMED`] follows the commit of CONFIRMED (the change made upstream and
//! applied here), before the last read that picks up its results.

/// The work item is claimed, nothing about this attempt is committed yet; for an
/// order taken at its acceptance (`workflow::at_once`), before the commit that stores
/// it at INTENT, so nothing of it is stored.
pub const BEFORE_INTENT: &str = "before-intent";
/// INTENT (attempt n, remoteid = our id) is committed; nothing has been sent.
pub const AFTER_INTENT: &str = "after-intent";
/// The order request went out and the upstream call returned; its result is not looked
/// at yet.
pub const AFTER_SEND: &str = "after-send";
/// A definite answer is in hand and about to be committed (CONFIRMED, or FAILED for a
/// refusal).
pub const AFTER_RESPONSE: &str = "after-response";
/// An order: the upstream id is committed with the first activation read's result:
/// CONFIRMED (not active yet, polling goes on) or DONE (active at once). A change:
/// CONFIRMED is committed, the read of what the change produced is not done yet.
pub const AFTER_CONFIRMED: &str = "after-confirmed";

/// Every crash point, in workflow order.
pub const ALL: [&str; 5] = [
    BEFORE_INTENT,
    AFTER_INTENT,
    AFTER_SEND,
    AFTER_RESPONSE,
    AFTER_CONFIRMED,
];

/// The environment variable naming the points to abort at.
pub const CRASH_AT_ENV: &str = "LICENSE_FACADE_CRASH_AT";
/// The environment variable saying on which hit to abort (default 1).
pub const CRASH_AFTER_ENV: &str = "LICENSE_FACADE_CRASH_AFTER";

/// Aborts the process here if `LICENSE_FACADE_CRASH_AT` names this point (and the hit
/// count reached `LICENSE_FACADE_CRASH_AFTER`). A no-op in release builds.
#[cfg(debug_assertions)]
pub fn point(name: &'static str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Armed {
        points: Vec<String>,
        after: u64,
    }
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    let armed = ARMED.get_or_init(|| {
        let points: Vec<String> = std::env::var(CRASH_AT_ENV)
            .ok()?
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if points.is_empty() {
            return None;
        }
        let after = std::env::var(CRASH_AFTER_ENV)
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(1u64)
            .max(1);
        Some(Armed { points, after })
    });
    let Some(armed) = armed else { return };
    if !armed.points.iter().any(|p| p == name) {
        return;
    }
    let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
    if hit >= armed.after {
        eprintln!("license-facade: crash point {name} reached (hit {hit}); aborting");
        // Lines logged just before (where the service listens, among them) are
        // gathered for a few milliseconds before they are written; the abort would
        // lose them.
        crate::telemetry::flush_log();
        std::process::abort();
    }
}

/// Release builds: crash points do not exist.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &'static str) {}
