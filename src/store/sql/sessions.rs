//! Revoked console sessions: a log-out's record that its session has ended, kept
//! until the session would have expired anyway, so every replica refuses its cookie.

use anyhow::Context;
use time::OffsetDateTime;

use super::exec::{Conn, args, fixed};
use crate::store::codec::to_micros;

/// Records that `session` ended before `expires`, and drops the records of sessions
/// that have expired by `now` (their cookies are refused on their own by then), so the
/// table holds only sessions that could still be presented. Revoking twice is one
/// record.
pub(crate) async fn revoke<C: Conn>(
    conn: &mut C,
    session: &str,
    expires: OffsetDateTime,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    conn.execute(
        fixed("DELETE FROM console_revocations WHERE expires_at <= $1"),
        args![to_micros(now)],
    )
    .await
    .context("cannot drop expired session revocations")?;
    conn.execute(
        fixed(
            "INSERT INTO console_revocations (session, expires_at) VALUES ($1, $2) \
             ON CONFLICT (session) DO NOTHING",
        ),
        args![session, to_micros(expires)],
    )
    .await
    .context("cannot record the session's revocation")?;
    Ok(())
}

/// Whether `session` was revoked.
pub(crate) async fn is_revoked<C: Conn>(conn: &mut C, session: &str) -> anyhow::Result<bool> {
    let row = conn
        .fetch_optional(
            fixed("SELECT 1 AS revoked FROM console_revocations WHERE session = $1"),
            args![session],
        )
        .await
        .context("cannot read the session's revocation")?;
    Ok(row.is_some())
}
