//! The change feed: complete, ordered, resumable without loss or repeats.

use std::time::Duration;

use futures::StreamExt;
use license_facade::api::pb::v1 as pb;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Orders a license and walks it through changes; returns its id.
async fn walk(app: &TestApp) -> String {
    let l = app
        .order_and_wait(&json!({"server": {"id": "feed-1", "ip": "203.0.113.140"}, "panel": "ISPmanager 6 Lite"}))
        .await;
    let id = l["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        ("change-ip", json!({"ip": "203.0.113.141"})),
        ("change-panel", json!({"panel": "ISPmanager 6 Pro"})),
        ("suspend", json!({})),
        ("resume", json!({})),
        ("renew", json!({"periodMonths": 1})),
        ("reissue-key", json!({})),
    ] {
        let r = app
            .post_json(&format!("/v1/licenses/{id}/{path}?wait=20s"), &body)
            .await;
        assert_eq!(r.status(), 200, "{path}");
    }
    id
}

/// Reads SSE events from `/v1/events` until `count` arrived; returns (id, kind, data).
async fn read_sse(
    app: &TestApp,
    last_event_id: Option<i64>,
    count: usize,
) -> Vec<(i64, String, Value)> {
    let mut request = app.client.get(format!("{}/v1/events", app.http));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < count {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events arrive in time")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data =
                        serde_json::from_str(v.trim()).unwrap_or_else(|e| panic!("{e}: {block}"));
                }
            }
            if let Some(id) = id {
                events.push((id, kind, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn a_grpc_watcher_started_before_the_walk_receives_every_event_in_order() {
    let app = spawn_app().await;
    let mut stream = app
        .grpc()
        .await
        .watch_licenses(pb::WatchLicensesRequest { after_event_id: 0 })
        .await
        .unwrap()
        .into_inner();

    let id = walk(&app).await;

    let mut kinds = Vec::new();
    let mut ids = Vec::new();
    while !kinds.contains(&pb::license_event::Kind::KeyIssued)
        || kinds
            .iter()
            .filter(|k| **k == pb::license_event::Kind::KeyIssued)
            .count()
            < 2
    {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(event.license.as_ref().unwrap().id, id);
        assert_eq!(event.license.as_ref().unwrap().server_id, "feed-1");
        ids.push(event.id);
        kinds.push(event.kind());
    }
    use pb::license_event::Kind as K;
    let expected_order = [
        K::Created,
        K::StateChanged,
        K::KeyIssued,
        K::IpChanged,
        K::PanelChanged,
        K::Renewed,
    ];
    let mut at = 0;
    for k in kinds.iter() {
        if at < expected_order.len() && *k == expected_order[at] {
            at += 1;
        }
    }
    assert_eq!(at, expected_order.len(), "events in order: {kinds:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
}

#[tokio::test]
async fn an_sse_watcher_that_reconnects_with_its_last_id_gets_the_rest_exactly_once() {
    let app = spawn_app().await;
    walk(&app).await;
    // The walk ends with the second key issue; a fresh reader sees the whole history.
    let mut everything = Vec::new();
    for n in 1.. {
        everything = read_sse(&app, Some(0), n).await;
        if everything.iter().filter(|e| e.1 == "KEY_ISSUED").count() == 2 {
            break;
        }
    }

    let first_part = read_sse(&app, None, 4).await;
    let last_seen = first_part.last().unwrap().0;
    let rest = read_sse(&app, Some(last_seen), everything.len() - 4).await;

    let mut resumed: Vec<i64> = first_part.iter().map(|e| e.0).collect();
    resumed.extend(rest.iter().map(|e| e.0));
    let expected: Vec<i64> = everything.iter().map(|e| e.0).collect();
    assert_eq!(resumed, expected, "nothing missed, nothing twice");
    assert_eq!(everything[0].1, "CREATED");
    assert!(rest.iter().all(|e| e.2["license"]["serverId"] == "feed-1"));
}

#[tokio::test]
async fn a_client_beyond_its_stream_cap_is_refused_on_both_apis_until_a_stream_closes() {
    // Arrange: two streams allowed, both open.
    let app = crate::helpers::spawn_app_with(0, |s| s.feed.max_streams_per_client = 2).await;
    let mut grpc = app.grpc().await;
    let watch = || pb::WatchLicensesRequest::default();
    let first = grpc.watch_licenses(watch()).await.unwrap().into_inner();
    let _second = grpc.watch_licenses(watch()).await.unwrap().into_inner();

    // Act
    let third = grpc.watch_licenses(watch()).await.map(|_| ()).unwrap_err();
    let rest = app.get("/v1/events").await;
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let reopened = loop {
        match grpc.watch_licenses(watch()).await {
            Ok(stream) => break stream,
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot was never freed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Assert
    assert_eq!(third.code(), tonic::Code::ResourceExhausted);
    assert_eq!(crate::helpers::reason(&third), "STREAM_LIMIT_REACHED");
    assert_eq!(rest.status(), 429);
    let problem: Value = rest.json().await.unwrap();
    assert_eq!(problem["code"], "STREAM_LIMIT_REACHED");
    drop(reopened);
}

#[tokio::test]
async fn a_reader_resuming_from_before_the_retention_gets_events_expired_then_the_current_state() {
    use pb::license_event::Kind;
    // Arrange: events kept for 300 ms; one license whose early events are gone.
    let app = crate::helpers::spawn_app_with(0, |s| {
        s.feed.retention = Duration::from_millis(300);
    })
    .await;
    let license = app
        .order_and_wait(&json!({"server": {"id": "feed-expired", "ip": "203.0.113.145"}, "panel": "ISPmanager 6 Lite"}))
        .await;
    let mut grpc = app.grpc().await;
    let from_the_start = pb::WatchLicensesRequest { after_event_id: 1 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut stream = loop {
        let mut stream = grpc
            .watch_licenses(from_the_start)
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap().event.unwrap();
        if first.kind() == Kind::EventsExpired {
            assert_eq!(first.id, 0, "a snapshot follows");
            assert!(first.license.is_none());
            break stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Act: the snapshot, then a new change.
    let snapshot = stream.message().await.unwrap().unwrap().event.unwrap();
    let order = json!({"server": {"id": "feed-expired-2", "ip": "203.0.113.146"}, "panel": "ISPmanager 6 Lite"});
    let second = app.post_json("/v1/licenses", &order).await;
    let live = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("a live event arrives")
        .unwrap()
        .unwrap()
        .event
        .unwrap();

    // Assert
    assert_eq!(snapshot.kind(), Kind::Snapshot);
    let current = snapshot.license.unwrap();
    assert_eq!(current.id, license["id"].as_str().unwrap());
    assert_eq!(current.state(), pb::license::State::Active);
    assert!(
        snapshot.id > 0,
        "the last snapshot is the position to resume from"
    );
    assert_eq!(second.status(), 202);
    assert_eq!(live.kind(), Kind::Created);
    assert!(live.id > snapshot.id);
    assert_eq!(live.license.unwrap().server_id, "feed-expired-2");
}

/// `license_facade_feed_reads_total` of `client` in `/metrics` (0 when absent).
async fn feed_reads(app: &TestApp, client: &str) -> u64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let series = format!("license_facade_feed_reads_total{{client=\"{client}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn idle_streams_do_not_read_the_store_until_an_event_is_committed() {
    // Arrange: a read-only client with ten open streams and nothing happening.
    let reader = "quiet-reader";
    let clients = license_facade::auth::Clients::from_toml(&format!(
        "[[client]]\nname = \"{reader}\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.read\"]\n\
         [[client]]\nname = \"writer\"\ntoken_sha256 = \"{}\"\nscopes = [\"licenses.read\", \"licenses.write\"]\n",
        license_facade::auth::token_sha256_hex("quiet-token"),
        license_facade::auth::token_sha256_hex("writer-token"),
    ))
    .unwrap();
    let app = crate::helpers::spawn_app_with(0, |s| {
        s.clients = Some(clients);
        s.feed.max_streams_per_client = 10;
    })
    .await;
    let mut grpc = crate::helpers::grpc_client_with(app.grpc_addr, Some("quiet-token")).await;
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(
            grpc.watch_licenses(pb::WatchLicensesRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    // Each stream reads once as it starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let at_start = loop {
        let reads = feed_reads(&app, reader).await;
        if reads >= 10 {
            break reads;
        }
        assert!(tokio::time::Instant::now() < deadline, "{reads} reads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Act: four times the old polling interval with no event.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = feed_reads(&app, reader).await;

    // Assert: each stream read once when it opened, and not since.
    assert_eq!(at_start, 10, "one read per stream to start");
    assert_eq!(idle, at_start, "idle streams read the store");
    drop(streams);
}
