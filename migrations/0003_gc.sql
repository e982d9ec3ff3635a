-- Space: store configuration, and the indexes that let garbage collection find its work
-- without scanning whole tables.

-- Settings changeable after mkfs (`chunkfs config`). Values are text as the user gave them
-- after parsing (history-window is in seconds).
CREATE TABLE config (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;
INSERT INTO config(key, value) VALUES ('history-window', '604800');

-- Ended rows by when they ended: pruning walks these in order of `died`.
CREATE INDEX revisions_dead ON revisions(died) WHERE died IS NOT NULL;
CREATE INDEX dirents_dead ON dirents(died) WHERE died IS NOT NULL;
CREATE INDEX xattrs_dead ON xattrs(died) WHERE died IS NOT NULL;
-- Current revisions of unlinked inodes (reclaimable once no one has them open).
CREATE INDEX revisions_unlinked ON revisions(born) WHERE died IS NULL AND nlink = 0;
-- Chunks no list references: swept, and their bytes taken off their superchunk's live_bytes.
CREATE INDEX chunks_unreferenced ON chunks(superchunk) WHERE refcount = 0;
-- Superchunks by live bytes: empty ones are freed, sparse ones repacked.
CREATE INDEX superchunks_by_live ON superchunks(live_bytes);
-- Times to seqs for the history window.
CREATE INDEX commits_by_time ON commits(time);
