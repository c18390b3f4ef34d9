//! Tests of the license operations over HTTP: money, statuses, keys, cooldowns, trials,
//! renewals and tariff changes.

use std::time::Duration;

use super::tests::{error_of, order_params, start, start_default, text_of};
use super::{DuplicateIpPolicy, SandboxConfig, SandboxRenewal};

fn err(t: &str, o: &str) -> Option<(String, String)> {
    Some((t.to_owned(), o.to_owned()))
}

#[tokio::test]
async fn an_order_debits_the_balance_and_answers_id_and_item_id() {
    let sb = start_default().await;

    let body = sb.call(&order_params("203.0.113.5", "55228", "12")).await;

    let id = text_of(&body, "id").unwrap();
    assert!(
        body.contains(&format!("<ok/><id>{id}</id><tparams>")),
        "{body}"
    );
    assert!(!body.contains("item.id"), "doc/id only by default: {body}");
    assert_eq!(id, "1000001");
    assert_eq!(sb.handle.balance(), 1_000_000 - 9000);
    let form = sb.call(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(
        text_of(&form, "status").as_deref(),
        Some("2"),
        "zero key delay"
    );
    assert_eq!(text_of(&form, "lickey").map(|k| k.len()), Some(32));
    assert_eq!(
        text_of(&form, "pricelist_name").as_deref(),
        Some("ispmanager 6 pro")
    );
    assert_eq!(text_of(&form, "remoteid").as_deref(), Some("abc"));
    let lic = sb.handle.license(id.parse().unwrap()).unwrap();
    assert_eq!(
        lic.expire_date,
        super::state::add_months(lic.create_time.date(), 12)
    );
}

#[tokio::test]
async fn business_nodes_are_charged_per_node_and_pricelist_may_end_in_a_semicolon() {
    let sb = start_default().await;
    let mut p = order_params("203.0.113.5", "55230;", "1");
    p.push(("addon_55236", "3"));

    let body = sb.call(&p).await;

    assert!(error_of(&body).is_none(), "{body}");
    assert_eq!(sb.handle.balance(), 1_000_000 - 2500 - 3 * 500);
    let lic = &sb.handle.licenses()[0];
    assert_eq!(lic.addons.get(&55236), Some(&3));
}

#[tokio::test]
async fn not_enough_money_creates_and_debits_nothing() {
    let sb = start_default().await;
    sb.handle.set_balance(899);

    let body = sb.call(&order_params("203.0.113.5", "55228", "1")).await;

    assert_eq!(error_of(&body), err("value", "balance"));
    assert!(body.contains("Not enough money on the balance"));
    assert_eq!(sb.handle.balance(), 899);
    assert!(sb.handle.licenses().is_empty());
}

#[tokio::test]
async fn missing_and_invalid_order_parameters_are_refused() {
    let sb = start_default().await;
    for missing in ["sok", "ip", "period", "pricelist"] {
        let p: Vec<_> = order_params("203.0.113.5", "55228", "1")
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_eq!(error_of(&sb.call(&p).await), err("missed", missing));
    }
    let bad = [
        ("ip", "300.1.1.1", "55228", "1"),
        ("pricelist", "1.2.3.4", "99999", "1"),
        ("period", "1.2.3.4", "55228", "3"),
        ("period", "1.2.3.4", "55228", "-100"),
        ("period", "1.2.3.4", "55239", "1"),
    ];
    for (object, ip, pricelist, period) in bad {
        let body = sb.call(&order_params(ip, pricelist, period)).await;
        assert_eq!(
            error_of(&body),
            err("value", object),
            "{ip} {pricelist} {period}"
        );
    }
    assert!(sb.handle.licenses().is_empty());
    assert_eq!(sb.handle.balance(), 1_000_000);
}

#[tokio::test]
async fn without_skipbasket_the_order_awaits_payment_and_costs_nothing() {
    let sb = start_default().await;
    let p: Vec<_> = order_params("203.0.113.5", "55228", "1")
        .into_iter()
        .filter(|(k, _)| *k != "skipbasket")
        .collect();
    sb.call(&p).await;
    let lic = &sb.handle.licenses()[0];
    assert_eq!((lic.status, lic.license_key.as_str()), (1, ""));
    assert_eq!(sb.handle.balance(), 1_000_000);
}

#[tokio::test]
async fn a_new_order_is_processing_until_the_key_delay_has_passed() {
    let sb = start(SandboxConfig {
        key_delay: Duration::from_secs(30),
        ..SandboxConfig::default()
    })
    .await;
    let id = sb.order("203.0.113.5", "55228").await.to_string();
    let form = sb.call(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(text_of(&form, "status").as_deref(), Some("5"));
    assert!(form.contains("<lickey/>"), "{form}");

    sb.handle.advance_clock(time::Duration::seconds(31));

    let form = sb.call(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(text_of(&form, "status").as_deref(), Some("2"));
    assert_eq!(text_of(&form, "lickey").map(|k| k.len()), Some(32));
}

#[tokio::test]
async fn a_short_real_key_delay_elapses_on_its_own() {
    let sb = start(SandboxConfig {
        key_delay: Duration::from_millis(40),
        ..SandboxConfig::default()
    })
    .await;
    let id = sb.order("203.0.113.5", "55228").await;
    assert_eq!(sb.handle.license(id).unwrap().status, 5);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(sb.handle.license(id).unwrap().status, 2);
}

#[tokio::test]
async fn ip_changes_are_rate_limited_from_the_previous_change() {
    let sb = start_default().await;
    let id = sb.order("203.0.113.5", "55228").await.to_string();
    let move_to = |ip: &'static str| {
        let id = id.clone();
        let sb = &sb;
        async move {
            sb.call(&[
                ("func", "soft.edit"),
                ("elid", &id),
                ("ip", ip),
                ("sok", "ok"),
            ])
            .await
        }
    };
    sb.handle.advance_clock(time::Duration::days(2));

    assert_eq!(error_of(&move_to("203.0.113.6").await), move_to_ok());
    sb.handle.advance_clock(time::Duration::days(29));
    assert_eq!(error_of(&move_to("203.0.113.7").await), err("value", "ip"));
    sb.handle.advance_clock(time::Duration::days(2));
    assert_eq!(error_of(&move_to("203.0.113.7").await), move_to_ok());

    let lic = sb.handle.license(id.parse().unwrap()).unwrap();
    assert_eq!(lic.ip, "203.0.113.7");
    assert!(lic.ip_change_date.is_some());
    let other = sb.order("203.0.113.9", "55227").await.to_string();
    let taken = sb
        .call(&[
            ("func", "soft.edit"),
            ("elid", &other),
            ("ip", "203.0.113.7"),
            ("sok", "ok"),
        ])
        .await;
    assert_eq!(error_of(&taken), err("exists", "ip"));
}

fn move_to_ok() -> Option<(String, String)> {
    None
}

#[tokio::test]
async fn renaming_and_new_keys_need_no_cooldown_by_default() {
    let sb = start_default().await;
    let id = sb.order("203.0.113.5", "55228").await;
    let elid = id.to_string();
    let key = sb.handle.license(id).unwrap().license_key;

    sb.call(&[
        ("func", "soft.edit"),
        ("elid", &elid),
        ("licname", "renamed"),
        ("sok", "ok"),
    ])
    .await;
    for _ in 0..2 {
        let body = sb
            .call(&[
                ("func", "soft.edit"),
                ("elid", &elid),
                ("clicked_button", "newkey"),
                ("sok", "ok"),
            ])
            .await;
        assert!(error_of(&body).is_none(), "{body}");
    }

    let lic = sb.handle.license(id).unwrap();
    assert_eq!(lic.licname, "renamed");
    assert_ne!(lic.license_key, key);
    assert!(lic.key_change_date.is_some() && lic.ip_change_date.is_none());
}

#[tokio::test]
async fn a_trial_is_granted_once_per_ip_and_cannot_be_renewed() {
    let sb = start_default().await;
    let first = sb.call(&order_params("203.0.113.5", "55239", "-100")).await;
    let id = text_of(&first, "id").unwrap();
    let lic = sb.handle.license(id.parse().unwrap()).unwrap();
    assert_eq!(
        lic.expire_date,
        lic.create_time.date() + time::Duration::days(14)
    );

    let again = sb.call(&order_params("203.0.113.5", "55240", "-100")).await;
    assert_eq!(error_of(&again), err("exists", "ip"));
    let check = sb
        .call(&[
            ("func", "soft.checkip"),
            ("pricelist", "55239"),
            ("period", "-100"),
            ("ip", "203.0.113.5"),
            ("sok", "ok"),
        ])
        .await;
    assert_eq!(error_of(&check), err("exists", "ip"));
    let renew = sb
        .call(&[
            ("func", "service.prolong"),
            ("elid", &id),
            ("period", "1"),
            ("sok", "ok"),
        ])
        .await;
    assert_eq!(error_of(&renew), err("value", "elid"));
    assert_eq!(sb.handle.balance(), 1_000_000);
}

#[tokio::test]
async fn prolong_answers_a_nested_doc_and_debits_the_price() {
    let sb = start_default().await;
    let id = sb.order("203.0.113.5", "55227").await;
    let before = sb.handle.license(id).unwrap().expire_date;

    let body = sb
        .call(&[
            ("func", "service.prolong"),
            ("elid", &id.to_string()),
            ("period", "12"),
            ("sok", "ok"),
        ])
        .await;

    let after = super::state::add_months(before, 12);
    assert!(
        body.contains(&format!(
            "<doc><newexpiredate>{after}</newexpiredate></doc><tparams>"
        )),
        "{body}"
    );
    assert_eq!(sb.handle.license(id).unwrap().expire_date, after);
    assert_eq!(sb.handle.balance(), 1_000_000 - 600 - 6000);
}

#[tokio::test]
async fn the_renewal_journal_lists_each_period_bought_and_no_refused_one() {
    let sb = start_default().await;
    let id = sb.order("203.0.113.5", "55227").await;
    let before = sb.handle.license(id).unwrap().expire_date;
    let prolong = |period: &'static str| {
        let elid = id.to_string();
        let sb = &sb;
        async move {
            sb.call(&[
                ("func", "service.prolong"),
                ("elid", &elid),
                ("period", period),
                ("sok", "ok"),
            ])
            .await
        }
    };

    prolong("1").await;
    let refused = prolong("7").await;
    prolong("12").await;

    assert!(refused.contains("<error"), "{refused}");
    let once = super::state::add_months(before, 1);
    let twice = super::state::add_months(once, 12);
    assert_eq!(
        sb.handle.renewals(),
        vec![
            SandboxRenewal {
                license: id,
                months: 1,
                cost_cents: 600,
                expire_before: before,
                expire_after: once,
            },
            SandboxRenewal {
                license: id,
                months: 12,
                cost_cents: 6000,
                expire_before: once,
                expire_after: twice,
            },
        ]
    );
    assert_eq!(sb.handle.carried_out("service.prolong"), 2);
}

#[tokio::test]
async fn tariff_changes_charge_the_difference_and_refuse_trials() {
    let sb = start_default().await;
    let id = sb.order("203.0.113.5", "55227").await;
    let elid = id.to_string();
    let change = |to: &'static str| {
        let elid = elid.clone();
        let sb = &sb;
        async move {
            sb.call(&[
                ("func", "service.changepricelist"),
                ("elid", &elid),
                ("pricelist", to),
                ("period", "1"),
                ("sok", "ok"),
            ])
            .await
        }
    };

    assert!(error_of(&change("55229").await).is_none());
    assert_eq!(sb.handle.balance(), 1_000_000 - 600 - (1600 - 600));
    assert_eq!(error_of(&change("55239").await), err("value", "pricelist"));
    assert_eq!(sb.handle.license(id).unwrap().tariff_id, 55229);

    let trial: u64 = text_of(
        &sb.call(&order_params("203.0.113.8", "55239", "-100")).await,
        "id",
    )
    .unwrap()
    .parse()
    .unwrap();
    let body = sb
        .call(&[
            ("func", "service.changepricelist"),
            ("elid", &trial.to_string()),
            ("pricelist", "55228"),
            ("period", "1"),
            ("sok", "ok"),
        ])
        .await;
    assert!(error_of(&body).is_none(), "{body}");
    assert_eq!(sb.handle.license(trial).unwrap().period, 1);
    assert_eq!(sb.handle.balance(), 1_000_000 - 600 - 1000 - 900);
}

#[tokio::test]
async fn suspend_resume_delete_and_nothing_after_delete() {
    let sb = start_default().await;
    let id = sb.order("203.0.113.5", "55228").await;
    let elid = id.to_string();
    let op = |func: &'static str| {
        let elid = elid.clone();
        let sb = &sb;
        async move {
            sb.call(&[("func", func), ("elid", &elid), ("sok", "ok")])
                .await
        }
    };

    op("soft.suspend").await;
    assert_eq!(sb.handle.license(id).unwrap().status, 3);
    op("soft.resume").await;
    assert_eq!(sb.handle.license(id).unwrap().status, 2);
    op("soft.delete").await;
    assert_eq!(sb.handle.license(id).unwrap().status, 4);

    assert!(
        sb.call(&[("func", "soft")])
            .await
            .contains("<item_status orig=\"4\">Deleted</item_status>")
    );
    for func in ["soft.suspend", "soft.resume", "soft.delete"] {
        assert_eq!(error_of(&op(func).await), err("value", "elid"), "{func}");
    }
    let renew = sb
        .call(&[
            ("func", "service.prolong"),
            ("elid", &elid),
            ("period", "1"),
            ("sok", "ok"),
        ])
        .await;
    assert_eq!(error_of(&renew), err("value", "elid"));
    let unknown = sb.call(&[("func", "soft.edit"), ("elid", "42")]).await;
    assert_eq!(error_of(&unknown), err("value", "elid"));
}

#[tokio::test]
async fn the_refuse_policy_blocks_a_second_license_on_one_ip() {
    let sb = start(SandboxConfig {
        key_delay: Duration::ZERO,
        duplicate_ip: DuplicateIpPolicy::Refuse,
        ..SandboxConfig::default()
    })
    .await;
    sb.order("203.0.113.5", "55228").await;
    let second = sb.call(&order_params("203.0.113.5", "55227", "1")).await;
    assert_eq!(error_of(&second), err("exists", "ip"));
    assert_eq!(sb.handle.licenses().len(), 1);
}
