-- `private_key_jwt` client assertions already accepted (RFC 7523 §3
-- item 7; OIDC Core §9), kept until the assertion would no longer verify
-- (its `exp` plus the leeway, Unix seconds). In the database rather than
-- in each instance's memory, so instances sharing it accept an assertion
-- once among them all.
CREATE TABLE oidc_client_assertion_jtis (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX oidc_client_assertion_jtis_expires ON oidc_client_assertion_jtis (expires_at);
