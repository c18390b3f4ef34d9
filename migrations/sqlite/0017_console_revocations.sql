-- Console sessions ended by a log-out before they expired. A session is a signed
-- cookie that every replica can check on its own; a log-out must end it on all of
-- them, so the revocation is kept here, in the store they share, until the session
-- would have expired anyway (then the cookie's own expiry refuses it, and the row is
-- dropped by a later log-out).
CREATE TABLE console_revocations (
    session     TEXT    PRIMARY KEY,                 -- SHA-256 of the session's nonce, hex
    expires_at  INTEGER NOT NULL                     -- unix microseconds
);

CREATE INDEX console_revocations_expires_at ON console_revocations (expires_at);
