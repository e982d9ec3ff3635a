//! Instant clones. A file clone is a new inode whose first revision points at the same chunk
//! list. A directory clone records its source and seq and one clone-side inode for its root:
//! O(1) whatever the tree's size; entries materialize on first change (see `tree`).

use super::caller::{Caller, R, W, X};
use super::error::{FsError, Result};
use super::history::components;
use super::ops::{check_name, current_dir_mut, touch_dir};
use super::progress::Meter;
use super::tree::{self, When};
use super::types::FileKind;
use super::{Inner, now_ns};
use crate::meta::Seq;
use crate::meta::history;
use crate::meta::namespace::{self, Revision};
use rusqlite::Connection;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Cloned {
    pub ino: u64,
    pub kind: String,
    /// The seq the source was read at.
    pub seq: u64,
}

impl Inner {
    /// Clone the file or directory tree at `src` to the new path `dst`, for `who`: as
    /// `cp -a` by that user would, so everything under `src` must be theirs to read and, for a
    /// user other than root, theirs (owner and one of their groups): the clone keeps owners.
    pub fn clone_path(&self, who: &Caller, src: &str, dst: &str) -> Result<Cloned> {
        self.clone_metered(who, src, dst, Meter::NONE)
    }

    /// `clone_path`, counting the inodes its permission pass checks in `meter`.
    pub(super) fn clone_metered(
        &self,
        who: &Caller,
        src: &str,
        dst: &str,
        meter: Meter,
    ) -> Result<Cloned> {
        meter.phase("committing", "", None);
        self.sync_all()?;
        meter.phase("cloning", "", None);
        let src_ino = self.resolve_as(who, src)?;
        let mut parts = components(dst)?;
        let name = parts.pop().ok_or(FsError::Exists)?.to_vec();
        check_name(&name)?;
        let parent_path = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
            .join("/");
        let parent = self.resolve_as(who, &parent_path)?;
        super::special::refuse_name(parent, &name)?;
        let out = self.op_alone(|core, seq| {
            let conn = &core.conn;
            // Read before the parent is materialized below: a clone-side inode materialized
            // in this operation reads as missing `Now` until it commits, and the source may be
            // the parent itself (a clone into its own source, refused below).
            let source = tree::rev_or_missing(conn, src_ino, When::Now)?;
            let mut dir = current_dir_mut(conn, parent, seq)?;
            // The name is looked up in the parent: whether it exists is for those who may
            // search it to know.
            who.check(&dir, X)?;
            if tree::lookup(conn, parent, &name, When::Now)?.is_some() {
                return Err(FsError::Exists); // before the permission check, as mkdir(2)
            }
            who.check(&dir, W | X)?;
            if source.kind == FileKind::Dir && super::rename::is_within(conn, parent, src_ino)? {
                return Err(FsError::Invalid); // a clone inside its own source
            }
            // Under the core lock: what is checked is what is cloned.
            may_copy(conn, who, &source, meter)?;
            let at = Seq(seq.0 - 1);
            let now = now_ns();
            let ino = if source.kind == FileKind::Dir {
                let id = history::create_clone(conn, src_ino, at, seq)?;
                history::map_clone_ino(conn, id, src_ino)?
            } else {
                let ino = namespace::new_inode(conn, source.kind, seq)?;
                let mut rev = source.clone();
                rev.ino = ino;
                rev.nlink = 1;
                rev.ctime = now;
                namespace::put_revision(conn, &rev, seq, "clone")?;
                for (n, v) in tree::xattrs(conn, src_ino, When::Now)? {
                    namespace::set_xattr(conn, ino, &n, &v, seq)?;
                }
                ino
            };
            namespace::add_dirent(conn, parent, &name, ino, source.kind, seq)?;
            touch_dir(
                conn,
                &mut dir,
                seq,
                now,
                (source.kind == FileKind::Dir) as i32,
                "clone",
            )?;
            Ok(Cloned {
                ino: ino.0,
                kind: format!("{:?}", source.kind).to_lowercase(),
                seq: at.0,
            })
        })?;
        self.invalidate(&[
            super::Inval::Inode(parent),
            super::Inval::Entry(parent, name),
        ]);
        Ok(out)
    }
}

/// Whether `who` may copy the tree at `top` as `cp -a` would and get what a clone makes:
/// read (and search) permission on everything, and, unless root, owner and group their own.
/// One pass over the tree; nothing to do for root.
fn may_copy(conn: &Connection, who: &Caller, top: &Revision, meter: Meter) -> Result<()> {
    if who.is_root() {
        return Ok(());
    }
    meter.phase("checking permissions", "inodes", None);
    let mut stack = vec![top.clone()];
    let mut not_theirs = false;
    while let Some(rev) = stack.pop() {
        meter.add(1);
        // Reading comes first, as it would for cp: anything unreadable is EACCES, whatever
        // else is wrong; ownership is judged once everything could be read.
        match rev.kind {
            FileKind::Dir => who.check(&rev, R | X)?,
            FileKind::File => who.check(&rev, R)?,
            _ => {}
        }
        not_theirs |= rev.uid != who.uid || !who.in_group(rev.gid);
        if rev.kind == FileKind::Dir {
            let mut after = 0;
            loop {
                let page = tree::list(conn, rev.ino, When::Now, after, 1024)?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for d in page {
                    stack.push(tree::rev_or_missing(conn, d.ino, When::Now)?);
                }
            }
        }
    }
    if not_theirs {
        return Err(FsError::NotPermitted);
    }
    Ok(())
}
