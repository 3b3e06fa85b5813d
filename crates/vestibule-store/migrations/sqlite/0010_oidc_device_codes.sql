-- vestibule store, SQLite schema 10: the OAuth 2.0 Device Authorization
-- Grant (RFC 8628) of the OpenID Connect provider (issue 14). Timestamps
-- are unix milliseconds. Independent of version 9.
--
-- One row per device authorization request (§3.1). The device code and
-- the user code are stored as the SHA-256 of their value (the user code in
-- its canonical form: 8 upper-case letters, no dash), never as themselves.
-- The row lives in the store so that a code issued by one instance is
-- approved at another and redeemed at a third.
--
-- decision: NULL while pending, then 'approved' (with the approving
-- account, its session and auth_time) or 'denied', set once by a
-- conditional UPDATE. interval_ms grows by 5 s on each slow_down (§3.5);
-- last_poll_at is the previous poll, whatever it was answered.
-- redeemed_at is set by the one conditional UPDATE that issues tokens;
-- grant_id is the grant it created.
CREATE TABLE oidc_device_codes (
    device_code_hash BLOB   NOT NULL PRIMARY KEY,
    user_code_hash   BLOB   NOT NULL UNIQUE,
    client_id        TEXT    NOT NULL,
    scopes           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_ms      INTEGER NOT NULL,
    last_poll_at     INTEGER,
    decision         TEXT CHECK (decision IN ('approved', 'denied')),
    decided_at       INTEGER,
    account_id       INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    session_ref      TEXT,
    auth_time        INTEGER,
    amr_json         TEXT,
    redeemed_at      INTEGER,
    grant_id         INTEGER REFERENCES oidc_grants (id) ON DELETE SET NULL,
    CHECK ((decision = 'approved') = (account_id IS NOT NULL AND auth_time IS NOT NULL))
);
CREATE INDEX oidc_device_codes_expires ON oidc_device_codes (expires_at);
CREATE INDEX oidc_device_codes_client ON oidc_device_codes (client_id);
