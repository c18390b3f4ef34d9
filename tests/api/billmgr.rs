//! The downstream BILLmanager API (`/billmgr`): the request sequences of public
//! clients end to end through the facade to the sandbox, a facade in front of a
//! facade, duplicate orders, accounts and errors.

use std::time::Duration;

use license_facade::auth::{Clients, SANDBOX_BILLMGR_USER, SANDBOX_TOKEN, hash_password};
use serde_json::Value;

use crate::helpers::{
    TestApp, spawn_app, spawn_app_on_upstream, spawn_app_with, spawn_app_with_key_delay,
};
use crate::support::assert_renewed_once;

/// How a client reads answers.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    Xml,
    Sjson,
    Bjson,
}

/// A client of one facade's `/billmgr`, logged in one way, reading one format.
struct Shop {
    http: reqwest::Client,
    url: String,
    creds: Vec<(String, String)>,
    out: Out,
}

impl Shop {
    fn new(app: &TestApp, path: &str, user: &str, password: &str, out: Out) -> Self {
        Self {
            http: crate::support::http_client().build().unwrap(),
            url: format!("{}{path}", app.http),
            creds: vec![("authinfo".into(), format!("{user}:{password}"))],
            out,
        }
    }

    /// Logs in with `func=auth` and uses the session from then on.
    async fn with_session(mut self, user: &str, password: &str) -> Self {
        let body = self
            .raw(&[
                ("func", "auth"),
                ("username", user),
                ("password", password),
                ("out", "xml"),
            ])
            .await;
        let sid = between(&body, "<auth id=\"", "\"").expect("a session id");
        self.creds = vec![("auth".into(), sid.to_owned())];
        self
    }

    async fn raw(&self, params: &[(&str, &str)]) -> String {
        // Form POST, as Upmind and noc send it; the XML reader uses GET, as joonte.
        let request = if self.out == Out::Xml {
            let all = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(self.creds.iter().cloned());
            self.http
                .get(reqwest::Url::parse_with_params(&self.url, all).unwrap())
        } else {
            let mut form: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            form.extend(self.creds.iter().cloned());
            self.http.post(&self.url).form(&form)
        };
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), 200, "refusals come with HTTP 200 too");
        response.text().await.unwrap()
    }

    async fn call(&self, params: &[(&str, &str)]) -> String {
        let out = match self.out {
            Out::Xml => "xml",
            Out::Sjson => "sjson",
            Out::Bjson => "bjson",
        };
        let mut all = params.to_vec();
        all.push(("out", out));
        self.raw(&all).await
    }

    /// A field of the answer where this kind of client reads it.
    fn field(&self, body: &str, name: &str) -> Option<String> {
        match self.out {
            Out::Xml => between(body, &format!("<{name}>"), &format!("</{name}>"))
                .map(str::to_owned)
                .or_else(|| body.contains(&format!("<{name}/>")).then(String::new)),
            Out::Sjson => {
                let v: Value = serde_json::from_str(body).unwrap();
                // A confirm answer may nest its fields in `doc/doc`.
                let f = match &v["doc"][name] {
                    Value::Null => &v["doc"]["doc"][name],
                    top => top,
                };
                f["$"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| f.is_object().then(String::new))
            }
            Out::Bjson => {
                let v: Value = serde_json::from_str(body).unwrap();
                v["doc"]["model"][name]
                    .as_str()
                    .or_else(|| v["doc"][name]["v"].as_str())
                    .or_else(|| v["doc"]["doc"][name]["v"].as_str())
                    .map(str::to_owned)
            }
        }
    }

    fn error(&self, body: &str) -> Option<String> {
        match self.out {
            Out::Xml => between(body, "<error type=\"", "\"").map(str::to_owned),
            Out::Sjson => {
                let v: Value = serde_json::from_str(body).unwrap();
                v["doc"]["error"]["$type"].as_str().map(str::to_owned)
            }
            Out::Bjson => {
                let v: Value = serde_json::from_str(body).unwrap();
                v["doc"]["error"]["type"].as_str().map(str::to_owned)
            }
        }
    }

    async fn ok(&self, params: &[(&str, &str)]) -> String {
        let body = self.call(params).await;
        assert_eq!(self.error(&body), None, "{params:?} refused: {body}");
        body
    }

    /// `soft.edit` with only `elid`, in a loop until `done` holds for the answer.
    async fn poll(&self, id: &str, done: impl Fn(&Shop, &str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let body = self.ok(&[("func", "soft.edit"), ("elid", id)]).await;
            if done(self, &body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never reached: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = body.find(start)? + start.len();
    let len = body[from..].find(end)?;
    Some(&body[from..from + len])
}

fn status_is(code: &'static str) -> impl Fn(&Shop, &str) -> bool {
    move |shop, body| shop.field(body, "status").as_deref() == Some(code)
}

/// Order, poll until the key, renew, move, suspend, resume, delete; `id_of` reads the
/// new id the way the client does.
async fn lifecycle(
    app: &TestApp,
    shop: &Shop,
    remoteid: &str,
    ip: &str,
    id_of: impl Fn(&str) -> String,
) {
    let ordered = shop
        .ok(&[
            ("func", "soft.order.param"),
            ("sok", "ok"),
            ("clicked_button", "finish"),
            ("skipbasket", "on"),
            ("pricelist", "55228"),
            ("period", "1"),
            ("ip", ip),
            ("licname", "srv1.example.com"),
            ("remoteid", remoteid),
        ])
        .await;
    let id = id_of(&ordered);
    assert!(id.parse::<u64>().is_ok(), "an integer id: {ordered}");

    let first = shop.ok(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(
        shop.field(&first, "status").as_deref(),
        Some("5"),
        "{first}"
    );
    assert_eq!(
        shop.field(&first, "lickey").as_deref(),
        Some(""),
        "no key yet"
    );
    let active = shop
        .poll(&id, |s, b| {
            s.field(b, "lickey").is_some_and(|k| !k.is_empty())
        })
        .await;
    assert_eq!(shop.field(&active, "status").as_deref(), Some("2"));
    let upstream = app.sandbox.licenses();
    let bought = upstream
        .iter()
        .find(|l| l.ip == ip)
        .expect("bought upstream");
    assert_eq!(shop.field(&active, "lickey").unwrap(), bought.license_key);
    assert_ne!(
        id,
        bought.id.to_string(),
        "the facade's id, not the upstream's"
    );
    let expiry = shop.field(&active, "expiredate").unwrap();

    let renewed = shop
        .ok(&[
            ("func", "service.prolong"),
            ("elid", &id),
            ("period", "1"),
            ("sok", "ok"),
        ])
        .await;
    let new_expiry = shop
        .field(&renewed, "newexpiredate")
        .unwrap_or_else(|| panic!("renewed in time: {renewed}"));
    assert!(new_expiry > expiry, "{new_expiry} after {expiry}");
    let renewal = assert_renewed_once(&app.sandbox, bought.id, 1);
    assert_eq!(new_expiry, renewal.expire_after.to_string());

    let moved_to = format!("{ip}0");
    shop.ok(&[
        ("func", "soft.edit"),
        ("elid", &id),
        ("ip", &moved_to),
        ("sok", "ok"),
    ])
    .await;
    let moved = shop.ok(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(shop.field(&moved, "ip"), Some(moved_to.clone()));
    assert_eq!(app.sandbox.license(bought.id).unwrap().ip, moved_to);

    shop.ok(&[("func", "soft.suspend"), ("elid", &id)]).await;
    shop.poll(&id, status_is("3")).await;
    shop.ok(&[("func", "soft.resume"), ("elid", &id)]).await;
    shop.poll(&id, status_is("2")).await;
    shop.ok(&[("func", "soft.delete"), ("elid", &id), ("sok", "ok")])
        .await;
    shop.poll(&id, status_is("4")).await;
    assert_eq!(app.sandbox.license(bought.id).unwrap().status, 4);
    assert_eq!(app.sandbox.licenses().len(), 1, "one purchase");

    // Every buy and change is in the audit log under the account's client. The
    // deletion shows (status 4) from the commit of its confirmation; its SUCCEEDED
    // entry comes with the commit that closes the step, just after.
    let api = app.api_as(SANDBOX_TOKEN);
    for action in ["ORDER", "RENEW", "CHANGE_IP", "SUSPEND", "RESUME", "CANCEL"] {
        let entries = api.audit_until(action, "SUCCEEDED").await;
        assert!(
            entries.iter().any(|e| e["client"] == "sandbox"),
            "{action} audited: {entries:?}"
        );
    }
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_stdin() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_license-facade"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();

    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(license_facade::auth::verify_password(hash, "correct horse"));
    assert!(!hash.contains("correct"), "the password is not printed");
}

#[tokio::test]
async fn the_whmcs_module_sequence_reads_doc_id_and_polls_for_the_key() {
    let app = spawn_app_with_key_delay(300).await;
    let shop = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Xml,
    );

    lifecycle(&app, &shop, "l1001", "203.0.113.5", |body| {
        // `/doc/id`: the first `id` child of the root.
        between(body, "<ok/><id>", "</id>").unwrap().to_owned()
    })
    .await;
}

#[tokio::test]
async fn a_billing_reading_item_id_over_a_session_on_manager_billmgr() {
    let app = spawn_app_with_key_delay(300).await;
    let shop = Shop::new(&app, "/manager/billmgr", "", "", Out::Sjson)
        .with_session(SANDBOX_BILLMGR_USER, SANDBOX_TOKEN)
        .await;

    lifecycle(&app, &shop, "jbs-7", "203.0.113.6", |body| {
        let v: Value = serde_json::from_str(body).unwrap();
        v["doc"]["item.id"]["$"].as_str().unwrap().to_owned()
    })
    .await;
}

#[tokio::test]
async fn a_billing_posting_out_bjson_reads_id_v() {
    let app = spawn_app_with_key_delay(300).await;
    let shop = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Bjson,
    );

    lifecycle(&app, &shop, "upmind-9", "203.0.113.7", |body| {
        let v: Value = serde_json::from_str(body).unwrap();
        v["doc"]["id"]["v"].as_str().unwrap().to_owned()
    })
    .await;
}

#[tokio::test]
async fn a_facade_in_front_of_a_facade_runs_the_whole_lifecycle() {
    let first = spawn_app().await;
    let (second, _db) = spawn_app_on_upstream(
        &format!("{}/billmgr", first.http),
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        |_| {},
    )
    .await;
    let client = crate::helpers::http_client();
    let post = |path: String, body: Value| {
        let client = client.clone();
        async move {
            let response = client.post(path).json(&body).send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.json::<Value>().await.unwrap()
        }
    };

    let ordered = post(
        format!("{second}/v1/licenses?wait=20s"),
        serde_json::json!({"server": {"id": "srv-1", "ip": "203.0.113.20"}, "panel": "ISPmanager 6 Pro"}),
    )
    .await;
    assert_eq!(ordered["state"], "ACTIVE", "{ordered}");
    let id = ordered["id"].as_str().unwrap();
    let bought = first.sandbox.licenses();
    assert_eq!(bought.len(), 1);
    assert_eq!(ordered["licenseKey"], bought[0].license_key.as_str());
    let seen_by_first: Value = first.get("/v1/licenses").await.json().await.unwrap();
    assert_eq!(seen_by_first["licenses"][0]["ip"], "203.0.113.20");

    let base = format!("{second}/v1/licenses/{id}");
    let renewed = post(
        format!("{base}/renew?wait=20s"),
        serde_json::json!({"periodMonths": 1}),
    )
    .await;
    assert!(
        renewed["expireTime"].as_str() > ordered["expireTime"].as_str(),
        "{renewed}"
    );
    let renewal = assert_renewed_once(&first.sandbox, bought[0].id, 1);
    assert!(
        renewed["expireTime"]
            .as_str()
            .is_some_and(|t| t.starts_with(&renewal.expire_after.to_string())),
        "{renewed}"
    );
    let moved = post(
        format!("{base}/change-ip?wait=20s"),
        serde_json::json!({"ip": "203.0.113.21"}),
    )
    .await;
    assert_eq!(moved["ip"], "203.0.113.21");
    assert_eq!(first.sandbox.licenses()[0].ip, "203.0.113.21");
    let suspended = post(format!("{base}/suspend?wait=20s"), serde_json::json!({})).await;
    assert_eq!(suspended["state"], "SUSPENDED");
    assert_eq!(first.sandbox.licenses()[0].status, 3);
    let resumed = post(format!("{base}/resume?wait=20s"), serde_json::json!({})).await;
    assert_eq!(resumed["state"], "ACTIVE");
    let cancelled = client
        .delete(format!("{base}?wait=20s"))
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success());
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(first.sandbox.licenses()[0].status, 4);
    assert_eq!(first.sandbox.licenses().len(), 1, "one purchase in all");
}

#[tokio::test]
async fn a_facade_in_front_of_a_facade_prices_business_nodes_from_its_export() {
    // Arrange: the first facade's export states Business at 25.00 a month and a node
    // at 5.00 (the sandbox's prices); the second reads it as its price list.
    let first = spawn_app().await;
    let (second, _db) = spawn_app_on_upstream(
        &format!("{}/billmgr", first.http),
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        |_| {},
    )
    .await;
    let client = crate::helpers::http_client();
    let quote = client
        .get(format!(
            "{second}/v1/panels/ISPmanager%206%20Business/quote"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(quote.status(), 200);

    // Act
    let ordered = client
        .post(format!("{second}/v1/licenses?wait=20s"))
        .json(&serde_json::json!({
            "server": {"id": "srv-n", "ip": "203.0.113.30"},
            "panel": "ISPmanager 6 Business",
            "nodes": 3
        }))
        .send()
        .await
        .unwrap();
    let audit: Value = client
        .get(format!("{second}/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Assert
    assert_eq!(ordered.status(), 201);
    let accepted = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "ORDER" && e["outcome"] == "ACCEPTED")
        .expect("the order's entry");
    assert_eq!(accepted["price"]["amount"], "40.00", "{accepted}");
    assert_eq!(accepted["price"]["currency"], "EUR", "{accepted}");
    assert_eq!(first.sandbox.licenses()[0].addons.get(&55236), Some(&3));
}

#[tokio::test]
async fn fifty_concurrent_retries_of_one_remoteid_buy_one_license() {
    let app = spawn_app().await;
    let shop = std::sync::Arc::new(Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Xml,
    ));

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let shop = shop.clone();
            tokio::spawn(async move {
                let body = shop
                    .ok(&[
                        ("func", "soft.order.param"),
                        ("sok", "ok"),
                        ("skipbasket", "on"),
                        ("pricelist", "55227"),
                        ("period", "1"),
                        ("ip", "203.0.113.30"),
                        ("remoteid", "l777"),
                    ])
                    .await;
                shop.field(&body, "id").unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry answers the first item: {ids:?}");
    shop.poll(&ids[0], status_is("2")).await;
    assert_eq!(app.sandbox.licenses().len(), 1, "one upstream purchase");
    assert_eq!(app.sandbox.call_count("soft.order.param"), 1);
}

#[tokio::test]
async fn without_remoteid_the_same_name_ip_and_tariff_is_the_same_item_and_rest_sees_it() {
    let app = spawn_app().await;
    let shop = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Sjson,
    );
    let order = [
        ("func", "soft.order.param"),
        ("sok", "ok"),
        ("skipbasket", "on"),
        ("pricelist", "55227"),
        ("period", "1"),
        ("ip", "203.0.113.31"),
        ("licname", "web1"),
    ];

    let first = shop.field(&shop.ok(&order).await, "id").unwrap();
    let again = shop.field(&shop.ok(&order).await, "id").unwrap();

    assert_eq!(first, again);
    let listed: Value = app.get("/v1/licenses").await.json().await.unwrap();
    assert_eq!(listed["licenses"].as_array().unwrap().len(), 1);
    assert_eq!(listed["licenses"][0]["hostname"], "web1");
    // The other way round: a license ordered over REST is an item of the list.
    app.order_and_wait(&serde_json::json!({"server": {"id": "srv-9", "ip": "203.0.113.32"}, "panel": "ISPmanager 6 Lite"}))
        .await;
    let list: Value = serde_json::from_str(&shop.ok(&[("func", "soft")]).await).unwrap();
    assert_eq!(list["doc"]["p_elems"]["$"], "2");
    assert_eq!(list["doc"]["elem"][1]["ip"]["$"], "203.0.113.32");
}

#[tokio::test]
async fn an_ipv6_spelling_of_a_licensed_ipv4_is_refused_by_checkip_order_and_move() {
    let app = spawn_app().await;
    let shop = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Sjson,
    );
    fn order<'a>(ip: &'a str, remoteid: &'a str) -> [(&'a str, &'a str); 7] {
        [
            ("func", "soft.order.param"),
            ("sok", "ok"),
            ("skipbasket", "on"),
            ("pricelist", "55227"),
            ("period", "1"),
            ("ip", ip),
            ("remoteid", remoteid),
        ]
    }
    shop.ok(&order("203.0.113.41", "first")).await;
    let mover = shop.ok(&order("203.0.113.42", "mover")).await;
    let mover = shop.field(&mover, "id").unwrap();

    // Folded spellings find the IP taken; translated and tunnel forms are no
    // server's own address.
    for (n, (spelled, error)) in [
        ("::ffff:203.0.113.41", "exists"),
        ("::203.0.113.41", "exists"),
        ("64:ff9b::203.0.113.41", "value"),
        ("64:ff9b:1::cb00:7129", "value"),
        ("2002:cb00:7129::1", "value"),
    ]
    .into_iter()
    .enumerate()
    {
        let checked = shop
            .call(&[
                ("func", "soft.checkip"),
                ("pricelist", "55227"),
                ("period", "1"),
                ("ip", spelled),
                ("sok", "ok"),
            ])
            .await;
        assert_eq!(
            shop.error(&checked).as_deref(),
            Some(error),
            "{spelled}: {checked}"
        );
        let remoteid = format!("second-{n}");
        let ordered = shop.call(&order(spelled, &remoteid)).await;
        assert_eq!(
            shop.error(&ordered).as_deref(),
            Some(error),
            "{spelled}: {ordered}"
        );
        let moved = shop
            .call(&[
                ("func", "soft.edit"),
                ("elid", &mover),
                ("ip", spelled),
                ("sok", "ok"),
            ])
            .await;
        assert_eq!(
            shop.error(&moved).as_deref(),
            Some(error),
            "{spelled}: {moved}"
        );
        let v: Value = serde_json::from_str(&ordered).unwrap();
        assert_eq!(v["doc"]["error"]["$object"], "ip", "{ordered}");
    }
    // Saving the license's own address in another spelling moves nothing.
    shop.ok(&[
        ("func", "soft.edit"),
        ("elid", &mover),
        ("ip", "::ffff:203.0.113.42"),
        ("sok", "ok"),
    ])
    .await;

    assert_eq!(app.sandbox.call_count("soft.order.param"), 2);
    assert_eq!(app.sandbox.carried_out("soft.edit"), 0, "nothing moved");
    assert_eq!(app.sandbox.licenses().len(), 2);
}

/// A clients-file entry of client `name` with a `/billmgr` log-in `user` (password
/// `<user>-pw`) and `scopes`.
fn account(name: &str, token: &str, user: &str, scopes: &str) -> String {
    format!(
        "[[client]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\n\
         scopes = [{scopes}]\n\
         billmgr_user = \"{user}\"\nbillmgr_password_hash = \"{}\"\n",
        license_facade::auth::token_sha256_hex(token),
        hash_password(&format!("{user}-pw")),
    )
}

const READ_WRITE: &str = "\"licenses.read\", \"licenses.write\"";

fn two_accounts() -> Clients {
    Clients::from_toml(
        &(account("a", "token-a", "alice", READ_WRITE)
            + &account("b", "token-b", "bob", READ_WRITE)),
    )
    .unwrap()
}

#[tokio::test]
async fn an_account_sees_and_changes_only_its_own_items() {
    let app = spawn_app_with(0, |s| s.clients = Some(two_accounts())).await;
    let alice = Shop::new(&app, "/billmgr", "alice", "alice-pw", Out::Sjson);
    let bob = Shop::new(&app, "/billmgr", "bob", "bob-pw", Out::Sjson);
    let ordered = alice
        .ok(&[
            ("func", "soft.order.param"),
            ("sok", "ok"),
            ("skipbasket", "on"),
            ("pricelist", "55227"),
            ("period", "1"),
            ("ip", "203.0.113.40"),
            ("remoteid", "x1"),
        ])
        .await;
    let id = alice.field(&ordered, "id").unwrap();

    for params in [
        vec![("func", "soft.edit"), ("elid", id.as_str())],
        vec![("func", "soft.suspend"), ("elid", id.as_str())],
        vec![
            ("func", "service.prolong"),
            ("elid", id.as_str()),
            ("period", "1"),
            ("sok", "ok"),
        ],
    ] {
        let body = bob.call(&params).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["doc"]["error"]["$type"], "value", "{body}");
        assert_eq!(v["doc"]["error"]["$object"], "elid");
        assert_eq!(
            v["doc"]["error"]["msg"]["$"],
            format!("License {id} not found")
        );
    }
    assert_eq!(
        app.sandbox.renewals(),
        vec![],
        "nothing was renewed upstream"
    );
    let list: Value = serde_json::from_str(&bob.ok(&[("func", "soft")]).await).unwrap();
    assert_eq!(list["doc"]["p_elems"]["$"], "0");
    assert_eq!(list["doc"]["elem"], Value::Array(vec![]));
    // Alice's client sees its item over REST too.
    let own: Value = crate::helpers::http_client_with(Some("token-a"))
        .get(format!("{}/v1/licenses", app.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own["licenses"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_password_is_badpassword_and_an_unknown_function_is_missed() {
    let app = spawn_app().await;
    let wrong = Shop::new(&app, "/billmgr", SANDBOX_BILLMGR_USER, "nope", Out::Sjson);
    let right = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Sjson,
    );

    let refused: Value = serde_json::from_str(&wrong.call(&[("func", "soft")]).await).unwrap();
    let error = &refused["doc"]["error"];
    assert_eq!(error["$type"], "auth");
    assert_eq!(error["$object"], "badpassword");
    assert_eq!(error["msg"]["$"], "Invalid username or password ");
    assert_eq!(error["detail"]["$"], "Invalid username or password ");
    assert!(
        refused["doc"]["tparams"].get("authinfo").is_none(),
        "no secret echoed"
    );
    let session = wrong
        .raw(&[
            ("func", "auth"),
            ("username", "sandbox"),
            ("password", "nope"),
            ("out", "xml"),
        ])
        .await;
    assert!(
        session.contains("<error type=\"auth\" object=\"badpassword\""),
        "{session}"
    );

    let missed: Value = serde_json::from_str(&right.call(&[("func", "vds.order")]).await).unwrap();
    assert_eq!(missed["doc"]["error"]["$type"], "missed");
    assert!(missed["doc"]["error"].get("$object").is_none());
    assert_eq!(
        missed["doc"]["error"]["msg"]["$"],
        "Could not find function 'vds.order'. Perhaps the processing module is not loaded"
    );
    assert_eq!(app.sandbox.call_count("vds.order"), 0);
}

/// `soft.order.param` of `remoteid` on `ip`, as `shop` sends it; the answer.
async fn order_on(shop: &Shop, remoteid: &str, ip: &str) -> String {
    shop.call(&[
        ("func", "soft.order.param"),
        ("sok", "ok"),
        ("skipbasket", "on"),
        ("pricelist", "55228"),
        ("period", "1"),
        ("ip", ip),
        ("remoteid", remoteid),
    ])
    .await
}

/// The item id of an accepted order, once its key is issued.
async fn ordered_item(shop: &Shop, remoteid: &str, ip: &str) -> String {
    let ordered = order_on(shop, remoteid, ip).await;
    assert_eq!(shop.error(&ordered), None, "{ordered}");
    let id = shop.field(&ordered, "id").expect("an item id");
    shop.poll(&id, |s, b| {
        s.field(b, "lickey").is_some_and(|k| !k.is_empty())
    })
    .await;
    id
}

/// `(type, object, message)` of a `doc/error` answer in sjson.
fn refusal(body: &str) -> (String, String, String) {
    let v: Value = serde_json::from_str(body).unwrap();
    let error = &v["doc"]["error"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    (
        text(&error["$type"]),
        text(&error["$object"]),
        text(&error["msg"]["$"]),
    )
}

#[tokio::test]
async fn an_order_or_an_ip_change_onto_the_ip_a_change_is_moving_to_is_refused_as_exists() {
    let app = spawn_app_with(0, |s| s.clients = Some(two_accounts())).await;
    let alice = Shop::new(&app, "/billmgr", "alice", "alice-pw", Out::Sjson);
    let bob = Shop::new(&app, "/billmgr", "bob", "bob-pw", Out::Sjson);
    let to = "203.0.113.243";
    let moving = ordered_item(&alice, "a-1", "203.0.113.241").await;
    let staying = ordered_item(&bob, "b-1", "203.0.113.242").await;
    // The upstream holds the move while bob asks for its target.
    app.sandbox
        .set_faults(vec!["soft.edit:delay-3000ms:1".parse().unwrap()]);
    let edits = app.sandbox.call_count("soft.edit");
    // A save waits for its change (up to a bound): it answers once the move is done.
    let saver = Shop::new(&app, "/billmgr", "alice", "alice-pw", Out::Sjson);
    let elid = moving.clone();
    let save = tokio::spawn(async move {
        saver
            .ok(&[
                ("func", "soft.edit"),
                ("elid", &elid),
                ("ip", to),
                ("sok", "ok"),
            ])
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.sandbox.call_count("soft.edit") <= edits {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the move was never sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let order = order_on(&bob, "b-2", to).await;
    let edit = bob
        .call(&[
            ("func", "soft.edit"),
            ("elid", &staying),
            ("ip", to),
            ("sok", "ok"),
        ])
        .await;
    app.sandbox.set_faults(vec![]);

    for refused in [&order, &edit] {
        let (kind, object, message) = refusal(refused);
        assert_eq!(
            (kind.as_str(), object.as_str()),
            ("exists", "ip"),
            "{refused}"
        );
        assert!(message.contains("in flight"), "{refused}");
    }
    let saved = save.await.expect("the save is answered");
    assert_eq!(alice.field(&saved, "ip").as_deref(), Some(to), "{saved}");
    let upstream: Vec<_> = app
        .sandbox
        .licenses()
        .into_iter()
        .filter(|l| l.ip == to)
        .collect();
    assert_eq!(
        upstream.len(),
        1,
        "one license ever bought or moved there: {upstream:?}"
    );
    assert_eq!(
        app.sandbox.call_count("soft.order.param"),
        2,
        "alice's and bob's first"
    );
}

/// The app on its sandbox with the pool's and the sandbox's cooldowns at zero, so a
/// parked license may move again at once; `clients` replaces the clients file.
async fn spawn_pool_app(clients: Option<Clients>) -> TestApp {
    spawn_app_with(0, |s: &mut license_facade::config::Settings| {
        s.pool = license_facade::domain::PoolConfig {
            ip_change_cooldown_days: 0,
            key_change_cooldown_days: 0,
            ..license_facade::domain::PoolConfig::default()
        };
        let sandbox = s.sandbox.as_mut().expect("a sandbox");
        sandbox.ip_change_cooldown = Duration::ZERO;
        sandbox.key_change_cooldown = Duration::ZERO;
        sandbox.ip_change_cooldown_days = 0;
        sandbox.key_change_cooldown_days = 0;
        if clients.is_some() {
            s.clients = clients;
        }
    })
    .await
}

/// The REST view of the license bound upstream as `upstream_id`.
async fn rest_license(app: &TestApp, upstream_id: u64) -> Value {
    let all: Value = app
        .get("/v1/licenses?pageSize=100")
        .await
        .json()
        .await
        .unwrap();
    all["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["upstreamId"].as_str() == Some(upstream_id.to_string().as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("license of {upstream_id} listed: {all}"))
}

/// The list row of item `id`.
fn list_row(list: &str, id: &str) -> Value {
    let v: Value = serde_json::from_str(list).unwrap();
    v["doc"]["elem"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"]["$"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("item {id} listed: {list}"))
}

#[tokio::test]
async fn the_whmcs_module_lives_through_rename_terminate_and_reuse_of_its_parked_license() {
    let app = spawn_pool_app(None).await;
    let shop = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Xml,
    );
    let key_of = |body: &str| shop.field(body, "lickey").unwrap_or_default();

    // CreateAccount of service 1001: the order, then the key poll.
    let ordered = shop
        .ok(&[
            ("pricelist", "55228"),
            ("period", "1"),
            ("pid", "1001"),
            ("ip", "203.0.113.60"),
            ("licname", "srv1.example.com"),
            ("project", "1"),
            ("sok", "ok"),
            ("skipbasket", "on"),
            ("remoteid", "l1001"),
            ("clicked_button", "finish"),
            ("func", "soft.order.param"),
        ])
        .await;
    let id = between(&ordered, "<ok/><id>", "</id>").unwrap().to_owned();
    let active = shop.poll(&id, |_, b| !key_of(b).is_empty()).await;
    assert!(
        shop.field(&active, "expiredate")
            .is_some_and(|d| !d.is_empty())
    );
    let bought = app.sandbox.licenses()[0].clone();
    let ours = rest_license(&app, bought.id).await;
    let our_id = ours["id"].as_str().unwrap().to_owned();
    assert_eq!(
        bought.licname, our_id,
        "upstream, the license is named by our id"
    );

    // SuspendAccount, UnSuspendAccount (its resume and its rename to the same
    // name, IP and remoteid).
    shop.ok(&[("func", "soft.suspend"), ("elid", &id)]).await;
    shop.poll(&id, status_is("3")).await;
    shop.ok(&[("func", "soft.resume"), ("elid", &id)]).await;
    shop.poll(&id, status_is("2")).await;

    // A new key: read from the answer of the call itself.
    let old_key = key_of(&active);
    let rekeyed = shop
        .ok(&[
            ("func", "soft.edit"),
            ("elid", &id),
            ("clicked_button", "newkey"),
            ("sok", "ok"),
        ])
        .await;
    let new_key = key_of(&rekeyed);
    assert!(!new_key.is_empty() && new_key != old_key, "{rekeyed}");
    assert_eq!(app.sandbox.license(bought.id).unwrap().license_key, new_key);

    // The module's update: a new name and remoteid on the same IP.
    shop.ok(&[
        ("func", "soft.edit"),
        ("elid", &id),
        ("licname", "renamed.example.com"),
        ("ip", "203.0.113.60"),
        ("remoteid", "l1001"),
        ("sok", "ok"),
    ])
    .await;
    let form = shop.ok(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(
        shop.field(&form, "licname").as_deref(),
        Some("renamed.example.com")
    );
    assert_eq!(shop.field(&form, "remoteid").as_deref(), Some("l1001"));
    let list = Shop::new(
        &app,
        "/billmgr",
        SANDBOX_BILLMGR_USER,
        SANDBOX_TOKEN,
        Out::Sjson,
    )
    .ok(&[("func", "soft")])
    .await;
    assert_eq!(list_row(&list, &id)["licname"]["$"], "renamed.example.com");
    assert_eq!(
        app.sandbox.license(bought.id).unwrap().licname,
        our_id,
        "the shop's name is not sent upstream"
    );
    let kept = rest_license(&app, bought.id).await;
    assert_eq!(
        (kept["hostname"].as_str(), kept["serverId"].as_str()),
        (Some("srv1.example.com"), Some("l1001")),
        "the license keeps its own name: {kept}"
    );

    // TerminateAccount: suspend, then park as free.lic on 0.0.0.0 (`remoteid` is
    // `l` followed by no service id).
    shop.ok(&[("func", "soft.suspend"), ("elid", &id)]).await;
    shop.ok(&[
        ("func", "soft.edit"),
        ("elid", &id),
        ("licname", "free.lic"),
        ("ip", "0.0.0.0"),
        ("remoteid", "l"),
        ("sok", "ok"),
    ])
    .await;
    let parked = shop.ok(&[("func", "soft.edit"), ("elid", &id)]).await;
    assert_eq!(
        shop.field(&parked, "status").as_deref(),
        Some("3"),
        "{parked}"
    );
    assert_eq!(shop.field(&parked, "ip").as_deref(), Some("0.0.0.0"));
    assert_eq!(shop.field(&parked, "licname").as_deref(), Some("free.lic"));
    let upstream = app.sandbox.license(bought.id).unwrap();
    assert_eq!((upstream.status, upstream.ip.as_str()), (3, "0.0.0.0"));
    assert_eq!(rest_license(&app, bought.id).await["state"], "PARKED");

    // CreateAccount of service 1002 with the free license: rename and move it, resume
    // it, poll for the key.
    shop.ok(&[
        ("func", "soft.edit"),
        ("elid", &id),
        ("licname", "srv2.example.com"),
        ("ip", "203.0.113.61"),
        ("remoteid", "l1002"),
        ("sok", "ok"),
    ])
    .await;
    shop.ok(&[("func", "soft.resume"), ("elid", &id)]).await;
    let reused = shop.poll(&id, |_, b| !key_of(b).is_empty()).await;
    assert_eq!(
        shop.field(&reused, "status").as_deref(),
        Some("2"),
        "{reused}"
    );
    assert_eq!(shop.field(&reused, "ip").as_deref(), Some("203.0.113.61"));
    assert_eq!(
        shop.field(&reused, "licname").as_deref(),
        Some("srv2.example.com")
    );
    assert_eq!(shop.field(&reused, "remoteid").as_deref(), Some("l1002"));
    let upstream = app.sandbox.license(bought.id).unwrap();
    assert_eq!(
        (
            upstream.status,
            upstream.ip.as_str(),
            upstream.licname.as_str()
        ),
        (2, "203.0.113.61", our_id.as_str())
    );
    let after = rest_license(&app, bought.id).await;
    assert_eq!(
        (after["id"].as_str(), after["state"].as_str()),
        (Some(our_id.as_str()), Some("ACTIVE"))
    );
    assert_eq!(
        app.sandbox.carried_out("soft.order.param"),
        1,
        "one purchase"
    );
}

/// An order of tariff 55227 named `ordered.example.com`; returns the item id.
async fn order_named(shop: &Shop, ip: &str, remoteid: &str) -> String {
    let ordered = shop
        .ok(&[
            ("func", "soft.order.param"),
            ("sok", "ok"),
            ("skipbasket", "on"),
            ("pricelist", "55227"),
            ("period", "1"),
            ("ip", ip),
            ("licname", "ordered.example.com"),
            ("remoteid", remoteid),
        ])
        .await;
    shop.field(&ordered, "id").unwrap()
}

/// The WHMCS module's rename of item `id`: new labels, no `ip`.
async fn rename(shop: &Shop, id: &str, licname: &str, remoteid: &str) {
    shop.ok(&[
        ("func", "soft.edit"),
        ("elid", id),
        ("licname", licname),
        ("remoteid", remoteid),
        ("sok", "ok"),
    ])
    .await;
}

#[tokio::test]
async fn an_accounts_labels_are_its_own() {
    let clients = account("a", "token-a", "alice", READ_WRITE)
        + &account("b", "token-b", "bob", READ_WRITE)
        + &account(
            "ops",
            "token-ops",
            "carol",
            &format!("{READ_WRITE}, \"admin\""),
        );
    let app = spawn_pool_app(Some(Clients::from_toml(&clients).unwrap())).await;
    let alice = Shop::new(&app, "/billmgr", "alice", "alice-pw", Out::Sjson);
    let bob = Shop::new(&app, "/billmgr", "bob", "bob-pw", Out::Sjson);
    let carol = Shop::new(&app, "/billmgr", "carol", "carol-pw", Out::Sjson);
    let alices = order_named(&alice, "203.0.113.70", "a1").await;
    let bobs = order_named(&bob, "203.0.113.71", "b1").await;
    rename(&alice, &alices, "alice.example.com", "alice-1").await;
    rename(&bob, &bobs, "bob.example.com", "bob-1").await;

    // The admin account sees both items, with neither account's labels, and its own
    // label of Alice's item stays its own.
    let all = carol.ok(&[("func", "soft")]).await;
    assert_eq!(
        list_row(&all, &alices)["licname"]["$"],
        "ordered.example.com"
    );
    assert_eq!(list_row(&all, &bobs)["licname"]["$"], "ordered.example.com");
    rename(&carol, &alices, "carol.example.com", "carol-1").await;
    let carols_form = carol.ok(&[("func", "soft.edit"), ("elid", &alices)]).await;
    assert_eq!(
        carol.field(&carols_form, "licname").as_deref(),
        Some("carol.example.com")
    );
    assert_eq!(
        carol.field(&carols_form, "remoteid").as_deref(),
        Some("carol-1")
    );

    let alices_form = alice.ok(&[("func", "soft.edit"), ("elid", &alices)]).await;
    assert_eq!(
        alice.field(&alices_form, "licname").as_deref(),
        Some("alice.example.com")
    );
    assert_eq!(
        alice.field(&alices_form, "remoteid").as_deref(),
        Some("alice-1")
    );
    let alices_list = alice.ok(&[("func", "soft")]).await;
    assert_eq!(
        list_row(&alices_list, &alices)["licname"]["$"],
        "alice.example.com"
    );
    let bobs_list = bob.ok(&[("func", "soft")]).await;
    assert_eq!(
        list_row(&bobs_list, &bobs)["licname"]["$"],
        "bob.example.com"
    );
    assert!(
        !bobs_list.contains("alice") && !bobs_list.contains("carol"),
        "{bobs_list}"
    );
    assert_eq!(
        app.sandbox.carried_out("soft.edit"),
        0,
        "nothing sent upstream"
    );
}
