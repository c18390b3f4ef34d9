//! Ending console sessions. A session is a signed cookie that any process holding the
//! key can check without the store; a log-out must still end it on every replica,
//! so the revocation is kept in the store they share, for as long as the session
//! could be presented.

use time::OffsetDateTime;

use super::{LicenseService, ServiceError};

impl LicenseService {
    /// Ends the console session `session` (a digest of its id) that would otherwise
    /// last until `expires`, for every process that shares this store.
    pub async fn revoke_session(
        &self,
        session: &str,
        expires: OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let now = OffsetDateTime::now_utc();
        Ok(self.store.revoke_session(session, expires, now).await?)
    }

    /// Whether the console session `session` (its digest) was ended by a log-out.
    pub async fn session_revoked(&self, session: &str) -> Result<bool, ServiceError> {
        Ok(self.store.session_revoked(session).await?)
    }
}
