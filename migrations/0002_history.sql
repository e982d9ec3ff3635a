-- History made visible: named snapshots, directory clones, and store configuration.

-- A snapshot names a seq (and the directory it was taken of): O(1) to take.
CREATE TABLE snapshots (
    name     TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL,
    root     INTEGER NOT NULL,   -- inode of the directory the snapshot shows
    created  INTEGER NOT NULL    -- nanoseconds since the epoch
) STRICT;

-- A clone of directory `src` as it was at `seq`. Its inodes are virtual until first changed:
-- `clone_inos` maps each clone-side inode number to the source inode it stands for.
CREATE TABLE clones (
    id       INTEGER PRIMARY KEY,
    src      INTEGER NOT NULL,
    seq      INTEGER NOT NULL,   -- the source is read as of this seq (a retention point)
    born     INTEGER NOT NULL    -- the seq of the clone operation
) STRICT;

CREATE TABLE clone_inos (
    ino      INTEGER PRIMARY KEY,
    clone    INTEGER NOT NULL REFERENCES clones(id),
    src      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX clone_inos_by_src ON clone_inos(clone, src);

CREATE INDEX dirents_by_parent_born ON dirents(parent, born);
