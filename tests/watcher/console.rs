//! The service's console shows what the watchers see: each configured watcher's
//! servers with their licenses, and the cancellations waiting for their grace period,
//! read from the watcher's operator listener.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use license_facade::console::WatcherLink;
use license_facade::platform::sim::PlatformSimConfig;
use license_facade::watcher::{Listeners, Watcher, WatcherConfig, serve};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::{Chain, PRO, Spec, WATCHER_TOKEN, live_of, pass, sid};
use crate::support::TOKEN;

/// A console session of the client calling with `token`: the base URL and its
/// cookies.
struct Console {
    base: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Console {
    async fn log_in(base: &str, token: &str) -> Self {
        let mut console = Self {
            base: base.to_owned(),
            http: crate::support::http_client()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        };
        let (_, form) = console.get("/console/login").await;
        let marker = "name=\"csrf\" value=\"";
        let start = form.find(marker).expect("a CSRF field") + marker.len();
        let csrf = form[start..].split('"').next().unwrap().to_owned();
        let request = console
            .http
            .post(format!("{base}/console/login"))
            .form(&[("csrf", csrf.as_str()), ("token", token)]);
        let (status, _) = console.send(request).await;
        assert_eq!(status, 303, "logged in");
        console
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let answer = request.header("cookie", cookie).send().await.unwrap();
        for set in answer.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }
}

/// How the console writes a Unix time.
fn console_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[tokio::test]
async fn the_console_shows_each_watchers_servers_and_pending_cancellations_with_their_deadline() {
    // Arrange: the watcher's operator listener is bound first, so the service's
    // console can be configured with its address; a second watcher is configured
    // that does not answer.
    let operator = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operator_url = format!("http://{}", operator.local_addr().unwrap());
    let links = vec![
        WatcherLink::new("vm6-t", &operator_url).unwrap(),
        WatcherLink::new("dci-down", "http://127.0.0.1:1").unwrap(),
    ];
    let chain = Chain::start_configured(PlatformSimConfig::default(), move |s| {
        s.console.watchers = links;
    })
    .await;
    let hosts = chain.vm.create_hosts("web", 3, PRO).await;
    let spec = Spec::default();
    let config = WatcherConfig::load(&chain.write_config(&spec)).unwrap();
    let watcher = Arc::new(Watcher::new(config).unwrap());
    pass(&watcher).await;
    let licenses = chain.all_active(3).await;
    let leaving = live_of(&licenses, &sid(hosts[2])).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let staying = live_of(&licenses, &sid(hosts[0])).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    chain.vm.delete_host(hosts[2]).await;
    pass(&watcher).await;
    let snapshot = serde_json::to_value(watcher.board().snapshot()).unwrap();
    let pending: &Value = &snapshot["pending"][0];
    let grace_ends = console_time(pending["grace_ends"].as_i64().unwrap());
    let stop = CancellationToken::new();
    let served = tokio::spawn(serve(
        watcher.clone(),
        Listeners::from_bound(Some(operator), None),
        stop.clone().cancelled_owned(),
    ));
    let base = chain.api.base.clone();

    // Act
    let mut admin = Console::log_in(&base, TOKEN).await;
    let (status, page) = admin.get("/console/servers").await;
    let mut watcher_client = Console::log_in(&base, WATCHER_TOKEN).await;
    let (not_admin, _) = watcher_client.get("/console/servers").await;

    // Assert: the pending cancellation, linked to its license, with its deadline.
    assert_eq!(status, 200, "{page}");
    let pending_part = page
        .split("Pending cancellations")
        .nth(1)
        .and_then(|rest| rest.split("Servers and their licenses").next())
        .expect("a pending section");
    assert!(pending_part.contains(&sid(hosts[2])), "{pending_part}");
    assert!(
        pending_part.contains(&format!("/console/licenses/{leaving}")),
        "{pending_part}"
    );
    assert!(pending_part.contains(&grace_ends), "{pending_part}");
    assert!(pending_part.contains("waiting"), "{pending_part}");
    assert!(!pending_part.contains(&sid(hosts[0])), "{pending_part}");
    // The servers still listed, each with its live license.
    let servers_part = page
        .split("Servers and their licenses")
        .nth(1)
        .expect("a servers section");
    assert!(servers_part.contains(&sid(hosts[0])), "{servers_part}");
    assert!(
        servers_part.contains(&format!("/console/licenses/{staying}")),
        "{servers_part}"
    );
    assert!(servers_part.contains("ACTIVE"), "{servers_part}");
    // The watcher that does not answer is named, with why.
    assert!(page.contains("dci-down"), "{page}");
    assert!(page.contains("could not be read"), "{page}");
    // A client without the admin scope does not see the platform.
    assert_eq!(not_admin, 403);
    // Nothing was cancelled: the grace period has not ended.
    assert_eq!(chain.upstream_deletions(), 0);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
