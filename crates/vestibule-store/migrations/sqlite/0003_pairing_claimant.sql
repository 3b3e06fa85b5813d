-- vestibule store, SQLite schema 3: the address a pairing code was redeemed
-- from, shown to the owner before they confirm the device.
ALTER TABLE pairings ADD COLUMN claimed_ip TEXT;
