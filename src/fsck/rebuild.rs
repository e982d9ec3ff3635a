//! `fsck --rebuild-metadata`: recover the chunk index, the superchunk table and the free map
//! from the self-describing device, under a namespace taken from the best source there is:
//!
//! 1. `meta.db` itself, when it passes the database check (it is backed up first);
//! 2. else the newest backup (`meta.db.bak.1..3`) that passes the full check and names this
//!    device's uuid: the namespace as of that backup's seq. Names, attributes and history
//!    changed after it are lost; the data written after it is not: every superchunk sealed
//!    after the backup (its id is above the backup's highest) is kept as a file
//!    `/lost+found/superchunk-ID`, its chunks in the order the superchunk holds them;
//! 3. else a fresh, empty namespace, with every superchunk found on the device kept under
//!    `/lost+found` that way, so nothing is swept before someone has looked.
//!
//! The device is scanned sector by sector for superchunk headers (docs/FORMAT.md,
//! "Verification and recovery"). A header whose payload verifies is skipped whole; one whose
//! payload fails is kept for the chunks in it that still verify, and the walk goes on one sector
//! later, since a newer superchunk may have been written over its tail. Where two headers
//! overlap, the one whose payload verifies (then the newer id) wins; each chunk is indexed at
//! one copy that verifies, in the newest superchunk holding one. Refcounts, live bytes and the
//! free map are then recomputed (`repair`), and the store is checked as usual: chunks the
//! namespace needs that the device lacks are reported with the files that use them (exit 4).
//!
//! A damaged or replaced `meta.db` is never deleted: it is renamed `meta.db.damaged-SECS`
//! (with its -wal and -shm) and the rebuilt database is moved into its place only when done.

use super::data::chunk_is_good;
use super::{CheckOptions, FsckError, Progress, Report, Result};
use crate::chunker::ChunkHash;
use crate::meta::lists;
use crate::meta::namespace::{self, FileKind, Revision};
use crate::meta::{self, Ino, Seq, backup, check, chunks};
use crate::store::device::{Device, FileDevice};
use crate::store::freemap::Extent;
use crate::store::superblock::{SUPERBLOCK_LEN, Superblock};
use crate::store::superchunk::{self, ChunkEntry, Header, SuperchunkId};
use crate::store::{SECTOR, StoreError};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The device of a store made without `--device`, relative to the store directory: where to
/// look when no database names the device any more.
pub const DEFAULT_IMAGE: &str = "data.img";

/// The directory of a fresh namespace that keeps what the device holds.
pub const LOST_FOUND: &[u8] = b"lost+found";

/// Where the namespace of the rebuilt store comes from.
enum Source {
    /// meta.db is sound: rebuild in place.
    InPlace,
    /// A restored backup, at this temporary path.
    Backup(PathBuf),
    /// A fresh database with an empty namespace, at this temporary path.
    Fresh(PathBuf),
}

pub fn run(store: &Path, progress: &dyn Progress) -> Result<Report> {
    let meta_path = store.join(meta::META_FILE);
    let mut lines = Vec::new();
    let sound = open_if_sound(&meta_path);
    let (dev_path, uuid) = identify(store, &meta_path, sound.as_ref().ok())?;
    let dev = FileDevice::open_read_only(&dev_path).map_err(|e| {
        FsckError::Setup(format!(
            "cannot open the store's device {}: {e}",
            dev_path.display()
        ))
    })?;
    let sb = Superblock::read(&dev)?;
    if let Some(uuid) = uuid
        && uuid != sb.uuid
    {
        return Err(FsckError::Setup(format!(
            "device {} belongs to another store ({}); nothing was changed",
            dev_path.display(),
            sb.uuid_string()
        )));
    }
    let tmp = sibling(&meta_path, ".rebuild");
    let (conn, source) = match sound {
        Ok(conn) => {
            let b = backup::take(&meta_path)?;
            lines.push(format!(
                "meta.db is sound: kept its namespace; saved it first to {} (seq {})",
                b.path.display(),
                b.seq
            ));
            (conn, Source::InPlace)
        }
        Err(why) => {
            lines.push(format!("meta.db cannot be used: {why}"));
            remove_db(&tmp);
            match newest_good_backup(&meta_path, &sb, &mut lines) {
                Some(b) => {
                    backup::restore(&b.path, &tmp)?;
                    lines.push(format!(
                        "took the namespace from {} (seq {}): changes committed after it are lost",
                        b.path.display(),
                        b.seq
                    ));
                    (meta::open(&tmp, false)?, Source::Backup(tmp.clone()))
                }
                None => {
                    let conn = fresh(&tmp, &sb, &dev_path, store)?;
                    lines.push(
                        "no usable backup: the namespace starts empty, and what the device holds is kept under /lost+found"
                            .to_string(),
                    );
                    (conn, Source::Fresh(tmp.clone()))
                }
            }
        }
    };
    // Superchunks sealed after the namespace's database was: none for meta.db itself, those
    // past the backup's highest id, every one for a fresh namespace.
    let newer_than = match source {
        Source::InPlace => None,
        Source::Backup(_) => Some(chunks::next_superchunk_id(&conn)? - 1),
        Source::Fresh(_) => Some(0),
    };
    meta::in_transaction(&conn, true, || {
        reindex_from_device(&conn, &dev, &sb, newer_than, progress, &mut lines)
    })?;
    lines.extend(super::repair::repair(&conn, &dev, &sb)?);
    drop(conn);
    if let Source::Backup(tmp) | Source::Fresh(tmp) = &source {
        let aside = replace_db(&meta_path, tmp)?;
        lines.push(format!(
            "moved the unusable database aside to {} and put the rebuilt one in its place",
            aside.display()
        ));
    }
    let conn = meta::open(&meta_path, false)?;
    let mut report = meta::in_transaction(&conn, false, || {
        super::check(
            &conn,
            &dev as &dyn Device,
            &sb,
            CheckOptions { quick: false },
            &super::Silent,
        )
    })?;
    report.repairs = lines;
    Ok(report)
}

/// meta.db opened, if it passes the full database check; else why not.
fn open_if_sound(meta_path: &Path) -> std::result::Result<Connection, String> {
    let conn = meta::open_unchecked(meta_path, false).map_err(|e| e.detail())?;
    let problems = check::database(&conn, false).map_err(|e| e.detail())?;
    if problems.is_empty() {
        Ok(conn)
    } else {
        Err(problems.join("; "))
    }
}

/// The device path, and the uuid the metadata expects if any source still says: meta.db
/// (even a damaged one often still reads), then the backups, then the default image.
fn identify(
    store: &Path,
    meta_path: &Path,
    sound: Option<&Connection>,
) -> Result<(PathBuf, Option<Vec<u8>>)> {
    let from = |conn: &Connection| -> Option<(PathBuf, Option<Vec<u8>>)> {
        let dev = meta::device_path(conn).ok()?;
        Some((
            store.join(dev),
            meta::get_value(conn, "uuid").ok().flatten(),
        ))
    };
    if let Some(found) = sound.and_then(from) {
        return Ok(found);
    }
    if let Ok(conn) = meta::open_unchecked(meta_path, true)
        && let Some(found) = from(&conn)
    {
        return Ok(found);
    }
    for c in backup::candidates(meta_path, None) {
        if c.verdict.is_ok()
            && let Ok(conn) = backup::open_backup(&c.path)
            && let Some(found) = from(&conn)
        {
            return Ok(found);
        }
    }
    Ok((store.join(DEFAULT_IMAGE), None))
}

fn newest_good_backup(
    meta_path: &Path,
    sb: &Superblock,
    lines: &mut Vec<String>,
) -> Option<backup::Backup> {
    for c in backup::candidates(meta_path, Some(&sb.uuid)) {
        match c.verdict {
            Ok(b) => return Some(b),
            Err(why) => lines.push(format!("backup {} not used: {why}", c.path.display())),
        }
    }
    None
}

/// A new database for the device: the superblock's uuid, the device path as the store named
/// it (relative when it lies in the store), an empty root directory at seq 1.
fn fresh(path: &Path, sb: &Superblock, dev_path: &Path, store: &Path) -> Result<Connection> {
    let conn = meta::open(path, true)?;
    let dev_name = dev_path.strip_prefix(store).unwrap_or(dev_path);
    meta::in_transaction(&conn, true, || -> Result<()> {
        meta::set_value(&conn, "uuid", &sb.uuid)?;
        meta::set_value(&conn, "device", dev_name.as_os_str().as_encoded_bytes())?;
        let seq = Seq(1);
        let root = namespace::new_inode(&conn, FileKind::Dir, seq)?;
        namespace::put_revision(&conn, &dir_revision(root, 2, seq), seq, "mkfs")?;
        meta::set_u64(&conn, "seq", 1)?;
        meta::record_commit(&conn, seq, now_ns())?;
        Ok(())
    })?;
    Ok(conn)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn dir_revision(ino: Ino, nlink: u32, seq: Seq) -> Revision {
    Revision::new_dir(ino, nlink, seq, now_ns())
}

/// A superchunk found on the device.
struct Found {
    extent: Extent,
    header: Header,
    payload_ok: bool,
    /// The entries whose bytes verify against their names.
    good: Vec<ChunkEntry>,
}

impl Found {
    /// Which of two overlapping or same-id superchunks to believe.
    fn rank(&self) -> (bool, u64, usize) {
        (self.payload_ok, self.header.id.0, self.good.len())
    }
}

/// Walk the device for superchunk headers (see the module doc).
fn scan(dev: &dyn Device, sb: &Superblock, progress: &dyn Progress) -> Result<Vec<Found>> {
    const WINDOW: u64 = 256 * SECTOR;
    let end = dev.len()?.min(sb.capacity);
    progress.start(end.saturating_sub(SUPERBLOCK_LEN));
    let mut found = Vec::new();
    let mut off = SUPERBLOCK_LEN;
    let (mut window, mut win_start) = (Vec::new(), 0u64);
    while off + SECTOR <= end {
        if off < win_start || off >= win_start + window.len() as u64 {
            window.resize(((end - off) / SECTOR * SECTOR).min(WINDOW) as usize, 0);
            dev.read_at(&mut window, off)?;
            win_start = off;
        }
        if !superchunk::has_magic(&window[(off - win_start) as usize..]) {
            off += SECTOR;
            progress.advance(SECTOR);
            continue;
        }
        let header = match superchunk::read_header(dev, off) {
            Ok(h) => h,
            Err(StoreError::Io(e)) => return Err(e.into()),
            Err(_) => {
                off += SECTOR;
                progress.advance(SECTOR);
                continue;
            }
        };
        let len = header.total_len();
        let mut bytes = vec![0u8; len as usize];
        let avail = len.min(end - off) as usize;
        dev.read_at(&mut bytes[..avail], off)?;
        let payload_ok = avail as u64 == len && superchunk::verify_payload(&header, &bytes).is_ok();
        let good = header
            .entries
            .iter()
            .filter(|e| chunk_is_good(&bytes, e))
            .cloned()
            .collect();
        found.push(Found {
            extent: Extent { start: off, len },
            header,
            payload_ok,
            good,
        });
        let step = if payload_ok { len } else { SECTOR };
        off += step;
        progress.advance(step);
    }
    progress.finish();
    Ok(found)
}

/// Keep one superchunk where headers overlap or share an id.
fn resolve(found: Vec<Found>) -> Vec<Found> {
    let mut kept: Vec<Found> = Vec::new();
    for f in found {
        let overlapping: Vec<usize> = kept
            .iter()
            .enumerate()
            .filter(|(_, k)| {
                k.header.id == f.header.id
                    || (k.extent.start < f.extent.end() && f.extent.start < k.extent.end())
            })
            .map(|(i, _)| i)
            .collect();
        if overlapping.iter().all(|&i| kept[i].rank() < f.rank()) {
            for i in overlapping.into_iter().rev() {
                kept.remove(i);
            }
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.extent.start);
    kept
}

/// Replace the chunk index, superchunk table and free map with what the device holds.
fn reindex_from_device(
    conn: &Connection,
    dev: &dyn Device,
    sb: &Superblock,
    newer_than: Option<u64>,
    progress: &dyn Progress,
    lines: &mut Vec<String>,
) -> Result<()> {
    let found = resolve(scan(dev, sb, progress)?);
    let (_, counted) = check::counted_refcounts(conn)?;
    let wanted: HashSet<ChunkHash> = counted.keys().copied().collect();
    // Each chunk at one good copy: the newest superchunk holding one.
    let mut by_id: Vec<&Found> = found.iter().collect();
    by_id.sort_by_key(|f| std::cmp::Reverse(f.header.id.0));
    let mut chosen: HashMap<ChunkHash, SuperchunkId> = HashMap::new();
    for f in &by_id {
        for e in &f.good {
            chosen.entry(e.hash).or_insert(f.header.id);
        }
    }
    chunks::forget_space(conn)?;
    let (mut supers, mut indexed, mut hwm) = (0, 0, 0);
    let mut lost = Vec::new();
    for f in &found {
        let mine: Vec<&ChunkEntry> = f
            .good
            .iter()
            .filter(|e| chosen.get(&e.hash) == Some(&f.header.id))
            .collect();
        // A superchunk sealed after the namespace's database was holds what was written
        // since: kept whole under lost+found. Of the others, one none of whose chunks the
        // namespace needs is free space (what GC had freed).
        let newer = newer_than.is_some_and(|n| f.header.id.0 > n);
        if mine.is_empty() || (!newer && !mine.iter().any(|e| wanted.contains(&e.hash))) {
            continue;
        }
        let row = chunks::SuperchunkRow::holding(f.header.id, f.extent, &f.header.entries);
        chunks::insert_superchunk(conn, &row, now_ns() / 1_000_000_000)?;
        for e in &mine {
            chunks::insert(conn, &e.hash, &chunks::Location::of_entry(f.header.id, e))?;
        }
        supers += 1;
        indexed += mine.len();
        hwm = hwm.max(f.header.id.0);
        if !f.payload_ok {
            lines.push(format!(
                "superchunk {} at {}: its payload fails its checksum; took the {} chunks in it that verify",
                f.header.id.0,
                f.extent.start,
                f.good.len()
            ));
        }
        if newer {
            let mut entries = mine.clone();
            entries.sort_by_key(|e| e.offset);
            lost.push((f.header.id, entries));
        }
    }
    let old_hwm = meta::get_u64(conn, "superchunk_hwm")?.unwrap_or(0);
    meta::set_u64(conn, "superchunk_hwm", hwm.max(old_hwm))?;
    lines.push(format!(
        "scanned the device: {} superchunk headers found, {supers} kept, {indexed} chunks indexed",
        found.len()
    ));
    if !lost.is_empty() {
        let name = keep_in_lost_found(conn, &lost)?;
        lines.push(format!(
            "kept {} superchunks sealed after the namespace was saved as files under /{name}, one per superchunk",
            lost.len()
        ));
    }
    Ok(())
}

/// One file per superchunk in a new directory `/lost+found` (or `/lost+found.SEQ` if that
/// name is taken), so the chunks stay referenced; returns the directory's name.
fn keep_in_lost_found(
    conn: &Connection,
    lost: &[(SuperchunkId, Vec<&ChunkEntry>)],
) -> Result<String> {
    let seq = Seq(meta::get_u64(conn, "seq")?.unwrap_or(1) + 1);
    let mut name = LOST_FOUND.to_vec();
    if namespace::lookup(conn, Ino::ROOT, &name)?.is_some() {
        name.extend_from_slice(format!(".{}", seq.0).as_bytes());
    }
    let dir = namespace::new_inode(conn, FileKind::Dir, seq)?;
    namespace::put_revision(conn, &dir_revision(dir, 2, seq), seq, "rebuild")?;
    namespace::add_dirent(conn, Ino::ROOT, &name, dir, FileKind::Dir, seq)?;
    let mut root = namespace::current(conn, Ino::ROOT)?
        .ok_or_else(|| FsckError::Setup("the fresh namespace has no root".into()))?;
    root.nlink += 1;
    namespace::put_revision(conn, &root, seq, "rebuild")?;
    for (id, entries) in lost {
        let content: Vec<(ChunkHash, u64)> =
            entries.iter().map(|e| (e.hash, e.raw_len as u64)).collect();
        let (list, size) = store_tree(conn, content)?;
        let ino = namespace::new_inode(conn, FileKind::File, seq)?;
        let rev = Revision {
            kind: FileKind::File,
            mode: 0o600,
            nlink: 1,
            size,
            list: Some(list),
            ..dir_revision(ino, 1, seq)
        };
        namespace::put_revision(conn, &rev, seq, "rebuild")?;
        let name = format!("superchunk-{}", id.0);
        namespace::add_dirent(conn, dir, name.as_bytes(), ino, FileKind::File, seq)?;
    }
    meta::set_u64(conn, "seq", seq.0)?;
    meta::record_commit(conn, seq, now_ns())?;
    Ok(String::from_utf8_lossy(&name).into_owned())
}

/// Store the chunk-list tree of `content` (never empty); returns its root and size. The shape
/// is the filesystem's (`lists::shape`), so these nodes deduplicate with any file that holds
/// the same run of chunks. Refcounts are set by the recount that follows.
fn store_tree(conn: &Connection, content: Vec<(ChunkHash, u64)>) -> Result<(ChunkHash, u64)> {
    let (root, nodes) = lists::shape(content);
    for (hash, node) in nodes {
        if lists::get_refcount(conn, &hash)?.is_none() {
            lists::insert(conn, &hash, &node)?;
        }
    }
    Ok(root)
}

fn sibling(meta_path: &Path, suffix: &str) -> PathBuf {
    let mut p = meta_path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Remove a database and the WAL files SQLite keeps beside it.
fn remove_db(path: &Path) {
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(path, s));
    }
}

/// Move meta.db (and its WAL files, which belong to it alone) aside and the rebuilt database
/// into its place; returns where the old one went.
fn replace_db(meta_path: &Path, rebuilt: &Path) -> Result<PathBuf> {
    let secs = now_ns() / 1_000_000_000;
    let aside = sibling(meta_path, &format!(".damaged-{secs}"));
    for s in ["", "-wal", "-shm"] {
        let from = sibling(meta_path, s);
        if from.exists() {
            std::fs::rename(&from, sibling(&aside, s))?;
        }
    }
    // A WAL goes with its database (SQLite finds it by name); the -shm index is rebuilt.
    let _ = std::fs::remove_file(sibling(rebuilt, "-shm"));
    if sibling(rebuilt, "-wal").exists() {
        std::fs::rename(sibling(rebuilt, "-wal"), sibling(meta_path, "-wal"))?;
    }
    std::fs::rename(rebuilt, meta_path)?;
    if let Some(dir) = meta_path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::ChunkParams;
    use crate::store::device::MemDevice;
    use crate::store::superchunk::SuperchunkBuilder;

    fn write(dev: &MemDevice, id: u64, at: u64, chunks: &[Vec<u8>]) -> Vec<ChunkHash> {
        let mut b = SuperchunkBuilder::new(SuperchunkId(id));
        for c in chunks {
            let (codec, stored) = superchunk::compress_chunk(c, 3);
            b.push(ChunkHash::of(c), codec, c.len() as u32, stored);
        }
        b.seal().write_to(dev, at).unwrap();
        chunks.iter().map(|c| ChunkHash::of(c)).collect()
    }

    #[test]
    fn a_newer_superchunk_over_the_tail_of_an_older_one_is_found_and_wins() {
        let dev = MemDevice::from_bytes(vec![0u8; 4 << 20]);
        let sb = Superblock::new(ChunkParams::from_avg(4096), 1 << 20, 4 << 20);
        // An old superchunk of 8 chunks of 40 KB at 4096, then a newer one written over its
        // second half, as after GC freed the old one and its extent was reused in part.
        let old: Vec<Vec<u8>> = (0..8)
            .map(|i| crate::testdata::random_bytes(i, 40_000))
            .collect();
        let old_hashes = write(&dev, 1, SUPERBLOCK_LEN, &old);
        let at = SUPERBLOCK_LEN + 40 * SECTOR;
        let new_hashes = write(
            &dev,
            2,
            at,
            &[
                crate::testdata::random_bytes(100, 30_000),
                crate::testdata::random_bytes(101, 30_000),
            ],
        );
        let found = scan(&dev, &sb, &crate::fsck::Silent).unwrap();
        assert_eq!(found.len(), 2, "both headers are found");
        assert!(!found[0].payload_ok && found[1].payload_ok);
        // The old one's chunks around the overwrite still verify; those under it do not.
        let good: HashSet<ChunkHash> = found[0].good.iter().map(|e| e.hash).collect();
        assert!(good.contains(&old_hashes[0]) && good.contains(&old_hashes[7]));
        assert!(!good.contains(&old_hashes[4]));
        let kept = resolve(found);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].header.id, SuperchunkId(2));
        assert_eq!(kept[0].extent.start, at);
        let hashes: Vec<ChunkHash> = kept[0].good.iter().map(|e| e.hash).collect();
        assert_eq!(hashes, new_hashes);
    }
}
