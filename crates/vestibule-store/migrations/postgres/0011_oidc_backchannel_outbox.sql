-- vestibule store, PostgreSQL schema 11: the outbox of OpenID Connect
-- Back-Channel Logout 1.0 notifications (issue 14). Timestamps are unix
-- milliseconds. Independent of version 9.
--
-- One row per (client, grant, account, session) to tell that a vestibule
-- session ended. It is written in the same transaction that ends the
-- session (or revokes the grant), so a notification is never lost to a
-- crash between the two; a sender on any instance delivers it and
-- deletes the row. Nothing here is a secret: the logout token is minted
-- afresh for each attempt and never stored.
--
-- `client_id` is not a foreign key (a client may be declared in the
-- config file); `account_id` is not one either: the notification must
-- outlive the account it is about (a deleted account's sessions end too).
-- `session_ref` is what the ID token's `sid` was derived from (the
-- grant's `session_ref`, or `grant:<id>` for a grant without one).
--
-- Claiming: one conditional UPDATE sets `lease_until` and a random
-- `lease` on a row that is due (next_attempt_at <= now) and not leased
-- (lease_until IS NULL OR lease_until <= now); only the holder of
-- `lease` may then delete or reschedule it, so two instances never send
-- one row at once and a stale sender cannot undo a newer claim.
CREATE TABLE oidc_backchannel_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       TEXT    NOT NULL,
    account_id      BIGINT NOT NULL,
    grant_id        BIGINT NOT NULL,
    session_ref     TEXT    NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease           TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    CHECK ((lease IS NULL) = (lease_until IS NULL))
);
CREATE INDEX oidc_backchannel_outbox_due ON oidc_backchannel_outbox (next_attempt_at);
