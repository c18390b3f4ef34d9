//! Durable work items: every upstream change to a license is an operation that moves
//! through recovery points, so a crash at any moment resumes from the last one instead
//! of repeating (or losing) a paid call.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{EventKind, License, LicenseId};

/// What an operation does upstream. Each variant carries what its recovery needs to
/// tell, from the upstream's view of the license, whether it was already carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationKind {
    /// `soft.order.param`, then wait for the key.
    Order,
    /// `service.prolong` for `period` months.
    Renew {
        /// 1 or 12.
        period: i32,
        /// The upstream expiry before the renewal (`YYYY-MM-DD`), to recognise it done.
        previous_expiry: Option<String>,
    },
    /// `soft.edit` with a new `ip`.
    ChangeIp {
        /// The new address.
        ip: String,
    },
    /// `service.changepricelist` to another tariff.
    ChangePanel {
        /// Target tariff.
        tariff_id: u32,
        /// Target panel's canonical name.
        panel: String,
        /// Period sent with the change (1 or 12).
        period: i32,
    },
    /// `soft.suspend`.
    Suspend,
    /// `soft.resume`.
    Resume,
    /// `soft.delete`.
    Cancel,
    /// `soft.edit` with `clicked_button=newkey`, then wait for the new key.
    ReissueKey {
        /// The key before, to recognise the new one.
        previous_key: Option<String>,
    },
    /// `soft.suspend` (unless suspended already), then `soft.edit` with `ip=0.0.0.0`:
    /// the license goes to the pool of its tariff.
    Park,
    /// A parked license of ours taken for this order instead of buying: `soft.edit`
    /// to this license's IP with its id as `licname`/`remoteid`, then `soft.resume`
    /// (and a new key when the pool's rules ask for one); done once it is active
    /// upstream with a key. Nothing is bought.
    Reuse {
        /// The parked license taken.
        from: String,
        /// Whether a new key is asked for after the move.
        new_key: bool,
        /// The key before, to recognise the new one.
        previous_key: Option<String>,
    },
    /// A parked license of ours taken back out of the pool by its own client onto
    /// `ip` (the WHMCS module's reuse of its own parked item): `soft.edit` with the
    /// new `ip` (our id stays its name), and it stays suspended until resumed. The
    /// license is SUSPENDED on `ip` from its acceptance, so it holds its server and
    /// the IP as an order's license does; refused upstream, it goes back to the pool
    /// on `previous_ip`. Nothing is bought.
    Unpark {
        /// The address it moves to.
        ip: String,
        /// Its address before it was parked, kept while it is parked.
        previous_ip: String,
    },
}

impl OperationKind {
    /// The stable name stored with the operation and shown in events.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Order => "ORDER",
            Self::Renew { .. } => "RENEW",
            Self::ChangeIp { .. } => "CHANGE_IP",
            Self::ChangePanel { .. } => "CHANGE_PANEL",
            Self::Suspend => "SUSPEND",
            Self::Resume => "RESUME",
            Self::Cancel => "CANCEL",
            Self::ReissueKey { .. } => "REISSUE_KEY",
            Self::Park => "PARK",
            Self::Reuse { .. } => "REUSE",
            Self::Unpark { .. } => "UNPARK",
        }
    }

    /// The event that shows this paid operation carried out (an order's CREATED, a
    /// renewal's RENEWED, a panel change's PANEL_CHANGED); it carries the call's
    /// price in the change feed. `None` for an operation that buys nothing.
    pub fn paid_event(&self) -> Option<EventKind> {
        match self {
            Self::Order => Some(EventKind::Created),
            Self::Renew { .. } => Some(EventKind::Renewed),
            Self::ChangePanel { .. } => Some(EventKind::PanelChanged),
            _ => None,
        }
    }

    /// The IP the step binds its license to when that is not the license's own: an IP
    /// change's or an unpark's target. It is reserved from the step's acceptance to its end, so that
    /// no other step or order can bind a second license to it meanwhile (an order, which
    /// binds its new license to the license's own IP, reserves that; see
    /// [`Operation::occupies`]).
    pub fn target_ip(&self) -> Option<&str> {
        match self {
            Self::ChangeIp { ip } | Self::Unpark { ip, .. } => Some(ip),
            _ => None,
        }
    }

    /// Takes what recovery compares against (the expiry before a renewal, the key
    /// before a reissue) from `license` as it stands when the change is about to be
    /// sent. Taken when the change is accepted, it can be stale: a change that was
    /// still finishing then (a reissue reading its new key) moves it on afterwards,
    /// and recovery would then take the upstream's state for this change done
    /// without it ever being sent.
    pub fn observe(&mut self, license: &License) {
        match self {
            Self::Renew {
                previous_expiry, ..
            } => *previous_expiry = license.expire_time.map(upstream_date),
            Self::ReissueKey { previous_key } => previous_key.clone_from(&license.license_key),
            _ => {}
        }
    }
}

/// A time as the upstream writes a date (`YYYY-MM-DD`).
fn upstream_date(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The recovery point an operation has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Stored; nothing has gone upstream.
    Received,
    /// Committed before the upstream call: a request may be in flight or may have been
    /// carried out. Finding an operation here after a crash or an unclear answer means
    /// recovery (look the license up upstream), never a blind re-send.
    Intent,
    /// The upstream carried the call out; what remains is reading the result.
    Confirmed,
    /// Finished.
    Done,
    /// Ended without the change (upstream refusal) or handed to a person.
    Failed,
}

impl Phase {
    /// The stable stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "RECEIVED",
            Self::Intent => "INTENT",
            Self::Confirmed => "CONFIRMED",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Received,
            Self::Intent,
            Self::Confirmed,
            Self::Done,
            Self::Failed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// Whether the operation still has work to do.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Done | Self::Failed)
    }
}

/// One durable work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Store-assigned id.
    pub id: i64,
    /// The license it works on.
    pub license_id: LicenseId,
    /// What it does.
    pub kind: OperationKind,
    /// The recovery point reached.
    pub phase: Phase,
    /// How many times the upstream call has been sent.
    pub attempt: u32,
    /// Recovery look-ups in the current attempt that found nothing, or status polls.
    pub checks: u32,
    /// Consecutive upstream calls of this operation that failed.
    pub failures: u32,
    /// Not to be worked on before this moment.
    #[serde(with = "time::serde::rfc3339")]
    pub run_after: OffsetDateTime,
    /// The last transient problem, for operators.
    pub last_error: Option<String>,
    /// When the last upstream attempt was sent, at the latest: stamped with INTENT
    /// (a short allowance ahead for the commit; the call is not made once it has
    /// passed), and the call is bounded to end one request timeout after it. A request that went out may
    /// still land upstream until then, so no look-up before that moment can prove
    /// the attempt absent; a takeover after a crash counts from it, not from the
    /// restart. `None` until the first attempt.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    /// The W3C `traceparent` of the request that enqueued it, so that its steps,
    /// run later by a worker, continue that request's trace; `None` when traces are
    /// not exported.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl Operation {
    /// When its last attempt was sent upstream, if one was: an attempt counted and
    /// its send time stamped (an attempt that was not sent after all is uncounted).
    pub fn last_sent(&self) -> Option<OffsetDateTime> {
        self.sent_at.filter(|_| self.attempt > 0)
    }

    /// The IP this step of `license` will occupy until it ends, if any: an order's
    /// license's own IP, an IP change's target.
    pub fn occupies(&self, license: &License) -> Option<String> {
        match &self.kind {
            OperationKind::Order | OperationKind::Reuse { .. } => Some(license.ip.to_string()),
            kind => kind.target_ip().map(str::to_owned),
        }
    }

    /// A new operation at [`Phase::Received`], due at once (in no trace until
    /// [`in_trace`](Self::in_trace)).
    pub fn received(license_id: LicenseId, kind: OperationKind, now: OffsetDateTime) -> Self {
        Self {
            id: 0,
            license_id,
            kind,
            phase: Phase::Received,
            attempt: 0,
            checks: 0,
            failures: 0,
            run_after: now,
            last_error: None,
            sent_at: None,
            traceparent: None,
        }
    }

    /// The operation, continuing the trace `traceparent` (W3C) when its steps run.
    pub fn in_trace(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }
}
