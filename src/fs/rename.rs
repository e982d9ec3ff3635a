//! rename(2) with RENAME_NOREPLACE and RENAME_EXCHANGE, as one operation.

use super::error::{FsError, Result};
use super::now_ns;
use super::tree::{self, When};
use super::types::{FileKind, RenameFlags};
use crate::meta::namespace::{self, Revision};
use crate::meta::{Ino, Seq};
use rusqlite::Connection;
use std::collections::HashMap;

/// Is `dir` the directory `ancestor` or inside it?
pub(super) fn is_within(conn: &Connection, mut dir: Ino, ancestor: Ino) -> Result<bool> {
    loop {
        if dir == ancestor {
            return Ok(true);
        }
        if dir == Ino::ROOT {
            return Ok(false);
        }
        match tree::parent(conn, dir, When::Now)? {
            Some(p) => dir = p,
            None => return Ok(false),
        }
    }
}

/// Revisions changed by one rename, each written once at the end.
struct Changes<'c> {
    conn: &'c Connection,
    seq: Seq,
    revs: HashMap<Ino, Revision>,
}

impl<'c> Changes<'c> {
    fn get(&mut self, ino: Ino) -> Result<&mut Revision> {
        if !self.revs.contains_key(&ino) {
            let rev = super::ops::current_mut(self.conn, ino, self.seq)?;
            self.revs.insert(ino, rev);
        }
        Ok(self.revs.get_mut(&ino).unwrap())
    }

    fn write(self, seq: Seq) -> Result<()> {
        for rev in self.revs.values() {
            namespace::put_revision(self.conn, rev, seq, "rename")?;
        }
        Ok(())
    }
}

pub(super) fn rename(
    conn: &Connection,
    seq: Seq,
    parent: Ino,
    name: &[u8],
    newparent: Ino,
    newname: &[u8],
    flags: RenameFlags,
) -> Result<()> {
    let mut ch = Changes {
        conn,
        seq,
        revs: HashMap::new(),
    };
    for dir in [parent, newparent] {
        let rev = ch.get(dir)?;
        if rev.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        if rev.nlink == 0 {
            return Err(FsError::NotFound);
        }
    }
    let src = tree::lookup(conn, parent, name, When::Now)?.ok_or(FsError::NotFound)?;
    let dst = tree::lookup(conn, newparent, newname, When::Now)?;
    if src.kind == FileKind::Dir && is_within(conn, newparent, src.ino)? {
        return Err(FsError::Invalid);
    }
    let now = now_ns();
    if flags.exchange {
        let dst = dst.ok_or(FsError::NotFound)?;
        if dst.kind == FileKind::Dir && is_within(conn, parent, dst.ino)? {
            return Err(FsError::Invalid);
        }
        if dst.ino == src.ino {
            return Ok(());
        }
        namespace::remove_dirent(conn, parent, name, seq)?;
        namespace::remove_dirent(conn, newparent, newname, seq)?;
        namespace::add_dirent(conn, parent, name, dst.ino, dst.kind, seq)?;
        namespace::add_dirent(conn, newparent, newname, src.ino, src.kind, seq)?;
        if parent != newparent {
            let d = (src.kind == FileKind::Dir) as i64 - (dst.kind == FileKind::Dir) as i64;
            adjust_nlink(ch.get(parent)?, -d);
            adjust_nlink(ch.get(newparent)?, d);
        }
        ch.get(src.ino)?.ctime = now;
        ch.get(dst.ino)?.ctime = now;
    } else {
        if let Some(dst) = &dst {
            if flags.noreplace {
                return Err(FsError::Exists);
            }
            if dst.ino == src.ino {
                return Ok(()); // two names of one file: POSIX says do nothing
            }
            match (src.kind == FileKind::Dir, dst.kind == FileKind::Dir) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !tree::is_empty(conn, dst.ino)? => {
                    return Err(FsError::NotEmpty);
                }
                _ => {}
            }
            namespace::remove_dirent(conn, newparent, newname, seq)?;
            let victim = ch.get(dst.ino)?;
            victim.nlink = if dst.kind == FileKind::Dir {
                0
            } else {
                victim.nlink.saturating_sub(1)
            };
            victim.ctime = now;
            if dst.kind == FileKind::Dir {
                adjust_nlink(ch.get(newparent)?, -1);
            }
        }
        namespace::remove_dirent(conn, parent, name, seq)?;
        namespace::add_dirent(conn, newparent, newname, src.ino, src.kind, seq)?;
        if src.kind == FileKind::Dir && parent != newparent {
            adjust_nlink(ch.get(parent)?, -1);
            adjust_nlink(ch.get(newparent)?, 1);
        }
        ch.get(src.ino)?.ctime = now;
    }
    for dir in [parent, newparent] {
        let rev = ch.get(dir)?;
        rev.mtime = now;
        rev.ctime = now;
    }
    ch.write(seq)
}

fn adjust_nlink(rev: &mut Revision, d: i64) {
    rev.nlink = (rev.nlink as i64 + d).max(0) as u32;
}
