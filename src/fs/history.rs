//! Looking back: paths resolved now or at a seq, revision logs, snapshots, and the online
//! fsck (checks a committed snapshot of the metadata while the filesystem keeps serving).

use super::error::{FsError, Result};
use super::tree::{self, When};
use super::{Inner, now_ns};
use crate::meta::history::{self, Snapshot};
use crate::meta::namespace::{self, FileKind, LogEntry};
use crate::meta::{Ino, Seq};
use serde::Serialize;

/// A path inside the filesystem, from its root ("/a/b" or "a/b").
pub(super) fn components(path: &str) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(FsError::Invalid),
            c => out.push(c.as_bytes()),
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, Serialize)]
pub struct Log {
    pub path: String,
    pub ino: u64,
    pub kind: String,
    pub revisions: Vec<LogEntryWithTime>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogEntryWithTime {
    #[serde(flatten)]
    pub entry: LogEntry,
    /// When the revision was committed (nanoseconds since the epoch), if it has been.
    pub time_ns: Option<i64>,
}

impl Inner {
    /// The inode at `path` at `when`.
    pub fn resolve(&self, path: &str, when: When) -> Result<Ino> {
        let parts = components(path)?;
        let core = self.lock_core();
        let mut ino = Ino::ROOT;
        for name in parts {
            if tree::rev_or_missing(&core.conn, ino, when)?.kind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            let d = tree::lookup(&core.conn, ino, name, when)?.ok_or(FsError::NotFound)?;
            ino = d.ino;
        }
        Ok(ino)
    }

    /// Every revision of the file or directory at `path`, oldest first.
    pub fn log(&self, path: &str) -> Result<Log> {
        self.sync_all()?; // so each revision has its commit time
        let ino = self.resolve(path, When::Now)?;
        let core = self.lock_core();
        let conn = &core.conn;
        let rev = tree::rev_or_missing(conn, ino, When::Now)?;
        let mut chain = vec![ino];
        // A clone-side inode's history continues in its source, as of the clone.
        while let Some((c, src)) = history::clone_ino(conn, *chain.last().unwrap())? {
            let _ = c;
            chain.push(src);
        }
        let mut revisions = Vec::new();
        for i in chain.iter().rev() {
            for entry in namespace::log(conn, *i)? {
                let time_ns = history::time_of_seq(conn, Seq(entry.seq_from))?;
                revisions.push(LogEntryWithTime { entry, time_ns });
            }
        }
        Ok(Log {
            path: path.to_string(),
            ino: ino.0,
            kind: format!("{:?}", rev.kind).to_lowercase(),
            revisions,
        })
    }

    /// Name the current state. O(1): one row naming the seq.
    pub fn snapshot_create(&self, name: &str, path: &str) -> Result<Snapshot> {
        if name.is_empty() || name.len() > 255 || name.contains('/') || name == "." || name == ".."
        {
            return Err(FsError::Invalid);
        }
        self.sync_all()?;
        let root = self.resolve(path, When::Now)?;
        let kind = tree::rev_or_missing(&self.lock_core().conn, root, When::Now)?.kind;
        if kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        self.op(|core, seq| {
            // The snapshot sees everything before this operation.
            let at = Seq(seq.0 - 1);
            if !history::create_snapshot(&core.conn, name, at, root, now_ns())? {
                return Err(FsError::Exists);
            }
            Ok(())
        })?;
        self.lock_core().commit(&*self.dev)?;
        self.invalidate(&[super::Inval::Inode(super::special::SNAPSHOTS_DIR)]);
        let snap = history::snapshot(&self.lock_core().conn, name)?;
        snap.ok_or(FsError::NotFound)
    }

    pub fn snapshot_list(&self) -> Result<Vec<Snapshot>> {
        Ok(history::snapshots(&self.lock_core().conn)?)
    }

    pub fn snapshot_delete(&self, name: &str) -> Result<()> {
        self.op(|core, _| {
            if !history::delete_snapshot(&core.conn, name)? {
                return Err(FsError::NotFound);
            }
            Ok(())
        })?;
        self.lock_core().commit(&*self.dev)?;
        let dir = super::special::SNAPSHOTS_DIR;
        self.invalidate(&[
            super::Inval::Entry(dir, name.as_bytes().to_vec()),
            super::Inval::Inode(dir),
        ]);
        Ok(())
    }

    pub fn snapshot_seq(&self, name: &str) -> Result<Seq> {
        let snap = history::snapshot(&self.lock_core().conn, name)?.ok_or(FsError::NotFound)?;
        Ok(Seq(snap.seq))
    }

    /// fsck of a mounted store: commit, then check that committed state from a second,
    /// read-only connection while the filesystem keeps serving.
    pub fn fsck_online(&self, quick: bool) -> Result<crate::fsck::Report> {
        use crate::fsck::{CheckOptions, Silent, check};
        self.sync_all()?;
        let _quiet = self.maintenance.lock().unwrap();
        let conn = self.read_connection()?;
        crate::meta::in_transaction(&conn, false, || {
            check(&conn, &*self.dev, &self.sb, CheckOptions { quick }, &Silent)
                .map_err(|e| FsError::Setup(format!("fsck: {e}")))
        })
    }
}
