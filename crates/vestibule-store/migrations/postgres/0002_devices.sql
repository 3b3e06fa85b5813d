-- vestibule store, PostgreSQL schema 2: per-device credentials and pairing.
-- Timestamps are unix milliseconds (BIGINT). Hashes are 32-byte SHA-256
-- digests (BYTEA), computed by the caller: the secrets themselves are never
-- stored. `routes_json` is a JSON array of route names, kept as TEXT
-- because sqlx's Any driver has no JSON type.

-- A credential held by one device (an API client, a phone…), owned by an
-- account. `kind` is free text chosen by the caller (`basic`, `bearer`,
-- `header`, `paired`…). Identity columns are never reused, so a revoked
-- device's id never names another device.
CREATE TABLE devices (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    routes_json   TEXT    NOT NULL,
    secret_hash   BYTEA   NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
    -- The user name a Basic client must send along with the secret.
    basic_user    TEXT,
    created_at    BIGINT  NOT NULL,
    -- NULL: never expires.
    expires_at    BIGINT,
    last_used_at  BIGINT,
    last_used_ip  TEXT
);
CREATE INDEX devices_account ON devices (account_id);
CREATE INDEX devices_expires ON devices (expires_at);

-- A pairing code shown to a signed-in owner and typed into a device:
-- open -> claimed (by a device, which then polls with its claim secret)
-- -> confirmed or refused (by the owner) -> issued (the device got its
-- credential, once). Every step is a conditional UPDATE on `state`, so a
-- code is used at most once even when two devices race for it.
CREATE TABLE pairings (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code_hash     BYTEA   NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
    account_id    BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    routes_json   TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    state         TEXT    NOT NULL
                  CHECK (state IN ('open', 'claimed', 'confirmed', 'refused', 'issued')),
    claim_hash    BYTEA   UNIQUE CHECK (octet_length(claim_hash) = 32),
    device_name   TEXT,
    claimed_at    BIGINT,
    -- The device issued; NULL until then, and again once it is revoked.
    device_id     BIGINT  REFERENCES devices (id) ON DELETE SET NULL,
    -- Only an open pairing lacks the claim.
    CHECK ((state = 'open') = (claim_hash IS NULL)),
    CHECK ((state = 'open') = (device_name IS NULL)),
    CHECK ((state = 'open') = (claimed_at IS NULL))
);
CREATE INDEX pairings_account ON pairings (account_id);
CREATE INDEX pairings_expires ON pairings (expires_at);
CREATE INDEX pairings_device ON pairings (device_id);
