//! Serving the REST router on a [`GuardedListener`]. The loop is axum's `serve` with
//! what that one does not offer: HTTP/2 keep-alive pings (as on the gRPC listener),
//! each connection's requests tracked for the idle timeout, and every connection's
//! task in the application's task set, so that a stop that gives up on the drain ends
//! them too.

use std::pin::pin;

use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::listener::{ConnectionLimits, GuardedListener, Tracked};
use crate::tasks::Tasks;

/// Serves `router` on `listener` until `stop`; then stops accepting and lets each
/// connection finish its requests (HTTP/2: GOAWAY; HTTP/1: closed after the answer in
/// flight). Returns once it stopped accepting; the connections end in `tasks`.
pub async fn serve(
    mut listener: GuardedListener,
    router: axum::Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
    tasks: Tasks,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let remote = accepted.remote();
        // The peer's address, for handlers that need it (the downstream endpoint's
        // back-off against password guessing is kept per user name and address).
        let with_peer = router.clone().map_request(move |mut request: Request<_>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request
        });
        let stop = stop.clone();
        tasks.spawn(async move {
            // The TLS handshake, if any, in the connection's own task.
            let Ok(io) = accepted.establish().await else {
                return;
            };
            let service = TowerToHyperService::new(Tracked::per_connection(with_peer, io.conn()));
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http2()
                // CONNECT, for HTTP/2 upgrades, as axum's own loop enables it.
                .enable_connect_protocol()
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.http2_keepalive_interval)
                .keep_alive_timeout(limits.http2_keepalive_timeout);
            let mut connection =
                pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error.message = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            if let Err(e) = connection.await {
                tracing::debug!(error.message = %e, "connection ended with an error");
            }
        });
    }
}
