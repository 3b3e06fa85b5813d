-- vestibule store, SQLite schema 13: the upstream OpenID provider's tokens
-- of each [source.oidc] session, and its re-check schedule (issue 15).
-- Timestamps are unix milliseconds.
--
-- tokens: the provider's ID token, refresh token and access token (with
-- its expiry) of the session, as one JSON document, sealed with
-- AES-256-GCM under the key-encryption key when one is configured
-- (tokens_format 'aes256gcm': a 12-byte nonce, the ciphertext, the tag;
-- the session hash is the additional authenticated data, so a sealed
-- document moved to another row does not open), 'plain' otherwise. NULL
-- for rows written before this version: their ID token stays in
-- id_token (read as before), and they have nothing to re-check with.
--
-- checked_at: the last time the provider vouched for the session (the
-- login, then each successful re-check); next_check_at: when it is due
-- again; lease_until: a re-check under way holds the row until then
-- (a conditional UPDATE claims it, so of several instances one refreshes
-- a session: refresh tokens may rotate, RFC 9700 §4.14.2).
ALTER TABLE oidc_login_sessions ADD COLUMN tokens_format TEXT;
ALTER TABLE oidc_login_sessions ADD COLUMN tokens        BLOB;
ALTER TABLE oidc_login_sessions ADD COLUMN checked_at    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oidc_login_sessions ADD COLUMN next_check_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oidc_login_sessions ADD COLUMN lease_until   INTEGER NOT NULL DEFAULT 0;
CREATE INDEX oidc_login_sessions_due ON oidc_login_sessions (next_check_at);
