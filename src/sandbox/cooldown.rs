//! The change cooldowns: how soon a license's IP address or key may change again.
//!
//! Two rules, each with its own settings, and a license is under exactly one of them:
//!
//! - A **parked** license (bound to 0.0.0.0, how BILLmanager's own integrations and
//!   ISPsystem's WHMCS module keep a license between two servers) leaves the pool for a
//!   real address only once its last IP change (`real_ipchange`, the parking itself
//!   included) is `ip_change_cooldown_days` old, and gets a new key only once its last
//!   key change (`real_keychange`) is `key_change_cooldown_days` old. Both dates start
//!   at the creation day. Whole days: the rule compares the sandbox's today with the
//!   dates the `soft` list shows.
//! - A license **in use** is limited only between two moves from one real address to
//!   another (`ip_change_cooldown`, the first move free) and between two new keys
//!   (`key_change_cooldown`, off by default). Parking and leaving the pool never count
//!   as such moves, so a pool can always park a license.
//!
//! Moving to 0.0.0.0 (parking) is never held back.

use time::{Date, OffsetDateTime};

use super::config::SandboxConfig;
use super::doc::ApiError;
use super::rules::to_time;
use super::state::{Record, is_parking_ip};

fn days(n: u32) -> time::Duration {
    time::Duration::days(i64::from(n))
}

/// The first day a parked license may leave the pool.
fn pool_exit_day(cfg: &SandboxConfig, rec: &Record) -> Date {
    rec.lic.real_ipchange + days(cfg.ip_change_cooldown_days)
}

/// The first day a parked license may get a new key.
fn pool_key_day(cfg: &SandboxConfig, rec: &Record) -> Date {
    rec.lic.real_keychange + days(cfg.key_change_cooldown_days)
}

/// When a license in use may next move between real addresses, if a move holds it.
fn next_move(cfg: &SandboxConfig, rec: &Record) -> Option<OffsetDateTime> {
    rec.ip_moved_at.map(|t| t + to_time(cfg.ip_change_cooldown))
}

/// When a license in use may next get a new key, if a new key holds it.
fn next_key(cfg: &SandboxConfig, rec: &Record) -> Option<OffsetDateTime> {
    rec.key_changed_at
        .map(|t| t + to_time(cfg.key_change_cooldown))
}

/// The day the license may next move to a real address under the rule that applies
/// to it (a day already past: it may move now).
pub(crate) fn next_ip_change_day(cfg: &SandboxConfig, rec: &Record) -> Date {
    if rec.parked() {
        pool_exit_day(cfg, rec)
    } else {
        next_move(cfg, rec).map_or(rec.lic.real_ipchange, |t| t.date())
    }
}

/// The day the license may next get a new key under the rule that applies to it.
pub(crate) fn next_key_change_day(cfg: &SandboxConfig, rec: &Record) -> Date {
    if rec.parked() {
        pool_key_day(cfg, rec)
    } else {
        next_key(cfg, rec).map_or(rec.lic.real_keychange, |t| t.date())
    }
}

/// Refuses moving `rec` to `to` (another address than its own) while a cooldown
/// holds it; parking is always allowed.
pub(crate) fn check_ip_change(
    cfg: &SandboxConfig,
    rec: &Record,
    to: &str,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    if is_parking_ip(to) {
        return Ok(());
    }
    if rec.parked() {
        let until = pool_exit_day(cfg, rec);
        if now.date() < until {
            let msg = format!(
                "The IP change cooldown of this license has not passed: its IP address was \
                 last changed on {}, so it can leave 0.0.0.0 on {until}",
                rec.lic.real_ipchange
            );
            return Err(ApiError::value("ip", to, msg));
        }
        return Ok(());
    }
    match next_move(cfg, rec).filter(|next| *next > now) {
        Some(next) => Err(ApiError::value(
            "ip",
            to,
            format!(
                "The IP change cooldown of this license has not passed: its IP address \
                 can be changed after {}",
                next.date()
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses a new key for `rec` while a cooldown holds it.
pub(crate) fn check_new_key(
    cfg: &SandboxConfig,
    rec: &Record,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let id = rec.lic.id.to_string();
    if rec.parked() {
        let until = pool_key_day(cfg, rec);
        if now.date() < until {
            let msg = format!(
                "The key change cooldown of this license has not passed: its key was last \
                 changed on {}, so a new key can be issued on {until}",
                rec.lic.real_keychange
            );
            return Err(ApiError::value("lickey", &id, msg));
        }
        return Ok(());
    }
    match next_key(cfg, rec).filter(|next| *next > now) {
        Some(next) => Err(ApiError::value(
            "lickey",
            &id,
            format!(
                "The key change cooldown of this license has not passed: a new key can be \
                 issued after {}",
                next.date()
            ),
        )),
        None => Ok(()),
    }
}
