//! `service.prolong`, `soft.suspend`, `soft.resume` and `soft.delete`: each the
//! service's own change (queued, sent once, recovered after an unknown outcome),
//! answered once it is made or after [`CHANGE_WAIT`](super::request::CHANGE_WAIT).

use crate::domain::License;
use crate::protocol::{ApiError, Doc, Node};
use crate::service::{Outcome, ServiceError};

use super::request::Req;

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

/// `soft.suspend` / `soft.resume` / `soft.delete` on one item or a `", "`-separated
/// list. Every id is looked up first, so one the caller may not see changes nothing.
pub async fn group(r: &Req<'_>, change: Group) -> Result<Doc, ApiError> {
    let mut licenses = Vec::new();
    for item in r.params.elids()? {
        licenses.push(r.license_of(item).await?);
    }
    let call = r.change_call();
    for license in licenses {
        let id = license.id.to_string();
        let result: Result<Outcome, ServiceError> = match change {
            Group::Suspend => r.service.suspend(&call, &id).await,
            Group::Resume => r.service.resume(&call, &id).await,
            Group::Delete => r.service.cancel(&call, &id).await,
        };
        result.map_err(|e| r.fail(&e))?;
    }
    Ok(Doc::ok())
}
