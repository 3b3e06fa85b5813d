-- vestibule store, SQLite schema 8: vestibule as an OpenID Connect
-- provider (issue 14). Timestamps are unix milliseconds. Version 9 is
-- another change's; the two are independent.
--
-- Every token and code is stored as the SHA-256 of its value (32 bytes),
-- never as itself. `client_id` is not a foreign key: a client may be
-- declared in the config file instead of `oidc_clients`; removing a store
-- client deletes its rows here in the same transaction.
-- Scopes are a space-separated list (RFC 6749 §3.3), sorted, no repeats.

-- Clients managed with `vestibule clients`. `settings_json` is the
-- client's registration as the binary writes it; a public client has no
-- secret.
CREATE TABLE oidc_clients (
    client_id      TEXT    NOT NULL PRIMARY KEY,
    secret_hash    BLOB,
    settings_json  TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- What a user allowed a client to receive (the consent page), remembered
-- per user and client: a request is covered when its scopes are a subset.
CREATE TABLE oidc_consents (
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id      TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    granted_at     INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

-- One grant per redeemed authorization code: everything issued from it
-- (refresh families, access tokens) hangs off it, so revoking a grant
-- (a replayed code, the user revoking an app) is one DELETE.
CREATE TABLE oidc_grants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id      TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    session_ref    TEXT,
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER NOT NULL
);
CREATE INDEX oidc_grants_account ON oidc_grants (account_id, client_id);
CREATE INDEX oidc_grants_client ON oidc_grants (client_id);

-- Authorization codes (RFC 6749 §4.1.2): single use. `redeemed_at` is set
-- by the one conditional UPDATE that redeems it; `grant_id` is the grant
-- that redemption created, revoked if the code is presented again
-- (RFC 6749 §4.1.2, "SHOULD revoke ... all tokens previously issued").
CREATE TABLE oidc_codes (
    code_hash      BLOB    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    redirect_uri   TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    session_ref    TEXT,
    auth_time      INTEGER NOT NULL,
    amr_json       TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    redeemed_at    INTEGER,
    grant_id       INTEGER REFERENCES oidc_grants (id) ON DELETE SET NULL
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires_at);

-- A refresh-token family: the chain of rotations from one grant. Its
-- tokens never outlive `absolute_expires_at`; revoking it ends all of them.
CREATE TABLE oidc_refresh_families (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id            INTEGER NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    created_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER
);
CREATE INDEX oidc_refresh_families_grant ON oidc_refresh_families (grant_id);

-- Refresh tokens. A rotated token keeps its row with `rotated_at` and its
-- `successor_hash` (reuse detection) and, until the grace window ends,
-- `successor_sealed`: the successor tokens encrypted under a key derived
-- from this token's own value, which the store never holds, so a retry
-- that presents this token gets the same successors and nobody else can.
CREATE TABLE oidc_refresh_tokens (
    token_hash       BLOB    NOT NULL PRIMARY KEY,
    family_id        INTEGER NOT NULL REFERENCES oidc_refresh_families (id) ON DELETE CASCADE,
    parent_hash      BLOB,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    rotated_at       INTEGER,
    successor_hash   BLOB,
    successor_sealed BLOB,
    CHECK ((rotated_at IS NULL) = (successor_hash IS NULL))
);
CREATE INDEX oidc_refresh_tokens_family ON oidc_refresh_tokens (family_id);
CREATE INDEX oidc_refresh_tokens_expires ON oidc_refresh_tokens (expires_at);

-- Opaque access tokens. `grant_id` is NULL for client_credentials (no
-- user); `family_id` is the refresh family that issued it, if any.
CREATE TABLE oidc_access_tokens (
    token_hash     BLOB    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    account_id     INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    grant_id       INTEGER REFERENCES oidc_grants (id) ON DELETE CASCADE,
    family_id      INTEGER REFERENCES oidc_refresh_families (id) ON DELETE CASCADE,
    scopes         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX oidc_access_tokens_grant ON oidc_access_tokens (grant_id);
CREATE INDEX oidc_access_tokens_family ON oidc_access_tokens (family_id);
CREATE INDEX oidc_access_tokens_client ON oidc_access_tokens (client_id);
CREATE INDEX oidc_access_tokens_expires ON oidc_access_tokens (expires_at);
