-- vestibule store, PostgreSQL schema 1.
-- Timestamps are unix milliseconds (BIGINT). Hashes are 32-byte SHA-256
-- digests (BYTEA). `groups_json` is a JSON array of strings, kept as TEXT
-- because sqlx's Any driver has no JSON type. Every integer is BIGINT:
-- ids and unix-ms timestamps need 64 bits, and i64 binds are sent as INT8.

-- Identity columns are never reused, so a stale cache entry or audit line
-- can never point at a different person.
CREATE TABLE accounts (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT    NOT NULL,
    email         TEXT,
    display_name  TEXT,
    groups_json   TEXT    NOT NULL DEFAULT '[]',
    org           TEXT,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'pending', 'disabled')),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL
);
-- For the admin CLI only; logins never look accounts up by username.
CREATE INDEX accounts_username ON accounts (username);
CREATE INDEX accounts_status ON accounts (status, id);

-- The only way to find an account at login: (source, subject).
CREATE TABLE identities (
    source      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (source, subject)
);
CREATE INDEX identities_account ON identities (account_id);

CREATE TABLE sessions (
    id_hash       BYTEA   PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    account_id    BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    source        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    csrf_hash     BYTEA   NOT NULL CHECK (octet_length(csrf_hash) = 32)
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT  NOT NULL,
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

-- No `changes` table: changes travel with pg_notify('vestibule_changes', …),
-- sent in the same transaction as the change and delivered at commit.
