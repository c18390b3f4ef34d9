//! Connection bounds of both listeners: slow, silent and idle connections are closed,
//! long-lived streams are not, and connections beyond the cap wait for a free slot.

use std::net::SocketAddr;
use std::time::Duration;

use license_facade::api::pb::v1 as pb;
use license_facade::listener::ConnectionLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{TestApp, grpc_order, spawn_app_with};

/// Far below the minutes such connections stayed open without the bounds.
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

async fn spawn_with(limits: ConnectionLimits) -> TestApp {
    spawn_app_with(0, |s| s.connections = limits).await
}

fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        ..ConnectionLimits::default()
    }
}

fn http_addr(app: &TestApp) -> SocketAddr {
    app.http.trim_start_matches("http://").parse().unwrap()
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

/// Sends `start`, then one more header line every 100 ms, until the server closes.
async fn dribble(addr: SocketAddr, start: &'static [u8]) -> bool {
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    write.write_all(start).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let closed = closed_within(&mut read, CLOSED_WITHIN).await;
    writer.abort();
    closed
}

#[tokio::test]
async fn silent_slow_and_half_started_connections_are_closed_on_both_listeners() {
    let app = spawn_with(short_limits()).await;
    let (rest, grpc) = (http_addr(&app), app.grpc_addr);

    let mut silent_rest = TcpStream::connect(rest).await.unwrap();
    let mut silent_grpc = TcpStream::connect(grpc).await.unwrap();
    let mut half_preface = TcpStream::connect(grpc).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();

    let (slow_headers, silent_rest, silent_grpc, half_preface) = tokio::join!(
        dribble(rest, b"GET /healthz HTTP/1.1\r\nhost: x\r\n"),
        closed_within(&mut silent_rest, CLOSED_WITHIN),
        closed_within(&mut silent_grpc, CLOSED_WITHIN),
        closed_within(&mut half_preface, CLOSED_WITHIN),
    );

    assert!(
        slow_headers,
        "a request sending a header line every 100 ms stayed open"
    );
    assert!(silent_rest, "a silent REST connection stayed open");
    assert!(silent_grpc, "a silent gRPC connection stayed open");
    assert!(half_preface, "a half-sent HTTP/2 preface stayed open");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_quiet_stream_is_not() {
    // Arrange
    let app = spawn_with(short_limits()).await;
    let mut keep_alive = TcpStream::connect(http_addr(&app)).await.unwrap();
    let mut grpc = app.grpc().await;
    let mut feed = grpc
        .watch_licenses(pb::WatchLicensesRequest::default())
        .await
        .unwrap()
        .into_inner();

    // Act: one request, then nothing on either connection for several idle timeouts.
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    keep_alive.read_exact(&mut head).await.unwrap();
    let idle_closed = closed_within(&mut keep_alive, CLOSED_WITHIN).await;
    let quiet_until = Instant::now() + Duration::from_millis(1500);
    tokio::time::sleep_until(quiet_until).await;
    let mut orders = app.grpc().await;
    orders
        .order_license(grpc_order(
            "conn-stream-1",
            "203.0.113.171",
            "ISPmanager 6 Pro",
        ))
        .await
        .unwrap();
    let event = tokio::time::timeout(CLOSED_WITHIN, feed.message()).await;

    // Assert
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(idle_closed, "an idle keep-alive connection stayed open");
    let event = event.expect("the feed answers").expect("the feed is open");
    assert!(event.is_some(), "the quiet feed was closed");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_a_slot_is_free() {
    // Arrange: two slots, both taken by silent connections.
    let app = spawn_with(ConnectionLimits {
        header_read_timeout: Duration::from_millis(500),
        max_connections: 2,
        ..ConnectionLimits::default()
    })
    .await;
    let addr = http_addr(&app);
    let started = Instant::now();
    let mut held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];

    // Act
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    third.read_exact(&mut head).await.unwrap();
    let answered_after = started.elapsed();

    // Assert: answered only once a held connection had been closed.
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        answered_after >= Duration::from_millis(400),
        "answered after {answered_after:?}, beyond the cap"
    );
    for held in &mut held {
        assert!(closed_within(held, Duration::from_secs(1)).await);
    }
}
