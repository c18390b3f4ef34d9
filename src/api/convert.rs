//! Conversions between API messages and service-layer values. Validation itself lives
//! in the service layer, so both transports refuse exactly the same requests.

use super::Timestamp;
use time::OffsetDateTime;

use super::pb::v1 as pb;
use crate::domain::{Event, EventKind, License, LicenseState, Panel, Period};
use crate::service::{
    EnsureAction, FeedItem, ListInput, OrderInput, Quote, ResolveAction, ResolveInput,
};

fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp::from(t)
}

/// The API state of a domain state.
fn state_to_pb(s: LicenseState) -> pb::license::State {
    use pb::license::State as S;
    match s {
        LicenseState::Pending => S::Pending,
        LicenseState::Provisioning => S::Provisioning,
        LicenseState::Active => S::Active,
        LicenseState::Suspended => S::Suspended,
        LicenseState::Cancelled => S::Cancelled,
        LicenseState::Failed => S::Failed,
        LicenseState::NeedsAttention => S::NeedsAttention,
        LicenseState::Parked => S::Parked,
        LicenseState::Reused => S::Reused,
    }
}

/// The domain state of an API state; `None` for unspecified (no filter).
pub fn state_from_pb(s: pb::license::State) -> Option<LicenseState> {
    use pb::license::State as S;
    Some(match s {
        S::Unspecified => return None,
        S::Pending => LicenseState::Pending,
        S::Provisioning => LicenseState::Provisioning,
        S::Active => LicenseState::Active,
        S::Suspended => LicenseState::Suspended,
        S::Cancelled => LicenseState::Cancelled,
        S::Failed => LicenseState::Failed,
        S::NeedsAttention => LicenseState::NeedsAttention,
        S::Parked => LicenseState::Parked,
        S::Reused => LicenseState::Reused,
    })
}

/// A license as the API shows it.
pub fn license_to_pb(l: &License) -> pb::License {
    pb::License {
        id: l.id.to_string(),
        server_id: l.server_id.to_string(),
        ip: l.ip.to_string(),
        hostname: l
            .hostname
            .as_ref()
            .map(|h| h.as_str().to_owned())
            .unwrap_or_default(),
        panel: l.panel.clone(),
        tariff_id: l.tariff_id,
        state: state_to_pb(l.state) as i32,
        license_key: l.license_key.clone().unwrap_or_default(),
        upstream_id: l.upstream_id.map(|id| id.to_string()).unwrap_or_default(),
        period_months: l.period.months(),
        auto_renew: l.auto_renew,
        nodes: l.nodes,
        trial: l.period == Period::Trial,
        expire_time: l.expire_time.map(timestamp),
        create_time: Some(timestamp(l.create_time)),
        update_time: Some(timestamp(l.update_time)),
        last_error: l.last_error.as_ref().map(|e| pb::LicenseError {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        reused_from: l.reused_from.map(|id| id.to_string()).unwrap_or_default(),
        reused_by: l.reused_by.map(|id| id.to_string()).unwrap_or_default(),
    }
}

/// A panel as the API shows it.
pub fn panel_to_pb(p: &Panel) -> pb::Panel {
    pb::Panel {
        name: p.name.clone(),
        tariff_id: p.tariff_id,
        trial: p.trial,
        supports_nodes: p.nodes_addon.is_some(),
        aliases: p.aliases.clone(),
    }
}

/// The service input of an order request.
pub fn order_input(r: pb::OrderLicenseRequest) -> OrderInput {
    let server = r.server.unwrap_or_default();
    OrderInput {
        server_id: server.id,
        ip: server.ip,
        hostname: server.hostname,
        panel: r.panel,
        period_months: r.period_months,
        auto_renew: r.auto_renew,
        nodes: r.nodes,
        trial: r.trial,
    }
}

/// The service input of a listing request.
pub fn list_input(r: pb::ListLicensesRequest) -> ListInput {
    ListInput {
        state: pb::license::State::try_from(r.state)
            .ok()
            .and_then(state_from_pb),
        server_id: r.server_id,
        ip: r.ip,
        panel: r.panel,
        page_size: r.page_size,
        page_token: r.page_token,
        client: String::new(),
        item_id: None,
    }
}

/// An event as the API shows it.
/// An event as the body of a webhook delivery: the proto3 JSON of its `LicenseEvent`,
/// exactly as the change feed shows it.
pub fn event_json(e: &Event) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&event_to_pb(e)).map_err(|e| e.to_string())
}

pub fn event_to_pb(e: &Event) -> pb::LicenseEvent {
    use pb::license_event::Kind as K;
    let kind = match e.kind {
        EventKind::Created => K::Created,
        EventKind::StateChanged => K::StateChanged,
        EventKind::KeyIssued => K::KeyIssued,
        EventKind::Renewed => K::Renewed,
        EventKind::IpChanged => K::IpChanged,
        EventKind::PanelChanged => K::PanelChanged,
        EventKind::OperationFailed => K::OperationFailed,
    };
    pb::LicenseEvent {
        id: e.id,
        kind: kind as i32,
        license: Some(license_to_pb(&e.license)),
        time: Some(timestamp(e.time)),
        price: e.price.as_ref().map(super::audit::call_price_to_pb),
    }
}

/// A change-feed item as the API shows it.
pub fn feed_item_to_pb(item: &FeedItem) -> pb::LicenseEvent {
    use pb::license_event::Kind as K;
    match item {
        FeedItem::Event(event) => event_to_pb(event),
        FeedItem::Expired { position } => pb::LicenseEvent {
            id: position.unwrap_or(0),
            kind: K::EventsExpired as i32,
            license: None,
            time: Some(timestamp(OffsetDateTime::now_utc())),
            price: None,
        },
        FeedItem::Snapshot { license, position } => pb::LicenseEvent {
            id: position.unwrap_or(0),
            kind: K::Snapshot as i32,
            license: Some(license_to_pb(license)),
            time: Some(timestamp(license.update_time)),
            price: None,
        },
    }
}

/// A quote as the API shows it.
pub fn quote_to_pb(q: &Quote) -> pb::QuoteLicenseResponse {
    pb::QuoteLicenseResponse {
        panel: q.panel.clone(),
        tariff_id: q.tariff_id,
        period_months: q.period_months,
        price: q.price.clone(),
        currency: q.currency.clone(),
    }
}

/// The API value of an ensure action.
pub fn ensure_action_to_pb(a: EnsureAction) -> pb::EnsureAction {
    match a {
        EnsureAction::None => pb::EnsureAction::None,
        EnsureAction::Ordered => pb::EnsureAction::Ordered,
        EnsureAction::Changed => pb::EnsureAction::Changed,
    }
}

/// The service input of an ensure request (an order of the wanted state).
pub fn ensure_input(r: pb::EnsureServerLicenseRequest) -> OrderInput {
    let server = r.server.unwrap_or_default();
    OrderInput {
        server_id: server.id,
        ip: server.ip,
        hostname: server.hostname,
        panel: r.panel,
        period_months: r.period_months,
        auto_renew: r.auto_renew,
        nodes: r.nodes,
        trial: false,
    }
}

/// The service action of an API resolve action; `None` for unspecified.
pub fn resolve_action_from_pb(a: pb::resolve_license_request::Action) -> Option<ResolveAction> {
    use pb::resolve_license_request::Action as A;
    match a {
        A::Unspecified => None,
        A::Retry => Some(ResolveAction::Retry),
        A::Bind => Some(ResolveAction::Bind),
        A::Abandon => Some(ResolveAction::Abandon),
    }
}

/// The service input of a resolve request.
pub fn resolve_input(r: &pb::ResolveLicenseRequest) -> ResolveInput {
    ResolveInput {
        action: pb::resolve_license_request::Action::try_from(r.action)
            .ok()
            .and_then(resolve_action_from_pb),
        reason: r.reason.clone(),
        upstream_id: r.upstream_id.clone(),
    }
}

/// A drift report as the API shows it.
pub fn drift_report_to_pb(r: &crate::service::DriftReport) -> pb::DriftReport {
    use crate::service::{MismatchField, MissingReason};
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    pb::DriftReport {
        generate_time: Some(timestamp(r.generate_time)),
        expiring_within_days: r.expiring_within_days,
        upstream_seen: count(r.upstream_seen),
        local_checked: count(r.local_checked),
        orphan_count: count(r.orphan_count),
        missing_count: count(r.missing_count),
        mismatch_count: count(r.mismatch_count),
        expiring_count: count(r.expiring_count),
        truncated: r.truncated(),
        orphans: r
            .orphans
            .iter()
            .map(|o| pb::OrphanLicense {
                upstream_id: o.upstream_id.to_string(),
                ip: o.ip.clone().unwrap_or_default(),
                tariff_id: o.tariff_id.unwrap_or_default(),
                tariff_name: o.tariff_name.clone().unwrap_or_default(),
                panel: o.panel.clone().unwrap_or_default(),
                licname: o.licname.clone().unwrap_or_default(),
                remote_id: o.remote_id.clone().unwrap_or_default(),
                upstream_status: o.status,
                create_time: o.create_time.map(timestamp),
                expire_time: o.expire_time.map(timestamp),
            })
            .collect(),
        missing: r
            .missing
            .iter()
            .map(|m| pb::MissingLicense {
                license: Some(license_to_pb(&m.license)),
                reason: match m.reason {
                    MissingReason::Absent => pb::MissingReason::Absent,
                    MissingReason::Deleted => pb::MissingReason::Deleted,
                } as i32,
            })
            .collect(),
        mismatches: r
            .mismatches
            .iter()
            .map(|m| pb::LicenseMismatch {
                license: Some(license_to_pb(&m.license)),
                field: match m.field {
                    MismatchField::Ip => pb::MismatchField::Ip,
                    MismatchField::Tariff => pb::MismatchField::Tariff,
                    MismatchField::Status => pb::MismatchField::Status,
                    MismatchField::Expiry => pb::MismatchField::Expiry,
                } as i32,
                ours: m.ours.clone(),
                upstream: m.upstream.clone(),
            })
            .collect(),
        expiring: r
            .expiring
            .iter()
            .map(|e| pb::ExpiringLicense {
                license: Some(license_to_pb(&e.license)),
                days_left: i32::try_from(e.days_left).unwrap_or(i32::MIN),
            })
            .collect(),
    }
}
