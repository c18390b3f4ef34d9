//! The downstream BILLmanager API (`/billmgr`) under abuse: password guessing from one
//! address and for one name, floods of huge or distinct user names, log-ins against
//! the rate limit, expired sessions, answers that echo what XML cannot carry, slow
//! headers on a kept-alive connection, and group changes where a later item fails.
//! Client addresses differ by binding each client's socket to its own 127.0.0.x.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use license_facade::auth::{Clients, SANDBOX_BILLMGR_USER, SANDBOX_TOKEN, hash_password};
use license_facade::downstream::{FREE_FAILURES, LOGGED_CHARS};
use license_facade::listener::ConnectionLimits;
use quick_xml::events::Event;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::support::{DEADLINE, ServiceDir, sandbox_config, start_sandbox};

/// Clients `alice` and `bob`, each with a `/billmgr` log-in whose password is
/// `{user}-pw`, and `limits` (TOML lines).
fn accounts_toml(limits: &str) -> String {
    ["alice", "bob"]
        .iter()
        .map(|user| {
            format!(
                "[[client]]\nname = \"{user}\"\ntoken_sha256 = \"{}\"\n\
                 scopes = [\"licenses.read\", \"licenses.write\"]\n{limits}\n\
                 billmgr_user = \"{user}\"\nbillmgr_password_hash = \"{}\"\n",
                license_facade::auth::token_sha256_hex(&format!("{user}-token")),
                hash_password(&format!("{user}-pw")),
            )
        })
        .collect()
}

fn accounts(limits: &str) -> Clients {
    Clients::from_toml(&accounts_toml(limits)).unwrap()
}

/// A client whose connections come from `local`.
fn client_from(local: &str) -> reqwest::Client {
    crate::support::http_client()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// A form POST to `{base}/billmgr` with `out=sjson`; the parsed answer.
async fn billmgr(client: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> Value {
    let mut form = form.to_vec();
    form.push(("out", "sjson"));
    let response = client
        .post(format!("{base}/billmgr"))
        .form(&form)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "refusals come with HTTP 200 too");
    response.json().await.unwrap()
}

/// `func=soft` logged in as `user:password`.
async fn list_as(client: &reqwest::Client, base: &str, user: &str, password: &str) -> Value {
    let authinfo = format!("{user}:{password}");
    billmgr(client, base, &[("func", "soft"), ("authinfo", &authinfo)]).await
}

fn error_type(answer: &Value) -> Option<&str> {
    answer["doc"]["error"]["$type"].as_str()
}

#[tokio::test]
async fn a_guesser_backs_off_only_the_name_it_guesses_from_its_own_address() {
    // Arrange: five unknown names fail from one address (a proxy), then five wrong
    // passwords for alice from another (the attacker).
    let app = spawn_app_with(0, |s| s.clients = Some(accounts(""))).await;
    let base = app.http.as_str();
    let proxy = client_from("127.0.0.3");
    let attacker = client_from("127.0.0.2");
    let elsewhere = client_from("127.0.0.4");
    for n in 0..FREE_FAILURES {
        let refused = list_as(&proxy, base, &format!("nobody-{n}"), "guess").await;
        assert_eq!(error_type(&refused), Some("auth"), "{refused}");
    }
    for _ in 0..FREE_FAILURES {
        let refused = list_as(&attacker, base, "alice", "guess").await;
        assert_eq!(error_type(&refused), Some("auth"), "{refused}");
    }

    // Act
    let attacked_pair = list_as(&attacker, base, "alice", "alice-pw").await;
    let other_user_same_address = list_as(&attacker, base, "bob", "bob-pw").await;
    let same_user_elsewhere = list_as(&elsewhere, base, "alice", "alice-pw").await;
    let after_other_names_failed = list_as(&proxy, base, "alice", "alice-pw").await;

    // Assert
    assert_eq!(
        error_type(&attacked_pair),
        Some("auth"),
        "the guessed name from the guessing address waits, even with the right password"
    );
    assert_eq!(
        error_type(&other_user_same_address),
        None,
        "another user behind the guesser's address logs in: {other_user_same_address}"
    );
    assert_eq!(
        error_type(&same_user_elsewhere),
        None,
        "the attacked user logs in from its own address: {same_user_elsewhere}"
    );
    assert_eq!(
        error_type(&after_other_names_failed),
        None,
        "other names' failures do not lock out the right password: {after_other_names_failed}"
    );
}

/// The value of the unlabelled series `name` in a Prometheus text exposition.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The longest run of `c` in `text`.
fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for x in text.chars() {
        run = if x == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_and_distinct_names_keeps_the_log_and_the_back_off_table_bounded() {
    // Arrange: the real binary, logging JSON at info, with room for 8 back-off pairs.
    let sandbox = start_sandbox(sandbox_config()).await;
    let mut dir = ServiceDir::with_config("[downstream]\nbackoff_entries = 8\n");
    std::fs::write(dir.path().join("clients.toml"), accounts_toml("")).unwrap();
    let service = dir.start(&sandbox.url, None);
    let base = service.api.base.clone();
    let log = dir.path().join("1.stdout");
    let logged_before = std::fs::metadata(&log).unwrap().len();
    let huge = "x".repeat(500_000);
    let plain = crate::support::http_client().build().unwrap();

    // Act: 20 log-ins with 500 KB names, then 40 distinct names from 4 addresses.
    let mut too_long = Vec::new();
    for n in 0..20 {
        let authinfo = format!("{huge}{n}:guess");
        too_long.push(billmgr(&plain, &base, &[("func", "soft"), ("authinfo", &authinfo)]).await);
    }
    let mut guesses = Vec::new();
    for n in 0..40 {
        let from = client_from(&format!("127.0.0.{}", 10 + n % 4));
        guesses.push(list_as(&from, &base, &format!("guess-{n}"), "guess").await);
    }
    let metrics = plain
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The log is written in order: once the last refusal is in, so is everything before.
    let deadline = Instant::now() + DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("guess-39") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the last refusal was never logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let logged = text.len() as u64 - logged_before;

    // Assert
    for answer in &too_long {
        assert_eq!(error_type(answer), Some("value"), "{answer}");
        assert_eq!(answer["doc"]["error"]["$object"], "authinfo");
    }
    assert!(guesses.iter().all(|a| error_type(a) == Some("auth")));
    assert_eq!(
        gauge(&metrics, "license_facade_billmgr_backoff_entries"),
        Some(8.0),
        "the back-off table stays at its capacity"
    );
    assert!(
        logged < 100_000,
        "{logged} bytes logged for 60 refused log-ins (10 MB of names sent)"
    );
    assert!(
        longest_run(&text, 'x') <= LOGGED_CHARS,
        "a log line carries more of a name than its cut"
    );
}

/// `func=auth` as `user`; the answer.
async fn auth(client: &reqwest::Client, base: &str, user: &str, password: &str) -> Value {
    billmgr(
        client,
        base,
        &[("func", "auth"), ("username", user), ("password", password)],
    )
    .await
}

#[tokio::test]
async fn func_auth_counts_against_the_rate_limit() {
    // Arrange: one call a second, bursts of two.
    let app = spawn_app_with(0, |s| {
        s.clients = Some(accounts("max_requests_per_second = 1"));
    })
    .await;
    let client = crate::support::http_client().build().unwrap();

    // Act
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(auth(&client, &app.http, "alice", "alice-pw").await);
    }

    // Assert
    assert!(
        answers[0]["doc"]["auth"]["$id"].is_string(),
        "{}",
        answers[0]
    );
    assert!(
        answers
            .iter()
            .any(|a| error_type(a) == Some("rate_limited")),
        "six log-ins at once, none refused: {answers:?}"
    );
}

#[tokio::test]
async fn a_session_past_its_lifetime_is_refused_however_busy() {
    // Arrange: sessions last three seconds from their start (and an hour when idle).
    let lifetime = Duration::from_secs(3);
    let app = spawn_app_with(0, |s| s.downstream.session_lifetime = lifetime).await;
    let client = crate::support::http_client().build().unwrap();
    let answer = auth(&client, &app.http, SANDBOX_BILLMGR_USER, SANDBOX_TOKEN).await;
    // The session was opened before its answer came.
    let opened = Instant::now();
    let sid = answer["doc"]["auth"]["$id"]
        .as_str()
        .expect("a session")
        .to_owned();
    let list = |client: reqwest::Client, base: String, sid: String| async move {
        billmgr(&client, &base, &[("func", "soft"), ("auth", &sid)]).await
    };

    // Act: used at once, then once its lifetime has passed.
    let fresh = list(client.clone(), app.http.clone(), sid.clone()).await;
    tokio::time::sleep_until(opened + lifetime + Duration::from_millis(100)).await;
    let expired = list(client.clone(), app.http.clone(), sid).await;

    // Assert
    assert_eq!(error_type(&fresh), None, "{fresh}");
    assert_eq!(error_type(&expired), Some("auth"), "{expired}");
}

/// Whether XML 1.0 allows `c` (its `Char` production).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Whether `name` is an XML 1.0 `Name` (non-ASCII characters taken as name
/// characters, as most of them are).
fn is_xml_name(name: &str) -> bool {
    let start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    let mut chars = name.chars();
    chars.next().is_some_and(start)
        && chars.all(|c| start(c) || c.is_ascii_digit() || matches!(c, '-' | '.'))
}

/// Parses `body` with quick-xml and checks what it leaves to the application: every
/// name a `Name`, every character (references resolved) an XML `Char`, one root.
fn well_formed(body: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(body);
    let (mut depth, mut roots) = (0usize, 0usize);
    let chars_ok = |text: &str, what: &str| match text.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(format!("{c:?} in {what}")),
        None => Ok(()),
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let name = std::str::from_utf8(start.name().as_ref())
                    .map_err(|e| e.to_string())?
                    .to_owned();
                if !is_xml_name(&name) {
                    return Err(format!("element name {name:?}"));
                }
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| e.to_string())?;
                    let key = std::str::from_utf8(attr.key.as_ref()).map_err(|e| e.to_string())?;
                    if !is_xml_name(key) {
                        return Err(format!("attribute name {key:?}"));
                    }
                    let value = attr.unescape_value().map_err(|e| e.to_string())?;
                    chars_ok(&value, &format!("attribute {key}"))?;
                }
                if depth == 0 {
                    roots += 1;
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => depth -= 1,
            Event::Text(text) => {
                let text = text.decode().map_err(|e| e.to_string())?;
                if depth == 0 && !text.trim().is_empty() {
                    return Err("text outside the root".into());
                }
                chars_ok(&text, "text")?;
            }
            Event::GeneralRef(reference) => match reference.resolve_char_ref() {
                Ok(Some(c)) => chars_ok(&c.to_string(), "a character reference")?,
                Ok(None) => {
                    let name = reference.decode().map_err(|e| e.to_string())?;
                    if !["lt", "gt", "amp", "quot", "apos"].contains(&name.as_ref()) {
                        return Err(format!("entity {name:?}"));
                    }
                }
                Err(e) => return Err(e.to_string()),
            },
            Event::CData(data) => chars_ok(&data.decode().map_err(|e| e.to_string())?, "CDATA")?,
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    match (depth, roots) {
        (0, 1) => Ok(()),
        _ => Err(format!("{roots} roots, {depth} elements left open")),
    }
}

#[tokio::test]
async fn xml_answers_stay_well_formed_whatever_the_request_echoes() {
    let app = spawn_app().await;
    let client = crate::support::http_client().build().unwrap();
    let auth = format!("authinfo={SANDBOX_BILLMGR_USER}:{SANDBOX_TOKEN}");
    // Control characters (and U+FFFE) in values; names that are no XML names.
    let echoed = "licname=a%01b%1Bc%EF%BF%BEd&9lives=x&a%20b=y&ns%3Aname=z&%3Cx%3E=w&kept=%0D%0A";
    let queries = [
        format!("func=soft&out=xml&{auth}&{echoed}"),
        // An error answer also names the function, in attributes and text.
        format!("func=soft%07%00.x&out=xml&{auth}&{echoed}"),
        format!("func=soft&out=xml&authinfo=eve%01:x&{echoed}"),
    ];

    for query in queries {
        // Act
        let body = client
            .get(format!("{}/billmgr?{query}", app.http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();

        // Assert
        if let Err(e) = well_formed(&body) {
            panic!("not well-formed ({e}): {body:?}");
        }
        let doc = body.split("<tparams>").nth(1).expect("an echo");
        assert!(
            doc.contains("<kept>"),
            "plain names are still echoed: {body}"
        );
        assert!(doc.contains("<licname>a"), "{body}");
    }
    // The JSON forms carry the same echo, escaped as JSON.
    let json: Value = client
        .get(format!(
            "{}/billmgr?func=soft&out=sjson&{auth}&{echoed}",
            app.http
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        json["doc"]["tparams"]["licname"]["$"],
        "a\u{1}b\u{1b}c\u{fffe}d"
    );
    assert!(json["doc"]["tparams"].get("9lives").is_none());
}

/// Reads one HTTP/1.1 response (head and `content-length` body) from `stream`; its
/// status line.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head.lines().next().unwrap().to_owned()
}

/// Whether the server closes the connection within `limit` (reads until EOF or an
/// error).
async fn closed_within(read: &mut (impl tokio::io::AsyncRead + Unpin), limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn slow_headers_on_a_kept_alive_connection_are_cut_at_the_header_timeout() {
    // Arrange: 300 ms for a request's head, a minute of idleness allowed.
    let header_read_timeout = Duration::from_millis(300);
    let app = spawn_app_with(0, |s| {
        s.connections = ConnectionLimits {
            header_read_timeout,
            idle_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        }
    })
    .await;
    let addr: SocketAddr = app.http.trim_start_matches("http://").parse().unwrap();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    conn.write_all(request).await.unwrap();
    let first = read_response(&mut conn).await;
    // Quiet between requests for longer than the header timeout: that is idle time.
    tokio::time::sleep(header_read_timeout * 2).await;
    conn.write_all(request).await.unwrap();
    let second = read_response(&mut conn).await;

    // Act: the third request's head, one line every 100 ms.
    let (mut read, mut write) = conn.into_split();
    // Before the first byte can arrive, so the server's clock starts after this one.
    let started = Instant::now();
    write
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let dribble = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let line = format!("x-slow-{i}: 1\r\n");
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let closed = closed_within(&mut read, Duration::from_secs(5)).await;
    let after = started.elapsed();
    dribble.abort();

    // Assert
    assert_eq!(first, "HTTP/1.1 200 OK");
    assert_eq!(
        second, "HTTP/1.1 200 OK",
        "a quiet kept-alive connection stays open"
    );
    assert!(
        closed,
        "a dribbled head on a kept-alive connection held it past 5 s"
    );
    assert!(
        after >= header_read_timeout,
        "closed after {after:?}, before the timeout"
    );
}

/// A client of the sandbox account's `/billmgr`.
async fn shop(app: &TestApp, form: &[(&str, &str)]) -> Value {
    let authinfo = format!("{SANDBOX_BILLMGR_USER}:{SANDBOX_TOKEN}");
    let mut form = form.to_vec();
    form.push(("authinfo", &authinfo));
    billmgr(
        &crate::support::http_client().build().unwrap(),
        &app.http,
        &form,
    )
    .await
}

/// `soft.edit` of `id` until its status is `status`.
async fn status_until(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let form = shop(app, &[("func", "soft.edit"), ("elid", id)]).await;
        if form["doc"]["status"]["$"] == status {
            return form;
        }
        assert!(Instant::now() < deadline, "never status {status}: {form}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn order(app: &TestApp, remoteid: &str, ip: &str) -> String {
    let ordered = shop(
        app,
        &[
            ("func", "soft.order.param"),
            ("sok", "ok"),
            ("skipbasket", "on"),
            ("pricelist", "55228"),
            ("period", "1"),
            ("ip", ip),
            ("remoteid", remoteid),
        ],
    )
    .await;
    let id = ordered["doc"]["id"]["$"]
        .as_str()
        .expect("an id")
        .to_owned();
    status_until(app, &id, "2").await;
    id
}

#[tokio::test]
async fn a_group_suspend_whose_later_item_fails_answers_per_item() {
    // Arrange: item A active, item B deleted.
    let app = spawn_app().await;
    let a = order(&app, "group-a", "203.0.113.91").await;
    let b = order(&app, "group-b", "203.0.113.92").await;
    let deleted = shop(&app, &[("func", "soft.delete"), ("elid", &b)]).await;
    assert_eq!(error_type(&deleted), None, "{deleted}");
    status_until(&app, &b, "4").await;

    // Act
    let elids = format!("{a}, {b}");
    let answer = shop(&app, &[("func", "soft.suspend"), ("elid", &elids)]).await;
    let a_after = shop(&app, &[("func", "soft.edit"), ("elid", &a)]).await;

    // Assert: an error (not everything was done), never alone: each item's fate.
    let error = &answer["doc"]["error"];
    assert_eq!(error["$type"], "value", "{answer}");
    assert_eq!(error["$object"], "elid");
    let msg = error["msg"]["$"].as_str().unwrap();
    assert!(
        msg.contains(&format!("Item {b}")) && msg.contains("1 of 2 items changed"),
        "{msg}"
    );
    let rows = answer["doc"]["elem"].as_array().expect("one elem per item");
    assert_eq!(rows.len(), 2, "{answer}");
    assert_eq!(rows[0]["id"]["$"], a.as_str());
    assert_eq!(rows[0]["result"]["$"], "ok");
    assert_eq!(rows[0]["status"]["$"], "3", "A is suspended: {answer}");
    assert_eq!(rows[1]["id"]["$"], b.as_str());
    assert_eq!(rows[1]["result"]["$"], "error");
    assert_eq!(rows[1]["status"]["$"], "4");
    assert_eq!(rows[1]["error_type"]["$"], "value");
    assert!(
        rows[1]["error"].is_null(),
        "per-item refusals are not `error`s"
    );
    assert_eq!(a_after["doc"]["status"]["$"], "3", "{a_after}");
}
