//! Looking back: revision logs, snapshots, settings, and the online
//! fsck (checks a committed snapshot of the metadata while the filesystem keeps serving).

use super::access;
use super::caller::{Caller, R};
use super::error::{FsError, Result};
use super::request::check_name;
use super::settings;
use super::tree::{self, When};
use super::{Inner, now_ns};
use crate::meta::history::{self, Snapshot};
use crate::meta::namespace::{self, FileKind, LogEntry, Revision};
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
    /// The inode at `path` now, walked as `who` would walk it (`access::walk`).
    pub fn resolve_as(&self, who: &Caller, path: &str) -> Result<Ino> {
        access::walk(&self.lock_core().conn, path, When::Now, Some(who))
    }

    /// Every revision of the file or directory at `path`, oldest first. A revision's content
    /// id is shown only if `who` may read it both as it was then and as it is now.
    pub fn log(&self, who: &Caller, path: &str) -> Result<Log> {
        self.sync_all()?; // so each revision has its commit time
        let ino = self.resolve_as(who, path)?;
        let core = self.lock_core();
        let conn = &core.conn;
        let rev = tree::rev_or_missing(conn, ino, When::Now)?;
        let readable_now = who.may(&rev, R);
        let mut chain = vec![ino];
        // A clone-side inode's history continues in its source, as of the clone.
        while let Some((_, src)) = history::clone_ino(conn, *chain.last().unwrap())? {
            chain.push(src);
        }
        let mut revisions = Vec::new();
        for i in chain.iter().rev() {
            for mut entry in namespace::log(conn, *i)? {
                let then = Revision {
                    mode: entry.mode,
                    uid: entry.uid,
                    gid: entry.gid,
                    ..rev.clone()
                };
                if !(readable_now && who.may(&then, R)) {
                    entry.content = None;
                }
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

    /// Name the current state of the directory at `path`. O(1): one row naming the seq.
    /// Only root and the directory's owner may, and a user other than root at most
    /// `snapshot-limit` times (`EDQUOT`).
    pub fn snapshot_create(&self, who: &Caller, name: &str, path: &str) -> Result<Snapshot> {
        check_name(name).map_err(|_| FsError::Invalid)?;
        self.sync_all()?;
        self.op_alone(|core, seq| {
            let conn = &core.conn;
            // Under the core lock: the directory checked is the one named.
            let root = access::walk(conn, path, When::Now, Some(who))?;
            let dir = tree::rev_or_missing(conn, root, When::Now)?;
            if dir.kind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            who.check_owner(&dir)?;
            if !who.is_root()
                && history::snapshots_owned(conn, who.uid)? >= settings::snapshot_limit(conn)?
            {
                return Err(FsError::QuotaExceeded);
            }
            // The snapshot sees everything before this operation.
            let at = Seq(seq.0 - 1);
            if !history::create_snapshot(conn, name, at, root, now_ns(), who.uid)? {
                return Err(FsError::Exists);
            }
            Ok(())
        })?;
        self.lock_core().commit(&*self.dev)?;
        self.invalidate(&[super::Inval::Inode(super::special::SNAPSHOTS_DIR)]);
        let snap = history::snapshot(&self.lock_core().conn, name)?;
        snap.ok_or(FsError::NotFound)
    }

    /// The snapshots `who` may read (their root directory, as it was and as it is).
    pub fn snapshot_list(&self, who: &Caller) -> Result<Vec<Snapshot>> {
        let core = self.lock_core();
        let mut out = Vec::new();
        for s in history::snapshots(&core.conn)? {
            if access::snapshot_readable(&core.conn, who, &s)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Delete a snapshot: root, whoever took it, or the owner of the directory it shows.
    pub fn snapshot_delete(&self, who: &Caller, name: &str) -> Result<()> {
        self.op(|core, _| {
            let conn = &core.conn;
            let snap = history::snapshot(conn, name)?.ok_or(FsError::NotFound)?;
            if !access::snapshot_readable(conn, who, &snap)? {
                return Err(FsError::NotFound);
            }
            let shown = tree::rev_or_missing(conn, Ino(snap.root), When::At(Seq(snap.seq)))?;
            if !(who.owns(&shown) || who.uid == snap.owner) {
                return Err(FsError::NotPermitted);
            }
            history::delete_snapshot(conn, name)?;
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

    /// The seq of the snapshot `name`, if `who` may read it (`ENOENT` otherwise).
    pub fn snapshot_seq(&self, who: &Caller, name: &str) -> Result<Seq> {
        let core = self.lock_core();
        let snap = history::snapshot(&core.conn, name)?.ok_or(FsError::NotFound)?;
        if !access::snapshot_readable(&core.conn, who, &snap)? {
            return Err(FsError::NotFound);
        }
        Ok(Seq(snap.seq))
    }

    /// Every setting (or the one named), as `chunkfs config get` shows them.
    pub fn config_get(&self, key: Option<&str>) -> Result<Vec<(String, String)>> {
        if let Some(k) = key
            && !settings::KEYS.contains(&k)
        {
            return Err(FsError::Invalid);
        }
        Ok(settings::all(&self.lock_core().conn, key)?)
    }

    /// Change a setting; the GC pass after the commit uses it.
    pub fn config_set(&self, key: &str, value: &str) -> Result<Vec<(String, String)>> {
        let stored = settings::parse(key, value).map_err(|_| FsError::Invalid)?;
        self.op(|core, _| Ok(crate::meta::gc::config_set(&core.conn, key, &stored)?))?;
        let mut core = self.lock_core();
        core.commit(&*self.dev)?;
        Ok(settings::all(&core.conn, Some(key))?)
    }

    /// fsck of a mounted store: commit, then check that committed state from a second,
    /// read-only connection while the filesystem keeps serving.
    pub fn fsck_online(&self, quick: bool) -> Result<crate::fsck::Report> {
        self.fsck_online_with(quick, super::progress::Meter::NONE)
    }

    /// `fsck_online`, reporting its phase and the bytes of its data pass to `meter`.
    pub(super) fn fsck_online_with(
        &self,
        quick: bool,
        meter: super::progress::Meter,
    ) -> Result<crate::fsck::Report> {
        use crate::fsck::{CheckOptions, check};
        meter.phase("committing", "", None);
        self.sync_all()?;
        let _quiet = self.maintenance.lock().unwrap();
        meter.phase("checking metadata", "", None);
        let conn = self.read_connection()?;
        crate::meta::in_transaction(&conn, false, || {
            check(&conn, &*self.dev, &self.sb, CheckOptions { quick }, &meter)
                .map_err(|e| FsError::Setup(format!("fsck: {e}")))
        })
    }
}
