-- Who took each snapshot, for the per-user limit (`snapshot-limit`, docs/SECURITY.md).
-- Snapshots taken before this migration count as root's, which no limit applies to.
ALTER TABLE snapshots ADD COLUMN owner INTEGER NOT NULL DEFAULT 0;
CREATE INDEX snapshots_by_owner ON snapshots(owner);
