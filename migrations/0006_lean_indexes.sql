-- Indexes for the hot paths only, and the history indexes over ended rows only: a tree whose
-- rows never end (a backup series copied in, version after version) carries none of them.
-- Every query of the past is a UNION ALL of its current rows (partial indexes on
-- `died IS NULL`) and its ended rows (partial indexes on `died IS NOT NULL`).

-- Current entries of a directory in cookie order: readdir pages through them by `id`
-- without sorting the directory (0002's index on (parent, born) made every page a sort).
CREATE INDEX dirents_live_by_parent ON dirents(parent, id) WHERE died IS NULL;
-- Ended entries: by name (lookup at a seq), by cookie (readdir at a seq), by inode (the
-- parent at a seq; before, a range scan over every entry that ended after it).
DROP INDEX dirents_history;
DROP INDEX dirents_by_parent_born;
CREATE INDEX dirents_ended ON dirents(parent, name, born) WHERE died IS NOT NULL;
CREATE INDEX dirents_ended_by_parent ON dirents(parent, id) WHERE died IS NOT NULL;
CREATE INDEX dirents_ended_by_ino ON dirents(ino) WHERE died IS NOT NULL;

-- Ended revisions by inode (the state at a seq, log); the current one has revisions_current.
DROP INDEX revisions_by_ino;
CREATE INDEX revisions_ended ON revisions(ino, born) WHERE died IS NOT NULL;

-- Xattrs of an inode at a seq, and all of them when it is forgotten (before, both scanned).
CREATE INDEX xattrs_by_ino ON xattrs(ino, born);
