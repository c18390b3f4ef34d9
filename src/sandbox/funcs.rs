//! One function per BILLmanager `func`: read the parameters, apply the rules under the
//! state lock, and build the answer.

use super::config::{OrderIdAt, SandboxConfig};
use super::doc::{ApiError, Doc, Node};
use super::rules::{OrderRequest, check_ip};
use super::state::{State, status};
use super::views;
use crate::protocol::{OrderForm, Params};

/// Runs `func` against the state. Authentication has already been checked.
pub(crate) fn dispatch(
    cfg: &SandboxConfig,
    st: &mut State,
    func: &str,
    p: &Params,
) -> Result<Doc, ApiError> {
    match func {
        "soft" => Ok(views::soft_list(
            cfg,
            st,
            p.parse("p_num")?,
            p.parse("p_cnt")?,
        )),
        "soft.order.param" => order(cfg, st, p),
        "soft.checkip" => checkip(cfg, st, p),
        "soft.edit" => edit(cfg, st, p),
        "soft.suspend" => group(cfg, st, p, status::SUSPENDED),
        "soft.resume" => group(cfg, st, p, status::ACTIVE),
        "soft.delete" => group(cfg, st, p, status::DELETED),
        "service.prolong" => prolong(cfg, st, p),
        "service.changepricelist" => changepricelist(cfg, st, p),
        "subaccount" => Ok(views::subaccount(cfg, st)),
        "pricelist.export" => Ok(views::pricelist_export(cfg)),
        other => Err(ApiError::unknown_func(other)),
    }
}

fn order_request(p: &Params, skipbasket: bool) -> Result<OrderRequest, ApiError> {
    let mut req = OrderForm::read(p)?;
    req.ip = check_ip(&req.ip)?;
    req.skipbasket = skipbasket;
    Ok(req)
}

/// `soft.order.param`: `<doc><ok/><id>N</id></doc>` by default (the XPath `/doc/id` of
/// the client ISPsystem wrote); [`OrderIdAt`] moves or drops the id.
fn order(cfg: &SandboxConfig, st: &mut State, p: &Params) -> Result<Doc, ApiError> {
    if !p.sok() {
        return Err(ApiError::missed("sok"));
    }
    let req = order_request(p, p.get("skipbasket") == Some("on"))?;
    let id = st.order(cfg, req)?;
    let mut answer = vec![Node::new("ok")];
    if matches!(cfg.order_id_at, OrderIdAt::Id | OrderIdAt::Both) {
        answer.push(Node::text("id", id));
    }
    if matches!(cfg.order_id_at, OrderIdAt::ItemId | OrderIdAt::Both) {
        answer.push(Node::text("item.id", id));
    }
    Ok(Doc::form(answer))
}

/// `soft.checkip`: would this order be accepted (money aside)?
fn checkip(cfg: &SandboxConfig, st: &mut State, p: &Params) -> Result<Doc, ApiError> {
    let req = order_request(p, false)?;
    st.check_order(cfg, &req)?;
    Ok(Doc::ok())
}

/// `soft.edit`: the form without `sok`; with `sok`, a new key (`clicked_button=newkey`,
/// answered with the form and so the new key at `/doc/lickey`, where ISPsystem's WHMCS
/// module reads it) or a save of `ip` / `licname` / `remoteid` (`<ok/>`).
fn edit(cfg: &SandboxConfig, st: &mut State, p: &Params) -> Result<Doc, ApiError> {
    let id = p.elid()?;
    if !p.sok() {
        let rec = st.record(cfg, id)?;
        return Ok(views::soft_edit_form(cfg, rec));
    }
    if p.get("clicked_button") == Some("newkey") {
        st.new_key(cfg, id)?;
        let rec = st.record(cfg, id)?;
        return Ok(views::soft_edit_form(cfg, rec));
    }
    let ip = p.get("ip").map(check_ip).transpose()?;
    let licname = sent(p, "licname").map(str::to_owned);
    let remote_id = sent(p, "remoteid").map(str::to_owned);
    st.edit(cfg, id, ip, licname, remote_id)?;
    Ok(Doc::ok())
}

/// The trimmed value of `name` when it was sent, an empty one included: an empty
/// `remoteid` clears it, as a pool does when it parks a license.
fn sent<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.0.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
}

/// `soft.suspend` / `soft.resume` / `soft.delete` on one id or a list of ids.
fn group(cfg: &SandboxConfig, st: &mut State, p: &Params, to: u32) -> Result<Doc, ApiError> {
    let ids = p.elids()?;
    // Check every id first so that a bad one in a list changes nothing.
    for id in &ids {
        st.live_record(cfg, *id)?;
    }
    for id in ids {
        st.set_status(cfg, id, to)?;
    }
    Ok(Doc::ok())
}

/// `service.prolong`: `<doc><doc><newexpiredate>…</newexpiredate></doc></doc>`, the
/// nested shape noc reads. Without `sok` it shows the form and changes nothing.
fn prolong(cfg: &SandboxConfig, st: &mut State, p: &Params) -> Result<Doc, ApiError> {
    let id = p.elid()?;
    if !p.sok() {
        let rec = st.live_record(cfg, id)?;
        return Ok(Doc::form(vec![
            Node::text("elid", id),
            Node::text("period", rec.lic.period),
            Node::text("expiredate", rec.lic.expire_date),
        ]));
    }
    let period = p.require_parsed("period")?;
    let date = st.prolong(cfg, id, period)?;
    let inner = Node::new("doc").with_child(Node::text("newexpiredate", date));
    Ok(Doc::form(vec![inner]))
}

/// `service.changepricelist`: the form of allowed tariffs without `sok`, else the switch.
fn changepricelist(cfg: &SandboxConfig, st: &mut State, p: &Params) -> Result<Doc, ApiError> {
    let id = p.elid()?;
    if !p.sok() {
        let rec = st.live_record(cfg, id)?;
        return Ok(views::changepricelist_form(cfg, rec));
    }
    let tariff = p.pricelist()?;
    let period = p.parse("period")?;
    st.change_tariff(cfg, id, tariff, period)?;
    Ok(Doc::ok())
}
