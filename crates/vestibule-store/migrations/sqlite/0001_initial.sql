-- vestibule store, SQLite schema 1.
-- Timestamps are unix milliseconds (INTEGER). Hashes are 32-byte SHA-256
-- digests (BLOB). `groups_json` is a JSON array of strings.

-- AUTOINCREMENT: an id is never handed out twice, even after a delete, so
-- a stale cache entry or audit line can never point at a different person.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    email         TEXT,
    display_name  TEXT,
    groups_json   TEXT    NOT NULL DEFAULT '[]',
    org           TEXT,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'pending', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
-- For the admin CLI only; logins never look accounts up by username.
CREATE INDEX accounts_username ON accounts (username);
CREATE INDEX accounts_status ON accounts (status, id);

-- The only way to find an account at login: (source, subject).
CREATE TABLE identities (
    source      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (source, subject)
);
CREATE INDEX identities_account ON identities (account_id);

CREATE TABLE sessions (
    id_hash       BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    source        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    csrf_hash     BLOB    NOT NULL CHECK (length(csrf_hash) = 32)
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    client_ip  TEXT,
    outcome    TEXT    NOT NULL,
    detail     TEXT    NOT NULL
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_action ON audit (action, at, id);
CREATE INDEX audit_subject ON audit (subject, at, id);

-- The change feed between processes sharing this file (the server and the
-- admin CLI). Written in the same transaction as the change it describes;
-- every process polls for ids above the last one it saw. AUTOINCREMENT
-- keeps ids increasing after old rows are purged.
CREATE TABLE changes (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    origin  TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);
