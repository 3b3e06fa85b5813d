-- vestibule store, SQLite schema 14: linking a second source (issue 15).
-- Independent of version 13.
--
-- A login under way in link mode: a signed-in person asked to link their
-- account at the OpenID provider to their vestibule account. The row
-- records which account asked and from which vestibule session (the
-- SHA-256 of its id), so the callback attaches the provider's (issuer,
-- sub) to that account only while that same session is still signed in.
-- Both NULL for an ordinary sign-in.
ALTER TABLE oidc_pending_logins ADD COLUMN link_account_id INTEGER;
ALTER TABLE oidc_pending_logins ADD COLUMN link_session_hash BLOB;
