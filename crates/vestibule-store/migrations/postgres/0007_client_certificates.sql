-- vestibule store, PostgreSQL schema 7: the per-deployment client-certificate
-- CA and the certificates it issued to devices (issue 18). Timestamps are
-- unix milliseconds. Version 6 is another change's; the two are
-- independent.
--
-- The CA that signs new device certificates is the newest one that is not
-- retired. `private_key` is its PKCS#8 DER as is (`'plain'`) or sealed
-- with AES-256-GCM under the key-encryption key (`'aes256gcm'`, as for
-- signing_keys; the id is the additional authenticated data).
CREATE TABLE client_cas (
    id             TEXT    NOT NULL PRIMARY KEY,
    cert_der       BYTEA   NOT NULL,
    private_format TEXT    NOT NULL CHECK (private_format IN ('plain', 'aes256gcm')),
    private_key    BYTEA   NOT NULL,
    created_at     BIGINT    NOT NULL,
    retired_at     BIGINT
);

-- One row per certificate issued to a device; the device row itself holds
-- the certificate's SHA-256 as its secret_hash (the per-request lookup).
-- The private key is never stored. A certificate is revoked when its
-- device is: `revoked_at` is set first, and deleting the device sets
-- `device_id` to NULL; either puts it on the CRL until `not_after`.
CREATE TABLE client_certificates (
    serial         TEXT    NOT NULL PRIMARY KEY,
    ca_id          TEXT    NOT NULL REFERENCES client_cas (id) ON DELETE CASCADE,
    device_id      BIGINT    REFERENCES devices (id) ON DELETE SET NULL,
    issued_at      BIGINT    NOT NULL,
    not_after      BIGINT    NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX client_certificates_device ON client_certificates (device_id);
CREATE INDEX client_certificates_ca ON client_certificates (ca_id, not_after);
