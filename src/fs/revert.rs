//! Revert a file, a directory tree or the whole filesystem to its state at a seq. Reverting
//! appends new revisions and entries equal to the old ones, so it is itself history: a later
//! revert to the seq before it goes forward again.
//!
//! Inodes keep their identity where they can. An inode that the old state names but that is
//! meanwhile linked outside the reverted path gets a copy instead, so a revert never changes
//! anything outside its path (and never gives a directory a second parent).

use super::access;
use super::caller::{Caller, R, W, X, stricter};
use super::error::{FsError, Result};
use super::history::components;
use super::ops::current_mut;
use super::progress::Meter;
use super::tree::{self, When};
use super::types::FileKind;
use super::{Inner, Inval, now_ns};
use crate::meta::namespace::{self, Dirent, Revision};
use crate::meta::{Ino, Seq};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Reverted {
    pub path: String,
    /// The seq reverted to.
    pub to: u64,
    /// The seq of the revert itself (revert to `seq - 1` to undo it).
    pub seq: u64,
    pub inodes_changed: usize,
    pub entries_added: usize,
    pub entries_removed: usize,
}

struct Reverter<'c> {
    conn: &'c Connection,
    /// Whom the revert acts for: every change is one they could make themselves.
    who: &'c Caller,
    seq: Seq,
    to: Seq,
    now: i64,
    /// The reverted path's inode now, if it exists: links below it are ours to rearrange.
    scope: Option<Ino>,
    /// The reverted path's own entry (parent, name), also ours.
    scope_entry: Option<(Ino, Vec<u8>)>,
    revs: HashMap<Ino, Revision>,
    /// Each inode as it was before the revert, as the permission checks judge it.
    before: HashMap<Ino, Revision>,
    /// Inodes the revert makes (brought back, or copies).
    created: HashSet<Ino>,
    /// Old inode -> the inode that takes its place now.
    mapped: HashMap<Ino, Ino>,
    restored: HashSet<Ino>,
    touched: HashSet<Ino>,
    inval: Vec<Inval>,
    report: Reverted,
    /// Counts the inodes restored, for `/.chunkfs/progress`.
    meter: Meter<'c>,
}

impl<'c> Reverter<'c> {
    fn rev_mut(&mut self, ino: Ino) -> Result<&mut Revision> {
        if !self.revs.contains_key(&ino) {
            let rev = current_mut(self.conn, ino, self.seq)?;
            self.before.insert(ino, rev.clone());
            self.revs.insert(ino, rev);
        }
        Ok(self.revs.get_mut(&ino).unwrap())
    }

    fn entries(&self, dir: Ino, when: When) -> Result<BTreeMap<Vec<u8>, Dirent>> {
        let mut out = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = tree::list(self.conn, dir, when, after, 1024)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for d in page {
                out.insert(d.name.clone(), d);
            }
        }
        Ok(out)
    }

    /// Is `dir` the reverted path or below it?
    fn in_scope(&self, mut dir: Ino) -> Result<bool> {
        let Some(scope) = self.scope else {
            return Ok(false);
        };
        for _ in 0..4096 {
            if dir == scope {
                return Ok(true);
            }
            match tree::parent(self.conn, dir, When::Now)? {
                Some(p) if p != dir => dir = p,
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    /// The inode that stands for `old` in the reverted state.
    fn target_for(&mut self, old: Ino, kind: FileKind) -> Result<Ino> {
        if let Some(t) = self.mapped.get(&old) {
            return Ok(*t);
        }
        let mut outside = false;
        let names = namespace::names_of(self.conn, old)?;
        for (p, name) in names.iter().cloned() {
            let own_entry = self
                .scope_entry
                .as_ref()
                .is_some_and(|(sp, sn)| *sp == p && *sn == name);
            if !own_entry && !self.in_scope(p)? {
                outside = true;
            }
        }
        let target = if outside || tree::rev(self.conn, old, When::Now)?.is_none() {
            let ino = namespace::new_inode(self.conn, kind, self.seq)?;
            let old_rev = tree::rev_or_missing(self.conn, old, When::At(self.to))?;
            self.may_bring_back(&old_rev)?;
            self.created.insert(ino);
            self.revs.insert(
                ino,
                Revision {
                    ino,
                    born: self.seq,
                    ..old_rev
                },
            );
            ino
        } else {
            // An inode without a name (unlinked, perhaps still open) is brought back too.
            if names.is_empty()
                && let Some(now) = namespace::current(self.conn, old)?
            {
                self.may_bring_back(&now)?;
            }
            old
        };
        self.mapped.insert(old, target);
        Ok(target)
    }

    /// Bringing an inode back makes a file with its owner and group: only the owner may, and
    /// only in one of their groups (as chown(2); a setgid bit stays to groups they are in).
    fn may_bring_back(&self, rev: &Revision) -> Result<()> {
        if self.who.is_root() || (self.who.uid == rev.uid && self.who.in_group(rev.gid)) {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    /// Make `target` what `old` was at `to`: attributes, content, xattrs, entries.
    fn restore(&mut self, target: Ino, old: Ino) -> Result<()> {
        if !self.restored.insert(target) {
            return Ok(());
        }
        self.meter.add(1);
        let was = tree::rev_or_missing(self.conn, old, When::At(self.to))?;
        let now = self.now;
        if self.rev_mut(target)?.kind != was.kind {
            return Err(FsError::Corrupt(format!("inode {} changed kind", target.0)));
        }
        let before = self.before.get(&target).cloned();
        if let Some(before) = &before {
            may_restore(self.who, before, &was)?;
        }
        // Times of one's choosing, as utimes(2) sets them, are the owner's: for anyone else
        // the times stay, and new content gets the time of its writing, as write(2) gives.
        let own_times = before.as_ref().is_none_or(|b| self.who.owns(b));
        let rev = self.revs.get_mut(&target).expect("loaded by rev_mut");
        let prior = rev.clone();
        (rev.mode, rev.uid, rev.gid, rev.size, rev.rdev) =
            (was.mode, was.uid, was.gid, was.size, was.rdev);
        rev.list = was.list;
        rev.target = was.target.clone();
        let content = (rev.size, rev.list, &rev.target, rev.rdev)
            != (prior.size, prior.list, &prior.target, prior.rdev);
        if own_times {
            (rev.atime, rev.mtime, rev.crtime) = (was.atime, was.mtime, was.crtime);
        } else if content {
            rev.mtime = now;
        }
        let changed = (
            rev.mode,
            rev.uid,
            rev.gid,
            rev.size,
            rev.list,
            &rev.target,
            rev.mtime,
        ) != (
            prior.mode,
            prior.uid,
            prior.gid,
            prior.size,
            prior.list,
            &prior.target,
            prior.mtime,
        );
        // Changes the report does not count, but that are changes all the same.
        let unseen = (rev.atime, rev.crtime, rev.rdev) != (prior.atime, prior.crtime, prior.rdev);
        if changed {
            self.report.inodes_changed += 1;
        }
        self.inval.push(Inval::Inode(target));
        // A new ctime only for what changes: an inode already as it was is left alone.
        let made = self.created.contains(&target);
        if self.restore_xattrs(target, old)? || changed || unseen || made {
            self.revs.get_mut(&target).expect("loaded").ctime = now;
        }
        if was.kind == FileKind::Dir {
            // Its entries then and now are compared: read and search permission on it, as
            // it was and as it is (else whether anything below changed is an answer too).
            let judged = stricter(&was, before.as_ref());
            self.who.check(&judged, R | X)?;
            let cur = self.entries(target, When::Now)?;
            let past = self.entries(old, When::At(self.to))?;
            let names: Vec<Vec<u8>> = cur
                .keys()
                .chain(past.keys())
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for name in names {
                self.reconcile(
                    target,
                    &name,
                    cur.get(&name).cloned(),
                    past.get(&name).cloned(),
                )?;
            }
        }
        Ok(())
    }

    /// Whether any changed.
    fn restore_xattrs(&mut self, target: Ino, old: Ino) -> Result<bool> {
        let now: HashMap<Vec<u8>, Vec<u8>> = tree::xattrs(self.conn, target, When::Now)?
            .into_iter()
            .collect();
        let was: HashMap<Vec<u8>, Vec<u8>> = tree::xattrs(self.conn, old, When::At(self.to))?
            .into_iter()
            .collect();
        let changed: Vec<&Vec<u8>> = now
            .keys()
            .filter(|n| !was.contains_key(*n))
            .chain(
                was.iter()
                    .filter(|(n, v)| now.get(*n) != Some(v))
                    .map(|(n, _)| n),
            )
            .collect();
        let any = !changed.is_empty();
        for name in changed {
            // trusted.* and security.* take capabilities: root's, also on a copy this revert
            // makes (a file capability root took off must not come back with its file);
            // the rest the owner's.
            if (name.starts_with(b"trusted.") || name.starts_with(b"security."))
                && !self.who.is_root()
            {
                return Err(FsError::NotPermitted);
            }
            if let Some(before) = self.before.get(&target) {
                self.who.check_owner(before)?;
            }
        }
        for name in now.keys().filter(|n| !was.contains_key(*n)) {
            namespace::remove_xattr(self.conn, target, name, self.seq)?;
        }
        for (name, value) in &was {
            if now.get(name) != Some(value) {
                namespace::set_xattr(self.conn, target, name, value, self.seq)?;
            }
        }
        Ok(any)
    }

    /// Make the entry `name` of `dir` (already materialized) what it was at `to`.
    fn reconcile(
        &mut self,
        dir: Ino,
        name: &[u8],
        cur: Option<Dirent>,
        past: Option<Dirent>,
    ) -> Result<()> {
        match (cur, past) {
            (None, None) => Ok(()),
            (Some(c), None) => self.remove(dir, name, &c),
            (cur, Some(p)) => {
                let target = self.target_for(p.ino, p.kind)?;
                match cur {
                    Some(c) if c.ino == target => {}
                    Some(c) => {
                        self.remove(dir, name, &c)?;
                        self.add(dir, name, target, p.kind)?;
                    }
                    None => self.add(dir, name, target, p.kind)?,
                }
                self.restore(target, p.ino)
            }
        }
    }

    /// Entries of `dir` change: write and search permission on it, as it was before.
    fn may_change_entries(&self, dir: Ino) -> Result<()> {
        match self.before.get(&dir) {
            Some(before) => self.who.check(before, W | X),
            None => Ok(()), // made by this revert, for this caller
        }
    }

    /// A name for an inode that exists now (not one this revert makes). One that has no
    /// name now (deleted, kept for its history) comes back for its owner only, as only they
    /// could have made it; another name for a linked file asks what `link(2)` asks with
    /// `protected_hardlinks`: ownership, or read and write permission. A directory only
    /// moves (its old entry's removal is checked where it is), which needs write permission
    /// on it, as rename(2) asks.
    fn may_link(&self, ino: Ino) -> Result<()> {
        if self.who.is_root() || self.created.contains(&ino) {
            return Ok(());
        }
        let Some(now) = self
            .before
            .get(&ino)
            .cloned()
            .map_or_else(|| tree::rev(self.conn, ino, When::Now), |r| Ok(Some(r)))?
        else {
            return Ok(());
        };
        let allowed = if now.nlink == 0 {
            self.who.owns(&now)
        } else if now.kind == FileKind::Dir {
            // Moving a directory to another parent rewrites its "..": rename(2) asks for
            // write permission on the directory itself.
            self.who.may(&now, W)
        } else {
            self.who.owns(&now) || self.who.may(&now, R | W)
        };
        if allowed {
            Ok(())
        } else {
            Err(FsError::NotPermitted)
        }
    }

    fn add(&mut self, dir: Ino, name: &[u8], ino: Ino, kind: FileKind) -> Result<()> {
        self.rev_mut(dir)?;
        self.may_change_entries(dir)?;
        self.may_link(ino)?;
        namespace::add_dirent(self.conn, dir, name, ino, kind, self.seq)?;
        self.touched.insert(dir);
        self.touched.insert(ino);
        self.inval.push(Inval::Entry(dir, name.to_vec()));
        self.report.entries_added += 1;
        Ok(())
    }

    /// Remove an entry; a directory's whole subtree goes with it, unless the directory lives
    /// on under another name in the reverted state (a rename being undone): its entries are
    /// then reconciled where it stays.
    fn remove(&mut self, dir: Ino, name: &[u8], d: &Dirent) -> Result<()> {
        self.rev_mut(dir)?;
        self.may_change_entries(dir)?;
        if let (Some(before), Some(victim)) = (
            self.before.get(&dir),
            tree::rev(self.conn, d.ino, When::Now)?,
        ) {
            self.who.check_sticky(before, &victim)?;
        }
        let kept = self.mapped.values().any(|t| *t == d.ino);
        if d.kind == FileKind::Dir && !kept {
            self.rev_mut(d.ino)?;
            for (child_name, child) in self.entries(d.ino, When::Now)? {
                self.remove(d.ino, &child_name, &child)?;
            }
        }
        namespace::remove_dirent(self.conn, dir, name, self.seq)?;
        self.touched.insert(dir);
        self.touched.insert(d.ino);
        self.inval.push(Inval::Entry(dir, name.to_vec()));
        self.report.entries_removed += 1;
        Ok(())
    }

    /// Link counts follow the entries, then every changed inode gets its one new revision.
    fn finish(mut self) -> Result<(Reverted, Vec<Inval>)> {
        let touched: Vec<Ino> = self.touched.iter().copied().collect();
        for ino in touched {
            let kind = self.rev_mut(ino)?.kind;
            let names = namespace::count_links(self.conn, ino)?;
            let nlink = if kind == FileKind::Dir {
                if names == 0 && ino != Ino::ROOT {
                    0
                } else {
                    2 + namespace::count_subdirs(self.conn, ino)?
                }
            } else {
                names
            };
            let now = self.now;
            // A directory whose entries changed, not the caller's: the time of the change,
            // as unlink(2) and link(2) give it (its owner gets its old times back).
            let stamp =
                kind == FileKind::Dir && self.before.get(&ino).is_some_and(|b| !self.who.owns(b));
            let rev = self.rev_mut(ino)?;
            rev.nlink = nlink;
            rev.ctime = now;
            if stamp {
                rev.mtime = now;
            }
        }
        for rev in self.revs.values() {
            // Unchanged, and with a revision of its own (not just materialized): no new one.
            if self.before.get(&rev.ino) == Some(rev)
                && namespace::current(self.conn, rev.ino)?.is_some()
            {
                continue;
            }
            if namespace::inode_exists(self.conn, rev.ino)?.is_none() {
                namespace::insert_inode(self.conn, rev.ino, rev.kind, self.seq)?;
            }
            namespace::put_revision(self.conn, rev, self.seq, "revert")?;
        }
        self.report.seq = self.seq.0;
        Ok((self.report, self.inval))
    }
}

impl Inner {
    /// Revert the file or directory tree at `path` (or "/" for everything) to seq `to`, for
    /// `who`: each change is one they could make with system calls (`may_restore`, the entry
    /// checks of `add` and `remove`), or nothing changes.
    pub fn revert(&self, who: &Caller, path: &str, to: Seq) -> Result<Reverted> {
        self.revert_metered(who, path, to, Meter::NONE)
    }

    /// `revert`, counting the inodes it restores in `meter`.
    pub(super) fn revert_metered(
        &self,
        who: &Caller,
        path: &str,
        to: Seq,
        meter: Meter,
    ) -> Result<Reverted> {
        meter.phase("committing", "", None);
        self.sync_all()?; // uncommitted writes become history first
        meter.phase("reverting", "inodes", None);
        let parts = components(path)?;
        let (report, inval) = self.op_alone(|core, seq| {
            let conn = &core.conn;
            let mut r = Reverter {
                conn,
                who,
                seq,
                to,
                now: now_ns(),
                scope: None,
                scope_entry: None,
                revs: HashMap::new(),
                before: HashMap::new(),
                created: HashSet::new(),
                mapped: HashMap::new(),
                restored: HashSet::new(),
                touched: HashSet::new(),
                inval: Vec::new(),
                report: Reverted {
                    path: path.to_string(),
                    to: to.0,
                    ..Default::default()
                },
                meter,
            };
            match parts.split_last() {
                None => {
                    r.scope = Some(Ino::ROOT);
                    r.mapped.insert(Ino::ROOT, Ino::ROOT);
                    r.restore(Ino::ROOT, Ino::ROOT)?;
                }
                Some((name, dirs)) => {
                    // Search permission on the way, now and (as stricter) then, down to the
                    // parent itself: its name is looked up there, and whether it exists is
                    // for those who may search it to know (EACCES, as stat(2) says).
                    let walk = |when: When| -> Result<Option<Ino>> {
                        let search = |ino: Ino| -> Result<bool> {
                            let Some(here) = tree::rev(conn, ino, when)? else {
                                return Ok(false);
                            };
                            if here.kind != FileKind::Dir {
                                return Ok(false);
                            }
                            who.check(&access::judged_rev(conn, &here)?, X)?;
                            Ok(true)
                        };
                        let mut ino = Ino::ROOT;
                        for d in dirs {
                            if !search(ino)? {
                                return Ok(None);
                            }
                            match tree::lookup(conn, ino, d, when)? {
                                Some(e) => ino = e.ino,
                                None => return Ok(None),
                            }
                        }
                        Ok(search(ino)?.then_some(ino))
                    };
                    let parent = walk(When::Now)?.ok_or(FsError::NotFound)?;
                    let cur = tree::lookup(conn, parent, name, When::Now)?;
                    let past = match walk(When::At(to))? {
                        Some(p) => tree::lookup(conn, p, name, When::At(to))?,
                        None => None,
                    };
                    if cur.is_none() && past.is_none() {
                        return Err(FsError::NotFound);
                    }
                    r.scope = cur.as_ref().map(|c| c.ino);
                    r.scope_entry = Some((parent, name.to_vec()));
                    r.reconcile(parent, name, cur, past)?;
                    // The parent changes only if its entry did (add and remove checked that
                    // the caller may change it); otherwise it keeps its state and history.
                    if r.touched.contains(&parent) {
                        let now = r.now;
                        r.rev_mut(parent)?.mtime = now;
                    }
                    r.inval.push(Inval::Inode(parent));
                }
            }
            let (report, inval) = r.finish()?;
            core.mark_reverted(inval.iter().filter_map(|w| match w {
                Inval::Inode(ino) => Some(*ino),
                _ => None,
            }));
            Ok((report, inval))
        })?;
        let committed = self.lock_core().commit(&*self.dev);
        self.after_external_change(&inval);
        committed?;
        Ok(report)
    }
}

/// Whether `who` may make `before` (an inode as it is) what `was` (as it was), as chmod,
/// chown, truncate/write and utimes would let them: a new owner only by root (`EPERM`), a new
/// group by the owner into one of their groups, new permission bits by the owner (a setgid bit
/// only in one of their groups), new content
/// of a file with write permission (`EACCES`), of anything else by the owner. Old times are
/// restored for the owner only (`restore`): no one else may set a time of the past.
fn may_restore(who: &Caller, before: &Revision, was: &Revision) -> Result<()> {
    if who.is_root() {
        return Ok(());
    }
    if was.uid != before.uid {
        return Err(FsError::NotPermitted);
    }
    if was.gid != before.gid && !(who.owns(before) && who.in_group(was.gid)) {
        return Err(FsError::NotPermitted);
    }
    if was.mode != before.mode {
        who.check_owner(before)?;
        // chmod(2) by an owner outside the file's group drops S_ISGID: a revert cannot set it.
        if was.mode & libc::S_ISGID != 0 && !who.in_group(was.gid) {
            return Err(FsError::NotPermitted);
        }
    }
    let content = (was.size, was.list, &was.target, was.rdev)
        != (before.size, before.list, &before.target, before.rdev);
    if content {
        match before.kind {
            FileKind::File => who.check(before, W)?,
            _ => who.check_owner(before)?,
        }
    }
    Ok(())
}
