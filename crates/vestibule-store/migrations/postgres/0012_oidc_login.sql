-- vestibule store, PostgreSQL schema 12: signing in against an upstream
-- OpenID provider ([source.oidc], issue 15). Timestamps are unix
-- milliseconds (expires_at of a jti: unix seconds, as the token's).
-- Independent of versions 9 and 11.
--
-- One row per vestibule session opened by an OIDC login: the provider's
-- issuer, the upstream `sub` and `sid` (Back-Channel Logout 1.0 §2.1), so
-- a logout token naming either finds the session, and the ID token, sent
-- back as `id_token_hint` at logout (RP-Initiated Logout 1.0 §2). The row
-- goes with its session (ON DELETE CASCADE).
CREATE TABLE oidc_login_sessions (
    session_hash BYTEA   NOT NULL PRIMARY KEY REFERENCES sessions (id_hash) ON DELETE CASCADE,
    issuer       TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    sid          TEXT,
    id_token     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX oidc_login_sessions_sid ON oidc_login_sessions (issuer, sid);
CREATE INDEX oidc_login_sessions_sub ON oidc_login_sessions (issuer, subject);

-- Logout tokens' `jti` already accepted (Back-Channel Logout 1.0 §2.6
-- point 7), kept until the token would no longer verify.
CREATE TABLE oidc_logout_jtis (
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX oidc_logout_jtis_expires ON oidc_logout_jtis (expires_at);

-- Logins under way: the browser holds a random 256-bit id in a cookie
-- bound to it (only its SHA-256 is here); the row keeps the state, the
-- nonce and the PKCE verifier of its authorization request (RFC 9700
-- §2.1.1, §4.7; RFC 7636 §4) and the checked return address, for ten
-- minutes at most, and is taken (deleted) once by the callback. In the
-- store, so the callback may reach another instance than the login.
CREATE TABLE oidc_pending_logins (
    login_hash BYTEA NOT NULL PRIMARY KEY,
    state      TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    return_to  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_pending_logins_expires ON oidc_pending_logins (expires_at);
