-- chunkfs metadata, version 1. Every namespace change appends rows; `born`/`died` are seqs
-- (a row is valid for born <= seq < died; died IS NULL while current).

CREATE TABLE store (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- Sealed superchunks on the device.
CREATE TABLE superchunks (
    id          INTEGER PRIMARY KEY,
    start       INTEGER NOT NULL,   -- byte offset of the extent on the device
    len         INTEGER NOT NULL,   -- extent length (sector multiple)
    chunks      INTEGER NOT NULL,
    raw_bytes   INTEGER NOT NULL,   -- sum of the plain lengths of its chunks
    live_bytes  INTEGER NOT NULL,   -- stored bytes of its chunks that are still referenced
    created     INTEGER NOT NULL    -- unix seconds
) STRICT;

-- The chunk index: hash -> location. refcount counts occurrences in leaf chunk lists.
CREATE TABLE chunks (
    hash        BLOB PRIMARY KEY,
    superchunk  INTEGER NOT NULL,
    offset      INTEGER NOT NULL,   -- from the superchunk's start
    stored_len  INTEGER NOT NULL,
    raw_len     INTEGER NOT NULL,
    codec       INTEGER NOT NULL,
    refcount    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX chunks_by_superchunk ON chunks(superchunk);

-- Chunk lists: content-addressed tree nodes. refcount counts revisions and parent lists.
CREATE TABLE lists (
    hash        BLOB PRIMARY KEY,
    depth       INTEGER NOT NULL,   -- 0 = leaf (entries name chunks), >0 = entries name lists
    size        INTEGER NOT NULL,   -- logical bytes covered
    body        BLOB NOT NULL,
    refcount    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE free_extents (
    start INTEGER PRIMARY KEY,
    len   INTEGER NOT NULL
) STRICT;

CREATE TABLE inodes (
    ino     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    INTEGER NOT NULL,
    born    INTEGER NOT NULL
) STRICT;

-- One committed state of one inode.
CREATE TABLE revisions (
    id      INTEGER PRIMARY KEY,
    ino     INTEGER NOT NULL REFERENCES inodes(ino),
    born    INTEGER NOT NULL,
    died    INTEGER,
    op      TEXT NOT NULL,       -- what made it: create, write, setattr, link, ...
    mode    INTEGER NOT NULL,    -- permission bits (07777)
    uid     INTEGER NOT NULL,
    gid     INTEGER NOT NULL,
    nlink   INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    rdev    INTEGER NOT NULL,
    atime   INTEGER NOT NULL,    -- nanoseconds since the epoch
    mtime   INTEGER NOT NULL,
    ctime   INTEGER NOT NULL,
    crtime  INTEGER NOT NULL,
    list    BLOB,                -- root chunk list of a regular file (NULL = empty)
    target  BLOB                 -- symlink target
) STRICT;
CREATE UNIQUE INDEX revisions_current ON revisions(ino) WHERE died IS NULL;
CREATE INDEX revisions_by_ino ON revisions(ino, born);

CREATE TABLE dirents (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- also the readdir cookie: never reused
    parent  INTEGER NOT NULL,
    name    BLOB NOT NULL,
    ino     INTEGER NOT NULL,
    kind    INTEGER NOT NULL,
    born    INTEGER NOT NULL,
    died    INTEGER
) STRICT;
CREATE UNIQUE INDEX dirents_current ON dirents(parent, name) WHERE died IS NULL;
CREATE INDEX dirents_current_by_ino ON dirents(ino) WHERE died IS NULL;
CREATE INDEX dirents_history ON dirents(parent, name, born);

CREATE TABLE xattrs (
    ino     INTEGER NOT NULL,
    name    BLOB NOT NULL,
    value   BLOB NOT NULL,
    born    INTEGER NOT NULL,
    died    INTEGER
) STRICT;
CREATE UNIQUE INDEX xattrs_current ON xattrs(ino, name) WHERE died IS NULL;

-- seq -> wall time, one row per committed batch, so times can be mapped to seqs.
CREATE TABLE commits (
    seq     INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL     -- nanoseconds since the epoch
) STRICT;
