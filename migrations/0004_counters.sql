-- Space counters: the figures statfs reports, kept up to date by triggers in the same
-- transactions that change them, so statfs reads one row instead of scanning the store.

-- Stored bytes of each superchunk's chunks at refcount zero (in the index, not yet swept).
-- live_bytes - dead_bytes is what the superchunk holds for some chunk list.
ALTER TABLE superchunks ADD COLUMN dead_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE superchunks SET dead_bytes = COALESCE((SELECT SUM(c.stored_len) FROM chunks c
                                               WHERE c.superchunk = superchunks.id
                                                 AND c.refcount = 0), 0);

-- One row. `inodes`: rows of `inodes`. `dead_bytes`: device bytes garbage collection gives
-- back without pruning anything, summed over superchunks: the whole extent of one nothing
-- references, and for one referenced below half its extent (repacked), the extent less its
-- referenced bytes rounded up to sectors (4096). The 1/2 is gc::REPACK_BELOW.
CREATE TABLE counters (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    inodes      INTEGER NOT NULL,
    dead_bytes  INTEGER NOT NULL
) STRICT;
INSERT INTO counters(id, inodes, dead_bytes) VALUES (1,
    (SELECT COUNT(*) FROM inodes),
    (SELECT COALESCE(SUM(CASE
        WHEN live_bytes - dead_bytes <= 0 THEN len
        WHEN (live_bytes - dead_bytes) * 2 < len
            THEN len - ((live_bytes - dead_bytes + 4095) / 4096) * 4096
        ELSE 0 END), 0) FROM superchunks));

CREATE TRIGGER inodes_count_insert AFTER INSERT ON inodes BEGIN
    UPDATE counters SET inodes = inodes + 1 WHERE id = 1;
END;
CREATE TRIGGER inodes_count_delete AFTER DELETE ON inodes BEGIN
    UPDATE counters SET inodes = inodes - 1 WHERE id = 1;
END;

-- A chunk's stored bytes count in its superchunk's dead_bytes while its refcount is zero.
-- Chunks are inserted at refcount zero, often before their superchunk's row exists (the
-- superchunk is still being filled); the insert trigger on superchunks counts those.
CREATE TRIGGER chunks_dead_insert AFTER INSERT ON chunks WHEN new.refcount = 0 BEGIN
    UPDATE superchunks SET dead_bytes = dead_bytes + new.stored_len WHERE id = new.superchunk;
END;
CREATE TRIGGER chunks_dead_delete AFTER DELETE ON chunks WHEN old.refcount = 0 BEGIN
    UPDATE superchunks SET dead_bytes = dead_bytes - old.stored_len WHERE id = old.superchunk;
END;
-- A reference count to or from zero (the common case: one statement), and apart, a dead
-- chunk moved to another superchunk or length; the two never both fire for one row.
CREATE TRIGGER chunks_dead_refcount AFTER UPDATE OF refcount ON chunks
WHEN (old.refcount = 0) <> (new.refcount = 0)
     AND old.superchunk = new.superchunk AND old.stored_len = new.stored_len BEGIN
    UPDATE superchunks
        SET dead_bytes = dead_bytes + CASE WHEN new.refcount = 0 THEN new.stored_len
                                           ELSE -old.stored_len END
        WHERE id = new.superchunk;
END;
CREATE TRIGGER chunks_dead_move AFTER UPDATE OF refcount, superchunk, stored_len ON chunks
WHEN (old.refcount = 0 OR new.refcount = 0)
     AND (old.superchunk <> new.superchunk OR old.stored_len <> new.stored_len) BEGIN
    UPDATE superchunks SET dead_bytes = dead_bytes - old.stored_len
        WHERE id = old.superchunk AND old.refcount = 0;
    UPDATE superchunks SET dead_bytes = dead_bytes + new.stored_len
        WHERE id = new.superchunk AND new.refcount = 0;
END;

-- counters.dead_bytes follows each superchunk's share (the CASE above, on old and new rows).
CREATE TRIGGER superchunks_dead_insert AFTER INSERT ON superchunks BEGIN
    UPDATE counters SET dead_bytes = dead_bytes + CASE
        WHEN new.live_bytes - new.dead_bytes <= 0 THEN new.len
        WHEN (new.live_bytes - new.dead_bytes) * 2 < new.len
            THEN new.len - ((new.live_bytes - new.dead_bytes + 4095) / 4096) * 4096
        ELSE 0 END WHERE id = 1;
    UPDATE superchunks SET dead_bytes = COALESCE((SELECT SUM(c.stored_len) FROM chunks c
                                                   WHERE c.superchunk = new.id
                                                     AND c.refcount = 0), 0)
        WHERE id = new.id;
END;
CREATE TRIGGER superchunks_dead_delete AFTER DELETE ON superchunks BEGIN
    UPDATE counters SET dead_bytes = dead_bytes - CASE
        WHEN old.live_bytes - old.dead_bytes <= 0 THEN old.len
        WHEN (old.live_bytes - old.dead_bytes) * 2 < old.len
            THEN old.len - ((old.live_bytes - old.dead_bytes + 4095) / 4096) * 4096
        ELSE 0 END WHERE id = 1;
END;
CREATE TRIGGER superchunks_dead_update AFTER UPDATE OF live_bytes, dead_bytes, len ON superchunks
BEGIN
    UPDATE counters SET dead_bytes = dead_bytes + CASE
        WHEN new.live_bytes - new.dead_bytes <= 0 THEN new.len
        WHEN (new.live_bytes - new.dead_bytes) * 2 < new.len
            THEN new.len - ((new.live_bytes - new.dead_bytes + 4095) / 4096) * 4096
        ELSE 0 END - CASE
        WHEN old.live_bytes - old.dead_bytes <= 0 THEN old.len
        WHEN (old.live_bytes - old.dead_bytes) * 2 < old.len
            THEN old.len - ((old.live_bytes - old.dead_bytes + 4095) / 4096) * 4096
        ELSE 0 END WHERE id = 1;
END;

-- Unlinked files in id order, as GC and the reclaimable estimate page through them
-- (`meta::gc::unlinked_revisions`, `id > ? ORDER BY id`): with the index on `born` of 0003
-- SQLite walked every revision by rowid instead.
DROP INDEX revisions_unlinked;
CREATE INDEX revisions_unlinked ON revisions(id) WHERE died IS NULL AND nlink = 0;
