//! A license's page: its details (with the downstream item id, and where the
//! upstream id is not known yet, how far its order got upstream), the actions its
//! state allows, its events and its audit history.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;

use super::ConsoleState;
use super::error::PageError;
use super::session::Session;
use super::views::{ActionLink, AuditRow, Chrome, EventRow, LicensePage, LicenseRow, render, when};
use crate::auth::Scope;
use crate::domain::{License, LicenseState, Operation, OperationKind};
use crate::service::AuditQuery;

/// Audit entries on a license's page.
const HISTORY_SHOWN: i32 = 100;
/// Events on a license's page.
const EVENTS_SHOWN: u32 = 100;

/// `?done=` after an action: which one was accepted.
#[derive(Debug, Default, Deserialize)]
pub struct LicenseQuery {
    #[serde(default)]
    done: String,
}

/// The actions the license page offers: the ones the license's state allows now
/// (the domain's own check), when the client may change licenses.
fn offered_actions(license: &License, admin: bool) -> Vec<ActionLink> {
    let candidates = [
        (
            "renew",
            "Renew",
            false,
            OperationKind::Renew {
                period: 1,
                previous_expiry: None,
            },
        ),
        (
            "change-ip",
            "Change IP",
            false,
            // Any other address: only the state matters here.
            OperationKind::ChangeIp { ip: String::new() },
        ),
        (
            "change-panel",
            "Change panel",
            false,
            OperationKind::ChangePanel {
                tariff_id: 0,
                panel: String::new(),
                period: 1,
            },
        ),
        ("suspend", "Suspend", false, OperationKind::Suspend),
        ("resume", "Resume", false, OperationKind::Resume),
        (
            "reissue-key",
            "Reissue key",
            false,
            OperationKind::ReissueKey { previous_key: None },
        ),
        ("release", "Release", false, OperationKind::Park),
        ("cancel", "Cancel", true, OperationKind::Cancel),
    ];
    let mut offered: Vec<ActionLink> = candidates
        .into_iter()
        .filter(|(.., kind)| license.check_change(kind).is_ok())
        .map(|(slug, label, danger, _)| ActionLink {
            slug,
            label,
            danger,
        })
        .collect();
    // A person decides about a license the workflow stopped on: an admin's call.
    if admin && license.state == LicenseState::NeedsAttention {
        offered.insert(
            0,
            ActionLink {
                slug: "resolve",
                label: "Resolve",
                danger: false,
            },
        );
    }
    offered
}

/// `GET /console/licenses/{id}`: the license, its actions and its audit history.
pub async fn license(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<LicenseQuery>,
) -> Result<Response, PageError> {
    session.require(Scope::Read)?;
    let license = state
        .service
        .get_license(session.principal.owner_filter(), &id)
        .await?;
    // The audit log is an admin read on the API, so it is here.
    let history = if session.is_admin() {
        let page = state
            .service
            .list_audit(AuditQuery {
                license_id: license.id.to_string(),
                page_size: HISTORY_SHOWN,
                ..AuditQuery::default()
            })
            .await?;
        Some(page.items.iter().map(AuditRow::from).collect())
    } else {
        None
    };
    let events = state
        .service
        .license_events(session.principal.owner_filter(), &id, EVENTS_SHOWN)
        .await?;
    let item = state.service.item_id(&license).await?;
    let upstream_unbound = match license.upstream_id {
        Some(_) => String::new(),
        None => {
            let op = state
                .service
                .latest_operation(session.principal.owner_filter(), &id)
                .await?;
            unbound(&license, op.as_ref())
        }
    };
    let may_write = session.principal.allows(Scope::Write);
    let done = super::actions::ACTIONS
        .iter()
        .find(|a| a.slug == q.done)
        .map(|a| a.done)
        .unwrap_or_default()
        .to_owned();
    let page = LicensePage {
        chrome: Chrome::of(&session, "licenses"),
        l: LicenseRow::from(&license).with_item(Some(item)),
        upstream_id: license
            .upstream_id
            .map(|u| u.to_string())
            .unwrap_or_default(),
        upstream_unbound,
        tariff_id: license.tariff_id,
        period: match license.period.months() {
            0 => "trial".into(),
            1 => "1 month".into(),
            n => format!("{n} months"),
        },
        auto_renew: license.auto_renew,
        nodes: license.nodes.map(|n| n.to_string()).unwrap_or_default(),
        license_key: license.license_key.clone().unwrap_or_default(),
        reused_from: license
            .reused_from
            .map(|id| id.to_string())
            .unwrap_or_default(),
        reused_by: license
            .reused_by
            .map(|id| id.to_string())
            .unwrap_or_default(),
        created: when(license.create_time),
        done,
        actions: if may_write {
            offered_actions(&license, session.is_admin())
        } else {
            Vec::new()
        },
        may_write,
        history,
        events: events.iter().map(EventRow::from).collect(),
    };
    Ok(render(&page))
}

/// What the page says in place of the upstream id of a license that has none, from
/// its order's recorded progress: an order that was sent reached the upstream, and
/// may have bought a license there whether or not its answer came back.
fn unbound(license: &License, op: Option<&Operation>) -> String {
    let sent = op
        .filter(|op| op.kind == OperationKind::Order)
        .and_then(|op| Some((op.last_sent()?, op.attempt)));
    let Some((at, attempts)) = sent else {
        return "not ordered yet".into();
    };
    let sent = sent_words(at, attempts);
    match license.state {
        LicenseState::NeedsAttention => format!(
            "unknown: the order reached BILLmanager ({sent}) and its outcome is unknown; \
             look for it in the BILLmanager panel before resolving"
        ),
        LicenseState::Pending | LicenseState::Provisioning => {
            format!("not known yet: the order reached BILLmanager ({sent}); its answer is awaited")
        }
        _ => format!(
            "none: the order was sent to BILLmanager ({sent}) and no license there is bound to this one"
        ),
    }
}

fn sent_words(at: OffsetDateTime, attempts: u32) -> String {
    match attempts {
        1 => format!("sent at {}", when(at)),
        n => format!("sent {n} times, last at {}", when(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientName, LicenseId, LicenseIp, Period, ServerId};

    fn license(state: LicenseState) -> License {
        let now = OffsetDateTime::UNIX_EPOCH;
        License {
            id: LicenseId::generate(),
            client: ClientName::new("ops"),
            server_id: ServerId::parse("srv-1", "serverId").unwrap(),
            ip: LicenseIp::parse("203.0.113.1", "ip").unwrap(),
            hostname: None,
            panel: "ISPmanager 6 Lite".into(),
            tariff_id: 3651,
            nodes: None,
            period: Period::Month,
            auto_renew: false,
            state,
            license_key: None,
            upstream_id: None,
            expire_time: None,
            create_time: now,
            update_time: now,
            last_error: None,
            reused_by: None,
            reused_from: None,
        }
    }

    fn order(l: &License, attempt: u32, sent: bool) -> Operation {
        let mut op = Operation::received(l.id, OperationKind::Order, l.create_time);
        op.attempt = attempt;
        op.sent_at = sent.then_some(time::macros::datetime!(2030-01-02 03:04 UTC));
        op
    }

    #[test]
    fn an_order_that_was_sent_says_it_reached_the_upstream_with_its_time() {
        let l = license(LicenseState::NeedsAttention);
        let said = unbound(&l, Some(&order(&l, 1, true)));
        assert!(said.contains("reached BILLmanager"), "{said}");
        assert!(said.contains("sent at 2030-01-02 03:04 UTC"), "{said}");
        assert!(said.contains("outcome is unknown"), "{said}");
        let twice = unbound(&l, Some(&order(&l, 2, true)));
        assert!(
            twice.contains("sent 2 times, last at 2030-01-02 03:04 UTC"),
            "{twice}"
        );
    }

    #[test]
    fn an_order_never_sent_is_not_ordered_yet() {
        let l = license(LicenseState::Pending);
        assert_eq!(unbound(&l, None), "not ordered yet");
        assert_eq!(unbound(&l, Some(&order(&l, 0, false))), "not ordered yet");
        // An attempt taken back before it was sent keeps its stamp, uncounted.
        assert_eq!(unbound(&l, Some(&order(&l, 0, true))), "not ordered yet");
    }
}
