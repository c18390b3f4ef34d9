//! The workflow against an upstream whose answers to paid calls cannot be read: the
//! same rule holds for an order and for a change (counted, shown on the license,
//! never sent again), whichever kind of step met it. The work is stored through the
//! use cases, as the transports store it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Worker, WorkflowConfig};
use crate::billmanager::{
    Billmanager, LicenseList, OrderParams, UpstreamError, UpstreamId, UpstreamLicense,
    UpstreamStatus, UpstreamTariff,
};
use crate::domain::{ClientName, License, LicenseState, PanelCatalog, Phase};
use crate::service::{Call, LicenseService, OrderInput};

/// What the fake upstream does with a paid call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Carries it out and answers clearly.
    Clear,
    /// Carries it out; the answer cannot be read.
    DoneUnreadable,
    /// Does not carry it out; the answer cannot be read.
    LostUnreadable,
    /// Does not carry it out, and says so.
    Refused,
}

/// The upstream's date `days` from today.
fn in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .date()
        .to_string()
}

/// An upstream of a few licenses in memory, every one of them listed.
struct Fake {
    mode: Mutex<Mode>,
    licenses: Mutex<Vec<UpstreamLicense>>,
    /// Paid calls received, by function.
    calls: Mutex<HashMap<&'static str, u32>>,
    /// An order waits here for a permit before it is received: a test holds them
    /// all ([`GATE`]) to keep orders from being answered.
    gate: tokio::sync::Semaphore,
}

/// The permits of [`Fake::gate`].
const GATE: u32 = 1 << 20;

impl Fake {
    fn new() -> Self {
        Self {
            mode: Mutex::new(Mode::Clear),
            licenses: Mutex::new(Vec::new()),
            calls: Mutex::default(),
            gate: tokio::sync::Semaphore::new(GATE as usize),
        }
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self, func: &str) -> u32 {
        self.calls.lock().unwrap().get(func).copied().unwrap_or(0)
    }

    /// Counts the call and answers as the mode says, carrying `change` out unless the
    /// request is lost.
    fn paid<T>(
        &self,
        func: &'static str,
        change: impl FnOnce(&mut Vec<UpstreamLicense>) -> T,
    ) -> Result<T, UpstreamError> {
        *self.calls.lock().unwrap().entry(func).or_default() += 1;
        let mode = *self.mode.lock().unwrap();
        if mode == Mode::LostUnreadable {
            return Err(UpstreamError::Unreadable(format!(
                "{func} answer not understood"
            )));
        }
        if mode == Mode::Refused {
            return Err(UpstreamError::Refused {
                kind: "value".into(),
                object: Some("ip".into()),
                message: format!("{func} refused"),
            });
        }
        let done = change(&mut self.licenses.lock().unwrap());
        match mode {
            Mode::Clear => Ok(done),
            _ => Err(UpstreamError::Unreadable(format!(
                "{func} answer not understood"
            ))),
        }
    }

    fn edit(
        &self,
        func: &'static str,
        id: UpstreamId,
        f: impl FnOnce(&mut UpstreamLicense),
    ) -> Result<(), UpstreamError> {
        self.paid(func, |all| {
            if let Some(l) = all.iter_mut().find(|l| l.id == id) {
                f(l);
            }
        })
    }
}

#[async_trait]
impl Billmanager for Fake {
    async fn order_license(&self, p: &OrderParams) -> Result<UpstreamId, UpstreamError> {
        drop(self.gate.acquire().await);
        self.paid("soft.order.param", |all| {
            let id = all.len() as u64 + 100;
            all.push(UpstreamLicense {
                id,
                ip: Some(p.ip.to_string()),
                licname: Some(p.licname.clone()),
                remote_id: Some(p.remote_id.clone()),
                status: UpstreamStatus::Active,
                tariff_id: Some(p.tariff_id),
                tariff_name: None,
                license_key: Some(format!("KEY-{id}")),
                period: Some(p.period),
                create_date: Some(time::OffsetDateTime::now_utc().date().to_string()),
                expire_date: Some(in_days(30)),
                ip_change_date: None,
                key_change_date: None,
                ip_changed: None,
                key_changed: None,
            });
            id
        })
    }

    async fn license_details(&self, id: UpstreamId) -> Result<UpstreamLicense, UpstreamError> {
        let all = self.licenses.lock().unwrap();
        all.iter()
            .find(|l| l.id == id)
            .cloned()
            .ok_or_else(|| UpstreamError::Refused {
                kind: "missed".into(),
                object: Some("elid".into()),
                message: "no such license".into(),
            })
    }

    async fn list_licenses(&self) -> Result<LicenseList, UpstreamError> {
        let mut licenses = self.licenses.lock().unwrap().clone();
        // Licenses of someone else in every status a new order may be in, so that a
        // list without ours proves it absent.
        for (i, code) in [1, 2, 5].into_iter().enumerate() {
            licenses.push(UpstreamLicense {
                id: 900 + i as u64,
                ip: Some(format!("198.51.100.{i}")),
                licname: Some("someone-else".into()),
                remote_id: None,
                status: UpstreamStatus::from_code(code),
                tariff_id: None,
                tariff_name: None,
                license_key: None,
                period: None,
                create_date: None,
                expire_date: None,
                ip_change_date: None,
                key_change_date: None,
                ip_changed: None,
                key_changed: None,
            });
        }
        Ok(LicenseList {
            licenses,
            incomplete: None,
        })
    }

    async fn ping(&self) -> Result<(), UpstreamError> {
        Ok(())
    }

    async fn price_list(&self) -> Result<Vec<UpstreamTariff>, UpstreamError> {
        Ok(Vec::new())
    }

    async fn renew_license(
        &self,
        id: UpstreamId,
        _period: i32,
    ) -> Result<Option<String>, UpstreamError> {
        self.edit("service.prolong", id, |l| l.expire_date = Some(in_days(61)))
            .map(|()| Some(in_days(61)))
    }

    async fn change_ip(&self, id: UpstreamId, ip: IpAddr) -> Result<(), UpstreamError> {
        self.edit("soft.edit", id, |l| l.ip = Some(ip.to_string()))
    }

    async fn change_tariff(
        &self,
        id: UpstreamId,
        tariff_id: u32,
        _period: i32,
    ) -> Result<(), UpstreamError> {
        self.edit("service.changepricelist", id, |l| {
            l.tariff_id = Some(tariff_id);
        })
    }

    async fn suspend_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.edit("soft.suspend", id, |l| l.status = UpstreamStatus::Suspended)
    }

    async fn resume_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.edit("soft.resume", id, |l| l.status = UpstreamStatus::Active)
    }

    async fn delete_license(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.edit("soft.delete", id, |l| l.status = UpstreamStatus::Deleted)
    }

    async fn reissue_key(&self, id: UpstreamId) -> Result<(), UpstreamError> {
        self.edit("soft.edit", id, |l| {
            l.license_key = Some(format!("KEY-{id}-new"));
        })
    }

    async fn move_license(
        &self,
        id: UpstreamId,
        ip: IpAddr,
        name: &str,
    ) -> Result<(), UpstreamError> {
        self.edit("soft.edit", id, |l| {
            l.ip = Some(ip.to_string());
            l.licname = Some(name.to_owned());
        })
    }
}

/// A service on a fresh in-memory store over `fake`, with a quick workflow.
async fn service(fake: Arc<Fake>) -> (LicenseService, Worker) {
    let store = crate::store::connect("sqlite::memory:")
        .await
        .expect("the in-memory store opens");
    let service = LicenseService::new(store, fake, Arc::new(PanelCatalog::defaults()));
    let worker = service.worker(WorkflowConfig {
        concurrency: 1,
        settle_interval: Duration::from_millis(5),
        settle_checks: 2,
        call_timeout: Duration::from_millis(200),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        retry_max: Duration::from_millis(20),
        max_resends: 1,
        ..WorkflowConfig::default()
    });
    (service, worker)
}

/// Runs the worker until the license's latest operation is closed; returns the
/// license as it left it. Nothing else runs: when no step is due, waits for the next
/// one's due time (the workflow's own schedule, at most a few settle intervals).
async fn run_to_end(service: &LicenseService, worker: &Worker, license: &License) -> License {
    for _ in 0..1000 {
        let op = service
            .latest_operation(None, &license.id.to_string())
            .await
            .unwrap()
            .expect("an operation");
        if !op.phase.is_open() {
            return service
                .get_license(None, &license.id.to_string())
                .await
                .unwrap();
        }
        if !worker.run_once().await.unwrap() {
            let wait = op.run_after - time::OffsetDateTime::now_utc();
            tokio::time::sleep(wait.try_into().unwrap_or(Duration::from_millis(1))).await;
        }
    }
    panic!("the operation of {} never closed", license.id);
}

fn anomalies(kind: &str) -> u64 {
    let wanted = format!("{}{{kind=\"{kind}\"}} ", crate::metrics::UPSTREAM_ANOMALIES);
    crate::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&wanted).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

fn code(license: &License) -> Option<&str> {
    license.last_error.as_ref().map(|e| e.code.as_str())
}

fn order_input(server: &str, ip: &str) -> OrderInput {
    OrderInput {
        server_id: server.into(),
        ip: ip.into(),
        hostname: String::new(),
        panel: "ISPmanager 6 Lite".into(),
        period_months: 1,
        auto_renew: false,
        nodes: None,
        trial: false,
    }
}

/// Runs the worker until `func` has been sent once: an attempt whose INTENT took
/// longer to commit than its allowance is not sent, and is claimed again at once.
async fn run_until_sent(worker: &Worker, fake: &Fake, func: &str) {
    for _ in 0..100 {
        if fake.calls(func) > 0 {
            return;
        }
        worker.run_once().await.unwrap();
    }
    panic!("{func} was never sent");
}

/// Orders a license with clear answers and runs it to ACTIVE.
async fn active_license(service: &LicenseService, worker: &Worker, n: u8) -> License {
    let call = Call::of(ClientName::anonymous());
    let ordered = service
        .order_license(
            &call,
            order_input(&format!("srv-{n}"), &format!("203.0.113.{n}")),
        )
        .await
        .expect("the order is accepted");
    let license = run_to_end(service, worker, &ordered.license).await;
    assert_eq!(license.state, LicenseState::Active, "{license:?}");
    license
}

#[tokio::test]
async fn an_unreadable_answer_is_counted_shown_and_never_resent_for_an_order_and_a_change() {
    crate::metrics::install();
    let fake = Arc::new(Fake::new());
    let (service, worker) = service(fake.clone()).await;
    let call = Call::of(ClientName::anonymous());

    // The order.
    fake.set_mode(Mode::LostUnreadable);
    let before = anomalies("unreadable_order");
    let ordered = service
        .order_license(&call, order_input("srv-1", "203.0.113.1"))
        .await
        .unwrap();
    run_until_sent(&worker, &fake, "soft.order.param").await;
    let after_send = service
        .get_license(None, &ordered.license.id.to_string())
        .await
        .unwrap();
    assert_eq!(code(&after_send), Some("UPSTREAM_ANSWER_UNREADABLE"));
    assert_eq!(anomalies("unreadable_order"), before + 1);
    let order = run_to_end(&service, &worker, &ordered.license).await;
    assert_eq!(order.state, LicenseState::NeedsAttention, "{order:?}");
    assert_eq!(code(&order), Some("UPSTREAM_ANSWER_UNREADABLE"));
    assert_eq!(fake.calls("soft.order.param"), 1, "never sent again");

    // A change: the same rule.
    fake.set_mode(Mode::Clear);
    let license = active_license(&service, &worker, 2).await;
    fake.set_mode(Mode::LostUnreadable);
    let before = anomalies("unreadable_change");
    service
        .renew(&call, &license.id.to_string(), 1)
        .await
        .expect("the renewal is accepted");
    run_until_sent(&worker, &fake, "service.prolong").await;
    let after_send = service
        .get_license(None, &license.id.to_string())
        .await
        .unwrap();
    assert_eq!(code(&after_send), Some("UPSTREAM_ANSWER_UNREADABLE"));
    assert_eq!(anomalies("unreadable_change"), before + 1);
    let renewed = run_to_end(&service, &worker, &license).await;
    assert_eq!(renewed.state, LicenseState::NeedsAttention, "{renewed:?}");
    assert_eq!(code(&renewed), Some("UPSTREAM_ANSWER_UNREADABLE"));
    assert_eq!(fake.calls("service.prolong"), 1, "never sent again");

    // A change carried out whose answer cannot be read: found, and confirmed.
    fake.set_mode(Mode::Clear);
    let license = active_license(&service, &worker, 3).await;

    fake.set_mode(Mode::DoneUnreadable);
    service
        .suspend(&call, &license.id.to_string())
        .await
        .expect("the suspension is accepted");
    let suspended = run_to_end(&service, &worker, &license).await;

    assert_eq!(suspended.state, LicenseState::Suspended, "{suspended:?}");
    assert_eq!(suspended.last_error, None, "confirmed, so nothing is wrong");
    assert_eq!(fake.calls("soft.suspend"), 1);
}

#[tokio::test]
async fn an_unpark_refused_upstream_parks_the_license_again_and_one_carried_out_is_found_done() {
    let fake = Arc::new(Fake::new());
    let (service, worker) = service(fake.clone()).await;
    let license = active_license(&service, &worker, 7).await;
    let call = Call::of(ClientName::anonymous());
    let id = license.id.to_string();
    let released = service.release(&call, &id).await.unwrap();
    assert_eq!(released.cancelled, None);
    let parked = run_to_end(&service, &worker, &license).await;
    assert_eq!(parked.state, LicenseState::Parked, "{parked:?}");
    let upstream_id = parked.upstream_id.unwrap();

    // Refused: parked again, on the address it kept, and the new one is free.
    fake.set_mode(Mode::Refused);
    let taken = service.unpark(&call, &id, "203.0.113.99").await.unwrap();
    assert_eq!(
        (taken.license.state, taken.license.ip.to_string()),
        (LicenseState::Suspended, "203.0.113.99".to_owned()),
        "it holds the IP from its acceptance"
    );
    let refused = run_to_end(&service, &worker, &license).await;
    assert_eq!(
        (refused.state, refused.ip),
        (LicenseState::Parked, license.ip)
    );
    service
        .check_order(&call, order_input("srv-8", "203.0.113.99"))
        .await
        .expect("the IP was given back");

    // Carried out with an answer that cannot be read: the look-up finds it made.
    fake.set_mode(Mode::DoneUnreadable);
    service.unpark(&call, &id, "203.0.113.99").await.unwrap();
    let moved = run_to_end(&service, &worker, &license).await;
    assert_eq!(
        (moved.state, moved.ip.to_string()),
        (LicenseState::Suspended, "203.0.113.99".to_owned()),
        "{moved:?}"
    );
    let upstream = fake.license_details(upstream_id).await.unwrap();
    assert_eq!(upstream.ip.as_deref(), Some("203.0.113.99"));
    assert_eq!(fake.calls("soft.order.param"), 1, "nothing bought");
}

/// An order accepted while a runner of the running worker is free is stored at INTENT
/// (its first attempt, under the runner's lease) before its call is answered: no loop
/// claims it meanwhile, it is sent once and carried out to ACTIVE. With the only
/// runner busy, the next order is queued as before and carried out after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_accepted_while_a_runner_is_free_is_taken_at_intent_and_sent_once() {
    let fake = Arc::new(Fake::new());
    let (service, worker) = service(fake.clone()).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(worker.clone().run(stop.clone()));
    let call = Call::of(ClientName::anonymous());
    let operation = async |license: &License| {
        service
            .latest_operation(None, &license.id.to_string())
            .await
            .unwrap()
            .expect("an operation")
    };

    // The upstream answers no order until the test has looked.
    let held = fake.gate.acquire_many(GATE).await.unwrap();
    let taken = service
        .order_license(&call, order_input("srv-1", "203.0.113.1"))
        .await
        .unwrap()
        .license;
    let op = operation(&taken).await;
    assert_eq!(
        (op.phase, op.attempt),
        (Phase::Intent, 1),
        "committed at INTENT with its acceptance"
    );
    assert!(op.sent_at.is_some());
    assert!(
        !worker.run_once().await.unwrap(),
        "a loop claimed the taken order"
    );

    // The only runner is busy with it: the next order is queued.
    let queued = service
        .order_license(&call, order_input("srv-2", "203.0.113.2"))
        .await
        .unwrap()
        .license;
    let op = operation(&queued).await;
    assert_eq!((op.phase, op.attempt), (Phase::Received, 0), "{op:?}");

    drop(held);
    for license in [&taken, &queued] {
        let done = service
            .wait_settled(None, license.id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(done.state, LicenseState::Active, "{done:?}");
        assert_eq!(operation(license).await.phase, Phase::Done);
    }
    assert_eq!(fake.calls("soft.order.param"), 2, "each sent once");
    stop.cancel();
    running.await.unwrap();
}

/// An order is taken only while a runner is free and nothing waits in the queue:
/// once one was queued for want of a runner, or while the loops' claims find work,
/// the next ones queue behind it, until a claim finds nothing.
#[tokio::test]
async fn no_order_is_taken_ahead_of_queued_work() {
    let (_service, worker) = service(Arc::new(Fake::new())).await;
    let at_once = worker.at_once.clone();
    assert!(
        at_once.take().is_none(),
        "nothing is taken before the worker runs"
    );
    at_once.arm(worker.clone(), tokio_util::sync::CancellationToken::new());

    let first = at_once.take().expect("the only runner is free");
    assert!(at_once.take().is_none(), "the only runner is busy");
    drop(first);
    assert!(
        at_once.take().is_none(),
        "an order was queued: the next one queues behind it"
    );
    at_once.claimed(false);
    assert!(at_once.take().is_some(), "the queue is empty: taken again");
    at_once.claimed(true);
    assert!(at_once.take().is_none(), "a loop found work waiting");

    at_once.claimed(false);
    at_once.disarm();
    assert!(
        at_once.take().is_none(),
        "nothing is taken once the worker stopped"
    );
}
