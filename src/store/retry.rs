//! Running a write transaction again when it could not settle: PostgreSQL aborts one
//! on a serialization failure or a deadlock (SQLSTATE 40001 / 40P01), and a write may
//! find that the row it collided with left before it could be read. Under SQLite's
//! single writer neither happens, and the first attempt settles.

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// How many times a write is run in all.
const MAX_ATTEMPTS: u32 = 5;

/// Whether `error` is a serialization failure or a deadlock, after which the whole
/// transaction may simply run again.
fn is_transient(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(|e| match e {
            sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
            _ => false,
        })
}

/// Runs `attempt_once` until it settles: `Ok(None)` (the row it collided with left
/// before it could be read) and serialization failures or deadlocks run it again, up
/// to [`MAX_ATTEMPTS`] times in all.
pub(super) async fn retrying<T, F, Fut>(what: &str, mut attempt_once: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    let mut attempt = 1;
    loop {
        let error = match attempt_once().await {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => anyhow::anyhow!("the conflicting license changed while being read"),
            Err(StoreError::Unexpected(e)) if is_transient(&e) => e,
            Err(e) => return Err(e),
        };
        if attempt == MAX_ATTEMPTS {
            return Err(error
                .context(format!("{what} did not settle in {MAX_ATTEMPTS} attempts"))
                .into());
        }
        tracing::debug!(attempt, error = %format_args!("{error:#}"), "retrying {what}");
        backoff(attempt).await;
        attempt += 1;
    }
}

async fn backoff(attempt: u32) {
    let jitter = rand::random_range(0..10);
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
}
