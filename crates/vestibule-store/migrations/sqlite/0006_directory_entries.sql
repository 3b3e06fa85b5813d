-- vestibule store, SQLite schema 6: the LDAP entry each account is written
-- to ([accounts.ldap]). A row is written with `written = 0` before the
-- directory is touched, and set to 1 once every directory write is done,
-- so a crash between the two leaves a row that says "reconcile me" at the
-- account's next login. `object_id` is the UUID the entry carries
-- (geOrchestra's georchestraObjectIdentifier), which tells our entry from
-- someone else's at the same DN. Timestamps are unix milliseconds.
CREATE TABLE directory_entries (
    account_id  INTEGER NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    dn          TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    written     INTEGER NOT NULL CHECK (written IN (0, 1)),
    updated_at  INTEGER NOT NULL
);
