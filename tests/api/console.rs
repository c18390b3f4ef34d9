//! The web console over real HTTP: log-in and sessions, CSRF, security headers,
//! authorisation by scope, the license actions, and escaping of everything that
//! came from a caller or the upstream.

use std::collections::HashMap;

use license_facade::auth::SANDBOX_TOKEN;
use license_facade::sandbox::NewSandboxLicense;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::support::{Stuck, assert_renewed_once, named_clients};

/// What the escaping test plants in every text field a caller or the upstream
/// controls.
const SCRIPT: &str = "<script>alert(1)</script>";
const ATTRIBUTE: &str = "\"'><img src=x onerror=alert(2)>";

/// A browser without JavaScript: keeps the console's cookies, does not follow
/// redirects (tests look at them).
pub(crate) struct Browser {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first hidden input `name`.
    pub(crate) fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} field in {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self {
            base: app.http.clone(),
            http: crate::support::http_client()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request sent");
        let page = Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        };
        for set in page.set_cookies() {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        page
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Logs in with `token`; returns the answer to the log-in form.
    pub(crate) async fn log_in(&mut self, token: &str) -> Page {
        let form = self.get("/console/login").await;
        let csrf = form.hidden("csrf");
        self.post("/console/login", &[("csrf", &csrf), ("token", token)])
            .await
    }

    /// The session's CSRF token, from the log-out form every page has.
    pub(crate) async fn csrf(&mut self) -> String {
        self.get("/console/").await.hidden("csrf")
    }
}

async fn order(app: &TestApp, server: &str, ip: &str) -> Value {
    app.order_and_wait(&json!({
        "server": {"id": server, "ip": ip},
        "panel": "ISPmanager 6 Lite"
    }))
    .await
}

/// A license ordered (and waited for) by the `shop` client; its id.
async fn shop_license(app: &TestApp, server: &str, ip: &str) -> String {
    let body = json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Lite"});
    let shop = app.api_as("shop-token");
    let (status, ordered) = shop
        .post("/v1/licenses?wait=20s", &body, None)
        .await
        .expect("the order is answered");
    assert_eq!(status, 201, "{ordered}");
    assert_eq!(ordered["state"], "ACTIVE", "{ordered}");
    ordered["id"].as_str().expect("an id").to_owned()
}

/// An admin (`ops`) and a writer (`shop`), each calling with `{name}-token`.
const OPS_AND_SHOP: [(&str, &str, &str); 2] = [
    ("ops", r#"["admin"]"#, ""),
    ("shop", r#"["licenses.read", "licenses.write"]"#, ""),
];

/// An app whose clients file has an admin, a writer (capped at 5 orders a day) and a
/// reader.
async fn spawn_app_with_clients() -> TestApp {
    let clients = named_clients(&[
        OPS_AND_SHOP[0],
        (
            OPS_AND_SHOP[1].0,
            OPS_AND_SHOP[1].1,
            "max_orders_per_day = 5",
        ),
        ("viewer", r#"["licenses.read"]"#, ""),
    ]);
    spawn_app_with(0, move |s| s.clients = Some(clients)).await
}

#[tokio::test]
async fn log_in_sets_a_strict_http_only_expiring_session_and_shows_the_overview() {
    // Arrange
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);

    // Act
    let before = browser.get("/console/").await;
    let answer = browser.log_in(SANDBOX_TOKEN).await;
    let overview = browser.get("/console/").await;

    // Assert
    assert_eq!(before.status, StatusCode::SEE_OTHER);
    assert_eq!(before.location(), "/console/login");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/console/");
    let session = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lf_console="))
        .expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    assert!(
        !session.contains(SANDBOX_TOKEN),
        "the token is not in the cookie"
    );
    assert_eq!(overview.status, StatusCode::OK);
    for text in ["Overview", "Upstream health", "Needs attention", "sandbox"] {
        assert!(overview.body.contains(text), "{text} missing");
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_without_a_session() {
    // Arrange
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);

    // Act
    let answer = browser.log_in("not-the-token").await;
    let after = browser.get("/console/").await;

    // Assert
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.contains("That token is not valid"));
    assert!(!browser.cookies.contains_key("lf_console"));
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let license = order(&app, "srv-csrf", "203.0.113.40").await;
    let id = license["id"].as_str().unwrap();
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;
    let confirm = browser
        .get(&format!("/console/licenses/{id}/actions/cancel"))
        .await;
    let key = confirm.hidden("request_key");

    // Act
    let without = browser
        .post(
            &format!("/console/licenses/{id}/actions/cancel"),
            &[("request_key", &key)],
        )
        .await;
    let forged = browser
        .post(
            &format!("/console/licenses/{id}/actions/cancel"),
            &[("request_key", &key), ("csrf", &"0".repeat(64))],
        )
        .await;
    let logout = browser.post("/console/logout", &[]).await;
    let mut stranger = Browser::new(&app);
    let login = stranger
        .post("/console/login", &[("token", SANDBOX_TOKEN)])
        .await;

    // Assert
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(without.body.contains("Form refused"));
    assert_eq!(
        logout.status,
        StatusCode::FORBIDDEN,
        "log-out is a form too"
    );
    assert_eq!(login.status, StatusCode::FORBIDDEN, "so is log-in");
    let now: Value = app
        .get(&format!("/v1/licenses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["state"], "ACTIVE");
    assert_eq!(app.sandbox.call_count("soft.delete"), 0);
}

#[tokio::test]
async fn every_console_page_sends_the_security_headers() {
    // Arrange
    let app = spawn_app().await;
    let license = order(&app, "srv-headers", "203.0.113.41").await;
    let id = license["id"].as_str().unwrap();
    let mut browser = Browser::new(&app);
    let login = browser.get("/console/login").await;
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let mut pages = vec![login];
    for path in [
        "/console/".to_owned(),
        "/console/licenses".to_owned(),
        format!("/console/licenses/{id}"),
        format!("/console/licenses/{id}/actions/renew?period=1"),
        format!("/console/licenses/{id}/actions/release"),
        "/console/drift".to_owned(),
        "/console/audit".to_owned(),
        "/console/pool".to_owned(),
        "/console/no-such-page".to_owned(),
    ] {
        pages.push(browser.get(&path).await);
    }

    // Assert
    for page in &pages {
        let h = |name: &str| {
            page.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("cache-control"), "no-store");
        assert!(h("content-type").starts_with("text/html"));
        assert!(!page.body.contains("<script"), "no script on any page");
    }
    assert_eq!(pages.last().unwrap().status, StatusCode::NOT_FOUND);
    let css = browser.get("/console/static/console.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains("@media"), "a responsive stylesheet");
}

#[tokio::test]
async fn a_confirmed_cancel_cancels_once_even_when_the_form_is_sent_twice() {
    // Arrange
    let app = spawn_app().await;
    let license = order(&app, "srv-cancel", "203.0.113.42").await;
    let id = license["id"].as_str().unwrap();
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let page = browser.get(&format!("/console/licenses/{id}")).await;
    let confirm = browser
        .get(&format!("/console/licenses/{id}/actions/cancel"))
        .await;
    let form = [
        ("csrf", confirm.hidden("csrf")),
        ("request_key", confirm.hidden("request_key")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = format!("/console/licenses/{id}/actions/cancel");
    let first = browser.post(&path, &form).await;
    let second = browser.post(&path, &form).await;
    let cancelled = app.license_until(id, |l| l["state"] == "CANCELLED").await;
    let after = browser
        .get(&format!("/console/licenses/{id}?done=cancel"))
        .await;

    // Assert
    assert!(
        page.body.contains("action-cancel"),
        "the page offers cancel"
    );
    assert!(
        page.body.contains("<td>CREATED</td>") && page.body.contains("<td>KEY_ISSUED</td>"),
        "the license's events are listed"
    );
    assert!(confirm.body.contains("cannot be undone"));
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(
        first.location(),
        format!("/console/licenses/{id}?done=cancel")
    );
    assert_eq!(
        second.status,
        StatusCode::SEE_OTHER,
        "a replay, not an error"
    );
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(app.sandbox.call_count("soft.delete"), 1);
    assert!(after.body.contains("The cancellation was accepted"));
    assert!(
        !after.body.contains("action-cancel"),
        "nothing left to cancel"
    );
}

#[tokio::test]
async fn a_renewal_is_confirmed_with_the_quoted_price_and_charged_once() {
    // Arrange
    let app = spawn_app().await;
    let license = order(&app, "srv-renew", "203.0.113.43").await;
    let id = license["id"].as_str().unwrap();
    let quote: Value = app
        .get("/v1/panels/ISPmanager%206%20Lite/quote?periodMonths=12")
        .await
        .json()
        .await
        .unwrap();
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let ask = browser
        .get(&format!("/console/licenses/{id}/actions/renew"))
        .await;
    let confirm = browser
        .get(&format!("/console/licenses/{id}/actions/renew?period=12"))
        .await;
    let csrf = confirm.hidden("csrf");
    let key = confirm.hidden("request_key");
    let form = [
        ("csrf", csrf.as_str()),
        ("request_key", key.as_str()),
        ("period", "12"),
    ];
    let done = browser
        .post(&format!("/console/licenses/{id}/actions/renew"), &form)
        .await;
    // The same confirmation sent again (a double click, a reload of the answer).
    let again = browser
        .post(&format!("/console/licenses/{id}/actions/renew"), &form)
        .await;
    app.api_as(SANDBOX_TOKEN)
        .license_after_audit(id, "RENEW", "SUCCEEDED")
        .await;
    let audit: Value = app
        .get(&format!("/v1/audit?licenseId={id}"))
        .await
        .json()
        .await
        .unwrap();

    // Assert
    assert!(
        ask.body.contains("id=\"review\""),
        "the period is asked first"
    );
    assert!(!ask.body.contains("id=\"confirm\""));
    let price = format!(
        "{} {}",
        quote["price"].as_str().unwrap(),
        quote["currency"].as_str().unwrap()
    );
    assert!(
        confirm
            .body
            .contains(&format!("<strong id=\"price\">{price}</strong>")),
        "price {price} missing"
    );
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    let upstream_id: u64 = license["upstreamId"].as_str().unwrap().parse().unwrap();
    let renewal = assert_renewed_once(&app.sandbox, upstream_id, 12);
    assert_eq!(
        format!("{:.2}", renewal.cost_cents as f64 / 100.0),
        quote["price"].as_str().unwrap(),
        "charged the quoted price, once"
    );
    let renewals = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "RENEW" && e["outcome"] == "ACCEPTED")
        .count();
    assert_eq!(renewals, 1);
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["requestId"].as_str() == Some(key.as_str())),
        "the console's request id is recorded"
    );
}

#[tokio::test]
async fn what_paid_calls_cost_shows_without_a_cap_and_a_business_renewal_is_confirmed_with_its_nodes()
 {
    // Arrange: the sandbox client has no cap; the price list is at hand (a quote read
    // it). Lite costs 6.00 a month, Business 25.00 and each node 5.00.
    let app = spawn_app().await;
    let quote = app.get("/v1/panels/ISPmanager%206%20Lite/quote").await;
    assert_eq!(quote.status(), StatusCode::OK);
    order(&app, "srv-spent", "203.0.113.47").await;
    let business = app
        .order_and_wait(&json!({
            "server": {"id": "srv-nodes", "ip": "203.0.113.48"},
            "panel": "ISPmanager 6 Business",
            "nodes": 100
        }))
        .await;
    let id = business["id"].as_str().unwrap();
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let overview = browser.get("/console/").await;
    let confirm = browser
        .get(&format!("/console/licenses/{id}/actions/renew?period=1"))
        .await;

    // Assert
    assert!(
        overview
            .body
            .contains("<td class=\"num spent\">531.00</td>"),
        "6.00 + 525.00 spent: {}",
        overview.body
    );
    assert!(
        confirm
            .body
            .contains("<strong id=\"price\">525.00 EUR</strong>"),
        "the renewal's price with its 100 nodes: {}",
        confirm.body
    );
}

#[tokio::test]
async fn what_a_client_sees_and_does_follows_its_scopes() {
    // Arrange
    let app = spawn_app_with_clients().await;
    let ordered = shop_license(&app, "srv-shop", "203.0.113.44").await;
    let id = ordered.as_str();
    let mut viewer = Browser::new(&app);
    let mut shop_browser = Browser::new(&app);
    let mut ops = Browser::new(&app);
    viewer.log_in("viewer-token").await;
    shop_browser.log_in("shop-token").await;
    ops.log_in("ops-token").await;

    // Act
    let viewer_list = viewer.get("/console/licenses").await;
    let viewer_page = viewer.get(&format!("/console/licenses/{id}")).await;
    let viewer_confirm = viewer
        .get(&format!("/console/licenses/{id}/actions/suspend"))
        .await;
    let viewer_csrf = viewer.csrf().await;
    let viewer_post = viewer
        .post(
            &format!("/console/licenses/{id}/actions/suspend"),
            &[("csrf", &viewer_csrf), ("request_key", "k-1")],
        )
        .await;
    let viewer_drift = viewer.get("/console/drift").await;
    let shop_overview = shop_browser.get("/console/").await;
    let shop_audit = shop_browser.get("/console/audit").await;
    let shop_page = shop_browser.get(&format!("/console/licenses/{id}")).await;
    let ops_overview = ops.get("/console/").await;
    let ops_page = ops.get(&format!("/console/licenses/{id}")).await;

    // Assert
    assert!(
        viewer_list.body.contains("No license matches"),
        "not its license"
    );
    assert_eq!(viewer_page.status, StatusCode::NOT_FOUND);
    assert_eq!(viewer_confirm.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer_post.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer_drift.status, StatusCode::FORBIDDEN);
    assert!(
        !viewer_list.body.contains("/console/drift"),
        "no admin tabs"
    );
    assert_eq!(shop_audit.status, StatusCode::FORBIDDEN);
    assert!(shop_page.body.contains("action-suspend"));
    assert!(shop_page.body.contains("needs the admin scope"));
    assert!(
        !shop_overview.body.contains("Licenses by state"),
        "counts span clients"
    );
    assert!(
        shop_overview.body.contains("<td class=\"num\">1</td>"),
        "one paid call today"
    );
    assert!(
        shop_overview.body.contains("<td class=\"num\">5</td>"),
        "against its cap of 5"
    );
    assert!(!shop_overview.body.contains(">ops<"), "only its own usage");
    assert!(ops_overview.body.contains("Licenses by state"));
    assert!(
        ops_overview.body.contains(">viewer<"),
        "every client's usage"
    );
    assert!(ops_page.body.contains("Audit history") && ops_page.body.contains("ORDER"));
}

#[tokio::test]
async fn a_session_from_an_instance_with_another_key_is_refused() {
    // Arrange
    let first = spawn_app().await;
    let second = spawn_app().await;
    let mut browser = Browser::new(&first);
    browser.log_in(SANDBOX_TOKEN).await;
    let session = browser.cookies["lf_console"].clone();

    // Act
    let mut elsewhere = Browser::new(&second);
    elsewhere.cookies.insert("lf_console".into(), session);
    let refused = elsewhere.get("/console/").await;
    let accepted = browser.get("/console/").await;

    // Assert
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.location(), "/console/login");
    assert_eq!(accepted.status, StatusCode::OK);
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_tls_or_when_configured() {
    // Arrange
    let app = spawn_app().await;
    let configured = spawn_app_with(0, |s| s.console.secure_cookies = true).await;
    let forwarded = crate::support::http_client().build().unwrap();

    // Act
    let over_tls = forwarded
        .get(format!("{}/console/login", app.http))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let plain = forwarded
        .get(format!("{}/console/login", configured.http))
        .send()
        .await
        .unwrap();

    // Assert
    for response in [over_tls, plain] {
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
}

#[tokio::test]
async fn caller_and_upstream_text_is_escaped_on_every_page() {
    // Arrange: hostile server ids from a caller, and an orphan upstream whose
    // name, remote id and address are hostile (the list shows `remoteid`, a shape
    // some panels have).
    let app =
        crate::helpers::spawn_app_on_standalone_sandbox(license_facade::sandbox::SandboxConfig {
            list_remoteid: true,
            key_delay: std::time::Duration::ZERO,
            ..license_facade::sandbox::SandboxConfig::default()
        })
        .await;
    let mut ids = Vec::new();
    for (n, planted) in [SCRIPT, ATTRIBUTE].into_iter().enumerate() {
        let license = order(
            &app,
            &format!("srv-{planted}"),
            &format!("203.0.113.{}", 50 + n),
        )
        .await;
        ids.push(license["id"].as_str().unwrap().to_owned());
    }
    let mut orphan = NewSandboxLicense::new(format!("198.51.100.7{ATTRIBUTE}"), 55227);
    orphan.licname = format!("name{SCRIPT}");
    orphan.remote_id = format!("remote{ATTRIBUTE}");
    app.sandbox.insert_license(orphan);
    let reconciled = app.post_json("/v1/reconcile", &json!({})).await;
    assert!(reconciled.status().is_success());
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let mut pages = Vec::new();
    for path in [
        "/console/".to_owned(),
        "/console/licenses".to_owned(),
        format!("/console/licenses/{}", ids[0]),
        format!("/console/licenses/{}", ids[1]),
        format!("/console/licenses/{}/actions/cancel", ids[1]),
        "/console/drift".to_owned(),
        "/console/audit".to_owned(),
        // Filter values are shown back in the form.
        format!(
            "/console/licenses?server={}&client={}",
            urlencode(SCRIPT),
            urlencode(ATTRIBUTE)
        ),
        format!("/console/audit?client={}", urlencode(ATTRIBUTE)),
        // And an invalid one in an error message.
        format!("/console/audit?license={}", urlencode(SCRIPT)),
    ] {
        pages.push((path.clone(), browser.get(&path).await));
    }

    // Assert
    let escaped_script = "&#60;script&#62;alert(1)&#60;/script&#62;";
    let mut shown = 0;
    for (path, page) in &pages {
        assert!(!page.body.contains("<script"), "{path}: unescaped <script>");
        assert!(!page.body.contains("<img"), "{path}: unescaped <img");
        assert!(
            !page.body.contains("\"'>"),
            "{path}: an attribute broken out of"
        );
        if page.body.contains(escaped_script) || page.body.contains("&#60;img src=x") {
            shown += 1;
        }
    }
    assert!(
        shown >= 8,
        "the planted text is shown (escaped) on most pages: {shown}"
    );
    let drift = &pages[5].1.body;
    assert!(
        drift.contains("name&#60;script&#62;"),
        "the orphan's name is listed"
    );
    assert!(
        drift.contains("remote&#34;&#39;&#62;&#60;img"),
        "its remote id too"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_audit_page_filters_by_client_action_license_and_time() {
    // Arrange
    let app = spawn_app_with_clients().await;
    let ordered = shop_license(&app, "srv-audit", "203.0.113.60").await;
    let id = ordered.as_str();
    let mut ops = Browser::new(&app);
    ops.log_in("ops-token").await;

    // Act
    let by_client = ops.get("/console/audit?client=shop&action=ORDER").await;
    let other_client = ops.get("/console/audit?client=ops").await;
    let by_license = ops.get(&format!("/console/audit?license={id}")).await;
    let future = ops.get("/console/audit?since=2999-01-01").await;
    let past = ops.get("/console/audit?until=2000-01-01T00:00").await;
    let bad_time = ops.get("/console/audit?since=yesterday").await;

    // Assert
    assert!(by_client.body.contains("srv-audit"));
    assert!(!other_client.body.contains("srv-audit"));
    assert!(by_license.body.contains("srv-audit"));
    assert!(future.body.contains("No entry matches"));
    assert!(past.body.contains("No entry matches"));
    assert_eq!(bad_time.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_license_list_filters_and_pages_with_the_store_token() {
    // Arrange: 55 licenses, more than one page of 50.
    let app = spawn_app().await;
    for n in 0..55 {
        let response = app
            .post_json(
                "/v1/licenses",
                &json!({"server": {"id": format!("srv-page-{n}"), "ip": format!("198.51.100.{n}")}, "panel": "ISPmanager 6 Lite"}),
            )
            .await;
        assert!(response.status().is_success());
    }
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let first = browser.get("/console/licenses").await;
    let next = {
        let marker = "href=\"/console/licenses?";
        let start = first.body.find(marker).expect("a next link") + marker.len();
        first.body[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    };
    let second = browser.get(&format!("/console/licenses?{next}")).await;
    let by_ip = browser.get("/console/licenses?ip=198.51.100.7").await;
    let by_server = browser.get("/console/licenses?server=srv-page-3").await;
    let bad_state = browser.get("/console/licenses?state=BOGUS").await;

    // Assert
    let rows = |p: &Page| p.body.matches("<tr>").count() - 1;
    assert_eq!(rows(&first), 50);
    assert_eq!(rows(&second), 5);
    assert!(second.body.contains("First page"));
    assert_eq!(rows(&by_ip), 1);
    assert!(by_ip.body.contains("srv-page-7<"));
    assert_eq!(rows(&by_server), 1);
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_upstream_error_message_is_escaped_where_it_is_shown() {
    if std::env::var("LICENSE_FACADE_TEST_STORE").as_deref() == Ok("postgres") {
        println!("the planted license is seeded in a SQLite file: checked on the SQLite run");
        return;
    }
    // Arrange: a license that needs attention, whose last upstream error (and panel
    // name, as the upstream named it) carry markup, seeded before the app starts.
    use license_facade::domain::{
        ClientName, License, LicenseId, LicenseIp, LicenseState, Period, ServerId,
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("planted.db").display());
    let id = LicenseId::generate();
    {
        let store = license_facade::store::connect(&url).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        store
            .insert_adopted(&License {
                id,
                client: ClientName::new("sandbox"),
                server_id: ServerId::parse("srv-planted", "serverId").unwrap(),
                ip: LicenseIp::parse("203.0.113.90", "ip").unwrap(),
                hostname: None,
                panel: format!("ISPmanager{ATTRIBUTE}"),
                tariff_id: 55227,
                nodes: None,
                period: Period::Month,
                auto_renew: false,
                state: LicenseState::NeedsAttention,
                license_key: Some(format!("key{SCRIPT}")),
                upstream_id: Some(4242),
                expire_time: None,
                create_time: now,
                update_time: now,
                last_error: None,
                reused_by: None,
                reused_from: None,
            })
            .await
            .unwrap();
        store.close().await;
        // An adopted license starts without an error; the upstream's words are planted
        // as the workflow stores them.
        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE licenses SET last_error_code = ?1, last_error_message = ?2 WHERE id = ?3",
        )
        .bind("UPSTREAM_OUTCOME_UNKNOWN")
        .bind(format!("upstream said {SCRIPT} and {ATTRIBUTE}"))
        .bind(id.to_string())
        .execute(&db)
        .await
        .unwrap();
        db.close().await;
    }
    let app = spawn_app_with(0, |s| s.database_url = url.clone()).await;
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;

    // Act
    let overview = browser.get("/console/").await;
    let list = browser.get("/console/licenses?state=NEEDS_ATTENTION").await;
    let page = browser.get(&format!("/console/licenses/{id}")).await;

    // Assert
    for (name, p) in [("overview", &overview), ("list", &list), ("license", &page)] {
        assert_eq!(p.status, StatusCode::OK, "{name}");
        assert!(p.body.contains("srv-planted"), "{name} shows the license");
        assert!(!p.body.contains("<script"), "{name}: unescaped <script>");
        assert!(!p.body.contains("<img"), "{name}: unescaped <img");
        assert!(
            !p.body.contains("\"'>"),
            "{name}: an attribute broken out of"
        );
    }
    for p in [&overview, &page] {
        assert!(
            p.body
                .contains("upstream said &#60;script&#62;alert(1)&#60;/script&#62; and &#34;&#39;&#62;&#60;img"),
            "the error message is shown, escaped"
        );
    }
}

#[tokio::test]
async fn reconcile_now_finds_an_orphan_that_the_drift_page_adopts() {
    // Arrange: a license paid upstream that this service does not know.
    let app = spawn_app().await;
    let upstream_id = app
        .sandbox
        .insert_license(NewSandboxLicense::new("192.0.2.55", 55227));
    let mut browser = Browser::new(&app);
    browser.log_in(SANDBOX_TOKEN).await;
    let csrf = browser.csrf().await;

    // Act
    let before = browser.get("/console/drift").await;
    let reconciled = browser
        .post("/console/drift/reconcile", &[("csrf", &csrf)])
        .await;
    let report = browser.get("/console/drift").await;
    let adopted = browser
        .post(
            &format!("/console/drift/{upstream_id}/adopt"),
            &[
                ("csrf", &csrf),
                ("server_id", "srv-adopted"),
                ("hostname", ""),
            ],
        )
        .await;
    let page = browser.get(adopted.location()).await;

    // Assert
    assert!(before.body.contains("No reconciliation has run yet"));
    assert_eq!(reconciled.status, StatusCode::SEE_OTHER);
    assert_eq!(reconciled.location(), "/console/drift");
    assert!(report.body.contains("192.0.2.55"), "the orphan is listed");
    assert!(
        report
            .body
            .contains(&format!("action=\"/console/drift/{upstream_id}/adopt\"")),
        "with its adopt form"
    );
    assert_eq!(adopted.status, StatusCode::SEE_OTHER);
    assert!(adopted.location().starts_with("/console/licenses/"));
    assert!(page.body.contains("srv-adopted") && page.body.contains("ACTIVE"));
    assert!(page.body.contains(&upstream_id.to_string()));
}

#[tokio::test]
async fn an_admin_resolves_a_license_that_needs_attention_from_its_page_and_the_drift_page() {
    // Arrange: the order is bought upstream, its answer lost, the list failing.
    let app = spawn_app_with(0, move |s| {
        s.clients = Some(named_clients(&OPS_AND_SHOP));
        s.workflow.settle_interval = std::time::Duration::from_millis(50);
        s.workflow.max_lookup_failures = 2;
    })
    .await;
    let body =
        json!({"server": {"id": "srv-stuck", "ip": "203.0.113.61"}, "panel": "ISPmanager 6 Pro"});
    let stuck = app.stuck("ops-token", &body, Stuck::Bought).await;
    let (id, upstream) = (stuck.id, stuck.bought.expect("bought").to_string());
    let mut ops = Browser::new(&app);
    let mut shop = Browser::new(&app);
    ops.log_in("ops-token").await;
    shop.log_in("shop-token").await;
    let csrf = ops.csrf().await;
    let reconciled = ops
        .post("/console/drift/reconcile", &[("csrf", &csrf)])
        .await;

    // Act
    let drift = ops.get("/console/drift").await;
    let page = ops.get(&format!("/console/licenses/{id}")).await;
    let path = format!("/console/licenses/{id}/actions/resolve");
    let inputs = ops.get(&path).await;
    let confirm = ops
        .get(&format!(
            "{path}?mode=BIND&upstream_id={upstream}&reason=found+it+in+the+panel"
        ))
        .await;
    let form: Vec<(&str, String)> = ["csrf", "request_key", "mode", "upstream_id", "reason"]
        .into_iter()
        .map(|name| (name, confirm.hidden(name)))
        .collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let shop_page = shop.get(&format!("/console/licenses/{id}")).await;
    let shop_form = shop.get(&path).await;
    let shop_post = shop.post(&path, &form).await;
    let without_csrf = ops.post(&path, &form[1..]).await;
    let done = ops.post(&path, &form).await;
    let after = ops
        .get(&format!("/console/licenses/{id}?done=resolve"))
        .await;

    // Assert
    assert_eq!(reconciled.status, StatusCode::SEE_OTHER);
    assert!(
        drift.body.contains(&format!(
            "href=\"/console/licenses/{id}/actions/resolve?mode=BIND&amp;upstream_id={upstream}\""
        )),
        "the drift page offers the orphan to the stuck license"
    );
    assert!(page.body.contains("id=\"action-resolve\""));
    assert!(inputs.body.contains("name=\"reason\""));
    assert!(
        inputs
            .body
            .contains(&format!("<span class=\"mono\">{upstream}</span>")),
        "the orphan on the license's IP is suggested"
    );
    assert!(confirm.body.contains("found it in the panel"));
    assert!(!shop_page.body.contains("action-resolve"), "admins only");
    assert_eq!(shop_form.status, StatusCode::FORBIDDEN);
    assert_eq!(shop_post.status, StatusCode::FORBIDDEN);
    assert_eq!(without_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(after.body.contains("The license was resolved."));
    let license = app.api_as("ops-token").license(&id).await;
    assert_eq!(license["state"], "ACTIVE");
    assert_eq!(license["upstreamId"], upstream.as_str());
    assert_eq!(app.sandbox.licenses().len(), 1, "nothing more was bought");
    assert!(after.body.contains("RESOLVE"), "the audit history shows it");
}
