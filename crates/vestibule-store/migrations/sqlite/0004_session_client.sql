-- vestibule store, SQLite schema 4: the browser (User-Agent, at most 256
-- visible ASCII bytes) and client address a session was opened from, so a
-- person can tell their sessions apart. NULL for sessions opened before.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN client_ip TEXT;
