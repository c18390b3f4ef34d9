//! HTTP-level tests of [`BillmanagerClient`] against a wiremock upstream.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use secrecy::SecretString;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use super::{
    Billmanager, BillmanagerClient, ClientConfig, OrderParams, UpstreamError, UpstreamStatus,
    WireFormat,
};

const USER: &str = "reseller";
/// Characters that need form encoding, so a leak in either form would be caught.
const PASSWORD: &str = "S3cr3t:p&ss=w%rd";
const PASSWORD_ENCODED: &str = "S3cr3t%3Ap%26ss%3Dw%25rd";

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    crate::protocol::parse_urlencoded(&String::from_utf8_lossy(body))
}

fn form_value(request: &Request, key: &str) -> Option<String> {
    form(&request.body)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Matches a request whose form body has `key=value`.
struct FormHas(&'static str, &'static str);

impl Match for FormHas {
    fn matches(&self, request: &Request) -> bool {
        form_value(request, self.0).as_deref() == Some(self.1)
    }
}

fn func(name: &'static str) -> FormHas {
    FormHas("func", name)
}

fn xml(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/xml")
}

fn json(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

fn config(url: String) -> ClientConfig {
    ClientConfig {
        url,
        user: USER.into(),
        password: SecretString::from(PASSWORD),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

fn client_with(server: &MockServer, edit: impl FnOnce(&mut ClientConfig)) -> BillmanagerClient {
    let mut config = config(format!("{}/billmgr", server.uri()));
    edit(&mut config);
    BillmanagerClient::new(config).expect("client builds")
}

fn client(server: &MockServer) -> BillmanagerClient {
    client_with(server, |_| {})
}

/// Asserts that an error names neither the password nor the upstream's address, and
/// hands it back for further checks.
fn clean(error: UpstreamError, server_uri: &str) -> UpstreamError {
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
        assert!(
            !shown.contains(PASSWORD_ENCODED),
            "password leaked: {shown}"
        );
        assert!(!shown.contains(server_uri), "URL leaked: {shown}");
        assert!(!shown.contains("127.0.0.1"), "address leaked: {shown}");
    }
    error
}

fn order() -> OrderParams {
    OrderParams {
        tariff_id: 55230,
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        period: 1,
        autoprolong: None,
        remote_id: "lic-1".into(),
        licname: "srv1".into(),
        addons: vec![(55236, 3)],
    }
}

async fn mount(server: &MockServer, name: &'static str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/billmgr"))
        .and(func(name))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_call_is_a_post_form_with_credentials_in_the_body_only() {
    let server = MockServer::start().await;
    mount(&server, "soft.suspend", xml("<doc><ok/></doc>")).await;

    client(&server).suspend_license(77).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/billmgr");
    assert_eq!(request.url.query(), None);
    assert!(!request.url.as_str().contains(PASSWORD_ENCODED));
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let body = form(&request.body);
    let expected = [
        ("func", "soft.suspend"),
        ("out", "xml"),
        ("lang", "en"),
        ("authinfo", &format!("{USER}:{PASSWORD}")),
        ("elid", "77"),
        ("sok", "ok"),
    ];
    for (key, value) in expected {
        assert!(
            body.iter().any(|(k, v)| k == key && v == value),
            "missing {key}"
        );
    }
}

#[tokio::test]
async fn an_order_sends_every_parameter_and_returns_the_xml_id() {
    let server = MockServer::start().await;
    mount(
        &server,
        "soft.order.param",
        xml(r#"<?xml version="1.0" encoding="UTF-8"?><doc><ok/><id>123</id><item.id>123</item.id></doc>"#),
    )
    .await;

    let id = client(&server).order_license(&order()).await.unwrap();

    assert_eq!(id, 123);
    let request = &server.received_requests().await.unwrap()[0];
    let expected = [
        ("sok", "ok"),
        ("clicked_button", "finish"),
        ("skipbasket", "on"),
        ("pricelist", "55230"),
        ("ip", "203.0.113.5"),
        ("period", "1"),
        ("autoprolong", "null"),
        ("remoteid", "lic-1"),
        ("licname", "srv1"),
        ("addon_55236", "3"),
    ];
    for (key, value) in expected {
        assert_eq!(form_value(request, key).as_deref(), Some(value), "{key}");
    }
}

#[tokio::test]
async fn an_order_in_json_returns_the_id_and_reads_fallback_shapes() {
    let server = MockServer::start().await;
    Mock::given(func("soft.order.param"))
        .and(FormHas("autoprolong", "12"))
        .and(FormHas("out", "json"))
        .respond_with(json(
            r#"{"doc":{"ok":{},"id":{"$":"456"},"item.id":{"$":"456"}}}"#,
        ))
        .mount(&server)
        .await;
    Mock::given(func("soft.order.param"))
        .and(FormHas("autoprolong", "1"))
        .respond_with(json(r#"{"doc":{"item.id":{"$":"457"}}}"#))
        .mount(&server)
        .await;
    Mock::given(func("soft.order.param"))
        .and(FormHas("autoprolong", "null"))
        .respond_with(json(r#"{"doc":{"id":{"v":"458"}}}"#))
        .mount(&server)
        .await;
    let client = client_with(&server, |c| c.format = WireFormat::Json);

    let mut params = order();
    params.autoprolong = Some(12);
    assert_eq!(client.order_license(&params).await.unwrap(), 456);
    params.autoprolong = Some(1);
    assert_eq!(client.order_license(&params).await.unwrap(), 457);
    params.autoprolong = None;
    assert_eq!(client.order_license(&params).await.unwrap(), 458);
}

const DETAILS_XML: &str = "<doc><elid>123</elid><id>123</id><licname>srv1</licname>\
    <ip>203.0.113.5</ip><lickey>KEY-1</lickey><status>2</status><pricelist>55228</pricelist>\
    <pricelist_name>ispmanager 6 pro</pricelist_name><period>1</period>\
    <createdate>2025-01-01</createdate><expiredate>2025-02-01</expiredate>\
    <ip_change_date>2025-01-02</ip_change_date><lickey_change_date>2025-01-03</lickey_change_date>\
    <remoteid>abc</remoteid></doc>";

fn expected_details() -> super::UpstreamLicense {
    super::UpstreamLicense {
        id: 123,
        ip: Some("203.0.113.5".into()),
        licname: Some("srv1".into()),
        remote_id: Some("abc".into()),
        status: UpstreamStatus::Active,
        tariff_id: Some(55228),
        tariff_name: Some("ispmanager 6 pro".into()),
        license_key: Some("KEY-1".into()),
        period: Some(1),
        create_date: Some("2025-01-01".into()),
        expire_date: Some("2025-02-01".into()),
        ip_change_date: Some("2025-01-02".into()),
        key_change_date: Some("2025-01-03".into()),
        ip_changed: None,
        key_changed: None,
    }
}

#[tokio::test]
async fn details_are_read_from_xml_json_and_a_nested_doc() {
    let nested = DETAILS_XML
        .replacen("<doc>", "<doc><doc>", 1)
        .replace("</doc>", "</doc></doc>");
    let json_body = r#"{"doc":{"elid":{"$":"123"},"id":[{"$":"123"}],"licname":{"$":"srv1"},
        "ip":{"$":"203.0.113.5"},"lickey":{"$":"KEY-1"},"status":{"$":"2"},
        "pricelist":{"$":"55228"},"pricelist_name":{"$":"ispmanager 6 pro"},"period":{"$":"1"},
        "createdate":{"$":"2025-01-01"},"expiredate":{"$":"2025-02-01"},
        "ip_change_date":{"$":"2025-01-02"},"lickey_change_date":"2025-01-03",
        "remoteid":{"$":"abc"}}}"#;
    for body in [xml(DETAILS_XML), xml(&nested), json(json_body)] {
        let server = MockServer::start().await;
        mount(&server, "soft.edit", body).await;

        let details = client(&server).license_details(123).await.unwrap();

        assert_eq!(details, expected_details());
        let request = &server.received_requests().await.unwrap()[0];
        assert_eq!(form_value(request, "elid").as_deref(), Some("123"));
        assert_eq!(form_value(request, "sok"), None);
    }
}

#[tokio::test]
async fn an_empty_key_and_a_missing_id_read_as_none_and_the_requested_id() {
    let server = MockServer::start().await;
    mount(
        &server,
        "soft.edit",
        xml("<doc><lickey/><status>5</status><pricelist>Lite</pricelist></doc>"),
    )
    .await;

    let details = client(&server).license_details(9).await.unwrap();

    assert_eq!(details.id, 9);
    assert_eq!(details.license_key, None);
    assert_eq!(details.status, UpstreamStatus::Processing);
    assert_eq!(details.tariff_id, None);
    assert_eq!(details.tariff_name.as_deref(), Some("Lite"));
}

#[tokio::test]
async fn lists_of_zero_one_and_two_elements_are_read() {
    let cases = [
        (
            json(r#"{"doc":{"p_elems":{"$":"0"},"saved_filters":{}}}"#),
            vec![],
        ),
        (
            json(
                r#"{"doc":{"elem":{"id":{"$":"5"},"status":{"$":"3"}},"p_elems":{"$":"1"},"saved_filters":{}}}"#,
            ),
            vec![5],
        ),
        (
            xml("<doc><elem><id>5</id><status>2</status></elem>\
                 <elem><id>6</id><status>4</status></elem><p_elems>2</p_elems>\
                 <saved_filters/></doc>"),
            vec![5, 6],
        ),
    ];
    for (response, ids) in cases {
        let server = MockServer::start().await;
        mount(&server, "soft", response).await;

        let list = client(&server).list_licenses().await.unwrap();

        assert_eq!(list.licenses.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
        assert_eq!(list.incomplete, None, "the totals add up");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_list_is_read_across_pages() {
    let server = MockServer::start().await;
    Mock::given(func("soft"))
        .and(FormHas("p_num", "1"))
        .and(FormHas("p_cnt", "2"))
        .respond_with(xml(
            "<doc><elem><id>1</id><pricelist>Pro</pricelist></elem><elem><id>2</id></elem>\
             <p_elems>3</p_elems><p_num>1</p_num><saved_filters/></doc>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(func("soft"))
        .and(FormHas("p_num", "2"))
        .respond_with(xml(
            "<doc><elem><id>3</id></elem><p_elems>3</p_elems><saved_filters/></doc>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_with(&server, |c| c.page_size = 2);

    let list = client.list_licenses().await.unwrap();

    let ids: Vec<_> = list.licenses.iter().map(|l| l.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(list.licenses[0].tariff_name.as_deref(), Some("Pro"));
    assert_eq!(list.licenses[0].tariff_id, None);
    assert_eq!(list.incomplete, None);
}

#[tokio::test]
async fn listing_stops_when_the_upstream_ignores_paging() {
    let server = MockServer::start().await;
    Mock::given(func("soft"))
        .respond_with(xml(
            "<doc><elem><id>1</id></elem><elem><id>2</id></elem></doc>",
        ))
        .expect(2)
        .mount(&server)
        .await;
    let client = client_with(&server, |c| c.page_size = 2);

    let list = client.list_licenses().await.unwrap();

    assert_eq!(list.licenses.len(), 2);
    assert!(
        list.incomplete.is_some(),
        "a list without a total cannot prove an absence"
    );
}

#[tokio::test]
async fn a_list_with_saved_filters_a_short_count_or_without_saved_filters_cannot_prove_an_absence()
{
    let cases = [
        (
            "<doc><elem><id>1</id></elem><p_elems>1</p_elems>             <saved_filters><filter name=\"active\">Status: Active</filter></saved_filters></doc>",
            "saved list filters (active)",
        ),
        (
            "<doc><elem><id>1</id></elem><p_elems>5</p_elems><saved_filters/></doc>",
            "counts 5 licenses but 1 were read",
        ),
        (
            "<doc><elem><id>1</id></elem><p_elems>1</p_elems></doc>",
            "carries no `saved_filters`",
        ),
        ("<doc><ok/></doc>", "neither rows nor `p_elems`"),
    ];
    for (body, why) in cases {
        let server = MockServer::start().await;
        mount(&server, "soft", xml(body)).await;
        let client = client_with(&server, |c| c.page_size = 10);

        let list = client.list_licenses().await.unwrap();

        let incomplete = list.incomplete.expect("incomplete");
        assert!(incomplete.contains(why), "{incomplete}");
    }
}

#[tokio::test]
async fn a_recorded_list_shape_is_complete_and_reads_raw_values_from_orig() {
    let server = MockServer::start().await;
    mount(
        &server,
        "soft",
        json(
            r#"{"doc":{"$lang":"en","$func":"soft","elem":[{"id":{"$":"7"},"licname":{"$":"x"},
               "pricelist":{"$orig":"55228","$":"ispmanager 6 pro"},
               "status_msg":{"$orig":"5","$":"Processing"},"item_status":{"$orig":"5","$":"Processing"},
               "period":{"$orig":"1","$":"1 month"}}],
               "p_cnt":{"$":"1000"},"p_elems":{"$":"1"},"p_num":{"$":"1"},"p_order":{"$":"asc"},
               "saved_filters":{},"metadata":{"$name":"soft"},
               "tparams":{"func":{"$":"soft"},"out":{"$":"json"}}}}"#,
        ),
    )
    .await;

    let list = client(&server).list_licenses().await.unwrap();

    assert_eq!(list.incomplete, None);
    let l = &list.licenses[0];
    assert_eq!(
        (l.id, l.tariff_id, l.status, l.period),
        (7, Some(55228), UpstreamStatus::Processing, Some(1))
    );
}

#[tokio::test]
async fn an_order_answer_without_an_id_is_unreadable_not_indeterminate() {
    for body in [
        "<doc><ok/></doc>",
        "<doc><ok/><tparams><elid>5</elid></tparams><saved_filters/></doc>",
        "<doc><ok/><id>abc</id></doc>",
    ] {
        let server = MockServer::start().await;
        mount(&server, "soft.order.param", xml(body)).await;

        let error = client(&server).order_license(&order()).await.unwrap_err();

        assert!(
            matches!(error, UpstreamError::Unreadable(_)),
            "{body}: {error:?}"
        );
        assert!(!error.is_definite());
    }
}

#[tokio::test]
async fn the_order_id_is_read_where_real_clients_read_it() {
    for (body, want) in [
        (xml("<doc><ok/><id>11</id></doc>"), 11),
        (xml("<doc><ok/><item.id>12</item.id></doc>"), 12),
        (xml("<doc><doc><id>13</id></doc></doc>"), 13),
        (
            json(r#"{"doc":{"ok":{},"id":{"$":"14"},"saved_filters":{}}}"#),
            14,
        ),
        (json(r#"{"doc":{"id":{"v":"15"}}}"#), 15),
    ] {
        let server = MockServer::start().await;
        mount(&server, "soft.order.param", body).await;

        assert_eq!(client(&server).order_license(&order()).await, Ok(want));
    }
}

#[tokio::test]
async fn the_order_answer_says_where_it_carried_the_id() {
    for (body, id, id_at) in [
        (xml("<doc><ok/><id>11</id></doc>"), 11, "doc/id"),
        (
            xml("<doc><ok/><item.id>12</item.id></doc>"),
            12,
            "doc/item.id",
        ),
        (
            xml("<doc><item.id>14</item.id><id>13</id></doc>"),
            13,
            "doc/id",
        ),
        (json(r#"{"doc":{"id":{"v":"15"}}}"#), 15, "doc/id/v"),
    ] {
        let server = MockServer::start().await;
        mount(&server, "soft.order.param", body).await;

        assert_eq!(
            client(&server).order_license_answer(&order()).await,
            Ok(crate::billmanager::OrderAnswer { id, id_at })
        );
    }
}

#[tokio::test]
async fn after_the_back_off_one_call_tests_the_credentials_while_the_others_wait() {
    let server = MockServer::start().await;
    mount(
        &server,
        "soft.edit",
        xml(r#"<doc><error type="auth" object="badpassword"><msg>Invalid username or password </msg></error></doc>"#),
    )
    .await;
    let client = std::sync::Arc::new(client_with(&server, |c| {
        c.use_session = false;
        c.auth_backoff = Duration::from_millis(100);
    }));
    assert!(matches!(
        client.license_details(1).await,
        Err(UpstreamError::Auth(_))
    ));

    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.license_details(1).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }

    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(UpstreamError::Auth(_))))
        .count();
    assert_eq!(refused, 1, "{results:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn refused_credentials_hold_every_call_back_for_the_back_off() {
    let server = MockServer::start().await;
    Mock::given(func("auth"))
        .respond_with(xml(
            r#"<doc><error type="auth" object="badpassword" lang="en" code="1"><param name="object" type="msg">badpassword</param><param name="value">remote_addr: [10.0.0.1]</param><stack><action level="0" user="">auth</action></stack><detail>Invalid username or password </detail><msg>Invalid username or password </msg></error><tparams><func>auth</func></tparams><saved_filters/></doc>"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_with(&server, |c| c.use_session = true);

    let first = client.list_licenses().await.unwrap_err();
    let mut later = Vec::new();
    for _ in 0..20 {
        later.push(client.license_details(1).await.unwrap_err());
    }

    assert_eq!(
        first,
        UpstreamError::Auth("Invalid username or password".into())
    );
    assert!(later.iter().all(UpstreamError::is_shed), "{later:?}");
    let why = client.auth_refused().expect("the back-off runs");
    assert!(why.contains("refused the credentials"), "{why}");
}

#[tokio::test]
async fn a_doc_error_is_a_refusal_and_an_auth_error_is_auth() {
    let cases = [
        (
            xml(
                r#"<doc><error type="value" object="ip" lang="en"><param name="value">x</param><msg>Invalid IP</msg></error></doc>"#,
            ),
            UpstreamError::Refused {
                kind: "value".into(),
                object: Some("ip".into()),
                message: "Invalid IP".into(),
            },
        ),
        (
            json(
                r#"{"doc":{"error":{"$type":"missed","$object":"ip","msg":{"$":"Field 'IP address' is required"}}}}"#,
            ),
            UpstreamError::Refused {
                kind: "missed".into(),
                object: Some("ip".into()),
                message: "Field 'IP address' is required".into(),
            },
        ),
        (
            xml(
                r#"<doc><error type="auth" object="badpassword"><msg>Invalid username or password</msg></error></doc>"#,
            ),
            UpstreamError::Auth("Invalid username or password".into()),
        ),
        (
            json(
                r#"{"doc":{"error":{"$type":"auth","$object":"badpassword","msg":{"$":"Invalid username or password"}}}}"#,
            ),
            UpstreamError::Auth("Invalid username or password".into()),
        ),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        mount(&server, "soft.edit", response).await;

        let error = client(&server)
            .change_ip(1, IpAddr::V4(Ipv4Addr::LOCALHOST))
            .await
            .unwrap_err();

        assert_eq!(clean(error, &server.uri()), expected);
    }
}

#[tokio::test]
async fn an_echoed_password_is_masked_in_a_refusal() {
    let server = MockServer::start().await;
    let body = format!(
        r#"<doc><error type="value" object="password"><msg>Bad value {PASSWORD}</msg></error></doc>"#
    )
    .replace('&', "&amp;");
    mount(&server, "soft.delete", xml(&body)).await;

    let error = client(&server).delete_license(1).await.unwrap_err();

    assert!(matches!(
        clean(error, &server.uri()),
        UpstreamError::Refused { .. }
    ));
}

#[tokio::test]
async fn broken_answers_are_indeterminate() {
    let oversized = format!("<doc><x>{}</x></doc>", "a".repeat(2048));
    let cases = [
        ResponseTemplate::new(502).set_body_string("<doc><ok/></doc>"),
        ResponseTemplate::new(500),
        xml("<doc><ok/>"),
        xml("<html><body>Service Unavailable</body></html>"),
        json(r#"{"doc": {"#),
        xml(""),
        xml("  \n "),
        xml(&oversized),
    ];
    for response in cases {
        let server = MockServer::start().await;
        mount(&server, "soft.resume", response).await;
        let client = client_with(&server, |c| c.max_response_bytes = 1024);

        let error = client.resume_license(1).await.unwrap_err();

        assert!(
            matches!(
                clean(error.clone(), &server.uri()),
                UpstreamError::Indeterminate(_)
            ),
            "{error:?}"
        );
        assert!(!error.is_definite());
    }
}

#[tokio::test]
async fn a_slow_answer_is_indeterminate() {
    let server = MockServer::start().await;
    mount(
        &server,
        "service.prolong",
        xml("<doc><ok/></doc>").set_delay(Duration::from_secs(2)),
    )
    .await;
    let client = client_with(&server, |c| c.request_timeout = Duration::from_millis(200));

    let error = client.renew_license(1, 1).await.unwrap_err();

    assert!(matches!(
        clean(error, &server.uri()),
        UpstreamError::Indeterminate(m) if m.contains("timed out")
    ));
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let uri = format!("http://{address}");
    let client = BillmanagerClient::new(config(format!("{uri}/billmgr"))).unwrap();

    let error = client.order_license(&order()).await.unwrap_err();

    assert!(
        matches!(clean(error.clone(), &uri), UpstreamError::Unavailable(ref m) if m.contains("refused")),
        "{error:?}"
    );
    assert!(error.is_definite());
}

#[tokio::test]
async fn a_client_error_status_or_redirect_is_unavailable_and_only_reads_retry() {
    let server = MockServer::start().await;
    Mock::given(FormHas("sok", "ok"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/elsewhere"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(func("soft.edit"))
        .respond_with(ResponseTemplate::new(404))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);

    let write = client.reissue_key(1).await.unwrap_err();
    let read = client.license_details(1).await.unwrap_err();

    assert!(matches!(
        clean(write, &server.uri()),
        UpstreamError::Unavailable(_)
    ));
    assert!(
        matches!(clean(read, &server.uri()), UpstreamError::Unavailable(m) if m.contains("404"))
    );
}

#[tokio::test]
async fn a_session_is_opened_once_and_reused() {
    let server = MockServer::start().await;
    Mock::given(func("auth"))
        .and(FormHas("username", USER))
        .and(FormHas("password", PASSWORD))
        .respond_with(xml(r#"<doc><auth id="SID1" level="16">SID1</auth></doc>"#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(func("soft.suspend"))
        .and(FormHas("auth", "SID1"))
        .respond_with(xml("<doc><ok/></doc>"))
        .expect(2)
        .mount(&server)
        .await;
    let client = client_with(&server, |c| c.use_session = true);

    client.suspend_license(1).await.unwrap();
    client.suspend_license(2).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| form_value(r, "authinfo").is_none()));
}

#[tokio::test]
async fn an_expired_session_is_renewed_once() {
    let server = MockServer::start().await;
    Mock::given(func("auth"))
        .respond_with(json(r#"{"doc":{"auth":{"$id":"SID1","$":"SID1"}}}"#))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(func("auth"))
        .respond_with(json(r#"{"doc":{"auth":{"$id":"SID2","$":"SID2"}}}"#))
        .expect(1)
        .mount(&server)
        .await;
    let expired = r#"{"doc":{"error":{"$type":"auth","msg":{"$":"Session expired"}}}}"#;
    Mock::given(func("service.changepricelist"))
        .and(FormHas("auth", "SID1"))
        .respond_with(json(expired))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(func("service.changepricelist"))
        .and(FormHas("auth", "SID2"))
        .and(FormHas("pricelist", "55229"))
        .and(FormHas("period", "12"))
        .and(FormHas("sok", "ok"))
        .respond_with(json(r#"{"doc":{"ok":{}}}"#))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_with(&server, |c| {
        c.use_session = true;
        c.format = WireFormat::Json;
    });

    client.change_tariff(1, 55229, 12).await.unwrap();
}

#[tokio::test]
async fn a_rejected_log_in_is_auth() {
    let server = MockServer::start().await;
    mount(
        &server,
        "auth",
        xml(r#"<doc><error type="auth" object="badpassword"><msg>Invalid username or password</msg></error></doc>"#),
    )
    .await;
    let client = client_with(&server, |c| c.use_session = true);

    let error = client.suspend_license(1).await.unwrap_err();

    assert!(matches!(
        clean(error, &server.uri()),
        UpstreamError::Auth(_)
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_renewal_reads_the_nested_new_expiry_date() {
    let server = MockServer::start().await;
    Mock::given(func("service.prolong"))
        .and(FormHas("elid", "5"))
        .and(FormHas("period", "12"))
        .and(FormHas("sok", "ok"))
        .respond_with(xml(
            "<doc><doc><newexpiredate>2026-03-01</newexpiredate></doc></doc>",
        ))
        .mount(&server)
        .await;

    let date = client(&server).renew_license(5, 12).await.unwrap();

    assert_eq!(date.as_deref(), Some("2026-03-01"));
}

#[tokio::test]
async fn the_price_list_is_parsed() {
    let server = MockServer::start().await;
    Mock::given(func("pricelist.export"))
        .and(FormHas("onlyavailable", "on"))
        .respond_with(json(
            r#"{"doc":{"pricelist":[
                {"id":{"$":"55227"},"name":{"$":"ispmanager 6 lite"},
                 "price":{"$currency":"EUR","period":[{"$length":"1","$cost":"5.00"},{"$length":"12","$cost":"50.00"}]},
                 "addon":[{"id":{"$":"55236"},"intname":{"$":"addon_55236"},"addontype":{"$":"integer"},
                           "price":{"$currency":"EUR","period":[{"$length":"1","$cost":"0.50"}]}},
                          {"intname":{"$":"addon_without_id"}}]},
                {"id":{"$":"55239"},"price":{"currency":"EUR","period":{"length":{"$":"-100"},"cost":{"$":"0.00"}}}}
            ]}}"#,
        ))
        .mount(&server)
        .await;

    let tariffs = client(&server).price_list().await.unwrap();

    assert_eq!(tariffs.len(), 2);
    assert_eq!(tariffs[0].id, 55227);
    assert_eq!(tariffs[0].name.as_deref(), Some("ispmanager 6 lite"));
    assert_eq!(tariffs[0].currency.as_deref(), Some("EUR"));
    assert_eq!(
        tariffs[0].prices,
        [(1, "5.00".to_owned()), (12, "50.00".to_owned())]
    );
    assert_eq!(tariffs[1].prices, [(-100, "0.00".to_owned())]);
    assert_eq!(tariffs[1].currency.as_deref(), Some("EUR"));
    assert_eq!(
        tariffs[0].addons,
        [super::UpstreamAddon {
            id: 55236,
            prices: vec![(1, "0.50".to_owned())],
        }],
        "an add-on without an id is skipped"
    );
    assert!(tariffs[1].addons.is_empty());
}

#[tokio::test]
async fn the_recorded_export_shape_is_read_with_period_types_and_empty_costs() {
    let server = MockServer::start().await;
    Mock::given(func("pricelist.export"))
        .and(FormHas("itemtype", "21"))
        .and(FormHas("project", "1"))
        .respond_with(xml(
            r#"<doc><pricelist><id>55228</id><itemtype>21</itemtype><itemtype_info><intname>soft</intname></itemtype_info>
               <active>on</active><hideinorder>off</hideinorder><price currency="RUB">
               <period cost="0.0000" type="month" length="-100">trial</period>
               <period cost="490.0000" type="month" length="1">monthly</period>
               <period cost="4900.0000" type="year" length="1">annually</period>
               <period cost="" type="month" length="3">quarterly</period>
               <period cost="10.0000" type="day" length="7">weekly</period></price></pricelist>
               <tparams><func>pricelist.export</func></tparams><saved_filters/></doc>"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_with(&server, |c| {
        c.price_list_filter = super::PriceListFilter {
            itemtype: Some("21".into()),
            elid: None,
            project: Some("1".into()),
        };
    });

    let tariffs = client.price_list().await.unwrap();

    assert_eq!(
        tariffs[0].prices,
        [
            (-100, "0.0000".to_owned()),
            (1, "490.0000".to_owned()),
            (12, "4900.0000".to_owned()),
            (3, String::new()),
        ],
        "days are not a monthly price; an empty cost is kept as unknown"
    );
}

#[tokio::test]
async fn a_price_list_larger_than_its_bound_fails_clearly() {
    let server = MockServer::start().await;
    let huge = format!(
        "<doc>{}</doc>",
        "<pricelist><id>1</id></pricelist>".repeat(200)
    );
    mount(&server, "pricelist.export", xml(&huge)).await;
    let client = client_with(&server, |c| c.max_price_list_bytes = 1024);

    let error = client.price_list().await.unwrap_err();

    assert!(
        error.to_string().contains("larger than 1024 bytes"),
        "{error}"
    );
}

#[test]
fn the_config_debug_hides_the_password() {
    let config = config("https://user:pw@api.example.com/billmgr?authinfo=a:b".into());

    let shown = format!("{config:?}");

    assert!(!shown.contains(PASSWORD));
    assert!(!shown.contains("pw@"));
    assert!(!shown.contains("authinfo"));
    assert!(shown.contains("api.example.com/billmgr"));
}

#[test]
fn urls_with_credentials_or_other_schemes_are_rejected() {
    for url in [
        "",
        "ftp://api.example.com/billmgr",
        "https://u:p@api.example.com/billmgr",
        "https://api.example.com/billmgr?authinfo=u:p",
    ] {
        let error = BillmanagerClient::new(config(url.into())).unwrap_err();
        assert!(!format!("{error:#}").contains("u:p"));
    }
}

#[test]
fn an_https_client_builds_with_the_system_roots() {
    if !std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        return;
    }
    BillmanagerClient::new(config("https://api.ispmanager.com/billmgr".into())).unwrap();
}

/// Refuses every call with a message that echoes the request body, padded to 5 MB.
struct EchoRefusal;

impl wiremock::Respond for EchoRefusal {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let echoed = String::from_utf8_lossy(&request.body).replace('&', "&amp;");
        let padding = "x".repeat(5 * 1024 * 1024);
        xml(&format!(
            r#"<doc><error type="value" object="ip"><msg>Bad request {echoed} {padding}</msg></error></doc>"#
        ))
    }
}

#[tokio::test]
async fn an_upstream_text_is_cut_to_one_kibibyte_and_an_echoed_request_is_masked() {
    let server = MockServer::start().await;
    Mock::given(func("auth"))
        .respond_with(xml(
            r#"<doc><auth id="SIDSECRET42">SIDSECRET42</auth></doc>"#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(EchoRefusal)
        .mount(&server)
        .await;
    let with_authinfo = client(&server);
    let with_session = client_with(&server, |c| c.use_session = true);

    let errors = [
        with_authinfo.delete_license(1).await.unwrap_err(),
        with_session.delete_license(1).await.unwrap_err(),
    ];

    for error in errors {
        let UpstreamError::Refused { message, .. } = clean(error, &server.uri()) else {
            panic!("a refusal")
        };
        assert!(
            message.len() <= super::MAX_UPSTREAM_TEXT,
            "{}",
            message.len()
        );
        assert!(message.starts_with("Bad request"), "{message}");
        assert!(message.contains("***"), "{message}");
        assert!(!message.contains("SIDSECRET42"), "{message}");
        // The form-encoded password: `:` `&` `=` `%` escaped.
        assert!(!message.contains("p%26ss"), "{message}");
    }
}
