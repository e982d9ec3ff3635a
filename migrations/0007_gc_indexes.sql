-- Garbage collection runs a pass whenever the store changed; each of its queries is an index
-- range bounded by what there is to collect, never a walk of the whole store
-- (docs/FORMAT.md, "Garbage collection").

-- Unlinked files by the seq that unlinked them: a pass reads those unlinked before the
-- history window starts (`born <= window`), not every unlinked file the window still keeps.
-- 0005's index on `id` walked those too.
DROP INDEX revisions_unlinked;
CREATE INDEX revisions_unlinked ON revisions(born) WHERE died IS NULL AND nlink = 0;

-- Repack candidates: superchunks less than half live (gc::REPACK_BELOW; written so because
-- SQLite matches a partial index's condition only in this form), by age, so that young ones
-- (the `repack-age` setting) are never read.
CREATE INDEX superchunks_sparse ON superchunks(created) WHERE live_bytes < len - live_bytes;

-- Retention points by seq: pruning asks of each ended row whether one falls inside it.
CREATE INDEX snapshots_by_seq ON snapshots(seq);
CREATE INDEX clones_by_seq ON clones(seq);
