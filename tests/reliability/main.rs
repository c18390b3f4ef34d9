//! Reliability tests: the process aborted at each crash point, killed with SIGKILL at
//! random moments, upstream answers lost or timed out, and a property-based model of
//! order / retry / crash / fault sequences. All on SQLite. See docs/reliability.md.
//!
//! Fast tier: plain `cargo test`. Slow tier (each crash point ≥ 20 times, more SIGKILL
//! rounds): `cargo test -- --ignored`, run by `.ci/run`.

#[path = "../support/mod.rs"]
mod support;

mod change_crash_points;
mod checks;
mod crash_points;
mod faults;
mod figures;
mod model;
mod renewal;
mod restart;
mod sigkill;
mod stale_change;
mod stop;
mod takeover;
mod webhooks;
