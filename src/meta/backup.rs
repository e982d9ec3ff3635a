//! Copies of the metadata database beside it, for `fsck --rebuild-metadata`: `meta.db.bak.1`
//! (newest) to `meta.db.bak.3`, rotated. A copy is written with `VACUUM INTO` from a
//! connection of its own, to a temporary name that is synced and then renamed into place, so
//! a backup file is always a whole, consistent database. In WAL mode the copy is a reader:
//! writers keep committing while it runs.

use super::{MetaError, Result, schema};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// How many backups are kept.
pub const KEEP: u32 = 3;

/// `meta.db.bak.N` beside `meta` (1 is the newest).
pub fn path(meta: &Path, n: u32) -> PathBuf {
    let mut p = meta.as_os_str().to_owned();
    p.push(format!(".bak.{n}"));
    PathBuf::from(p)
}

fn temp_path(meta: &Path) -> PathBuf {
    let mut p = meta.as_os_str().to_owned();
    p.push(".bak.tmp");
    PathBuf::from(p)
}

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    /// The last committed seq it holds.
    pub seq: u64,
    pub bytes: u64,
}

/// Copy the committed state of the database at `meta` into `meta.db.bak.1`, moving the older
/// copies one number up and dropping the oldest. The copy is checked (schema) before it
/// replaces anything: a copy of a database that is already damaged never pushes out a good
/// one.
pub fn take(meta: &Path) -> Result<Backup> {
    let tmp = temp_path(meta);
    let _ = std::fs::remove_file(&tmp);
    let src = Connection::open_with_flags(
        meta,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let copied = src.execute("VACUUM INTO ?1", [path_text(&tmp)?]);
    drop(src);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let result = verify_and_rotate(meta, &tmp);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn verify_and_rotate(meta: &Path, tmp: &Path) -> Result<Backup> {
    let seq = {
        let conn = open_backup(tmp)?;
        let problems = schema::differences(&conn)?;
        if !problems.is_empty() {
            return Err(MetaError::Damaged(format!(
                "not keeping a backup of {}: its schema differs from the migrations ({})",
                meta.display(),
                problems.join("; ")
            )));
        }
        super::get_u64(&conn, "seq")?.unwrap_or(0)
    };
    let io = |what: &str, e: std::io::Error| {
        MetaError::Corrupt(format!("backup of {}: {what}: {e}", meta.display()))
    };
    let f = std::fs::File::open(tmp).map_err(|e| io("reopening the copy", e))?;
    f.sync_all().map_err(|e| io("syncing the copy", e))?;
    let bytes = f.metadata().map_err(|e| io("sizing the copy", e))?.len();
    drop(f);
    for n in (1..KEEP).rev() {
        let from = path(meta, n);
        if from.exists() {
            std::fs::rename(&from, path(meta, n + 1)).map_err(|e| io("rotating", e))?;
        }
    }
    let newest = path(meta, 1);
    std::fs::rename(tmp, &newest).map_err(|e| io("renaming the copy", e))?;
    if let Some(dir) = meta.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the directory", e))?;
    }
    Ok(Backup {
        path: newest,
        seq,
        bytes,
    })
}

/// Open a backup file read-only, changing nothing in it (nor beside it).
pub fn open_backup(p: &Path) -> Result<Connection> {
    super::probe(p)?;
    // immutable: a backup has no WAL, and nothing may create one beside it.
    let mut uri = String::from("file:");
    for c in path_text(p)?.chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    Ok(conn)
}

/// SQLite takes file names as text.
fn path_text(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| {
        MetaError::Corrupt(format!(
            "{}: backups need a path that is valid UTF-8",
            p.display()
        ))
    })
}

/// A backup that was looked at, and why it cannot be used if it cannot.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub path: PathBuf,
    pub verdict: std::result::Result<Backup, String>,
}

/// Every backup beside `meta`, newest first, each checked in full (pages, schema, foreign
/// keys) and compared with the store's uuid when one is given.
pub fn candidates(meta: &Path, uuid: Option<&[u8]>) -> Vec<Candidate> {
    (1..=KEEP)
        .map(|n| path(meta, n))
        .filter(|p| p.exists())
        .map(|p| Candidate {
            verdict: check_backup(&p, uuid).map_err(|e| e.detail()),
            path: p,
        })
        .collect()
}

fn check_backup(p: &Path, uuid: Option<&[u8]>) -> Result<Backup> {
    let conn = open_backup(p)?;
    let problems = super::check::database(&conn, false)?;
    if !problems.is_empty() {
        return Err(MetaError::Corrupt(problems.join("; ")));
    }
    if let Some(want) = uuid
        && super::get_value(&conn, "uuid")?.as_deref() != Some(want)
    {
        return Err(MetaError::Corrupt(
            "it belongs to another store (its uuid differs from the device's)".into(),
        ));
    }
    Ok(Backup {
        path: p.to_path_buf(),
        seq: super::get_u64(&conn, "seq")?.unwrap_or(0),
        bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
    })
}

/// Copy a (checked) backup to `to` as a database of its own, ready to be opened read-write.
pub fn restore(backup: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    let conn = open_backup(backup)?;
    conn.execute("VACUUM INTO ?1", [path_text(to)?])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path, seq: u64) -> PathBuf {
        let p = dir.join("meta.db");
        let c = crate::meta::open(&p, true).unwrap();
        crate::meta::set_u64(&c, "seq", seq).unwrap();
        p
    }

    #[test]
    fn backups_rotate_newest_first_and_keep_three() {
        let dir = tempfile::tempdir().unwrap();
        let meta = db(dir.path(), 0);
        for seq in 1..=5 {
            let c = crate::meta::open(&meta, false).unwrap();
            crate::meta::set_u64(&c, "seq", seq).unwrap();
            drop(c);
            let b = take(&meta).unwrap();
            assert_eq!(b.seq, seq);
        }
        assert!(!path(&meta, 4).exists());
        assert!(!temp_path(&meta).exists());
        let seqs: Vec<u64> = candidates(&meta, None)
            .into_iter()
            .map(|c| c.verdict.unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![5, 4, 3]);
    }

    #[test]
    fn a_database_without_its_schema_is_not_backed_up_over_a_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let meta = db(dir.path(), 7);
        take(&meta).unwrap();
        let c = crate::meta::open(&meta, false).unwrap();
        c.execute_batch("DROP TABLE snapshots").unwrap();
        drop(c);
        assert!(take(&meta).is_err());
        let c = candidates(&meta, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].verdict.as_ref().unwrap().seq, 7);
    }
}
