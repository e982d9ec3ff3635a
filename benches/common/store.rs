//! A store of many files made in seconds: `open::mkfs`, then its metadata filled directly with
//! SQL, rows as the core writes them (inserts only, so schema changes that add or drop indexes
//! leave it valid). Directories `d0`, `d1`, … of 1,000 files each under the root, files `f0`,
//! `f1`, … (`fI` in directory `d{I / 1000}`), one 64 KiB chunk per file, 64 chunks per
//! superchunk. The superchunks' bytes are never written: the benches read metadata only.

use chunkfs::fs::{Ino, MkfsOptions, open};
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const PER_DIR: u64 = 1000;
pub const PER_SUPERCHUNK: u64 = 64;
pub const STORED: u64 = 40_000;
pub const RAW: u64 = 65_536;
/// The superchunk extent: 64 chunks and a 4 KiB header.
pub const SC_LEN: u64 = PER_SUPERCHUNK * STORED + 4096;

/// What the files' histories look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Every file current and named once: a store right after a backup copy.
    Live,
    /// 80% current files, 10% unlinked (not yet collected), 10% with a revision of older
    /// content that ended at seq 2, outside the history window (seq 1 is dated 1970).
    Aged,
    /// History a snapshot keeps: a snapshot `before` at seq 1; 10% of the files with an older
    /// revision and 10% with an older name, both ended at seq 2 (dated 1970, outside the
    /// window, seen by the snapshot); 1% unlinked at seq 3 (now, inside the window).
    Kept,
}

/// Where the rows of `populate` put things.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub files: u64,
    pub dirs: u64,
    pub mix: Mix,
}

impl Layout {
    pub fn new(files: u64, mix: Mix) -> Layout {
        Layout {
            files,
            dirs: files.div_ceil(PER_DIR),
            mix,
        }
    }

    /// Directory `d` (0-based), a child of the root.
    pub fn dir(&self, d: u64) -> Ino {
        Ino(2 + d)
    }

    pub fn dir_name(d: u64) -> Vec<u8> {
        format!("d{d}").into_bytes()
    }

    /// File `i` (0-based).
    pub fn file(&self, i: u64) -> Ino {
        Ino(2 + self.dirs + i)
    }

    pub fn file_name(i: u64) -> Vec<u8> {
        format!("f{i}").into_bytes()
    }

    /// The directory file `i` is named in (if it is named at all).
    pub fn dir_of(&self, i: u64) -> Ino {
        self.dir(i / PER_DIR)
    }

    /// Whether file `i` has a name (Aged unlinks one in ten, Kept one in a hundred).
    pub fn linked(&self, i: u64) -> bool {
        match self.mix {
            Mix::Live => true,
            Mix::Aged => !i.is_multiple_of(10),
            Mix::Kept => i % 100 != 3,
        }
    }
}

/// A fresh store of `layout.files` files in `parent`/store (a 256 GiB sparse image). Prints
/// how long the rows took to insert (the counters' triggers fire on every row) and the size
/// of meta.db; returns the store's path and those seconds.
pub fn make(parent: &Path, layout: &Layout) -> (PathBuf, f64) {
    let store = parent.join("store");
    let mk = MkfsOptions {
        size: Some(256 << 30),
        ..MkfsOptions::default()
    };
    open::mkfs(&store, &mk).unwrap();
    let secs = populate(&store, layout);
    let db = std::fs::metadata(store.join(open::META_FILE))
        .unwrap()
        .len();
    println!(
        "{} files ({:?}): rows inserted in {secs:.2} s ({:.1} µs per file), meta.db {} MiB",
        layout.files,
        layout.mix,
        secs * 1e6 / layout.files as f64,
        db >> 20
    );
    (store, secs)
}

fn hash(domain: &[u8], i: u64) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(domain).update(&i.to_le_bytes());
    h.finalize().as_bytes().to_vec()
}

fn body(chunk: &[u8]) -> Vec<u8> {
    let mut b = chunk.to_vec();
    b.extend_from_slice(&RAW.to_le_bytes());
    b
}

/// Fill a freshly made store with the rows of `layout`; returns the seconds the inserts took.
pub fn populate(store: &Path, layout: &Layout) -> f64 {
    let t = Instant::now();
    let conn = Connection::open(store.join(open::META_FILE)).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; BEGIN")
        .unwrap();
    // Seq 1 (mkfs) is long past the 7-day window, seq 2 is now: rows that died at 2 or
    // unlinked files born at 1 are collectable. Kept: seq 2 is past the window too and seq 3
    // is now, so rows that ended at 2 are candidates, kept only by the snapshot at 1.
    let now: i64 = conn
        .query_row("SELECT time FROM commits WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    conn.execute("UPDATE commits SET time = 0 WHERE seq = 1", [])
        .unwrap();
    let last = if layout.mix == Mix::Kept {
        conn.execute("INSERT INTO commits(seq, time) VALUES (2, 1)", [])
            .unwrap();
        conn.execute(
            "INSERT INTO snapshots(name, seq, root, created) VALUES ('before', 1, 1, 0)",
            [],
        )
        .unwrap();
        3
    } else {
        2
    };
    conn.execute(
        "INSERT INTO commits(seq, time) VALUES (?1, ?2)",
        [last, now],
    )
    .unwrap();
    chunkfs::meta::set_u64(&conn, "seq", last as u64).unwrap();
    let mut inode = conn
        .prepare("INSERT INTO inodes(ino, kind, born) VALUES (?1, ?2, 1)")
        .unwrap();
    let mut rev = conn
        .prepare(
            "INSERT INTO revisions(ino, born, died, op, mode, uid, gid, nlink, size, rdev,
                                   atime, mtime, ctime, crtime, list)
             VALUES (?1, ?2, ?3, 'write', ?4, 0, 0, ?5, ?6, 0, 0, 0, 0, 0, ?7)",
        )
        .unwrap();
    let mut dirent = conn
        .prepare(
            "INSERT INTO dirents(parent, name, ino, kind, born, died)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .unwrap();
    let mut list = conn
        .prepare("INSERT INTO lists(hash, depth, size, body, refcount) VALUES (?1, 0, ?2, ?3, 1)")
        .unwrap();
    let mut chunk = conn
        .prepare(
            "INSERT INTO chunks(hash, superchunk, offset, stored_len, raw_len, codec, refcount)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, 1)",
        )
        .unwrap();
    for d in 0..layout.dirs {
        let ino = layout.dir(d).0 as i64;
        inode.execute(params![ino, 2]).unwrap();
        rev.execute(params![ino, 1, None::<i64>, 0o40755, 2, 0, None::<Vec<u8>>])
            .unwrap();
        dirent
            .execute(params![1, Layout::dir_name(d), ino, 2, 1, None::<i64>])
            .unwrap();
    }
    let mut chunks = 0u64;
    let mut add_content = |domain: &[u8], i: u64| {
        let (c, l) = (hash(domain, i), hash(&[domain, b"list"].concat(), i));
        let sc = chunks / PER_SUPERCHUNK + 1;
        let off = 4096 + (chunks % PER_SUPERCHUNK) * STORED;
        chunk
            .execute(params![c, sc as i64, off as i64, STORED as i64, RAW as i64])
            .unwrap();
        list.execute(params![l, RAW as i64, body(&c)]).unwrap();
        chunks += 1;
        l
    };
    for i in 0..layout.files {
        let ino = layout.file(i).0 as i64;
        inode.execute(params![ino, 1]).unwrap();
        let l = add_content(b"current", i);
        match (layout.mix, i % 10) {
            // Unlinked: the current revision has no links and no name (Kept: at seq 3).
            _ if !layout.linked(i) => {
                let born = if layout.mix == Mix::Kept { 3 } else { 1 };
                rev.execute(params![ino, born, None::<i64>, 0o100644, 0, RAW as i64, l])
                    .unwrap();
            }
            // Older content, ended at seq 2: outside the window (Kept: seen by the snapshot).
            (Mix::Aged | Mix::Kept, 1) => {
                let old = add_content(b"old", i);
                rev.execute(params![ino, 1, 2, 0o100644, 1, RAW as i64, old])
                    .unwrap();
                rev.execute(params![ino, 2, None::<i64>, 0o100644, 1, RAW as i64, l])
                    .unwrap();
            }
            _ => {
                rev.execute(params![ino, 1, None::<i64>, 0o100644, 1, RAW as i64, l])
                    .unwrap();
            }
        }
        if layout.linked(i) {
            let dir = layout.dir_of(i).0 as i64;
            let name = Layout::file_name(i);
            if layout.mix == Mix::Kept && i % 10 == 2 {
                // An older name, ended at seq 2: seen by the snapshot.
                let old = format!("old{i}").into_bytes();
                dirent.execute(params![dir, old, ino, 1, 1, 2]).unwrap();
                dirent
                    .execute(params![dir, name, ino, 1, 2, None::<i64>])
                    .unwrap();
            } else {
                dirent
                    .execute(params![dir, name, ino, 1, 1, None::<i64>])
                    .unwrap();
            }
        }
    }
    drop((inode, rev, dirent, list, chunk));
    let scs = chunks.div_ceil(PER_SUPERCHUNK);
    let mut sc = conn
        .prepare(
            "INSERT INTO superchunks(id, start, len, chunks, raw_bytes, live_bytes, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
        )
        .unwrap();
    let mut start = 4096;
    for s in 0..scs {
        let n = PER_SUPERCHUNK.min(chunks - s * PER_SUPERCHUNK);
        // Each extent just holds its chunks (the last one too): none is under half live.
        let len = 4096 + n * STORED;
        sc.execute(params![
            (s + 1) as i64,
            start as i64,
            len as i64,
            n as i64,
            (n * RAW) as i64,
            (n * STORED) as i64
        ])
        .unwrap();
        start += len.next_multiple_of(4096);
    }
    drop(sc);
    let (fstart, flen): (i64, i64) = conn
        .query_row("SELECT start, len FROM free_extents", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let used = start as i64 - fstart;
    conn.execute("DELETE FROM free_extents", []).unwrap();
    conn.execute(
        "INSERT INTO free_extents(start, len) VALUES (?1, ?2)",
        [start as i64, flen - used],
    )
    .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    t.elapsed().as_secs_f64()
}
