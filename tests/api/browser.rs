//! The console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) against the application with its sandbox. Skipped, with a message,
//! where chromedriver is not installed (with `CI=true` that fails); `.ci/run` installs
//! it. Saves the screenshots
//! the README shows (`docs/img/console-*.png`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use license_facade::auth::SANDBOX_TOKEN;
use license_facade::sandbox::NewSandboxLicense;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::support::{Stuck, plant_status_witnesses, skip_unless_ci};

/// A chromedriver process, ended when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own: ending the group ends the
        // browsers it started too, even after a failed assertion left them open.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group only.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// A port free on both 127.0.0.1 and [::1] when asked. chromedriver listens on both
/// and exits ("IPv6 port not available") when the second is taken; given port 0 it
/// takes a free IPv4 port and only then tries the same number on IPv6, which another
/// test's socket may hold (the gate saw it once). A host without IPv6 gets a free
/// IPv4 port.
fn port_free_on_both_loopbacks() -> u16 {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    for _ in 0..100 {
        let v6 = match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
            Ok(v6) => v6,
            Err(_) => break,
        };
        let port = v6.local_addr().expect("a bound address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|v4| v4.local_addr())
        .expect("a free IPv4 port")
        .port()
}

impl Driver {
    /// Starts chromedriver on a free port; `None` when it is not installed.
    fn start() -> Option<Self> {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        use std::os::unix::process::CommandExt as _;
        let mut child = match Command::new(&program)
            .arg(format!("--port={}", port_free_on_both_loopbacks()))
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot start {program}: {e}"),
        };
        // chromedriver says when it listens: no polling needed.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut port = None;
        let mut said = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("chromedriver output");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim_end_matches('.').trim().parse().ok();
                break;
            }
            said.push(line);
        }
        let port = port.unwrap_or_else(|| {
            panic!(
                "chromedriver did not report its port; it said:\n{}",
                said.join("\n")
            )
        });
        Some(Self { child, port })
    }

    /// A headless Chromium session of `width`×`height`; below 600 pixels wide, a
    /// phone's screen (a desktop window cannot be that narrow).
    async fn browser(&self, width: u32, height: u32) -> Client {
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
        ];
        let mut options = json!({ "args": args });
        if width < 600 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": true}
            });
        }
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/img")
        .join(format!("console-{name}.png"))
}

async fn save_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    let path = screenshot_path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, png).unwrap();
}

/// Clicks `button` and waits for the page that answers to show `next` (a CSS
/// selector), since a click does not wait for the navigation it starts.
async fn submit(browser: &Client, button: &str, next: &str) {
    browser
        .find(Locator::Id(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(Locator::Css(next))
        .await
        .unwrap_or_else(|e| panic!("no {next} after clicking {button}: {e}"));
}

/// Fills the resolve form (choosing `mode` when given; a link may have chosen it)
/// with `reason` and reviews it: the confirmation page follows.
async fn resolve(browser: &Client, mode: Option<&str>, reason: &str) {
    if let Some(mode) = mode {
        browser
            .find(Locator::Css(&format!("#mode option[value={mode}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    browser
        .find(Locator::Id("reason"))
        .await
        .unwrap()
        .send_keys(reason)
        .await
        .unwrap();
    submit(browser, "review", "#confirm").await;
    assert!(text(browser).await.contains(reason));
}

/// The state badge of a license page.
async fn state_shown(browser: &Client) -> String {
    browser
        .find(Locator::Id("state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// How far the widest of `selector`'s elements reaches past the inside of its card
/// (`card`: the closest ancestor, or the element itself, matching it), in CSS
/// pixels; 0 or less when everything fits. An element scrolled sideways inside its
/// card counts with its full width: it does not fit either.
async fn overflow(browser: &Client, selector: &str, card: &str) -> f64 {
    let script = r#"
        const [selector, cardSelector] = arguments;
        const elements = [...document.querySelectorAll(selector)];
        if (elements.length === 0) { return null; }
        let worst = -Infinity;
        for (const el of elements) {
            const card = el.closest(cardSelector);
            const style = getComputedStyle(card);
            const inner = card.getBoundingClientRect().right - parseFloat(style.borderRightWidth)
                - parseFloat(style.paddingRight);
            // What is scrolled out of sight inside the element does not fit either.
            worst = Math.max(worst, el.scrollWidth - el.clientWidth);
            const parts = [...el.querySelectorAll('*')];
            if (el !== card) { parts.push(el); }
            for (const part of parts) {
                worst = Math.max(worst, part.getBoundingClientRect().right - inner);
            }
        }
        return worst;
    "#;
    let worst = browser
        .execute(script, vec![json!(selector), json!(card)])
        .await
        .unwrap();
    worst
        .as_f64()
        .unwrap_or_else(|| panic!("no {selector} on the page"))
}

async fn text(browser: &Client) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .expect("a main element")
        .text()
        .await
        .unwrap()
}

/// A watcher's operator listener serving `/status?format=json`.
struct WatcherFixture {
    url: String,
    status: std::sync::Arc<std::sync::Mutex<Value>>,
}

impl WatcherFixture {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let status = std::sync::Arc::new(std::sync::Mutex::new(json!({})));
        let served = status.clone();
        let router = axum::Router::new().route(
            "/status",
            axum::routing::get(move || {
                let served = served.clone();
                async move { axum::Json(served.lock().unwrap().clone()) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, status }
    }

    /// Publishes a pass over the first licenses of the app, one server gone.
    async fn publish(&self, app: &TestApp, gone_license: &str) {
        let licenses: Value = app
            .get("/v1/licenses?state=ACTIVE&pageSize=6")
            .await
            .json()
            .await
            .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let servers: Vec<Value> = licenses["licenses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["id"] != gone_license)
            .enumerate()
            .map(|(n, l)| {
                json!({"server_id": format!("vm6-a:{}", 1100 + n), "name": l["hostname"],
                       "state": "active", "wants": format!("{} on {}", l["panel"].as_str().unwrap(),
                                                             l["ip"].as_str().unwrap()),
                       "license": {"id": l["id"], "state": l["state"], "ip": l["ip"],
                                   "panel": l["panel"]}})
            })
            .chain([
                json!({"server_id": "vm6-a:1300", "name": "new-vm", "state": "creating",
                           "wants": "nothing (unmarked)"}),
            ])
            .collect();
        *self.status.lock().unwrap() = json!({
            "last_pass": {"started_at": now - 20, "duration_ms": 41,
                          "listing": {"complete": true, "servers": servers.len()},
                          "servers_marked": servers.len() - 1, "licenses_live": servers.len(),
                          "ordered": 1, "moved": 0, "panel_changed": 0, "cancelled": 0, "errors": 0,
                          "held": []},
            "servers": servers,
            "pending": [{"server_id": "vm6-a:1207", "license_id": gone_license, "reason": "gone",
                         "listings": 2, "listings_needed": 3, "since": now - 600,
                         "grace_ends": now + 3000, "held_by_limit": false}],
            "last_complete_listing": now - 20
        });
    }
}

/// Licenses of several kinds, so the pages show what an operator sees: active ones
/// with host names, a suspended one, two whose order outcome could not be
/// established (NEEDS_ATTENTION: one bought upstream, one not), an orphan upstream
/// found by a reconciliation. Returns the bought stuck one, the one not bought, and
/// the license the screenshots show.
async fn seed(app: &TestApp) -> (String, String, String) {
    let place_stuck = |server: &str, ip: &str, how| {
        let body = json!({"server": {"id": server, "ip": ip, "hostname": format!("{server}.example.net")},
                          "panel": "ISPmanager 6 Pro"});
        async move { app.stuck(SANDBOX_TOKEN, &body, how).await.id }
    };
    // The order's answer is lost and the look-up fails: a person must decide.
    let stuck_id = place_stuck("vps-0412", "203.0.113.12", Stuck::Bought).await;
    // The order fails with a 5xx (nothing bought) and may not be sent again.
    let unbought_id = place_stuck("vps-0413", "203.0.113.13", Stuck::Unbought).await;

    let mut shown = String::new();
    for (n, (server, host, panel)) in [
        ("web-01", "web-01.example.com", "ISPmanager 6 Lite"),
        ("web-02", "web-02.example.com", "ISPmanager 6 Pro"),
        ("db-01", "", "ISPmanager 6 Lite"),
        ("mail-01", "mail.example.org", "ISPmanager 6 Business"),
        ("shop-7", "shop7.example.com", "ISPmanager 6 Pro"),
    ]
    .into_iter()
    .enumerate()
    {
        let license = app
            .order_and_wait(&json!({"server": {"id": server, "ip": format!("198.51.100.{}", 20 + n), "hostname": host},
                                    "panel": panel}))
            .await;
        if n == 1 {
            shown = license["id"].as_str().unwrap().to_owned();
        }
        if n == 3 {
            let id = license["id"].as_str().unwrap();
            let suspended = app
                .post_json(&format!("/v1/licenses/{id}/suspend?wait=20s"), &json!({}))
                .await;
            assert!(suspended.status().is_success());
        }
    }
    app.sandbox
        .insert_license(NewSandboxLicense::new("192.0.2.77", 55228));
    let reconciled = app.post_json("/v1/reconcile", &json!({})).await;
    assert!(reconciled.status().is_success());
    (stuck_id, unbought_id, shown)
}

/// The license of `server`'s id.
async fn license_of(app: &TestApp, server: &str) -> String {
    let license: Value = app
        .get(&format!("/v1/servers/{server}/license"))
        .await
        .json()
        .await
        .unwrap();
    license["id"].as_str().expect("a license").to_owned()
}

/// The Pool page: a license released from its page is parked, an order of its
/// tariff takes it instead of buying, and one of another tariff released by the API
/// waits in the pool; the page fits its cards.
async fn pool(app: &TestApp, browser: &Client, console: &str) {
    let released = license_of(app, "shop-7").await;
    browser
        .goto(&format!("{console}licenses/{released}"))
        .await
        .unwrap();
    submit(browser, "action-release", "body.page-confirm").await;
    assert!(text(browser).await.contains("rules it is parked"));
    submit(browser, "confirm", "body.page-license").await;
    assert!(text(browser).await.contains("being parked in the pool"));
    app.license_until(&released, |l| l["state"] == "PARKED")
        .await;
    let bought = app.sandbox.call_count("soft.order.param");
    let taker = app
        .order_and_wait(&json!({"server": {"id": "web-03", "ip": "198.51.100.30",
                                           "hostname": "web-03.example.com"},
                                "panel": "ISPmanager 6 Pro"}))
        .await;
    assert_eq!(taker["reusedFrom"], released.as_str(), "{taker}");
    assert_eq!(app.sandbox.call_count("soft.order.param"), bought);
    let parked = license_of(app, "db-01").await;
    let answer = app
        .post_json(
            &format!("/v1/licenses/{parked}/release?wait=20s"),
            &json!({}),
        )
        .await;
    assert!(answer.status().is_success());
    app.license_until(&parked, |l| l["state"] == "PARKED").await;

    browser.goto(&format!("{console}pool")).await.unwrap();
    let page = text(browser).await;
    for shown in ["ISPmanager 6 Lite", "ISPmanager 6 Pro", "db-01"] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    let reuses = browser
        .find(Locator::Id("total-reuses"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(reuses, "1");
    save_screenshot(browser, "pool").await;
    let tables = overflow(browser, ".table-wrap", ".card").await;
    assert!(
        tables <= 0.0,
        "a pool table overflows its card by {tables}px"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        skip_unless_ci(
            "the browser test needs chromedriver, which is not installed \
             (apt-get install chromium chromium-driver, or CHROMEDRIVER=path)",
        );
        return;
    };
    // A platform watcher's operator listener, serving the status document the
    // Servers page reads (filled in once the licenses exist).
    let watcher = WatcherFixture::start().await;
    let watcher_link =
        license_facade::console::WatcherLink::new("vm6-a", &watcher.url).expect("a valid link");
    let app = spawn_app_with(0, move |s| {
        s.console.watchers = vec![watcher_link];
        // Nothing is looked up as absent before a request timeout after the last send.
        s.billmanager.request_timeout = std::time::Duration::from_secs(2);
        s.workflow.max_lookup_failures = 2;
        s.workflow.max_resends = 0;
        // A parked license may move at once, so the Pool page shows a reuse.
        s.pool.ip_change_cooldown_days = 0;
        s.pool.key_change_cooldown_days = 0;
        let sandbox = s.sandbox.as_mut().expect("a sandbox");
        sandbox.ip_change_cooldown_days = 0;
        sandbox.key_change_cooldown_days = 0;
    })
    .await;
    let (stuck_id, unbought_id, shown_id) = seed(&app).await;
    let to_cancel = app
        .order_and_wait(&json!({"server": {"id": "old-box", "ip": "198.51.100.99"},
                                "panel": "ISPmanager 6 Lite"}))
        .await;
    let cancel_id = to_cancel["id"].as_str().unwrap().to_owned();
    let browser = driver.browser(1280, 1100).await;
    let console = format!("{}/console/", app.http);

    // A wrong token is refused.
    browser.goto(&console).await.unwrap();
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("wrong-token")
        .await
        .unwrap();
    submit(&browser, "login", "p.alert").await;
    assert!(text(&browser).await.contains("That token is not valid"));
    save_screenshot(&browser, "login").await;

    // The right one opens the overview.
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(SANDBOX_TOKEN)
        .await
        .unwrap();
    submit(&browser, "login", "body.page-overview").await;
    let overview = text(&browser).await;
    assert!(overview.contains("Overview"), "{overview}");
    assert!(
        overview.contains("UPSTREAM_OUTCOME_UNKNOWN"),
        "the stuck license: {overview}"
    );
    assert!(overview.contains("vps-0412"));
    // Every state's tile holds its name and count, NEEDS_ATTENTION the longest.
    let tiles = overflow(&browser, ".counts li", "li").await;
    assert!(
        tiles <= 0.0,
        "a state's tile overflows by {tiles}px at 1280px"
    );
    let tables = overflow(&browser, ".table-wrap", ".card").await;
    assert!(tables <= 0.0, "a table overflows its card by {tables}px");
    save_screenshot(&browser, "overview").await;

    // The stuck license is one click away.
    browser
        .find(Locator::LinkText("vps-0412"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("body.page-license"))
        .await
        .unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(&stuck_id)
    );
    let stuck_page = text(&browser).await;
    assert!(stuck_page.contains("NEEDS_ATTENTION"));
    assert!(
        stuck_page.contains("the order reached BILLmanager (sent at"),
        "how far the order got: {stuck_page}"
    );
    save_screenshot(&browser, "attention").await;

    // The license list, and a license's page.
    browser.goto(&format!("{console}licenses")).await.unwrap();
    assert!(text(&browser).await.contains("mail-01"));
    save_screenshot(&browser, "licenses").await;
    browser
        .goto(&format!("{console}licenses/{shown_id}"))
        .await
        .unwrap();
    let page = text(&browser).await;
    assert!(
        page.contains("web-02.example.com") && page.contains("ORDER"),
        "{page}"
    );
    save_screenshot(&browser, "license").await;
    let history = overflow(&browser, ".table-wrap", ".card").await;
    assert!(history <= 0.0, "a table overflows its card by {history}px");

    // A form without its CSRF token is refused and changes nothing.
    browser
        .goto(&format!("{console}licenses/{cancel_id}/actions/cancel"))
        .await
        .unwrap();
    browser
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())",
            vec![],
        )
        .await
        .unwrap();
    submit(&browser, "confirm", "body.page-error").await;
    assert!(text(&browser).await.contains("Form refused"));
    let still: Value = app
        .get(&format!("/v1/licenses/{cancel_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["state"], "ACTIVE");

    // Cancel it properly: the confirmation, then the license page says so.
    browser
        .goto(&format!("{console}licenses/{cancel_id}"))
        .await
        .unwrap();
    submit(&browser, "action-cancel", "body.page-confirm").await;
    assert!(text(&browser).await.contains("cannot be undone"));
    save_screenshot(&browser, "confirm").await;
    submit(&browser, "confirm", "body.page-license").await;
    assert!(
        text(&browser)
            .await
            .contains("The cancellation was accepted")
    );
    app.license_until(&cancel_id, |l| l["state"] == "CANCELLED")
        .await;
    browser.refresh().await.unwrap();
    let state = browser
        .find(Locator::Id("state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "CANCELLED");
    assert_eq!(app.sandbox.call_count("soft.delete"), 1);

    // Drift and audit.
    browser.goto(&format!("{console}drift")).await.unwrap();
    assert!(text(&browser).await.contains("192.0.2.77"));
    save_screenshot(&browser, "drift").await;

    // The stuck order was bought after all: the drift report's orphan on its IP
    // resolves it (BIND), and it becomes ACTIVE without another purchase.
    let bought = app
        .sandbox
        .licenses()
        .into_iter()
        .find(|l| l.licname == stuck_id)
        .expect("the lost order was bought upstream");
    let upstream_count = app.sandbox.licenses().len();
    submit(
        &browser,
        &format!("resolve-with-{}", bought.id),
        "body.page-confirm",
    )
    .await;
    resolve(&browser, None, "BILLmanager shows it under our licname").await;
    assert!(text(&browser).await.contains(&bought.id.to_string()));
    save_screenshot(&browser, "resolve").await;
    submit(&browser, "confirm", "body.page-license").await;
    assert!(text(&browser).await.contains("The license was resolved."));
    assert_eq!(state_shown(&browser).await, "ACTIVE");
    assert_eq!(app.sandbox.licenses().len(), upstream_count);

    // The other one was not bought: RETRY sends it once more, and it becomes ACTIVE.
    // Licenses bought elsewhere in every status an order may be in are listed, so
    // the retry's look-up can prove the order absent.
    plant_status_witnesses(&app.sandbox);
    let sent = app.sandbox.call_count("soft.order.param");
    browser
        .goto(&format!("{console}licenses/{unbought_id}"))
        .await
        .unwrap();
    submit(&browser, "action-resolve", "body.page-confirm").await;
    resolve(
        &browser,
        Some("RETRY"),
        "nothing in BILLmanager for this IP",
    )
    .await;
    submit(&browser, "confirm", "body.page-license").await;
    app.license_until(&unbought_id, |l| l["state"] == "ACTIVE")
        .await;
    browser.refresh().await.unwrap();
    assert_eq!(state_shown(&browser).await, "ACTIVE");
    assert_eq!(app.sandbox.call_count("soft.order.param"), sent + 1);
    assert_eq!(
        crate::support::bought(&app.sandbox).len(),
        upstream_count + 1
    );
    save_screenshot(&browser, "resolved").await;

    // The audit log, with the request ids and reasons of everything above, fits its
    // card without sideways scrolling.
    browser.goto(&format!("{console}audit")).await.unwrap();
    assert!(text(&browser).await.contains("RESOLVE"));
    save_screenshot(&browser, "audit").await;
    let audit = overflow(&browser, ".table-wrap", ".card").await;
    assert!(
        audit <= 0.0,
        "the audit table overflows its card by {audit}px"
    );

    // The Servers page: what the watcher sees, with the cancellation waiting for its
    // grace period; it fits its card.
    watcher.publish(&app, &shown_id).await;
    browser.goto(&format!("{console}servers")).await.unwrap();
    let servers = text(&browser).await;
    assert!(servers.contains("Pending cancellations"), "{servers}");
    assert!(servers.contains("vm6-a:1207"), "{servers}");
    assert!(servers.contains("2 (3 needed)"), "{servers}");
    assert!(servers.contains("shop7.example.com"), "{servers}");
    assert!(
        servers.contains(&shown_id),
        "the pending license is linked: {servers}"
    );
    save_screenshot(&browser, "servers").await;
    let servers_overflow = overflow(&browser, ".table-wrap", ".card").await;
    assert!(
        servers_overflow <= 0.0,
        "the servers tables overflow their card by {servers_overflow}px"
    );

    pool(&app, &browser, &console).await;

    // Log out: the pages are closed again.
    submit(&browser, "logout", "body.page-login").await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    browser.goto(&console).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    browser.close().await.unwrap();

    // On a phone-sized screen.
    let phone = driver.browser(390, 844).await;
    phone.goto(&console).await.unwrap();
    phone
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(SANDBOX_TOKEN)
        .await
        .unwrap();
    submit(&phone, "login", "body.page-overview").await;
    let width: Value = phone
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 390,
        "no sideways scrolling: {width}"
    );
    save_screenshot(&phone, "phone").await;
    phone.close().await.unwrap();
}
