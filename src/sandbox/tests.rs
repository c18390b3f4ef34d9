//! Protocol tests over real sockets: routes, methods, authentication and the
//! xml / json / sjson shapes. Shared helpers for the other test modules live here.

use serde_json::Value;
use tokio::sync::oneshot;

use super::{NewSandboxLicense, Sandbox, SandboxConfig, SandboxHandle};

/// A running sandbox plus a client; the sandbox stops when this is dropped.
pub(super) struct TestSandbox {
    pub(super) url: String,
    pub(super) handle: SandboxHandle,
    pub(super) client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

/// Starts a sandbox with `config` on 127.0.0.1:0.
pub(super) async fn start(config: SandboxConfig) -> TestSandbox {
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let url = sandbox.url();
    let handle = sandbox.handle();
    tokio::spawn(sandbox.run(async move {
        let _ = stopped.await;
    }));
    // reqwest is built without a default TLS provider; plain http still needs one
    // installed before a client is built. A second install just fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestSandbox {
        url,
        handle,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

/// A sandbox whose licenses activate at once.
pub(super) async fn start_default() -> TestSandbox {
    start(SandboxConfig {
        key_delay: std::time::Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await
}

impl TestSandbox {
    /// GET with `authinfo=demo:demo` added; returns the body (status must be 200).
    pub(super) async fn call(&self, params: &[(&str, &str)]) -> String {
        let mut all = vec![("authinfo", "demo:demo")];
        all.extend_from_slice(params);
        self.raw(&all).await
    }

    /// GET exactly these parameters; returns the body (status must be 200).
    pub(super) async fn raw(&self, params: &[(&str, &str)]) -> String {
        let resp = self
            .client
            .get(with_query(&self.url, params))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// Like [`call`](Self::call) with `out=json`, parsed.
    pub(super) async fn json(&self, out: &str, params: &[(&str, &str)]) -> Value {
        let mut all = vec![("out", out)];
        all.extend_from_slice(params);
        serde_json::from_str(&self.call(&all).await).unwrap()
    }

    /// Orders a one-month license with `skipbasket=on`; returns the new id.
    pub(super) async fn order(&self, ip: &str, pricelist: &str) -> u64 {
        let body = self.call(&order_params(ip, pricelist, "1")).await;
        text_of(&body, "id")
            .unwrap_or_else(|| panic!("no id in {body}"))
            .parse()
            .unwrap()
    }
}

/// The parameters of a paid order as clients send them.
pub(super) fn order_params<'a>(
    ip: &'a str,
    pricelist: &'a str,
    period: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("func", "soft.order.param"),
        ("sok", "ok"),
        ("clicked_button", "finish"),
        ("skipbasket", "on"),
        ("ip", ip),
        ("licname", "srv1"),
        ("period", period),
        ("pricelist", pricelist),
        ("autoprolong", "null"),
        ("remoteid", "abc"),
    ]
}

/// `url?k=v&…`, percent-encoded (reqwest's `query` needs a feature this crate lacks).
pub(super) fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("{url}?{}", query.join("&"))
}

/// Text of the first `<tag>…</tag>` in `xml` (enough for these flat documents).
pub(super) fn text_of(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + len].to_owned())
}

/// `(type, object)` of the `doc/error` in an XML body.
pub(super) fn error_of(xml: &str) -> Option<(String, String)> {
    let attr = |name: &str| {
        let key = format!("{name}=\"");
        let at = xml.find("<error ")?;
        let start = xml[at..].find(&key)? + at + key.len();
        let len = xml[start..].find('"')?;
        Some(xml[start..start + len].to_owned())
    };
    Some((attr("type")?, attr("object")?))
}

fn err(t: &str, o: &str) -> Option<(String, String)> {
    Some((t.to_owned(), o.to_owned()))
}

#[tokio::test]
async fn authinfo_is_checked_on_every_request() {
    let sb = start_default().await;

    let good = sb
        .raw(&[("authinfo", "demo:demo"), ("func", "subaccount")])
        .await;
    let bad = sb
        .raw(&[("authinfo", "demo:nope"), ("func", "subaccount")])
        .await;
    let missing = sb.raw(&[("func", "subaccount")]).await;

    assert_eq!(text_of(&good, "balance").as_deref(), Some("10000.00"));
    assert_eq!(error_of(&bad), err("auth", "badpassword"));
    assert_eq!(error_of(&missing), err("auth", "badpassword"));
}

#[tokio::test]
async fn answers_carry_doc_attributes_tparams_without_secrets_and_saved_filters_as_recorded() {
    let sb = start_default().await;

    let login = sb
        .raw(&[("func", "auth"), ("username", "demo"), ("password", "demo")])
        .await;
    let refused = sb
        .raw(&[("func", "auth"), ("username", "demo"), ("password", "nope")])
        .await;
    let sjson: Value = serde_json::from_str(
        &sb.raw(&[
            ("func", "auth"),
            ("username", "demo"),
            ("password", "nope"),
            ("out", "sjson"),
        ])
        .await,
    )
    .unwrap();

    assert!(
        login.contains("<doc lang=\"en\" func=\"auth\" binary=\"/billmgr\""),
        "{login}"
    );
    assert!(
        login.contains(
            "<tparams><func>auth</func><username>demo</username></tparams><saved_filters/>"
        ),
        "{login}"
    );
    assert!(!login.contains("<password>"), "{login}");
    assert!(
        refused.contains("<error type=\"auth\" object=\"badpassword\" lang=\"en\" code=\"1\">"),
        "{refused}"
    );
    assert!(
        refused.contains(
            "<detail>Invalid username or password </detail><msg>Invalid username or password </msg>"
        ),
        "{refused}"
    );
    let error = &sjson["doc"]["error"];
    assert_eq!(error["param"][0]["$name"], "object");
    assert_eq!(error["stack"]["action"]["$"], "auth");
    assert_eq!(sjson["doc"]["saved_filters"], serde_json::json!({}));
}

#[tokio::test]
async fn session_login_gives_a_sid_with_a_sliding_one_hour_ttl() {
    let sb = start_default().await;
    let login = sb
        .raw(&[("func", "auth"), ("username", "demo"), ("password", "demo")])
        .await;
    let sid = login
        .split("level=\"16\">")
        .nth(1)
        .and_then(|rest| rest.split("</auth>").next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(sid.len(), 24, "{login}");
    assert!(
        login.contains(&format!("<auth id=\"{sid}\" level=\"16\">")),
        "{login}"
    );
    let with_sid = [("auth", sid.as_str()), ("func", "soft")];

    assert!(error_of(&sb.raw(&with_sid).await).is_none());
    sb.handle.advance_clock(time::Duration::minutes(40));
    assert!(
        error_of(&sb.raw(&with_sid).await).is_none(),
        "use slides the TTL"
    );
    sb.handle.advance_clock(time::Duration::minutes(40));
    assert!(error_of(&sb.raw(&with_sid).await).is_none());
    sb.handle.advance_clock(time::Duration::minutes(61));
    assert_eq!(
        error_of(&sb.raw(&with_sid).await),
        err("auth", "badpassword")
    );

    let unknown = sb.raw(&[("auth", "deadbeef"), ("func", "soft")]).await;
    assert_eq!(error_of(&unknown), err("auth", "badpassword"));
    let bad_login = sb
        .raw(&[("func", "auth"), ("username", "demo"), ("password", "x")])
        .await;
    assert_eq!(error_of(&bad_login), err("auth", "badpassword"));
}

#[tokio::test]
async fn both_paths_answer_get_and_post_and_other_paths_are_404() {
    let sb = start_default().await;
    let manager = sb.url.replace("/billmgr", "/manager/billmgr");
    let form = [("authinfo", "demo:demo"), ("func", "subaccount")];

    for url in [&sb.url, &manager] {
        let post = sb.client.post(url).form(&form).send().await.unwrap();
        assert_eq!(post.status(), 200);
        assert!(post.text().await.unwrap().contains("<balance>"));
        let get = sb.client.get(with_query(url, &form)).send().await.unwrap();
        assert!(get.text().await.unwrap().contains("<balance>"));
    }
    // A POST whose parameters travel partly in the query.
    let mixed = sb
        .client
        .post(format!("{}?func=subaccount", sb.url))
        .form(&[("authinfo", "demo:demo")])
        .send()
        .await
        .unwrap();
    assert!(mixed.text().await.unwrap().contains("<balance>"));
    let other = sb.url.replace("/billmgr", "/other");
    assert_eq!(sb.client.get(other).send().await.unwrap().status(), 404);
    assert_eq!(sb.handle.call_count("subaccount"), 5);
}

#[tokio::test]
async fn unknown_function_is_a_missed_error_with_http_200() {
    let sb = start_default().await;
    let body = sb.call(&[("func", "soft.frobnicate")]).await;
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<doc lang=\"en\""));
    assert!(
        body.contains("<error type=\"missed\" lang=\"en\" code=\"1\">"),
        "no object: {body}"
    );
    assert!(body.contains("<stack><action level=\"0\" user=\"\">soft.frobnicate</action></stack>"));
    assert!(body.contains(
        "<msg>Could not find function 'soft.frobnicate'. Perhaps the processing module is not loaded</msg>"
    ));
    let json = sb.json("json", &[("func", "soft.frobnicate")]).await;
    assert_eq!(json["doc"]["error"]["$type"], "missed");
}

#[tokio::test]
async fn lists_render_in_xml_json_and_sjson_with_0_1_and_2_elements() {
    let sb = start_default().await;
    let soft = [("func", "soft")];

    let empty_xml = sb.call(&soft).await;
    assert!(empty_xml.contains("<p_elems>0</p_elems>") && !empty_xml.contains("<elem>"));
    assert!(sb.json("json", &soft).await["doc"].get("elem").is_none());
    assert_eq!(
        sb.json("sjson", &soft).await["doc"]["elem"],
        Value::Array(vec![])
    );

    let first = sb.order("192.0.2.1", "55228").await;
    let one = sb.json("json", &soft).await;
    assert_eq!(one["doc"]["elem"]["id"]["$"], first.to_string());
    assert_eq!(one["doc"]["elem"]["pricelist"]["$orig"], "55228");
    assert_eq!(one["doc"]["elem"]["pricelist"]["$"], "ispmanager 6 pro");
    assert_eq!(one["doc"]["elem"]["item_status"]["$orig"], "2");
    assert_eq!(one["doc"]["saved_filters"], serde_json::json!({}));
    assert_eq!(one["doc"]["tparams"]["func"]["$"], "soft");
    assert!(
        one["doc"]["tparams"].get("authinfo").is_none(),
        "no secrets echoed"
    );
    let one_s = sb.json("sjson", &soft).await;
    assert_eq!(one_s["doc"]["elem"][0]["ip"]["$"], "192.0.2.1");
    assert_eq!(one_s["doc"]["p_elems"]["$"], "1");

    sb.order("192.0.2.2", "55227").await;
    let two = sb.json("json", &soft).await;
    assert_eq!(two["doc"]["elem"][1]["ip"]["$"], "192.0.2.2");
    let xml = sb.call(&soft).await;
    assert!(
        !xml.contains("<remoteid>"),
        "the documented columns have no remoteid"
    );
    for field in [
        "id",
        "licname",
        "ip",
        "period",
        "update_expiredate",
        "real_ipchange",
        "real_keychange",
        "pricelist",
        "account",
        "project",
        "datacentername",
        "processingmodule",
        "createdate",
        "expiredate",
        "autoprolong",
        "status_msg",
        "item_status",
        "special_status",
        "cost",
    ] {
        assert!(
            ["<{field}>", "<{field} ", "<{field}/>"]
                .iter()
                .any(|form| xml.contains(&form.replace("{field}", field))),
            "{field} missing in {xml}"
        );
    }
}

#[tokio::test]
async fn a_single_json_elem_can_be_configured_as_an_array_and_pricelist_as_a_name() {
    let sb = start(SandboxConfig {
        json_single_elem_as_array: true,
        list_pricelist: super::ListPricelist::Name,
        ..SandboxConfig::default()
    })
    .await;
    sb.order("192.0.2.1", "55228").await;
    let one = sb.json("json", &[("func", "soft")]).await;
    assert_eq!(one["doc"]["elem"][0]["pricelist"]["$"], "ispmanager 6 pro");
}

#[tokio::test]
async fn soft_list_pages_with_p_num_and_p_cnt() {
    let sb = start_default().await;
    let ids = sb.handle.bulk_seed(5, 55227);

    let page2 = sb
        .call(&[("func", "soft"), ("p_num", "2"), ("p_cnt", "2")])
        .await;

    assert_eq!(text_of(&page2, "p_elems").as_deref(), Some("5"));
    assert_eq!(text_of(&page2, "p_num").as_deref(), Some("2"));
    assert_eq!(text_of(&page2, "p_cnt").as_deref(), Some("2"));
    assert_eq!(text_of(&page2, "id"), Some(ids[2].to_string()));
    assert_eq!(page2.matches("<elem>").count(), 2);
}

#[tokio::test]
async fn pricelist_export_has_periods_with_costs_in_xml_and_json() {
    let sb = start_default().await;
    let xml = sb.call(&[("func", "pricelist.export")]).await;
    assert!(xml.contains(
        "<pricelist><id>55227</id><name>ispmanager 6 lite</name><itemtype>21</itemtype>\
         <itemtype_info><intname>soft</intname></itemtype_info><active>on</active><hideinorder>off</hideinorder>\
         <price currency=\"EUR\"><period cost=\"6.0000\" type=\"month\" length=\"1\">monthly</period>\
         <period cost=\"60.0000\" type=\"month\" length=\"12\">annually</period></price>"
    ), "{xml}");
    let json = sb.json("json", &[("func", "pricelist.export")]).await;
    assert_eq!(json["doc"]["pricelist"][1]["id"]["$"], "55228");
    assert_eq!(
        json["doc"]["pricelist"][1]["price"]["period"][1]["$cost"],
        "90.0000"
    );
}

#[tokio::test]
async fn handle_plants_and_removes_licenses() {
    let sb = start_default().await;
    let mut new = NewSandboxLicense::new("198.51.100.7", 55229);
    new.remote_id = "elsewhere".into();
    let id = sb.handle.insert_license(new);

    let form = sb
        .call(&[("func", "soft.edit"), ("elid", &id.to_string())])
        .await;
    assert_eq!(text_of(&form, "remoteid").as_deref(), Some("elsewhere"));
    assert_eq!(text_of(&form, "status").as_deref(), Some("2"));
    assert_eq!(text_of(&form, "lickey").map(|k| k.len()), Some(32));
    assert_eq!(sb.handle.balance(), 1_000_000, "planting costs nothing");

    assert!(sb.handle.remove_license(id));
    assert!(sb.handle.license(id).is_none());
    assert!(!sb.call(&[("func", "soft")]).await.contains("<elem>"));
}
