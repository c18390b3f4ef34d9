//! Tests of parking a license for reuse (0.0.0.0, `free.lic`, no remoteid), of the
//! cooldowns that hold a parked license in the pool, of the `real_ipchange` /
//! `real_keychange` columns, and of the new-key answer.

use std::time::Duration;

use serde_json::Value;

use super::tests::{TestSandbox, error_of, start, text_of};
use super::{DuplicateIpPolicy, SandboxConfig};

/// A sandbox whose licenses activate at once, with these pool cooldowns (days).
async fn start_with_cooldowns(ip_days: u32, key_days: u32) -> TestSandbox {
    start(SandboxConfig {
        key_delay: Duration::ZERO,
        ip_change_cooldown_days: ip_days,
        key_change_cooldown_days: key_days,
        ..SandboxConfig::default()
    })
    .await
}

impl TestSandbox {
    /// `soft.edit` with `sok=ok` and these fields; returns the body.
    async fn save(&self, id: u64, fields: &[(&str, &str)]) -> String {
        let elid = id.to_string();
        let mut p = vec![
            ("func", "soft.edit"),
            ("elid", elid.as_str()),
            ("sok", "ok"),
        ];
        p.extend_from_slice(fields);
        self.call(&p).await
    }

    /// Parks license `id` as the pools do: `free.lic` on 0.0.0.0 without a remoteid.
    async fn park(&self, id: u64) -> String {
        self.save(
            id,
            &[("licname", "free.lic"), ("ip", "0.0.0.0"), ("remoteid", "")],
        )
        .await
    }

    /// `soft.edit` with `clicked_button=newkey`; returns the body.
    async fn new_key(&self, id: u64, out: &str) -> String {
        let elid = id.to_string();
        self.call(&[
            ("func", "soft.edit"),
            ("elid", &elid),
            ("clicked_button", "newkey"),
            ("sok", "ok"),
            ("out", out),
        ])
        .await
    }

    /// The `soft` list row of license `id`, as JSON.
    async fn row(&self, id: u64) -> Value {
        let list = self.json("json", &[("func", "soft")]).await;
        let elems = match &list["doc"]["elem"] {
            Value::Array(all) => all.clone(),
            one => vec![one.clone()],
        };
        let want = id.to_string();
        elems
            .into_iter()
            .find(|e| e["id"]["$"] == want.as_str())
            .unwrap_or_else(|| panic!("{id} not listed in {list}"))
    }
}

/// The `soft.edit` form of the sandbox's first license.
async fn form_of(sb: &TestSandbox) -> String {
    let id = sb.handle.licenses()[0].id.to_string();
    sb.call(&[("func", "soft.edit"), ("elid", &id)]).await
}

fn ok(body: &str) {
    assert!(error_of(body).is_none(), "{body}");
}

fn refused_ip(body: &str) {
    assert_eq!(
        error_of(body),
        Some(("value".to_owned(), "ip".to_owned())),
        "{body}"
    );
}

#[tokio::test]
async fn an_active_or_suspended_license_parks_on_0_0_0_0_as_free_lic_without_a_remoteid() {
    let sb = start_with_cooldowns(30, 30).await;
    let active = sb.order("203.0.113.5", "55228").await;
    let suspended = sb.order("203.0.113.6", "55228").await;
    sb.call(&[("func", "soft.suspend"), ("elid", &suspended.to_string())])
        .await;

    ok(&sb.park(active).await);
    ok(&sb.park(suspended).await);

    for (id, status) in [(active, 2), (suspended, 3)] {
        let lic = sb.handle.license(id).unwrap();
        assert_eq!(
            (
                lic.ip.as_str(),
                lic.licname.as_str(),
                lic.remote_id.as_str()
            ),
            ("0.0.0.0", "free.lic", "")
        );
        assert_eq!(lic.status, status, "parking leaves the status alone");
    }
}

#[tokio::test]
async fn any_number_of_licenses_park_on_0_0_0_0_even_where_duplicates_are_refused() {
    let sb = start(SandboxConfig {
        key_delay: Duration::ZERO,
        duplicate_ip: DuplicateIpPolicy::Refuse,
        ..SandboxConfig::default()
    })
    .await;
    let first = sb.order("203.0.113.5", "55228").await;
    let second = sb.order("203.0.113.6", "55228").await;

    ok(&sb.park(first).await);
    ok(&sb.park(second).await);
    ok(&sb.park(first).await);

    assert!(sb.handle.licenses().iter().all(|l| l.ip == "0.0.0.0"));
}

#[tokio::test]
async fn the_name_and_the_remoteid_change_alone() {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;

    ok(&sb.save(id, &[("licname", "renamed")]).await);
    ok(&sb.save(id, &[("remoteid", "")]).await);

    let lic = sb.handle.license(id).unwrap();
    assert_eq!(
        (
            lic.ip.as_str(),
            lic.licname.as_str(),
            lic.remote_id.as_str()
        ),
        ("203.0.113.5", "renamed", "")
    );
}

#[tokio::test]
async fn the_list_shows_real_ipchange_and_real_keychange_from_the_creation_day_and_parking_moves_it()
 {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;
    let created = sb
        .handle
        .license(id)
        .unwrap()
        .create_time
        .date()
        .to_string();
    let row = sb.row(id).await;
    assert_eq!(row["real_ipchange"]["$"], created.as_str());
    assert_eq!(row["real_keychange"]["$"], created.as_str());

    sb.handle.advance_clock(time::Duration::days(3));
    ok(&sb.park(id).await);

    let parked_on = (sb.handle.license(id).unwrap().create_time + time::Duration::days(3))
        .date()
        .to_string();
    let row = sb.row(id).await;
    assert_eq!(row["real_ipchange"]["$"], parked_on.as_str());
    assert_eq!(row["real_keychange"]["$"], created.as_str());
    let xml = sb.call(&[("func", "soft")]).await;
    assert!(
        xml.contains(&format!("<real_ipchange>{parked_on}</real_ipchange>")),
        "{xml}"
    );
    let sjson = sb.json("sjson", &[("func", "soft")]).await;
    assert_eq!(
        sjson["doc"]["elem"][0]["real_ipchange"]["$"],
        parked_on.as_str()
    );
}

#[tokio::test]
async fn a_parked_license_leaves_the_pool_only_30_days_after_its_last_ip_change() {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;
    ok(&sb.park(id).await);
    let parked_on = sb.handle.license(id).unwrap().real_ipchange;

    let at_once = sb.save(id, &[("ip", "203.0.113.7")]).await;
    sb.handle.advance_clock(time::Duration::days(29));
    let day_29 = sb.save(id, &[("ip", "203.0.113.7")]).await;

    refused_ip(&at_once);
    refused_ip(&day_29);
    let until = parked_on + time::Duration::days(30);
    assert!(
        day_29.contains(&format!(
            "<msg>The IP change cooldown of this license has not passed: its IP address was \
             last changed on {parked_on}, so it can leave 0.0.0.0 on {until}</msg>"
        )),
        "{day_29}"
    );
    assert!(
        day_29.contains("<param name=\"value\">203.0.113.7</param>"),
        "{day_29}"
    );
    assert_eq!(sb.handle.license(id).unwrap().ip, "0.0.0.0");

    sb.handle.advance_clock(time::Duration::days(1));
    ok(&sb
        .save(id, &[("ip", "203.0.113.7"), ("licname", "srv7")])
        .await);
    let lic = sb.handle.license(id).unwrap();
    assert_eq!(
        (lic.ip.as_str(), lic.licname.as_str()),
        ("203.0.113.7", "srv7")
    );
    assert_eq!(
        lic.real_ipchange, until,
        "leaving the pool is an IP change too"
    );
}

#[tokio::test]
async fn with_a_0_day_cooldown_a_parked_license_leaves_the_pool_at_once_and_gets_a_new_key() {
    let sb = start_with_cooldowns(0, 0).await;
    let id = sb.order("203.0.113.5", "55228").await;
    ok(&sb.park(id).await);

    ok(&sb.new_key(id, "xml").await);
    ok(&sb.save(id, &[("ip", "203.0.113.8")]).await);

    assert_eq!(sb.handle.license(id).unwrap().ip, "203.0.113.8");
}

#[tokio::test]
async fn a_parked_license_gets_a_new_key_only_30_days_after_its_last_one() {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;
    sb.handle.advance_clock(time::Duration::days(20));
    ok(&sb.park(id).await);
    let key = sb.handle.license(id).unwrap().license_key;

    sb.handle.advance_clock(time::Duration::days(9));
    let day_29 = sb.new_key(id, "xml").await;
    sb.handle.advance_clock(time::Duration::days(1));
    let day_30 = sb.new_key(id, "xml").await;

    assert_eq!(
        error_of(&day_29),
        Some(("value".to_owned(), "lickey".to_owned())),
        "{day_29}"
    );
    assert!(
        day_29.contains("The key change cooldown of this license has not passed"),
        "{day_29}"
    );
    ok(&day_30);
    assert_ne!(sb.handle.license(id).unwrap().license_key, key);
}

#[tokio::test]
async fn aged_changes_let_a_parked_license_leave_the_pool_without_moving_the_clock() {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;
    ok(&sb.park(id).await);
    refused_ip(&sb.save(id, &[("ip", "203.0.113.9")]).await);
    let before = sb.handle.license(id).unwrap();

    assert!(sb.handle.age_changes(id, time::Duration::days(31)));
    let aged = sb.handle.license(id).unwrap();
    ok(&sb.new_key(id, "xml").await);
    ok(&sb.save(id, &[("ip", "203.0.113.9")]).await);

    assert_eq!(
        aged.real_ipchange,
        before.real_ipchange - time::Duration::days(31)
    );
    assert_eq!(
        aged.real_keychange,
        before.real_keychange - time::Duration::days(31)
    );
    assert!(!sb.handle.age_changes(42, time::Duration::days(1)));
}

#[tokio::test]
async fn licenses_in_use_are_not_held_by_the_pool_cooldowns() {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;

    ok(&sb.save(id, &[("ip", "203.0.113.6")]).await);
    ok(&sb.new_key(id, "xml").await);
    ok(&sb.new_key(id, "xml").await);

    let lic = sb.handle.license(id).unwrap();
    assert_eq!(lic.ip, "203.0.113.6");
    assert_eq!(lic.real_ipchange, lic.create_time.date());
}

#[tokio::test]
async fn parking_and_leaving_the_pool_are_not_moves_of_a_license_in_use() {
    let sb = start_with_cooldowns(0, 0).await;
    let id = sb.order("203.0.113.5", "55228").await;
    ok(&sb.park(id).await);
    ok(&sb.save(id, &[("ip", "203.0.113.6")]).await);

    let first_move = sb.save(id, &[("ip", "203.0.113.7")]).await;
    let second_move = sb.save(id, &[("ip", "203.0.113.8")]).await;
    let park_again = sb.park(id).await;

    ok(&first_move);
    refused_ip(&second_move);
    assert!(
        second_move.contains("its IP address can be changed after"),
        "{second_move}"
    );
    ok(&park_again);
    assert_eq!(sb.handle.license(id).unwrap().ip, "0.0.0.0");
}

#[tokio::test]
async fn a_new_key_answers_the_form_with_the_new_key_at_doc_lickey_in_xml_and_json() {
    let sb = start_with_cooldowns(30, 30).await;
    let id = sb.order("203.0.113.5", "55228").await;
    let old = sb.handle.license(id).unwrap().license_key;

    let xml = sb.new_key(id, "xml").await;
    let after_xml = sb.handle.license(id).unwrap().license_key;
    let json: Value = serde_json::from_str(&sb.new_key(id, "json").await).unwrap();
    let after_json = sb.handle.license(id).unwrap().license_key;

    let key = text_of(&xml, "lickey").expect("doc/lickey");
    assert_ne!(key, old);
    assert_eq!(key, after_xml);
    assert_eq!(key.len(), 32);
    assert!(
        xml.contains(&format!("<elid>{id}</elid>")),
        "the flat fields of the form: {xml}"
    );
    assert_eq!(text_of(&xml, "ip").as_deref(), Some("203.0.113.5"));
    assert_eq!(json["doc"]["lickey"]["$"], after_json.as_str());
    assert_ne!(after_json, after_xml);
}

#[tokio::test]
async fn the_form_dates_are_the_last_changes_or_when_the_next_are_allowed() {
    let last = start_with_cooldowns(30, 30).await;
    let next = start(SandboxConfig {
        key_delay: Duration::ZERO,
        change_dates_as_next_allowed: true,
        ..SandboxConfig::default()
    })
    .await;
    for sb in [&last, &next] {
        let id = sb.order("203.0.113.5", "55228").await;
        sb.handle.advance_clock(time::Duration::days(2));
        ok(&sb.park(id).await);
    }
    let lic = last.handle.licenses()[0].clone();
    let parked = next.handle.licenses()[0].clone();

    let (last_form, next_form) = (form_of(&last).await, form_of(&next).await);

    assert_eq!(
        text_of(&last_form, "ip_change_date"),
        Some(lic.real_ipchange.to_string())
    );
    assert_eq!(
        text_of(&last_form, "lickey_change_date"),
        Some(lic.create_time.date().to_string())
    );
    let days_30 = time::Duration::days(30);
    assert_eq!(
        text_of(&next_form, "ip_change_date"),
        Some((parked.real_ipchange + days_30).to_string())
    );
    assert_eq!(
        text_of(&next_form, "lickey_change_date"),
        Some((parked.real_keychange + days_30).to_string())
    );
}
