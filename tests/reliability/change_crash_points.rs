//! The real binary aborted at each crash point of every change of an existing license
//! (renew, change IP, change panel, suspend, resume, reissue key, cancel, park), of an
//! order that takes a parked license instead of buying, and of an operator's RETRY of
//! a license that needs a person, restarted on the same database,
//! the request sent again with its `Idempotency-Key`: the change (or the purchase) is
//! carried out upstream exactly once (never lost, never applied twice: a renewal sent
//! twice buys two periods), and the store and the sandbox agree afterwards.
//!
//! Table-driven: [`CHANGES`] holds one row per operation, [`RETRIES`] one per kind of
//! stuck work a RETRY sends again, and `crash_tests!` makes one test per (row, crash
//! point).
//!
//! A RETRY's fresh operation starts at INTENT: the worker looks the stuck work up,
//! then sends it on the path an order or a change takes, through the same five crash
//! points. BIND and ABANDON send nothing: each is one store transaction with no crash
//! point on its way, so a crash leaves it either whole or not begun.

use license_facade::crash;
use license_facade::sandbox::SandboxLicense;
use serde_json::{Value, json};

use crate::support::{
    ADOPTED_LOG, Order, ServiceDir, Stuck, TestSandbox, assert_agree, bought, sandbox_config,
    start_sandbox, stuck_order, stuck_renewal,
};

/// Iterations of every (operation, point) in the slow tier that buys or binds: a
/// renewal, a panel change (paid) and an IP change (binds an address), and the RETRY
/// rows (an order or a renewal sent again).
const SLOW_ITERATIONS: u64 = 20;

/// Iterations of the changes that neither buy nor bind (suspend, resume, new key,
/// cancel): repeated, they cost no money, and they share every line of the engine
/// with the rows above. The gate's time goes where a repeat can find a double
/// purchase.
const SLOW_ITERATIONS_UNPAID: u64 = 5;

/// The chains each RETRY row's slow runs at one crash point are split into (the
/// iterations divide evenly among them).
const RETRY_CHAINS: u64 = 2;

/// How many times the slow tier runs `change` at each crash point.
fn slow_iterations(change: &Change) -> u64 {
    match change.action {
        "RENEW" | "CHANGE_IP" | "CHANGE_PANEL" => SLOW_ITERATIONS,
        _ => SLOW_ITERATIONS_UNPAID,
    }
}

/// The service's log message when recovery finds a change already made upstream.
const CONFIRMED_BY_RECOVERY_LOG: &str = "the change is visible upstream; confirmed it";

/// The address a license is moved to by the IP change.
const NEW_IP: &str = "198.51.100.77";
/// The panel a license is switched to by the panel change, and its tariff.
const NEW_PANEL: &str = "ISPmanager 6 Business";
const NEW_TARIFF: u32 = 55230;

/// One change as a client asks for it and as the sandbox shows it carried out.
pub struct Change {
    /// The operation's name (its audit action).
    pub action: &'static str,
    /// `POST` to `/v1/licenses/{id}{path}` with `body`, or `DELETE` when `body` is
    /// `None`.
    pub path: &'static str,
    pub body: Option<fn() -> Value>,
    /// The sandbox function that carries it out.
    pub func: &'static str,
    /// Whether the license must be suspended first.
    pub from_suspended: bool,
    /// Checks the upstream license after the change against the one before it, and
    /// the license as the service shows it.
    pub check: fn(before: &SandboxLicense, after: &SandboxLicense, license: &Value),
}

pub const RENEW: Change = Change {
    action: "RENEW",
    path: "/renew",
    body: Some(|| json!({"periodMonths": 1})),
    func: "service.prolong",
    from_suspended: false,
    check: |before, after, license| {
        // One period bought, not two.
        let once = add_one_month(before.expire_date);
        assert_eq!(after.expire_date, once, "the expiry moved by one month");
        assert!(
            license["expireTime"]
                .as_str()
                .is_some_and(|t| t.starts_with(&once.to_string())),
            "the service shows the new expiry {once}: {license}"
        );
    },
};

pub const CHANGE_IP: Change = Change {
    action: "CHANGE_IP",
    path: "/change-ip",
    body: Some(|| json!({"ip": NEW_IP})),
    func: "soft.edit",
    from_suspended: false,
    check: |_, after, license| {
        assert_eq!(after.ip, NEW_IP);
        assert_eq!(license["ip"], NEW_IP, "{license}");
    },
};

pub const CHANGE_PANEL: Change = Change {
    action: "CHANGE_PANEL",
    path: "/change-panel",
    body: Some(|| json!({"panel": NEW_PANEL})),
    func: "service.changepricelist",
    from_suspended: false,
    check: |before, after, license| {
        assert_eq!(after.tariff_id, NEW_TARIFF);
        assert_eq!(
            after.expire_date, before.expire_date,
            "paid → paid keeps the expiry"
        );
        assert_eq!(license["tariffId"], NEW_TARIFF, "{license}");
        assert_eq!(license["panel"], NEW_PANEL, "{license}");
    },
};

pub const SUSPEND: Change = Change {
    action: "SUSPEND",
    path: "/suspend",
    body: Some(|| json!({})),
    func: "soft.suspend",
    from_suspended: false,
    check: |_, after, license| {
        assert_eq!(after.status, 3, "suspended upstream");
        assert_eq!(license["state"], "SUSPENDED", "{license}");
    },
};

pub const RESUME: Change = Change {
    action: "RESUME",
    path: "/resume",
    body: Some(|| json!({})),
    func: "soft.resume",
    from_suspended: true,
    check: |_, after, license| {
        assert_eq!(after.status, 2, "active upstream");
        assert_eq!(license["state"], "ACTIVE", "{license}");
    },
};

pub const REISSUE_KEY: Change = Change {
    action: "REISSUE_KEY",
    path: "/reissue-key",
    body: Some(|| json!({})),
    func: "soft.edit",
    from_suspended: false,
    check: |before, after, license| {
        assert_ne!(after.license_key, before.license_key, "a new key upstream");
        assert_eq!(
            license["licenseKey"].as_str(),
            Some(after.license_key.as_str()),
            "the service holds the key the upstream issued last: {license}"
        );
    },
};

pub const CANCEL: Change = Change {
    action: "CANCEL",
    path: "",
    body: None,
    func: "soft.delete",
    from_suspended: false,
    check: |_, after, license| {
        assert_eq!(after.status, 4, "deleted upstream");
        assert_eq!(license["state"], "CANCELLED", "{license}");
    },
};

pub const PARK: Change = Change {
    action: "PARK",
    path: "/release",
    body: Some(|| json!({})),
    func: "soft.edit",
    from_suspended: false,
    check: |before, after, license| {
        assert_eq!(after.status, 3, "suspended upstream");
        assert_eq!(after.ip, "0.0.0.0", "parked upstream");
        assert_eq!(after.expire_date, before.expire_date, "nothing bought");
        assert_eq!(license["state"], "PARKED", "{license}");
    },
};

/// Every paid or binding change, for the slow tier (PARK, which buys and binds
/// nothing, runs in the fast tier only).
pub const CHANGES: [&Change; 7] = [
    &RENEW,
    &CHANGE_IP,
    &CHANGE_PANEL,
    &SUSPEND,
    &RESUME,
    &REISSUE_KEY,
    &CANCEL,
];

fn add_one_month(date: time::Date) -> time::Date {
    let (year, month) = match date.month() {
        time::Month::December => (date.year() + 1, time::Month::January),
        m => (date.year(), m.next()),
    };
    let day = date.day().min(month.length(year));
    time::Date::from_calendar_date(year, month, day).expect("a valid date")
}

impl Change {
    /// Asks for the change with the idempotency key `key`; `Ok` with the answer when
    /// the request was answered at all.
    async fn request(
        &self,
        api: &crate::support::Api,
        id: &str,
        key: &str,
    ) -> Result<(u16, Value), String> {
        let path = format!("/v1/licenses/{id}{}", self.path);
        match self.body {
            Some(body) => api.post(&path, &body(), Some(key)).await,
            None => api.delete(&path, Some(key)).await,
        }
    }
}

/// What one run tells (printed, so `--nocapture` shows them).
#[derive(Debug, Default, Clone, Copy)]
struct ChangeFigures {
    runs: u64,
    /// Requests for the change's function the sandbox carried out.
    upstream_changes: u64,
    /// Changes carried out more than once.
    duplicates: u64,
    /// Changes not carried out at all.
    lost: u64,
    /// Changes that a restarted service found made upstream and confirmed.
    confirmed_by_recovery: u64,
}

impl ChangeFigures {
    fn add(&mut self, other: Self) {
        self.runs += other.runs;
        self.upstream_changes += other.upstream_changes;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.confirmed_by_recovery += other.confirmed_by_recovery;
    }

    fn report(&self, name: &str) {
        eprintln!(
            "reliability-figures: {name}: runs={} upstream_change_calls={} duplicates={} lost={} confirmed_by_recovery={}",
            self.runs,
            self.upstream_changes,
            self.duplicates,
            self.lost,
            self.confirmed_by_recovery
        );
    }
}

/// The one live upstream license on `ip`.
fn upstream_on(sandbox: &TestSandbox, ip: &str) -> SandboxLicense {
    let all: Vec<_> = sandbox
        .handle
        .licenses()
        .into_iter()
        .filter(|l| l.ip == ip)
        .collect();
    assert_eq!(all.len(), 1, "one upstream license on {ip}: {all:?}");
    all.into_iter().next().unwrap()
}

/// One order, then `change` with the process aborted at `point`, a restart, and the
/// change retried, on a fresh database and sandbox.
async fn crash_and_recover(change: &Change, point: &'static str) -> ChangeFigures {
    let sandbox = start_sandbox(sandbox_config()).await;
    let mut dir = ServiceDir::new();
    let order = Order::new(9);

    // A live license to change, ordered by a service that is then killed (its work is
    // done: nothing is leased).
    let setup = dir.start(&sandbox.url, None);
    let id = setup
        .api
        .order(&order)
        .await
        .expect("the order is acknowledged");
    setup.api.license_until(&id, &["ACTIVE"]).await;
    if change.from_suspended {
        let path = format!("/v1/licenses/{id}/suspend?wait=20s");
        let (status, body) = setup.api.post(&path, &json!({}), None).await.unwrap();
        assert_eq!(
            (status, &body["state"]),
            (200, &json!("SUSPENDED")),
            "{body}"
        );
    }
    drop(setup);
    let before = upstream_on(&sandbox, &order.ip);
    let carried_before = sandbox.handle.carried_out(change.func);
    let carried = || sandbox.handle.carried_out(change.func) - carried_before;

    // The change, with the process armed to abort at `point`. The abort may win the
    // race with the answer; the change is committed either way (the worker only runs
    // committed work).
    let key = format!("change-{}-{point}", change.action);
    let first_start = dir.next_start();
    let mut armed = dir.start(&sandbox.url, Some(point));
    if let Ok((status, body)) = change.request(&armed.api, &id, &key).await {
        assert_eq!(status, 202, "the change is accepted: {body}");
    }
    armed.expect_abort_at(point).await;
    drop(armed);
    let sent_before_restart = carried();
    match point {
        crash::BEFORE_INTENT | crash::AFTER_INTENT => assert_eq!(
            sent_before_restart, 0,
            "{} carried out before the restart ({point})",
            change.action
        ),
        // The call is bounded as a whole by the request timeout; on a loaded machine it
        // can give up before the request leaves, and then nothing was sent.
        crash::AFTER_SEND => assert!(sent_before_restart <= 1),
        _ => assert_eq!(
            sent_before_restart, 1,
            "{} carried out before the restart ({point})",
            change.action
        ),
    }

    // Restarted: the retry with the same key is the same change, and it completes.
    let service = dir.start(&sandbox.url, None);
    let (status, body) = change
        .request(&service.api, &id, &key)
        .await
        .expect("the retry is answered");
    assert!(
        (200..300).contains(&status),
        "the retried change is acknowledged: {status} {body}"
    );
    let license = service
        .api
        .license_after_audit(&id, change.action, "SUCCEEDED")
        .await;

    let upstream_changes = carried();
    let succeeded = service.api.audit_count(change.action, "SUCCEEDED").await;
    // Every line the restarted service logged is in its file once it has stopped.
    service.stop().await;
    let confirmed_by_recovery = dir.log_count_since(first_start, CONFIRMED_BY_RECOVERY_LOG);
    let figures = ChangeFigures {
        runs: 1,
        upstream_changes,
        duplicates: upstream_changes.saturating_sub(1),
        lost: u64::from(upstream_changes == 0),
        confirmed_by_recovery,
    };
    assert_eq!(
        upstream_changes, 1,
        "{} carried out upstream exactly once (crash at {point})",
        change.action
    );
    assert_eq!(succeeded, 1, "one {} completed", change.action);
    assert_eq!(sandbox.orders_sent(), 1, "no other license was ordered");
    // By its id: a parked license is bound to 0.0.0.0 upstream, not to its IP here.
    let after = sandbox
        .handle
        .license(before.id)
        .expect("the upstream license is there");
    if change.action != PARK.action {
        let on_ip = upstream_on(&sandbox, license["ip"].as_str().expect("an IP"));
        assert_eq!(on_ip.id, before.id, "the same upstream license");
    }
    (change.check)(&before, &after, &license);
    // Where the change was made upstream but not yet recorded, the restarted service
    // found it made ("confirmed it" in its log) instead of sending it again.
    let expected_confirmations = match point {
        crash::AFTER_SEND => sent_before_restart,
        crash::AFTER_RESPONSE => 1,
        _ => 0,
    };
    // Before the send the restarted service makes the call itself. A loaded machine
    // can cut that call (500 ms here) after the upstream took it; recovery then finds
    // the change made: one confirmation more, still carried out once (asserted above).
    let own_attempt_confirmed =
        u64::from(matches!(point, crash::BEFORE_INTENT | crash::AFTER_INTENT));
    assert!(
        (expected_confirmations..=expected_confirmations + own_attempt_confirmed)
            .contains(&confirmed_by_recovery),
        "{} changes confirmed by recovery after a crash at {point}: {confirmed_by_recovery}, expected {expected_confirmations}",
        change.action
    );
    figures
}

async fn fast(change: &Change, point: &'static str) {
    crash_and_recover(change, point).await.report(&format!(
        "change {} crash point {point} (fast)",
        change.action
    ));
}

/// The pool with the upstream's cooldowns at 0, so a license parked now may be taken.
const POOL_AT_ONCE: &str = "[pool]\nip_change_cooldown_days = 0\nkey_change_cooldown_days = 0\n";

/// A license parked by a service that is then killed, then an order of another server
/// with the process aborted at `point` (the order takes the parked license: a REUSE
/// step), a restart, and the order sent again with its key: the parked license is
/// moved and resumed upstream exactly once, nothing is bought, and it is REUSED here.
async fn crash_and_reuse(point: &'static str) -> ChangeFigures {
    let mut config = sandbox_config();
    config.ip_change_cooldown_days = 0;
    config.key_change_cooldown_days = 0;
    let sandbox = start_sandbox(config).await;
    let mut dir = ServiceDir::with_extra_config(POOL_AT_ONCE);
    let parked_order = Order::new(12);
    let setup = dir.start(&sandbox.url, None);
    let parked_id = setup
        .api
        .order(&parked_order)
        .await
        .expect("the order is acknowledged");
    setup.api.license_until(&parked_id, &["ACTIVE"]).await;
    let path = format!("/v1/licenses/{parked_id}/release?wait=20s");
    let (_, released) = setup.api.post(&path, &json!({}), None).await.unwrap();
    assert_eq!(released["license"]["state"], "PARKED", "{released}");
    let upstream_id: u64 = released["license"]["upstreamId"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an upstream id");
    drop(setup);
    let purchases_before = sandbox.orders_sent();
    let moves_before = sandbox.handle.carried_out("soft.edit");
    let resumes_before = sandbox.handle.carried_out("soft.resume");
    let moves = || sandbox.handle.carried_out("soft.edit") - moves_before;
    let resumes = || sandbox.handle.carried_out("soft.resume") - resumes_before;

    let order = Order::new(13);
    let key = format!("reuse-{point}");
    let first_start = dir.next_start();
    let mut armed = dir.start(&sandbox.url, Some(point));
    if let Ok((status, body)) = armed.api.post_order(&order.body(), Some(&key)).await {
        assert_eq!(status, 202, "the order is accepted: {body}");
        assert_eq!(body["reusedFrom"], parked_id.as_str(), "{body}");
    }
    armed.expect_abort_at(point).await;
    drop(armed);
    let moved_before_restart = moves();
    match point {
        crash::BEFORE_INTENT | crash::AFTER_INTENT => {
            assert_eq!(
                moved_before_restart, 0,
                "moved before the restart ({point})"
            )
        }
        crash::AFTER_SEND => assert!(moved_before_restart <= 1),
        _ => assert_eq!(
            moved_before_restart, 1,
            "moved before the restart ({point})"
        ),
    }

    let service = dir.start(&sandbox.url, None);
    let (status, body) = service
        .api
        .post_order(&order.body(), Some(&key))
        .await
        .expect("the retry is answered");
    assert!((200..300).contains(&status), "{status} {body}");
    let id = body["id"].as_str().expect("an id").to_owned();
    let license = service
        .api
        .license_after_audit(&id, "REUSE", "SUCCEEDED")
        .await;
    let donor = service.api.license(&parked_id).await;
    let succeeded = service.api.audit_count("REUSE", "SUCCEEDED").await;
    service.stop().await;
    let confirmed_by_recovery = dir.log_count_since(first_start, CONFIRMED_BY_RECOVERY_LOG);
    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert_eq!(license["reusedFrom"], parked_id.as_str(), "{license}");
    assert_eq!(license["upstreamId"], upstream_id.to_string(), "{license}");
    assert_eq!(donor["state"], "REUSED", "{donor}");
    assert_eq!(donor["reusedBy"], id.as_str(), "{donor}");
    assert_eq!(succeeded, 1, "one REUSE completed");
    assert_eq!(
        sandbox.orders_sent(),
        purchases_before,
        "nothing was bought"
    );
    assert_eq!(moves(), 1, "moved upstream exactly once (crash at {point})");
    assert_eq!(
        resumes(),
        1,
        "resumed upstream exactly once (crash at {point})"
    );
    let after = sandbox
        .handle
        .license(upstream_id)
        .expect("upstream license");
    assert_eq!((after.status, after.ip.as_str()), (2, order.ip.as_str()));
    assert_eq!(after.licname, id, "named ours upstream");
    assert_eq!(
        license["licenseKey"].as_str(),
        Some(after.license_key.as_str()),
        "{license}"
    );
    ChangeFigures {
        runs: 1,
        upstream_changes: moves(),
        duplicates: moves().saturating_sub(1),
        lost: u64::from(moves() == 0),
        confirmed_by_recovery,
    }
}

async fn fast_reuse(_: &(), point: &'static str) {
    crash_and_reuse(point).await.report(&format!(
        "order taking a parked license, crash point {point} (fast)"
    ));
}

/// The stuck work an operator's RETRY sends once more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// An order whose outcome stayed unknown (nothing bought): the RETRY buys it.
    Order,
    /// A renewal whose outcome stayed unknown (nothing renewed): the RETRY renews.
    Renewal,
}

/// Every RETRY row, for the slow tier.
pub const RETRIES: [Retry; 2] = [Retry::Order, Retry::Renewal];

impl Retry {
    fn name(self) -> &'static str {
        match self {
            Self::Order => "resolve RETRY of an order",
            Self::Renewal => "resolve RETRY of a renewal",
        }
    }

    /// The sandbox function that carries the stuck work out.
    fn func(self) -> &'static str {
        match self {
            Self::Order => "soft.order.param",
            Self::Renewal => RENEW.func,
        }
    }

    /// The log message of a restarted service that finds the work done upstream.
    fn found_done_log(self) -> &'static str {
        match self {
            Self::Order => ADOPTED_LOG,
            Self::Renewal => CONFIRMED_BY_RECOVERY_LOG,
        }
    }
}

/// A license that needs a person (its order, or a renewal of it, sent once with an
/// unknown outcome and not carried out), then RETRYed with the process aborted at
/// `point`, a restart, and the RETRY sent again with its key, on a fresh database and
/// sandbox.
async fn crash_and_retry(retry: &Retry, point: &'static str) -> ChangeFigures {
    let retry = *retry;
    let sandbox = start_sandbox(sandbox_config()).await;
    let mut dir = ServiceDir::new();
    let order = Order::new(11);

    // The stuck license, made by a service that sends nothing again by itself, then
    // killed (its work is done: nothing is leased). A renewal's license is bought
    // first by a service that does re-send: on a loaded machine the strict one's
    // order can time out before it leaves, and would need a person instead of
    // becoming active.
    let id = match retry {
        Retry::Order => {
            let setup = dir.start_strict(&sandbox.url);
            stuck_order(&setup.api, &sandbox.handle, &order.body(), Stuck::Unbought)
                .await
                .id
        }
        Retry::Renewal => {
            let buyer = dir.start(&sandbox.url, None);
            let id = buyer.api.order(&order).await.expect("acknowledged");
            buyer.api.license_until(&id, &["ACTIVE"]).await;
            drop(buyer);
            let setup = dir.start_strict(&sandbox.url);
            stuck_renewal(&setup.api, &sandbox.handle, &id).await;
            id
        }
    };
    let carried = || sandbox.handle.carried_out(retry.func());
    assert_eq!(carried(), 0, "the stuck work was not carried out");
    // (The RETRY's look-up can prove the order unplaced: the list shows licenses
    // bought elsewhere in every status an order may be in.)
    let before = bought(&sandbox.handle);

    // The RETRY, with the process armed to abort at `point`. The abort may win the
    // race with the answer; the resolution is committed either way (the worker only
    // runs committed work).
    let path = format!("/v1/licenses/{id}/resolve");
    let body = json!({"action": "RETRY", "reason": "nothing in the panel; send it again"});
    let key = format!("resolve-{retry:?}-{point}");
    let first_start = dir.next_start();
    let mut armed = dir.start(&sandbox.url, Some(point));
    if let Ok((status, answer)) = armed.api.post(&path, &body, Some(&key)).await {
        assert_eq!(status, 202, "the RETRY is accepted: {answer}");
    }
    armed.expect_abort_at(point).await;
    drop(armed);
    let sent_before_restart = carried();
    match point {
        crash::BEFORE_INTENT | crash::AFTER_INTENT => assert_eq!(
            sent_before_restart,
            0,
            "{} carried out before the restart ({point})",
            retry.name()
        ),
        // The call is bounded as a whole by the request timeout; on a loaded machine it
        // can give up before the request leaves, and then nothing was sent.
        crash::AFTER_SEND => assert!(sent_before_restart <= 1),
        _ => assert_eq!(
            sent_before_restart,
            1,
            "{} carried out before the restart ({point})",
            retry.name()
        ),
    }

    // Restarted: the RETRY sent again with its key is the same resolution (a replay,
    // not a second one), and the work completes.
    let service = dir.start(&sandbox.url, None);
    let (status, answer) = service
        .api
        .post(&path, &body, Some(&key))
        .await
        .expect("the RETRY sent again is answered");
    assert!(
        (200..300).contains(&status),
        "the RETRY sent again is acknowledged: {status} {answer}"
    );
    let license = match retry {
        Retry::Order => service.api.license_until(&id, &["ACTIVE"]).await,
        Retry::Renewal => {
            service
                .api
                .license_after_audit(&id, RENEW.action, "SUCCEEDED")
                .await
        }
    };

    let upstream_changes = carried();
    let resolved = service.api.audit_count("RESOLVE", "SUCCEEDED").await;
    let renewed = service.api.audit_count("RENEW", "SUCCEEDED").await;
    // Every line the restarted service logged is in its file once it has stopped.
    service.stop().await;
    let found_done = dir.log_count_since(first_start, retry.found_done_log());
    let figures = ChangeFigures {
        runs: 1,
        upstream_changes,
        duplicates: upstream_changes.saturating_sub(1),
        lost: u64::from(upstream_changes == 0),
        confirmed_by_recovery: found_done,
    };
    assert_eq!(
        upstream_changes,
        1,
        "{} carried out upstream exactly once (crash at {point})",
        retry.name()
    );
    assert_eq!(resolved, 1, "one resolution, however often it was sent");
    assert_eq!(
        sandbox.handle.carried_out("soft.order.param"),
        1,
        "one license bought in all"
    );
    match retry {
        Retry::Order => {
            assert_agree(&sandbox.handle, &order, &license);
            assert_eq!(bought(&sandbox.handle).len(), 1);
        }
        Retry::Renewal => {
            assert_eq!(license["state"], "ACTIVE", "{license}");
            let after = upstream_on(&sandbox, &order.ip);
            let [before] = before.as_slice() else {
                panic!("one upstream license before the RETRY: {before:?}")
            };
            assert_eq!(after.id, before.id, "the same upstream license");
            (RENEW.check)(before, &after, &license);
            assert_eq!(renewed, 1);
        }
    }
    // Where the work was carried out upstream but not yet recorded, the restarted
    // service found it done instead of sending it again.
    let expected = match point {
        crash::AFTER_SEND => sent_before_restart,
        crash::AFTER_RESPONSE => 1,
        _ => 0,
    };
    // As for orders (see `crash_points`): where the armed or the restarted service
    // made the attempt itself, a loaded machine can cut its call after the upstream
    // took it, and recovery then finds it: one more, still one purchase.
    let own_attempt_found = u64::from(matches!(
        point,
        crash::BEFORE_INTENT | crash::AFTER_INTENT | crash::AFTER_CONFIRMED
    ));
    assert!(
        (expected..=expected + own_attempt_found).contains(&found_done),
        "work found done by recovery after a crash at {point}: {found_done}, expected {expected}"
    );
    figures
}

async fn fast_retry(retry: &Retry, point: &'static str) {
    crash_and_retry(retry, point)
        .await
        .report(&format!("{} crash point {point} (fast)", retry.name()));
}

/// One test per crash point for each listed row: `run: name => ROW` adds the five,
/// each calling `run(&ROW, point)`.
macro_rules! crash_tests {
    ($run:ident: $($name:ident => $change:expr),* $(,)?) => {$(
        mod $name {
            use license_facade::crash;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_before_intent_then_retry_applies_once() {
                super::$run(&$change, crash::BEFORE_INTENT).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_after_intent_then_retry_applies_once() {
                super::$run(&$change, crash::AFTER_INTENT).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_after_send_then_retry_applies_once() {
                super::$run(&$change, crash::AFTER_SEND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_after_response_then_retry_applies_once() {
                super::$run(&$change, crash::AFTER_RESPONSE).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_after_confirmed_then_retry_applies_once() {
                super::$run(&$change, crash::AFTER_CONFIRMED).await;
            }
        }
    )*};
}

crash_tests! {
    fast:
    renew => super::RENEW,
    change_ip => super::CHANGE_IP,
    change_panel => super::CHANGE_PANEL,
    suspend => super::SUSPEND,
    resume => super::RESUME,
    reissue_key => super::REISSUE_KEY,
    cancel => super::CANCEL,
    park => super::PARK,
}

crash_tests! {
    fast_reuse:
    reuse => (),
}

crash_tests! {
    fast_retry:
    resolve_retry_order => super::Retry::Order,
    resolve_retry_renewal => super::Retry::Renewal,
}

/// A refused renewal (no money) is a definite answer: a crash before it is committed
/// leaves the renewal at INTENT; recovery finds the expiry unmoved, sends again, is
/// refused again, and the renewal ends FAILED with nothing bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_a_refused_renewal_ends_failed_with_nothing_bought() {
    let sandbox = start_sandbox(sandbox_config()).await;
    let mut dir = ServiceDir::new();
    let order = Order::new(10);
    let setup = dir.start(&sandbox.url, None);
    let id = setup.api.order(&order).await.expect("acknowledged");
    setup.api.license_until(&id, &["ACTIVE"]).await;
    drop(setup);
    let before = upstream_on(&sandbox, &order.ip);
    sandbox.handle.set_balance(0);

    let mut armed = dir.start(&sandbox.url, Some(crash::AFTER_RESPONSE));
    let _ = RENEW.request(&armed.api, &id, "refused-renewal").await;
    armed.expect_abort_at(crash::AFTER_RESPONSE).await;
    drop(armed);
    assert_eq!(sandbox.handle.call_count("service.prolong"), 1);

    let service = dir.start(&sandbox.url, None);
    RENEW
        .request(&service.api, &id, "refused-renewal")
        .await
        .expect("the retry is answered");
    let license = service
        .api
        .license_after_audit(&id, RENEW.action, "FAILED")
        .await;
    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert_eq!(
        license["lastError"]["code"], "UPSTREAM_REFUSED",
        "{license}"
    );
    assert_eq!(
        sandbox.handle.carried_out("service.prolong"),
        0,
        "nothing bought"
    );
    assert_eq!(
        upstream_on(&sandbox, &order.ip).expire_date,
        before.expire_date
    );
    assert_eq!(service.api.audit_count("RENEW", "SUCCEEDED").await, 0);
}

/// Slow tier: every paid or binding change and every RETRY at every crash point 20
/// times, the unpaid changes 5 times (see [`slow_iterations`]), in chains that run side
/// by side. Most runs are CPU (three processes started, an order and a change carried
/// out): one chain per crash point. Two kinds of run mostly wait, and get chains of
/// their own so that the tier's wall time is its CPU's, not the sum of their waits: a
/// crash after the INTENT (the restarted service waits out the dead one's lease before
/// it may look upstream; about three times a run at another point), one chain per
/// change; and a RETRY (it waits out one request timeout after the stuck attempt's
/// send, about 11 s a run, see the fast tests), [`RETRY_CHAINS`] chains per row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow tier: cargo test -- --ignored"]
async fn every_change_at_every_crash_point_twenty_times() {
    let mut runs = tokio::task::JoinSet::new();
    for point in crash::ALL {
        let chains: Vec<std::ops::Range<usize>> = if point == crash::AFTER_INTENT {
            (0..CHANGES.len()).map(|i| i..i + 1).collect()
        } else {
            std::iter::once(0..CHANGES.len()).collect()
        };
        for changes in chains {
            runs.spawn(async move {
                let mut total = ChangeFigures::default();
                for &change in &CHANGES[changes] {
                    let mut figures = ChangeFigures::default();
                    for _ in 0..slow_iterations(change) {
                        figures.add(crash_and_recover(change, point).await);
                    }
                    figures.report(&format!(
                        "change {} crash point {point} (slow)",
                        change.action
                    ));
                    total.add(figures);
                }
                total
            });
        }
        for retry in RETRIES {
            for chain in 0..RETRY_CHAINS {
                runs.spawn(async move {
                    let mut figures = ChangeFigures::default();
                    for _ in 0..SLOW_ITERATIONS / RETRY_CHAINS {
                        figures.add(crash_and_retry(&retry, point).await);
                    }
                    figures.report(&format!(
                        "{} crash point {point}, chain {chain} (slow)",
                        retry.name()
                    ));
                    figures
                });
            }
        }
    }
    let mut all = ChangeFigures::default();
    while let Some(done) = runs.join_next().await {
        all.add(done.expect("a crash point run panicked"));
    }
    all.report("change crash points, all (slow)");
    let per_point = CHANGES.iter().map(|c| slow_iterations(c)).sum::<u64>()
        + SLOW_ITERATIONS * RETRIES.len() as u64;
    assert_eq!(all.runs, per_point * 5);
    assert_eq!(all.duplicates, 0);
    assert_eq!(all.lost, 0);
}
