//! A property-based test: random sequences of order, retry, crash, upstream fault and
//! pause, driven against the in-process application on one SQLite file and a sandbox
//! that answers in one of the shapes the recorded evidence allows (id only at
//! `item.id`, no id at all, `remoteid` listed, no `licname`, translated values
//! without `orig`, a saved filter narrowing the list), checked against a model after
//! every step:
//!
//! - upstream licenses per key (server IP) ≤ 1, always;
//! - a key the model never ordered has none;
//! - a key keeps the license id it was first acknowledged with;
//! - at the end, with faults cleared and the worker settled: every acknowledged key is
//!   ACTIVE with exactly 1 upstream license on which the store and the sandbox agree,
//!   or NEEDS_ATTENTION (the re-send limit, an answer not understood, a list that
//!   cannot prove an absence) with at most 1.
//!
//! The mix also holds the money edges: retries spelt another way under one request id
//! (a replay), orders under a server id that differs only by case (refused: the IP has
//! a license), and renewals; the client has a cap on paid calls below the number of
//! keys, and a refusal at the cap must come exactly at it.
//!
//! And every change of a license: renew, change IP, change panel, suspend, resume,
//! reissue key, cancel, under crashes and faults on their upstream functions. After
//! every step nothing was carried out upstream more often than it was accepted; at the
//! end every accepted change was carried out exactly once (the periods bought upstream
//! are the order's and one per accepted renewal), and each license's upstream state
//! (status, IP, tariff, key, expiry) is what the accepted changes make it and what the
//! service shows.
//!
//! A reconcile step (`POST /v1/reconcile`) may come at any point: it reports, never
//! orders; at the end, on a list known to be complete, it finds nothing missing, no
//! mismatch, and no orphan other than the licenses handed to a person.
//!
//! A contest step plays two other clients (rivals, without caps) over a few shared
//! addresses: its moves, all sent at once, contend for one of them (orders for it, IP
//! changes of rival licenses to it) beside panel changes and cancellations (which free
//! an address and a server for the next contest). After every step no address has
//! more than one live upstream license, whoever bought or moved it there, and at the
//! end every live rival license is on the address the upstream has it on.
//!
//! A resolve step plays the person: on a key whose license is NEEDS_ATTENTION it
//! either RETRYs (whether or not the order was bought: the operator may be wrong) or
//! BINDs the upstream license on the key's IP when there is one. Neither may ever
//! leave two upstream licenses on a key. (ABANDON is left out: it hands the server
//! back for a new order under a new license id, which the model's "a key keeps its
//! license id" does not describe; its money side is that nothing is sent, tested in
//! the API suite.)

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use license_facade::api::pb::v1 as pb;
use license_facade::api::pb::v1::license_service_client::LicenseServiceClient;
use license_facade::sandbox::{OrderIdAt, SandboxConfig, SavedFilter};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::figures::{Figures, duplicates_and_lost_within};
use crate::support::{
    Api, InProcess, Order, RIVALS, Timings, assert_agree, count, is_witness, live_on,
    sandbox_config, start_sandbox,
};

/// The upstream functions the sequences put faults on: the order's and the changes'.
const FAULTED: [&str; 6] = [
    "soft.order.param",
    "service.prolong",
    "service.changepricelist",
    "soft.suspend",
    "soft.resume",
    "soft.delete",
];

/// How long a change step waits for the license's order to settle first.
const ORDER_SETTLE: Duration = Duration::from_secs(2);

/// Distinct servers the sequences order for.
const KEYS: usize = 4;

/// The client's cap on paid calls (orders and renewals) an hour, below the number of
/// keys: sequences reach it (across crashes too), and past it nothing more is bought.
const PAID_CAP: u32 = 3;

/// Servers each rival orders for.
const RIVAL_SERVERS: usize = 2;

/// Addresses the rivals contend for: fewer than their servers, so that they meet.
const SHARED: usize = 3;

/// The answer shape the sandbox speaks for one whole sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// As recorded panels answer (id at `doc/id`, no `remoteid` column).
    Recorded,
    /// The order's id only at `item.id`.
    IdAtItemId,
    /// An order answer that says ok without any id.
    NoId,
    /// The list shows `remoteid`.
    RemoteidListed,
    /// The list shows no `licname`.
    NoLicname,
    /// Message columns translated, without `orig`.
    Translated,
    /// A saved filter (shown in `saved_filters`) lists active licenses only.
    Filtered,
}

impl Shape {
    fn config(self) -> SandboxConfig {
        // IP changes may follow each other (the model moves licenses back and forth).
        let base = SandboxConfig {
            ip_change_cooldown: Duration::ZERO,
            ..sandbox_config()
        };
        match self {
            Self::Recorded => base,
            Self::IdAtItemId => SandboxConfig {
                order_id_at: OrderIdAt::ItemId,
                ..base
            },
            Self::NoId => SandboxConfig {
                order_id_at: OrderIdAt::Nowhere,
                ..base
            },
            Self::RemoteidListed => SandboxConfig {
                list_remoteid: true,
                ..base
            },
            Self::NoLicname => SandboxConfig {
                list_licname: false,
                ..base
            },
            Self::Translated => SandboxConfig {
                translated_without_orig: true,
                ..base
            },
            // New licenses stay in status 5 (hidden by the filter) for a while, so a
            // look-up soon after a lost answer does not show them.
            Self::Filtered => SandboxConfig {
                saved_filter: Some(SavedFilter::ActiveOnly),
                key_delay: std::time::Duration::from_millis(300),
                ..base
            },
        }
    }

    /// Whether the list can prove an absence (and so reconciliation can run).
    fn list_complete(self) -> bool {
        self != Self::Filtered
    }
}

/// Every shape, each checked with its own run of sequences.
const SHAPES: [Shape; 7] = [
    Shape::Recorded,
    Shape::IdAtItemId,
    Shape::NoId,
    Shape::RemoteidListed,
    Shape::NoLicname,
    Shape::Translated,
    Shape::Filtered,
];

#[derive(Debug, Clone)]
enum Step {
    /// Order for key k over REST.
    Order(usize),
    /// The same order again, over gRPC (a client retrying).
    Retry(usize),
    /// Drop the running application without draining, build a new one on the same file.
    Crash,
    /// Set (or clear) a fault on one upstream function.
    Fault(Option<(&'static str, &'static str, f64)>),
    /// Let the worker run for a while.
    Pause(u64),
    /// Run a reconciliation.
    Reconcile,
    /// Key k's order again with one request id (`model-k`) in one of two spellings
    /// that mean the same order (panel by name or by slug, the default period unset or
    /// stated): a replay of the same request, never a 422.
    Spelled(usize, bool),
    /// An order for key k's IP under a server id that differs only by case: refused
    /// with IP_HAS_LICENSE while key k has a live license, never a second purchase.
    CaseVariant(usize),
    /// Renew key k's license for a month: a paid call that counts against the cap.
    Renew(usize),
    /// If key k's license needs a person: RETRY it (`false`) or BIND it to the live
    /// upstream license on its IP, if any (`true`).
    Resolve(usize, bool),
    /// Another change of the n-th key ordered so far (modulo their number).
    Change(usize, Change),
    /// Rivals' moves for the n-th shared address, all sent at once.
    Contest(usize, Vec<Move>),
}

/// One rival's move in a contest.
#[derive(Debug, Clone, Copy)]
struct Move {
    /// Which of [`RIVALS`].
    rival: usize,
    /// Which of its servers.
    server: usize,
    act: Act,
}

/// What a rival does to its server's license in a contest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Orders it on the contested address.
    Order,
    /// Moves it to the contested address.
    MoveTo,
    /// Switches its panel (Pro ↔ Business): a paid change that holds the license.
    Panel,
    /// Cancels it: the address and the server are free again.
    Cancel,
}

/// The changes besides renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// To the key's other address (and back).
    Ip,
    /// To the other panel (Pro ↔ Business): a paid call.
    Panel,
    Suspend,
    Resume,
    Reissue,
    Cancel,
}

/// What the accepted changes make of one key's license.
#[derive(Debug, Clone, Copy, Default)]
struct Expected {
    /// Whether it is on the key's other address.
    moved: bool,
    /// Whether it is on the Business panel.
    business: bool,
    suspended: bool,
    cancelled: bool,
    /// Renewals accepted: periods bought beyond the order's.
    renewals: u32,
    /// Whether an IP or panel change was ever accepted. A change back to the first
    /// request's address and panel makes that request describe the license again only
    /// once it is carried out; until then an order of it is refused with
    /// SERVER_HAS_LICENSE naming the license (safe: nothing is bought).
    reshaped: bool,
}

impl Expected {
    /// Whether an order of the key's first request still describes the license (an
    /// order for another address or panel is a different request).
    fn as_ordered(&self) -> bool {
        !self.moved && !self.business && !self.cancelled
    }

    /// Whether `error` is the refusal of an order of the first request while a change
    /// back to it may still be running on license `id`.
    fn refused_while_reshaping(&self, id: Option<&String>, error: &str) -> bool {
        // The same words on both transports (the REST detail, the gRPC message).
        self.reshaped && id.is_some_and(|id| error.contains(&format!("already has license {id}")))
    }
}

/// Accepted changes by audit action, and the upstream function that carries each out.
const ACTIONS: [(&str, &str); 7] = [
    ("RENEW", "service.prolong"),
    ("CHANGE_IP", "soft.edit"),
    ("CHANGE_PANEL", "service.changepricelist"),
    ("SUSPEND", "soft.suspend"),
    ("RESUME", "soft.resume"),
    ("REISSUE_KEY", "soft.edit"),
    ("CANCEL", "soft.delete"),
];

fn fault() -> impl Strategy<Value = Option<(&'static str, &'static str, f64)>> {
    prop_oneof![
        1 => Just(None),
        3 => (
            prop_oneof![3 => Just(FAULTED[0]), 2 => prop::sample::select(&FAULTED[1..])],
            prop::sample::select(vec!["drop-after-commit", "timeout", "error5xx"]),
            prop::sample::select(vec![0.5, 1.0]),
        )
            .prop_map(Some),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop::sample::select(vec![
        Change::Ip,
        Change::Panel,
        Change::Suspend,
        Change::Resume,
        Change::Reissue,
        Change::Cancel,
    ])
}

/// A contest: the address, and the moves for it. Each has an order for it and a move
/// of a license to it (whichever rival servers they fall on), and up to two more moves
/// of any kind.
fn contest() -> impl Strategy<Value = (usize, Vec<Move>)> {
    let by = || (0..RIVALS.len(), 0..RIVAL_SERVERS);
    let act = prop_oneof![
        2 => Just(Act::Order),
        2 => Just(Act::MoveTo),
        1 => Just(Act::Panel),
        1 => Just(Act::Cancel),
    ];
    let extra = (by(), act).prop_map(|((rival, server), act)| Move { rival, server, act });
    (0..SHARED, by(), by(), prop::collection::vec(extra, 0..=2)).prop_map(
        |(n, (r1, s1), (r2, s2), extra)| {
            let mut moves = vec![
                Move {
                    rival: r1,
                    server: s1,
                    act: Act::MoveTo,
                },
                Move {
                    rival: r2,
                    server: s2,
                    act: Act::Order,
                },
            ];
            moves.extend(extra);
            (n, moves)
        },
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..KEYS).prop_map(Step::Order),
        2 => (0..KEYS).prop_map(Step::Retry),
        2 => Just(Step::Crash),
        2 => fault().prop_map(Step::Fault),
        2 => (0u64..150).prop_map(Step::Pause),
        1 => Just(Step::Reconcile),
        2 => ((0..KEYS), any::<bool>()).prop_map(|(k, slug)| Step::Spelled(k, slug)),
        1 => (0..KEYS).prop_map(Step::CaseVariant),
        2 => (0..KEYS).prop_map(Step::Renew),
        2 => ((0..KEYS), any::<bool>()).prop_map(|(k, bind)| Step::Resolve(k, bind)),
        4 => ((0..KEYS), change()).prop_map(|(k, c)| Step::Change(k, c)),
        5 => contest().prop_map(|(n, moves)| Step::Contest(n, moves)),
    ]
}

/// Whether an answer refused a paid call at the spend cap (REST names the code; a
/// gRPC status's text names its RESOURCE_EXHAUSTED).
fn capped(error: &str) -> bool {
    error.contains("SPEND_CAP_REACHED") || error.contains("resource has been exhausted")
}

/// Whether an answer (`STATUS: BODY`) refused a call that reads the upstream because
/// the upstream did not answer in time, and for no other reason.
fn unanswered(error: &str) -> bool {
    error.starts_with("503:")
        && error.contains("UPSTREAM_UNAVAILABLE")
        && error.contains("timed out waiting for the answer")
}

/// Key k's order in one of two spellings of the same meaning.
fn spelled(order: &Order, slug: bool) -> serde_json::Value {
    if slug {
        serde_json::json!({
            "server": {"id": order.server, "ip": order.ip},
            "panel": "ispmanager-6-pro",
            "periodMonths": 1,
        })
    } else {
        serde_json::json!({"server": {"id": order.server, "ip": order.ip}, "panel": "ISPmanager 6 Pro"})
    }
}

/// A sequence starts with a fault setting (most often a fault), so that orders meet
/// an unreliable upstream in most cases, not only after a fault step happens to come
/// before them.
fn sequence(max_steps: usize) -> impl Strategy<Value = Vec<Step>> {
    (fault(), prop::collection::vec(step(), 1..=max_steps)).prop_map(|(first, mut steps)| {
        steps.insert(0, Step::Fault(first));
        steps
    })
}

fn order_for(key: usize) -> Order {
    Order::new(400 + key)
}

/// The n-th address the rivals contend for.
fn shared_ip(n: usize) -> String {
    Order::new(490 + n).ip
}

/// A rival's server id.
fn rival_server(rival: usize, server: usize) -> String {
    format!("{}-srv-{server}", RIVALS[rival])
}

/// `app`'s REST API as the rival calls it.
fn rival_api(app: &InProcess, rival: usize) -> Api {
    Api::with_token(app.api.base.clone(), &format!("{}-token", RIVALS[rival]))
}

/// Sends one move of a contest for `ip`; the status and body of the answer that
/// settles it (a change of a server without a license answers the 404 of the
/// look-up).
async fn play(app: &InProcess, ip: &str, m: Move) -> Result<(u16, Value), String> {
    let api = rival_api(app, m.rival);
    let server = rival_server(m.rival, m.server);
    if m.act == Act::Order {
        let body = json!({"server": {"id": server, "ip": ip}, "panel": "ISPmanager 6 Pro"});
        return api.post_order(&body, None).await;
    }
    let (status, license) = api.get(&format!("/v1/servers/{server}/license")).await?;
    if status != 200 {
        return Ok((status, license));
    }
    let id = license["id"].as_str().expect("a license id");
    match m.act {
        Act::MoveTo => {
            let path = format!("/v1/licenses/{id}/change-ip");
            api.post(&path, &json!({ "ip": ip }), None).await
        }
        Act::Cancel => api.delete(&format!("/v1/licenses/{id}"), None).await,
        _ => {
            let to = if license["tariffId"] == 55230 {
                "ISPmanager 6 Pro"
            } else {
                "ISPmanager 6 Business"
            };
            let path = format!("/v1/licenses/{id}/change-panel");
            api.post(&path, &json!({"panel": to}), None).await
        }
    }
}

/// Every license of every rival, as the service shows them once none is being
/// ordered any more (faults cleared, at most `within`).
async fn settled_rival_licenses(app: &InProcess, within: Duration) -> Vec<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut all = Vec::new();
        for rival in 0..RIVALS.len() {
            let (status, page) = rival_api(app, rival)
                .get("/v1/licenses?pageSize=100")
                .await
                .expect("the rival's licenses");
            assert_eq!(status, 200, "{page}");
            all.extend(page["licenses"].as_array().cloned().unwrap_or_default());
        }
        let ordering = all
            .iter()
            .any(|l| l["state"] == "PENDING" || l["state"] == "PROVISIONING");
        if !ordering {
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rival orders never settled: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whoever bought or moved a license there: at most one live upstream license on any
/// address.
fn one_live_license_per_address(
    sandbox: &license_facade::sandbox::SandboxHandle,
) -> Result<(), TestCaseError> {
    let mut live = BTreeMap::<String, u32>::new();
    for license in sandbox.licenses() {
        if license.status != 4 {
            *live.entry(license.ip).or_default() += 1;
        }
    }
    for (ip, n) in live {
        prop_assert!(n <= 1, "{} live upstream licenses on {}", n, ip);
    }
    Ok(())
}

/// Key k's other address, the one IP changes move its license to.
fn moved_ip(key: usize) -> String {
    Order::new(450 + key).ip
}

/// Key k's address as `expected` has it.
fn ip_of(key: usize, expected: &Expected) -> String {
    if expected.moved {
        moved_ip(key)
    } else {
        order_for(key).ip
    }
}

/// Upstream licenses (deleted ones too) on either of key k's addresses.
fn upstream_of(
    sandbox: &license_facade::sandbox::SandboxHandle,
    key: usize,
) -> Vec<license_facade::sandbox::SandboxLicense> {
    let ips = [order_for(key).ip, moved_ip(key)];
    sandbox
        .licenses()
        .into_iter()
        .filter(|l| ips.contains(&l.ip))
        .collect()
}

/// The REST request of `change` for license `id` whose accepted changes are `expected`.
fn change_request(key: usize, change: Change, expected: &Expected) -> (String, Value) {
    match change {
        Change::Ip => {
            let to = ip_of(
                key,
                &Expected {
                    moved: !expected.moved,
                    ..*expected
                },
            );
            ("/change-ip".into(), json!({ "ip": to }))
        }
        Change::Panel => {
            let to = if expected.business {
                "ISPmanager 6 Pro"
            } else {
                "ISPmanager 6 Business"
            };
            ("/change-panel".into(), json!({ "panel": to }))
        }
        Change::Suspend => ("/suspend".into(), json!({})),
        Change::Resume => ("/resume".into(), json!({})),
        Change::Reissue => ("/reissue-key".into(), json!({})),
        Change::Cancel => (String::new(), Value::Null),
    }
}

/// `date` plus `n` months one at a time, as renewals move an expiry (the day clamped
/// to a shorter month stays clamped).
fn plus_months(mut date: time::Date, n: u32) -> time::Date {
    for _ in 0..n {
        let (year, month) = match date.month() {
            time::Month::December => (date.year() + 1, time::Month::January),
            m => (date.year(), m.next()),
        };
        let day = date.day().min(month.length(year));
        date = time::Date::from_calendar_date(year, month, day).expect("a valid date");
    }
    date
}

async fn retry_over_grpc(app: &InProcess, order: &Order) -> Result<String, String> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.grpc_addr))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client = LicenseServiceClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
        let token = format!("Bearer {}", license_facade::auth::SANDBOX_TOKEN);
        r.metadata_mut()
            .insert("authorization", token.parse().unwrap());
        Ok(r)
    });
    let response = client
        .order_license(pb::OrderLicenseRequest {
            server: Some(pb::Server {
                id: order.server.clone(),
                ip: order.ip.clone(),
                hostname: String::new(),
            }),
            panel: "ISPmanager 6 Pro".into(),
            ..Default::default()
        })
        .await
        .map_err(|s| s.to_string())?;
    Ok(response.into_inner().license.expect("a license").id)
}

/// Gives license `id`'s order a moment (at most [`ORDER_SETTLE`]) to settle, so that
/// changes meet a live license more often than one still being ordered.
async fn settled_order(app: &InProcess, id: &str) {
    let deadline = std::time::Instant::now() + ORDER_SETTLE;
    while std::time::Instant::now() < deadline {
        let state = app.api.license(id).await["state"].clone();
        if state != "PENDING" && state != "PROVISIONING" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_case(shape: Shape, steps: Vec<Step>) -> Result<Figures, TestCaseError> {
    // The account also lists licenses bought elsewhere in every status an order may be
    // in, so that look-ups can prove an order absent and re-sends are part of the run.
    let sandbox = start_sandbox(shape.config()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let timings = Timings {
        paid_call_cap: Some(PAID_CAP),
        ..Timings::default()
    };
    let mut app = InProcess::start(&db, &sandbox.url, timings).await;
    let mut acknowledged = BTreeMap::<usize, String>::new();
    let mut expected = BTreeMap::<usize, Expected>::new();
    // Changes accepted, by audit action.
    let mut accepted = BTreeMap::<&'static str, u64>::new();
    let mut crashes = 0;
    // Paid calls accepted besides orders: renewals and panel changes.
    let mut paid_changes = 0u32;
    let paid = |acknowledged: &BTreeMap<usize, String>, paid_changes: u32| {
        acknowledged.len() as u32 + paid_changes
    };
    // Order steps only while the key's first request still describes its license.
    let orderable = |expected: &BTreeMap<usize, Expected>, k: usize| {
        expected.get(&k).is_none_or(Expected::as_ordered)
    };

    for step in steps {
        match step {
            Step::Order(k) | Step::Retry(k) | Step::Spelled(k, _) | Step::CaseVariant(k)
                if !orderable(&expected, k) => {}
            Step::Order(k) | Step::Retry(k) => {
                let order = order_for(k);
                let id = match step {
                    Step::Order(_) => app.api.order(&order).await,
                    _ => retry_over_grpc(&app, &order).await,
                };
                let id = match id {
                    // A new order past the cap: refused, nothing bought, and the cap
                    // counted exactly.
                    Err(e) if capped(&e) && !acknowledged.contains_key(&k) => {
                        prop_assert_eq!(paid(&acknowledged, paid_changes), PAID_CAP, "{}", e);
                        continue;
                    }
                    Err(e)
                        if expected.get(&k).is_some_and(|m| {
                            m.refused_while_reshaping(acknowledged.get(&k), &e)
                        }) =>
                    {
                        continue;
                    }
                    other => {
                        other.map_err(|e| TestCaseError::fail(format!("order refused: {e}")))?
                    }
                };
                if let Some(first) = acknowledged.get(&k) {
                    prop_assert_eq!(first, &id, "a retry returns the same license");
                }
                acknowledged.insert(k, id);
                prop_assert!(
                    paid(&acknowledged, paid_changes) <= PAID_CAP,
                    "an order acknowledged past the cap"
                );
            }
            Step::Spelled(k, slug) => {
                let order = order_for(k);
                let key = format!("model-{k}");
                let (status, body) = app
                    .api
                    .post_order(&spelled(&order, slug), Some(&key))
                    .await
                    .map_err(TestCaseError::fail)?;
                if status == 429 && !acknowledged.contains_key(&k) {
                    prop_assert_eq!(&body["code"], "SPEND_CAP_REACHED");
                    prop_assert_eq!(paid(&acknowledged, paid_changes), PAID_CAP);
                    continue;
                }
                if status == 409
                    && expected.get(&k).is_some_and(|m| {
                        m.refused_while_reshaping(acknowledged.get(&k), &body.to_string())
                    })
                {
                    continue;
                }
                prop_assert!((200..300).contains(&status), "{} {}", status, body);
                let id = body["id"].as_str().expect("an id").to_owned();
                if let Some(first) = acknowledged.get(&k) {
                    prop_assert_eq!(first, &id, "the same order, spelt otherwise");
                }
                acknowledged.insert(k, id);
                prop_assert!(
                    paid(&acknowledged, paid_changes) <= PAID_CAP,
                    "an order acknowledged past the cap"
                );
            }
            Step::CaseVariant(k) => {
                // Only while key k has its license (no fault here ends one FAILED, so
                // an acknowledged key's license stays live).
                if acknowledged.contains_key(&k) {
                    let order = order_for(k);
                    let variant = Order {
                        server: order.server.to_uppercase(),
                        ip: order.ip.clone(),
                    };
                    let (status, body) = app
                        .api
                        .post_order(&variant.body(), None)
                        .await
                        .map_err(TestCaseError::fail)?;
                    // Refused either way: the IP has a license, or (checked first) the
                    // client is at its cap.
                    if status == 429 {
                        prop_assert_eq!(&body["code"], "SPEND_CAP_REACHED");
                        prop_assert_eq!(paid(&acknowledged, paid_changes), PAID_CAP);
                    } else {
                        prop_assert_eq!(status, 409, "{}", body);
                        prop_assert_eq!(&body["code"], "IP_HAS_LICENSE");
                    }
                }
            }
            Step::Renew(k) => {
                if let Some(id) = acknowledged.get(&k) {
                    settled_order(&app, id).await;
                    let (status, body) = app.api.renew(id).await.map_err(TestCaseError::fail)?;
                    match status {
                        200..300 => {
                            paid_changes += 1;
                            *accepted.entry("RENEW").or_default() += 1;
                            expected.entry(k).or_default().renewals += 1;
                            prop_assert!(paid(&acknowledged, paid_changes) <= PAID_CAP);
                        }
                        429 => {
                            prop_assert_eq!(&body["code"], "SPEND_CAP_REACHED");
                            prop_assert_eq!(paid(&acknowledged, paid_changes), PAID_CAP);
                        }
                        // Not ACTIVE yet, or a change still running.
                        409 => {}
                        _ => prop_assert!(false, "renewal answered {} {}", status, body),
                    }
                }
            }
            Step::Resolve(k, bind) => {
                let Some(id) = acknowledged.get(&k) else {
                    continue;
                };
                // The person comes once the workflow has stopped (or not at all).
                let settle = std::time::Instant::now() + Duration::from_millis(1500);
                let mut state = app.api.license(id).await["state"].clone();
                while (state == "PENDING" || state == "PROVISIONING")
                    && std::time::Instant::now() < settle
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    state = app.api.license(id).await["state"].clone();
                }
                if state != "NEEDS_ATTENTION" {
                    continue;
                }
                let upstream = live_on(&sandbox.handle, &order_for(k).ip);
                let (status, body) = match (bind, upstream.as_slice()) {
                    (true, [one]) => app.api.resolve(id, "BIND", Some(one.id)).await,
                    (true, _) => continue,
                    (false, _) => app.api.resolve(id, "RETRY", None).await,
                }
                .map_err(TestCaseError::fail)?;
                match status {
                    200..300 => {}
                    // An order that reached the upstream is not retried; an upstream
                    // license still processing is not bound yet.
                    409 => prop_assert!(
                        ["ORDER_REACHED_UPSTREAM", "UPSTREAM_LICENSE_NOT_READY"]
                            .contains(&body["code"].as_str().unwrap_or_default()),
                        "{}",
                        body
                    ),
                    // BIND reads the upstream license first; unanswered in the 300 ms
                    // (see `Step::Reconcile`), nothing is bound and a person looks on.
                    503 if bind && unanswered(&format!("{status}: {body}")) => {}
                    _ => prop_assert!(false, "resolve answered {} {}", status, body),
                }
            }
            Step::Change(n, change) => {
                // One of the keys ordered so far, so that most change steps change one.
                let key = acknowledged
                    .keys()
                    .nth(n % acknowledged.len().max(1))
                    .copied();
                if let Some((k, id)) = key.and_then(|k| Some((k, acknowledged.get(&k)?))) {
                    settled_order(&app, id).await;
                    let model = expected.entry(k).or_default();
                    let (path, body) = change_request(k, change, model);
                    let path = format!("/v1/licenses/{id}{path}");
                    let (status, body) = match change {
                        Change::Cancel => app.api.delete(&path, None).await,
                        _ => app.api.post(&path, &body, None).await,
                    }
                    .map_err(TestCaseError::fail)?;
                    match status {
                        200..300 => {
                            let action = match change {
                                Change::Ip => {
                                    model.moved = !model.moved;
                                    model.reshaped = true;
                                    "CHANGE_IP"
                                }
                                Change::Panel => {
                                    model.business = !model.business;
                                    model.reshaped = true;
                                    paid_changes += 1;
                                    prop_assert!(paid(&acknowledged, paid_changes) <= PAID_CAP);
                                    "CHANGE_PANEL"
                                }
                                Change::Suspend => {
                                    model.suspended = true;
                                    "SUSPEND"
                                }
                                Change::Resume => {
                                    model.suspended = false;
                                    "RESUME"
                                }
                                Change::Reissue => "REISSUE_KEY",
                                Change::Cancel => {
                                    model.cancelled = true;
                                    "CANCEL"
                                }
                            };
                            *accepted.entry(action).or_default() += 1;
                        }
                        429 if change == Change::Panel => {
                            prop_assert_eq!(&body["code"], "SPEND_CAP_REACHED");
                            prop_assert_eq!(paid(&acknowledged, paid_changes), PAID_CAP);
                        }
                        // Not in a state for it, or a change still running.
                        409 => {}
                        _ => prop_assert!(false, "{:?} answered {} {}", change, status, body),
                    }
                }
            }
            Step::Contest(n, moves) => {
                let ip = shared_ip(n);
                let answers =
                    futures::future::join_all(moves.iter().map(|m| play(&app, &ip, *m))).await;
                for (m, answer) in moves.iter().zip(answers) {
                    let (status, body) = answer.map_err(TestCaseError::fail)?;
                    let code = body["code"].as_str().unwrap_or_default();
                    match (m.act, status) {
                        (Act::MoveTo, 200..300) => {
                            *accepted.entry("CHANGE_IP").or_default() += 1;
                        }
                        (Act::Panel, 200..300) => {
                            *accepted.entry("CHANGE_PANEL").or_default() += 1;
                        }
                        (Act::Cancel, 200..300) => {
                            *accepted.entry("CANCEL").or_default() += 1;
                        }
                        // Ordered, or the server's license already is this order.
                        (Act::Order, 200..300) => {}
                        // The address has a license or a step in flight holds it; or
                        // the server has a license elsewhere.
                        (Act::Order, 409) => prop_assert!(
                            ["IP_HAS_LICENSE", "SERVER_HAS_LICENSE"].contains(&code),
                            "{:?}: {}",
                            m,
                            body
                        ),
                        // No license to change yet.
                        (_, 404) => {}
                        (_, 409) => prop_assert!(
                            [
                                "IP_HAS_LICENSE",
                                "INVALID_LICENSE_STATE",
                                "SAME_IP",
                                "SAME_PANEL",
                                "OPERATION_IN_PROGRESS",
                            ]
                            .contains(&code),
                            "{:?}: {}",
                            m,
                            body
                        ),
                        _ => prop_assert!(false, "{:?} answered {} {}", m, status, body),
                    }
                }
            }
            Step::Crash => {
                app.crash().await;
                crashes += 1;
                app = InProcess::start(&db, &sandbox.url, timings).await;
            }
            Step::Fault(None) => sandbox.handle.set_faults(vec![]),
            Step::Fault(Some((func, kind, rate))) => {
                sandbox.set_fault(&format!("{func}:{kind}:{rate}"));
            }
            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Step::Reconcile => {
                let report = app.api.reconcile().await;
                // A list that may be narrowed is refused for reconciliation. A complete
                // one is reconciled unless the upstream left the list unanswered for
                // the 300 ms the client waits here: no fault touches the list, but the
                // sandbox shares this runtime's two threads with the service, and on a
                // machine running other test suites beside this one a read can wait
                // that long for a core. That refusal is the service's right answer to
                // a slow upstream, and a run must not fail for the machine's load.
                if shape.list_complete() {
                    match report {
                        Ok(_) => {}
                        Err(e) if unanswered(&e) => {}
                        Err(e) => {
                            return Err(TestCaseError::fail(format!("reconcile failed: {e}")));
                        }
                    }
                } else {
                    prop_assert!(report.is_err(), "a filtered list was reconciled");
                }
            }
        }
        for (action, func) in ACTIONS {
            // Two actions share `soft.edit`: their sum bounds it.
            let allowed: u64 = ACTIONS
                .iter()
                .filter(|(_, f)| *f == func)
                .map(|(a, _)| accepted.get(a).copied().unwrap_or(0))
                .sum();
            prop_assert!(
                sandbox.handle.carried_out(func) <= allowed,
                "{} carried out more often than accepted ({} for {})",
                func,
                sandbox.handle.carried_out(func),
                action
            );
        }
        one_live_license_per_address(&sandbox.handle)?;
        for k in 0..KEYS {
            let upstream = upstream_of(&sandbox.handle, k).len();
            prop_assert!(
                upstream <= 1,
                "{} upstream licenses for key {}",
                upstream,
                k
            );
            if !acknowledged.contains_key(&k) {
                prop_assert_eq!(upstream, 0, "an upstream license for a key never ordered");
            }
        }
    }

    sandbox.handle.set_faults(vec![]);
    // Every accepted change finishes (faults cleared, recovery tells what was done),
    // before the store and the upstream are compared: it succeeds, or, when its
    // outcome stayed unknown past the re-send limit, a person looks. None is refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut ended = BTreeMap::<&str, (u64, u64)>::new();
    for (action, count) in &accepted {
        loop {
            let succeeded = app.api.audit_count(action, "SUCCEEDED").await as u64;
            let attention = app.api.audit_count(action, "NEEDS_ATTENTION").await as u64;
            // A refusal names itself (and the license's state) in the entry's detail.
            let failed = app.api.audit_entries(action, "FAILED").await;
            prop_assert!(failed.is_empty(), "{} ended FAILED: {:?}", action, failed);
            if succeeded + attention >= *count {
                prop_assert_eq!(succeeded + attention, *count, "{}", action);
                ended.insert(action, (succeeded, attention));
                break;
            }
            prop_assert!(
                std::time::Instant::now() < deadline,
                "{} {} did not finish",
                count,
                action
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (action, func) in ACTIONS {
        // Those that succeeded were carried out once; those handed to a person at
        // most once.
        let (succeeded, attention) = ACTIONS
            .iter()
            .filter(|(_, f)| *f == func)
            .filter_map(|(a, _)| ended.get(a))
            .fold((0, 0), |(s, n), (a, b)| (s + a, n + b));
        let carried = sandbox.handle.carried_out(func);
        prop_assert!(
            (succeeded..=succeeded + attention).contains(&carried),
            "{} carried out {} times for {} succeeded and {} handed to a person ({})",
            func,
            carried,
            succeeded,
            attention,
            action
        );
    }
    let mut attention = 0;
    let mut attention_unbound = 0;
    for (k, id) in &acknowledged {
        let order = order_for(*k);
        let model = expected.get(k).copied().unwrap_or_default();
        let license = app
            .api
            .license_until(id, &["ACTIVE", "SUSPENDED", "CANCELLED", "NEEDS_ATTENTION"])
            .await;
        if license["state"] != "NEEDS_ATTENTION" {
            let state = match (model.cancelled, model.suspended) {
                (true, _) => "CANCELLED",
                (false, true) => "SUSPENDED",
                (false, false) => "ACTIVE",
            };
            prop_assert_eq!(&license["state"], state, "{:?}", model);
            let upstream = upstream_of(&sandbox.handle, *k);
            prop_assert_eq!(upstream.len(), 1, "one upstream license: {:?}", upstream);
            let upstream = &upstream[0];
            let status = match state {
                "CANCELLED" => 4,
                "SUSPENDED" => 3,
                _ => 2,
            };
            prop_assert_eq!(upstream.status, status);
            prop_assert_eq!(&upstream.ip, &ip_of(*k, &model));
            prop_assert_eq!(&license["ip"], &ip_of(*k, &model));
            let tariff = if model.business { 55230 } else { 55228 };
            prop_assert_eq!(upstream.tariff_id, tariff);
            prop_assert_eq!(&license["tariffId"], tariff);
            // The periods bought upstream: the order's and one per accepted renewal.
            let expiry = plus_months(upstream.create_time.date(), 1 + model.renewals);
            prop_assert_eq!(upstream.expire_date, expiry, "{:?}", model);
            if state != "CANCELLED" {
                prop_assert_eq!(
                    license["licenseKey"].as_str(),
                    Some(upstream.license_key.as_str())
                );
                prop_assert!(
                    license["expireTime"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&expiry.to_string())),
                    "the service shows the expiry {}: {}",
                    expiry,
                    license
                );
            }
            if model.as_ordered() && !model.suspended {
                assert_agree(&sandbox.handle, &order, &license);
            }
        } else {
            // A person looks; nothing was bought twice meanwhile.
            let upstream = upstream_of(&sandbox.handle, *k)
                .iter()
                .filter(|l| l.status != 4)
                .count();
            prop_assert!(upstream <= 1, "{} upstream licenses: {}", upstream, license);
            attention += 1;
            // The reconciler reports an upstream license the store has not bound (a
            // stuck order's) as an orphan; one bound to a license whose change is
            // stuck is the store's, and its state is left to the person.
            if license["upstreamId"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                attention_unbound += upstream as u64;
            }
        }
    }
    for k in (0..KEYS).filter(|k| !acknowledged.contains_key(k)) {
        prop_assert!(upstream_of(&sandbox.handle, k).is_empty());
    }
    one_live_license_per_address(&sandbox.handle)?;
    for license in settled_rival_licenses(&app, Duration::from_secs(30)).await {
        let ip = license["ip"].as_str().unwrap_or_default();
        let upstream_id = license["upstreamId"].as_str().unwrap_or_default();
        match license["state"].as_str().unwrap_or_default() {
            // Every accepted change has ended: the upstream has it where we do.
            "ACTIVE" | "SUSPENDED" => {
                let up = sandbox
                    .handle
                    .license(upstream_id.parse().expect("an upstream id"))
                    .expect("the upstream license");
                prop_assert_eq!(&up.ip, ip, "{}", license);
            }
            // A stuck order's purchase, if it happened, is an orphan to the
            // reconciler: the address is the license's alone, so it is the one there.
            "NEEDS_ATTENTION" if upstream_id.is_empty() => {
                attention_unbound += live_on(&sandbox.handle, ip).len() as u64;
            }
            _ => {}
        }
    }
    let ips: Vec<String> = acknowledged
        .keys()
        .map(|k| ip_of(*k, &expected.get(k).copied().unwrap_or_default()))
        .collect();
    // On the keys' addresses: the rivals' ones see licenses deleted (cancelled) and
    // others bought or moved there after them.
    let key_ips: Vec<String> = (0..KEYS)
        .flat_map(|k| [order_for(k).ip, moved_ip(k)])
        .collect();
    let (duplicates, without_license) = duplicates_and_lost_within(
        &sandbox.handle,
        |ip| key_ips.iter().any(|k| k == ip),
        ips.iter().map(String::as_str),
    );
    prop_assert_eq!(duplicates, 0);
    // Only a license handed to a person may lack its upstream license.
    prop_assert!(without_license <= attention, "{} lost", without_license);
    if shape.list_complete() {
        // This reconciliation must run, so it gets the time a production client waits
        // (a service started on the same file, everything settled): the 300 ms of the
        // steps can run out on a loaded machine (see `Step::Reconcile`).
        // (Faults end too: nothing is left to send, and a hang would now last 30 s.)
        app.stop().await;
        sandbox.handle.set_faults(vec![]);
        let patient = Timings {
            request_timeout: Duration::from_secs(30),
            ..timings
        };
        app = InProcess::start(&db, &sandbox.url, patient).await;
        // The licenses bought elsewhere are orphans too.
        let witnesses = sandbox
            .handle
            .licenses()
            .iter()
            .filter(|l| is_witness(l))
            .count() as u64;
        let report = app
            .api
            .reconcile()
            .await
            .map_err(|e| TestCaseError::fail(format!("reconcile failed: {e}")))?;
        prop_assert_eq!(
            (
                count(&report["orphanCount"]),
                count(&report["missingCount"]),
                count(&report["mismatchCount"])
            ),
            (attention_unbound + witnesses, 0, 0),
            "the reconciler finds the store and the upstream in step, but for the licenses a person must look at: {}",
            report
        );
    }
    let lost = without_license.saturating_sub(attention);
    app.crash().await;
    Ok(Figures {
        runs: 1,
        orders: acknowledged.len() as u64,
        changes: accepted.values().sum(),
        upstream_calls: sandbox.orders_sent(),
        crashes,
        duplicates,
        lost,
        recovered: None,
    })
}

/// Runs `cases` sequences against every shape; returns the figures of all of them.
fn check_sequences(cases: u32, max_steps: usize) -> Figures {
    let mut total = Figures::default();
    for shape in SHAPES {
        let figures = check_shape(shape, cases, max_steps);
        figures.report(&format!("model, {shape:?}"));
        total.add(figures);
    }
    total
}

fn check_shape(shape: Shape, cases: u32, max_steps: usize) -> Figures {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 32,
        // Sequences are generated by a runner here, not by the `proptest!` macro: there
        // is no source file to keep regressions next to.
        failure_persistence: None,
        ..Config::default()
    });
    let total = RefCell::new(Figures::default());
    let result = runner.run(&sequence(max_steps), |steps| {
        let figures = runtime.block_on(run_case(shape, steps))?;
        total.borrow_mut().add(figures);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{shape:?}: {e}");
    }
    total.into_inner()
}

#[test]
fn random_order_retry_crash_fault_sequences_never_order_twice() {
    let figures = check_sequences(3, 12);
    figures.report("model, 7 shapes x 3 cases x <=13 steps");
    assert_eq!((figures.duplicates, figures.lost), (0, 0));
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn many_longer_random_sequences_never_order_twice() {
    let figures = check_sequences(16, 24);
    figures.report("model, 7 shapes x 16 cases x <=25 steps (slow)");
    assert_eq!((figures.duplicates, figures.lost), (0, 0));
}
