-- vestibule store, SQLite schema 5: the keys vestibule signs identity
-- assertions with, shared by every instance using this database.
-- Timestamps are unix milliseconds.
--
-- `private_key` is the key's PKCS#8 DER, either as is
-- (`private_format = 'plain'`) or sealed with AES-256-GCM under the
-- key-encryption key (`'aes256gcm'`: a 12-byte nonce, then the ciphertext
-- and its 16-byte tag; the kid is the additional authenticated data).
-- A key is published from `created_at`, signs from `signs_from`
-- (publish before sign), stops signing at `retired_at` and stays published
-- until `verify_until`, when every token it signed has expired.
-- Version 4 is another change's; the two are independent.
CREATE TABLE signing_keys (
    kid            TEXT    NOT NULL PRIMARY KEY,
    alg            TEXT    NOT NULL,
    private_format TEXT    NOT NULL CHECK (private_format IN ('plain', 'aes256gcm')),
    private_key    BLOB    NOT NULL,
    public_jwk     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    signs_from     INTEGER NOT NULL,
    retired_at     INTEGER,
    verify_until   INTEGER,
    CHECK ((retired_at IS NULL) = (verify_until IS NULL))
);
CREATE INDEX signing_keys_verify_until ON signing_keys (verify_until);
