//! SIGTERM under load: the replica reports NOT_SERVING (REST and gRPC) while it still
//! accepts, a load balancer following readiness moves the traffic, in-flight calls
//! finish, and no client sees anything but a complete answer or a refused connection
//! (which it can safely retry elsewhere). The process then exits cleanly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use license_facade::sandbox::SandboxConfig;
use serde_json::Value;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{
    ChildReplica, DEADLINE, Order, TOKEN, TestDb, start_sandbox, wait_all_active,
};

const DRAIN_DELAY_MS: u64 = 1500;
const SERVERS: usize = 100;

/// What one load request saw.
#[derive(Debug)]
enum Seen {
    Answered(u16),
    Refused,
    /// Shown through `Debug` when the test fails.
    #[allow(dead_code)]
    Broken(String),
}

/// Sends one order; a failure is classified: refused before anything was sent (safe
/// to retry anywhere) or broken mid-request (the client cannot know what happened).
async fn send(client: &reqwest::Client, base: &str, order: &Order) -> Seen {
    let result = client
        .post(format!("{base}/v1/licenses"))
        .bearer_auth(TOKEN)
        .json(&order.body())
        .send()
        .await;
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(_) => Seen::Answered(status),
                Err(e) => Seen::Broken(format!("body cut off: {e:?}")),
            }
        }
        Err(e) if e.is_connect() => Seen::Refused,
        Err(e) => Seen::Broken(format!("{e:?}")),
    }
}

/// First moments the victim was seen not ready and seen closed, per API.
#[derive(Debug, Default, Clone, Copy)]
struct Moments {
    not_ready: Option<Instant>,
    closed: Option<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_turns_not_serving_first_and_resets_no_client() {
    // Arrange
    let Some(db) = TestDb::create().await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig {
        key_delay: Duration::from_millis(1500),
        latency: Duration::from_millis(5),
        ..SandboxConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let drain = [
        "--drain-delay-ms",
        &DRAIN_DELAY_MS.to_string(),
        "--drain-timeout-secs",
        "10",
    ]
    .map(str::to_owned);
    let drain: Vec<&str> = drain.iter().map(String::as_str).collect();
    let mut replicas: Vec<ChildReplica> = (0..3)
        .map(|i| ChildReplica::start(dir.path(), &format!("r{i}"), &db.url, &sandbox.url, &drain))
        .collect();
    for replica in &replicas {
        replica.api.wait_ready().await;
    }
    let bases: Vec<String> = replicas.iter().map(|r| r.api.base.clone()).collect();
    let victim = bases[0].clone();
    let victim_grpc = format!("http://{}", replicas[0].grpc_addr);
    let stop = Arc::new(AtomicBool::new(false));

    // A load balancer: routes only to replicas whose /readyz says 200, checked every
    // 50 ms (far shorter than the drain delay, as a readiness probe should be).
    let routable = Arc::new(Mutex::new(vec![true; bases.len()]));
    let balancer = {
        let (routable, stop, bases) = (routable.clone(), stop.clone(), bases.clone());
        tokio::spawn(async move {
            let client = crate::support::http_client().build().unwrap();
            while !stop.load(Ordering::Relaxed) {
                for (i, base) in bases.iter().enumerate() {
                    let ok = client
                        .get(format!("{base}/readyz"))
                        .timeout(Duration::from_secs(1))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    routable.lock().unwrap()[i] = ok;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Observers of the victim: REST readiness and gRPC health.
    let rest_moments = Arc::new(Mutex::new(Moments::default()));
    let rest_observer = {
        let (moments, stop, victim) = (rest_moments.clone(), stop.clone(), victim.clone());
        tokio::spawn(async move {
            let client = crate::support::http_client().build().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let seen = client
                    .get(format!("{victim}/readyz"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                let now = Instant::now();
                {
                    let mut m = moments.lock().unwrap();
                    match seen {
                        Ok(r) if r.status() == 503 => {
                            m.not_ready.get_or_insert(now);
                        }
                        Ok(_) => {}
                        // Closed is a refused connection; a probe that merely took
                        // longer than its timeout on a loaded machine is not.
                        Err(e) if e.is_connect() => {
                            m.closed.get_or_insert(now);
                        }
                        Err(_) => {}
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let grpc_moments = Arc::new(Mutex::new(Moments::default()));
    let grpc_observer = {
        let (moments, stop) = (grpc_moments.clone(), stop.clone());
        let channel = tonic::transport::Endpoint::from_shared(victim_grpc)
            .unwrap()
            .connect_lazy();
        tokio::spawn(async move {
            let mut health = HealthClient::new(channel);
            while !stop.load(Ordering::Relaxed) {
                let seen = health
                    .check(HealthCheckRequest {
                        service: "licensefacade.v1.LicenseService".into(),
                    })
                    .await;
                let now = Instant::now();
                {
                    let mut m = moments.lock().unwrap();
                    match seen {
                        Ok(r) if r.get_ref().status == ServingStatus::NotServing as i32 => {
                            m.not_ready.get_or_insert(now);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            m.closed.get_or_insert(now);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // The load: order (idempotently) random servers through routable replicas.
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let victim_answers = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (routable, stop, bases, outcomes, victim_answers) = (
            routable.clone(),
            stop.clone(),
            bases.clone(),
            outcomes.clone(),
            victim_answers.clone(),
        );
        load.spawn(async move {
            let client = crate::support::http_client()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                n += 7;
                let target = {
                    let routable = routable.lock().unwrap();
                    (0..bases.len())
                        .map(|k| (n + k) % bases.len())
                        .find(|&i| routable[i])
                };
                let Some(target) = target else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let seen = send(&client, &bases[target], &Order::new(3000 + n % SERVERS)).await;
                if target == 0 && matches!(seen, Seen::Answered(_)) {
                    victim_answers.fetch_add(1, Ordering::Relaxed);
                }
                outcomes.lock().unwrap().push((target, seen));
            }
        });
    }
    let deadline = Instant::now() + DEADLINE;
    while victim_answers.load(Ordering::Relaxed) < 20 {
        assert!(Instant::now() < deadline, "the victim never took load");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A call that is still in flight when the listener closes: it waits for a key
    // the sandbox issues only after the drain delay.
    let long_call = {
        let victim = victim.clone();
        tokio::spawn(async move {
            crate::support::http_client()
                .build()
                .unwrap()
                .post(format!("{victim}/v1/licenses?wait=15s"))
                .bearer_auth(TOKEN)
                .json(&Order::new(4000).body())
                .send()
                .await
        })
    };
    let deadline = Instant::now() + DEADLINE;
    while replicas[0].logged("sending the order upstream").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the long call never reached the worker"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Act
    let terminated_at = Instant::now();
    replicas[0].terminate();
    let status = replicas[0].wait_exit(DEADLINE).await;
    let exited_at = Instant::now();
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    for task in [balancer, rest_observer, grpc_observer] {
        task.await.unwrap();
    }

    // Assert: a clean exit after the drain delay.
    assert!(
        status.success(),
        "exit {status}; stderr: {}",
        replicas[0].stderr()
    );
    assert!(
        exited_at - terminated_at >= Duration::from_millis(DRAIN_DELAY_MS),
        "the listeners stayed open for the drain delay"
    );
    // NOT_SERVING strictly before the listeners stopped accepting, on both APIs.
    for (api, moments) in [
        ("REST", *rest_moments.lock().unwrap()),
        ("gRPC", *grpc_moments.lock().unwrap()),
    ] {
        let not_ready = moments
            .not_ready
            .unwrap_or_else(|| panic!("{api}: never NOT_SERVING"));
        let closed = moments
            .closed
            .unwrap_or_else(|| panic!("{api}: never closed"));
        assert!(not_ready >= terminated_at, "{api}: ready until SIGTERM");
        assert!(
            closed > not_ready && closed - not_ready >= Duration::from_millis(DRAIN_DELAY_MS / 2),
            "{api}: NOT_SERVING ({:?} after SIGTERM) well before closing ({:?} after SIGTERM)",
            not_ready - terminated_at,
            closed - terminated_at
        );
    }
    // No client was cut off mid-request; everything got an answer or a refusal.
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let refused = outcomes
        .iter()
        .filter(|(_, seen)| matches!(seen, Seen::Refused))
        .count();
    eprintln!(
        "{} requests ({refused} refused), {} answered by the victim; REST {:?}, gRPC {:?} \
         after SIGTERM: not serving / closed",
        outcomes.len(),
        victim_answers.load(Ordering::Relaxed),
        rest_moments
            .lock()
            .unwrap()
            .not_ready
            .map(|t| t - terminated_at),
        grpc_moments
            .lock()
            .unwrap()
            .closed
            .map(|t| t - terminated_at),
    );
    let broken: Vec<_> = outcomes
        .iter()
        .filter(|(_, seen)| matches!(seen, Seen::Broken(_)))
        .collect();
    assert!(broken.is_empty(), "requests cut off mid-way: {broken:?}");
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, seen)| matches!(seen, Seen::Answered(s) if *s >= 500))
        .collect();
    assert!(failed.is_empty(), "server errors: {failed:?}");
    // The in-flight call finished during the drain with a real answer.
    let response = long_call
        .await
        .unwrap()
        .expect("the in-flight call was answered, not reset");
    assert_eq!(
        response.status(),
        201,
        "it waited for the license to settle"
    );
    let license: Value = response.json().await.expect("a complete body");
    assert_eq!(license["state"], "ACTIVE", "{license}");
    assert!(
        !replicas[0].logged("stopped").is_empty(),
        "the drain completed"
    );

    // And the work all landed exactly once.
    let survivors = &replicas[1].api;
    let ordered: Vec<Order> = (0..SERVERS).map(|n| Order::new(3000 + n)).collect();
    let mut ids = Vec::new();
    for order in &ordered {
        ids.push(survivors.order_until_acknowledged(order).await);
    }
    wait_all_active(survivors, &ids).await;
    // Purchases, deleted licenses included: a duplicate cancelled afterwards was paid.
    for order in ordered.iter().chain([&Order::new(4000)]) {
        let bought = sandbox.purchased_on(&order.ip);
        assert_eq!(
            bought.len(),
            1,
            "one license ever on {}: {:?}",
            order.ip,
            bought
                .iter()
                .map(|l| (l.id, l.status, l.remote_id.clone(), l.create_time))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(
        sandbox.purchases(),
        SERVERS as u64 + 1,
        "one purchase per server, nothing more"
    );
    drop(replicas);
    drop(db);
}
