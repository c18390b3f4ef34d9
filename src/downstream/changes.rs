//! `service.prolong`, `soft.suspend`, `soft.resume` and `soft.delete`: each the
//! service's own change (queued, sent once, recovered after an unknown outcome),
//! answered once it is made or after [`CHANGE_WAIT`](super::request::CHANGE_WAIT).

use std::time::Instant;

use crate::domain::License;
use crate::protocol::{ApiError, Doc, Node, status_name};
use crate::service::{Call, Outcome, ServiceError};

use super::error::to_api_error;
use super::items::status_of;
use super::request::{CHANGE_WAIT, Req};

/// `func=service.prolong`: without `sok` the form; with it a renewal for `period`
/// (1 or 12), answered `<doc><doc><newexpiredate>…</newexpiredate></doc></doc>` (where
/// noc reads it) once made, else `ok`.
pub async fn prolong(r: &Req<'_>) -> Result<Doc, ApiError> {
    let (item, license) = r.license().await?;
    let expiry = |l: &License| {
        l.expire_time
            .map(|t| t.date().to_string())
            .unwrap_or_default()
    };
    if !r.params.sok() {
        return Ok(Doc::form(vec![
            Node::text("elid", item),
            Node::text("period", license.period.upstream_value()),
            Node::text("expiredate", expiry(&license)),
        ]));
    }
    let period: i32 = r.params.require_parsed("period")?;
    let outcome = r
        .service
        .renew(&r.change_call(), &license.id.to_string(), period)
        .await
        .map_err(|e| r.fail(&e))?;
    if !outcome.settled {
        return Ok(Doc::ok());
    }
    let inner = Node::new("doc").with_child(Node::text("newexpiredate", expiry(&outcome.license)));
    Ok(Doc::form(vec![inner]))
}

/// Which change a group function makes.
#[derive(Debug, Clone, Copy)]
pub enum Group {
    /// `soft.suspend`.
    Suspend,
    /// `soft.resume`.
    Resume,
    /// `soft.delete`.
    Delete,
}

/// What became of one item of a group change.
enum ItemResult {
    /// Made; the license as it is after it.
    Done(License),
    /// Accepted and still going after the wait; the license as the wait left it.
    InProgress(License),
    /// Refused; the license as it was looked up (unchanged by this call).
    Refused(License, ApiError),
}

/// `soft.suspend` / `soft.resume` / `soft.delete` on one item or a `", "`-separated
/// list. Every id is looked up first, so one the caller may not see changes nothing.
///
/// One item answers as before: `ok`, or the item's error. Several are changed one by
/// one, each whatever became of the others, waiting [`CHANGE_WAIT`] for them all
/// together, and the answer says per item what happened ([`per_item`]).
pub async fn group(r: &Req<'_>, change: Group) -> Result<Doc, ApiError> {
    let items = r.params.elids()?;
    let mut licenses = Vec::new();
    for item in &items {
        licenses.push(r.license_of(*item).await?);
    }
    // The items share one wait, so that a long list is still answered before the
    // request's own timeout: an answer lost to it would hide what was changed.
    let deadline = Instant::now() + CHANGE_WAIT;
    let mut results = Vec::new();
    for (item, license) in items.iter().zip(licenses) {
        let left = deadline.saturating_duration_since(Instant::now());
        let call = Call {
            wait: Some(left).filter(|w| !w.is_zero()),
            ..r.call()
        };
        let id = license.id.to_string();
        let outcome: Result<Outcome, ServiceError> = match change {
            Group::Suspend => r.service.suspend(&call, &id).await,
            Group::Resume => r.service.resume(&call, &id).await,
            Group::Delete => r.service.cancel(&call, &id).await,
        };
        let result = match outcome {
            Ok(o) if o.settled => ItemResult::Done(o.license),
            Ok(o) => ItemResult::InProgress(o.license),
            Err(e) => ItemResult::Refused(license, to_api_error(&e, Some(&item.to_string()))),
        };
        results.push((*item, result));
    }
    match results.as_slice() {
        [(_, ItemResult::Refused(_, e))] => Err(e.clone()),
        [_] => Ok(Doc::ok()),
        _ => Ok(per_item(r.params.get("func").unwrap_or_default(), &results)),
    }
}

/// The answer of a change on several items (see docs/compat.md): `ok` when every item
/// was changed, else the first refusal as the answer's `error`, its message naming the
/// item and how many were changed — never an error alone once an item has been
/// changed; then one `elem` per item.
fn per_item(func: &str, results: &[(u64, ItemResult)]) -> Doc {
    let changed = results
        .iter()
        .filter(|(_, r)| !matches!(r, ItemResult::Refused(..)))
        .count();
    let first_refusal = results.iter().find_map(|(item, r)| match r {
        ItemResult::Refused(_, e) => Some((*item, e)),
        _ => None,
    });
    let head = match first_refusal {
        None => Node::new("ok"),
        Some((item, e)) => {
            let summary = ApiError {
                msg: format!(
                    "Item {item}: {} ({changed} of {} items changed)",
                    e.msg.trim_end(),
                    results.len()
                ),
                ..e.clone()
            };
            summary.to_node(func)
        }
    };
    let mut children = vec![head];
    children.extend(results.iter().map(|(item, result)| item_row(*item, result)));
    Doc::form(children)
}

/// One item's `elem`: `id`, `result` (`ok`, `in_progress` or `error`), the item's
/// `status` after the call (with `status_msg`), and for a refusal its `error_type` and
/// `msg`. Not called `error`, so that a client looking for the answer's error finds
/// only the one at the top.
fn item_row(item: u64, result: &ItemResult) -> Node {
    let (outcome, license, refusal) = match result {
        ItemResult::Done(l) => ("ok", l, None),
        ItemResult::InProgress(l) => ("in_progress", l, None),
        ItemResult::Refused(l, e) => ("error", l, Some(e)),
    };
    let code = status_of(license);
    let mut row = Node::new("elem");
    row.add_field("id", item);
    row.add_field("result", outcome);
    row.add_field("status", code);
    row.children
        .push(Node::text("status_msg", status_name(code)).with_attr("orig", code));
    if let Some(e) = refusal {
        row.add_field("error_type", &e.kind);
        row.add_field("msg", e.msg.trim_end());
    }
    row
}
