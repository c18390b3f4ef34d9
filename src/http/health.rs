//! `/healthz` (the process is alive) and `/readyz` (it should receive traffic).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: 200 while the process runs.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the store answers, the upstream was reachable at the last
/// probe, the upstream circuit breaker is closed, the upstream has not refused the
/// credentials and the process is not draining; 503 otherwise, naming what failed.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store_ok = state.service.ready().await.is_ok();
    let upstream_ok = state.readiness.upstream_ok();
    let breaker_open = state.readiness.breaker_open();
    let draining = state.readiness.draining();
    let auth_refused = state.service.upstream_auth_refused();
    let ok = store_ok && state.readiness.serving() && auth_refused.is_none();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ready" } else { "not ready" },
            "store": store_ok,
            "upstream": upstream_ok,
            "upstream_circuit_open": breaker_open,
            "draining": draining,
            "upstream_auth_refused": auth_refused,
        })),
    )
}
