//! The hidden control directory `/.chunkfs` and the read-only views under it.
//!
//! ```text
//! /.chunkfs/ctl                  the conduit: write one JSON request, read the JSON response
//! /.chunkfs/store                the store's path (read-only), for finding a mount's store
//! /.chunkfs/progress             the caller's running requests, as JSON (read-only; `fs::progress`)
//! /.chunkfs/snapshots/NAME/...   the tree as snapshot NAME saw it
//! /.chunkfs/at/SEQ/...           the tree as of seq SEQ (also @UNIXSECONDS or an ISO 8601 time)
//! ```
//!
//! Special inode numbers have the top bit set. A view inode packs a view id and the inode it
//! shows: `1<<63 | view<<40 | ino`; a view is a (seq, root) pair numbered on first use.

use super::access;
use super::caller::{Caller, Credentials};
use super::error::{FsError, Result};
use super::tree::{self, When};
use super::types::*;
use super::{Handle, Inner};
use crate::meta::history;
use crate::meta::namespace::Revision;
use crate::meta::{Ino, Seq};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

pub const CONTROL_NAME: &[u8] = b".chunkfs";
const SPECIAL: u64 = 1 << 63;
const VIEW_SHIFT: u32 = 40;
const INO_MASK: u64 = (1 << VIEW_SHIFT) - 1;
/// Views a mount hands out at most; well below the 2^23 ids the inode numbers have room for.
const MAX_VIEWS: usize = 1 << 20;
const _: () = assert!(MAX_VIEWS < 1 << (63 - VIEW_SHIFT));
pub const CTL_DIR: Ino = Ino(SPECIAL | 1);
pub const CTL_FILE: Ino = Ino(SPECIAL | 2);
pub const SNAPSHOTS_DIR: Ino = Ino(SPECIAL | 3);
pub const AT_DIR: Ino = Ino(SPECIAL | 4);
pub const STORE_FILE: Ino = Ino(SPECIAL | 5);
pub const PROGRESS_FILE: Ino = Ino(SPECIAL | 6);
pub const ASK_DIR: Ino = Ino(SPECIAL | 7);
/// The nodes under `/.chunkfs/ask` (`ask.rs`) are numbered from here, below the first view.
const ASK_BASE: u64 = 1 << 32;
const ASK_NUMBERS: u64 = (1 << VIEW_SHIFT) - ASK_BASE;

/// What a special inode number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    CtlDir,
    CtlFile,
    SnapshotsDir,
    AtDir,
    StoreFile,
    ProgressFile,
    AskDir,
    /// A node under `ask`, by its number in `ask::Asks`.
    Ask(u64),
    View {
        view: u32,
        ino: Ino,
    },
}

/// How long the kernel may cache what it is told about an inode or name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// The filesystem's own inodes: nothing changes behind the kernel's back.
    Long,
    /// Views of the past: their permissions follow the inode's now (`VIEW_TTL`).
    Short,
    /// Not at all: the names of `/.chunkfs/snapshots` differ by caller.
    None,
}

/// How long views of the past may be cached: a chmod now reaches them within this time.
pub const VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The freshness of `ino` found under `parent` (or on its own, for `getattr`).
pub fn freshness(parent: Option<Ino>, ino: Ino) -> Freshness {
    if parent == Some(SNAPSHOTS_DIR) || matches!(classify(ino), Some(Node::AskDir | Node::Ask(_))) {
        Freshness::None
    } else if matches!(classify(ino), Some(Node::View { .. })) {
        Freshness::Short
    } else {
        Freshness::Long
    }
}

pub fn is_special(ino: Ino) -> bool {
    ino.0 & SPECIAL != 0
}

pub fn classify(ino: Ino) -> Option<Node> {
    if !is_special(ino) {
        return None;
    }
    Some(match ino {
        CTL_DIR => Node::CtlDir,
        CTL_FILE => Node::CtlFile,
        SNAPSHOTS_DIR => Node::SnapshotsDir,
        AT_DIR => Node::AtDir,
        STORE_FILE => Node::StoreFile,
        PROGRESS_FILE => Node::ProgressFile,
        ASK_DIR => Node::AskDir,
        _ => {
            let view = ((ino.0 & !SPECIAL) >> VIEW_SHIFT) as u32;
            if view == 0 {
                let n = ino.0 & INO_MASK;
                return (n >= ASK_BASE).then(|| Node::Ask(n - ASK_BASE + 1));
            }
            Node::View {
                view,
                ino: Ino(ino.0 & INO_MASK),
            }
        }
    })
}

fn ask_ino(n: u64) -> Ino {
    Ino(SPECIAL | (ASK_BASE + n - 1))
}

fn view_ino(view: u32, ino: Ino) -> Ino {
    Ino(SPECIAL | (view as u64) << VIEW_SHIFT | (ino.0 & INO_MASK))
}

/// Views handed out so far: ids are stable for the life of the mount.
pub struct Views {
    by_key: HashMap<(Seq, Ino), u32>,
    by_id: Vec<(Seq, Ino)>,
    /// The generation of every view inode (`Inner::generation`): this mount's own, so that a
    /// file handle of a view taken under another mount, where the same number may name
    /// another view, is stale rather than another file.
    epoch: u32,
}

impl Default for Views {
    fn default() -> Views {
        // Different for each open of a store: the clock and the process, mixed; never 0
        // (the generation of the store's own inodes, whose numbers are never reused).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(super::now_ns(), std::process::id()), &mut h);
        let epoch = (std::hash::Hasher::finish(&h) as u32).max(1);
        Views {
            by_key: HashMap::new(),
            by_id: Vec::new(),
            epoch,
        }
    }
}

impl Views {
    /// The id of the view of `root` at `seq`, numbering it if it is new. Views live as long
    /// as the mount (the kernel may hold their inode numbers), so their number is bounded:
    /// past `MAX_VIEWS` a new one is refused (`ENFILE`) rather than wrapping into the inode
    /// numbers of another view, and the memory they take stays bounded (about 60 MiB).
    fn id(&mut self, seq: Seq, root: Ino) -> Result<u32> {
        if let Some(id) = self.by_key.get(&(seq, root)) {
            return Ok(*id);
        }
        if self.by_id.len() >= MAX_VIEWS {
            return Err(FsError::TooManyViews);
        }
        self.by_id.push((seq, root));
        let id = self.by_id.len() as u32;
        self.by_key.insert((seq, root), id);
        Ok(id)
    }

    fn get(&self, id: u32) -> Option<(Seq, Ino)> {
        self.by_id.get(id.checked_sub(1)? as usize).copied()
    }
}

fn dir_attr(ino: Ino, perm: u16) -> Attr {
    Attr {
        ino,
        kind: FileKind::Dir,
        perm,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        blksize: 4096,
    }
}

/// Parse the name of an `at/` entry: a seq, `@UNIXSECONDS`, or an ISO 8601 UTC time.
pub fn parse_point(name: &str) -> Option<Point> {
    if let Ok(seq) = name.parse::<u64>() {
        return Some(Point::Seq(Seq(seq)));
    }
    if let Some(secs) = name.strip_prefix('@') {
        let secs: f64 = secs.parse().ok()?;
        return Some(Point::Time((secs * 1e9) as i64));
    }
    parse_iso(name).map(Point::Time)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    Seq(Seq),
    /// Nanoseconds since the epoch.
    Time(i64),
}

/// `YYYY-MM-DD[THH:MM[:SS]][Z]`, read as UTC.
fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|p| p.parse::<f64>());
    let (h, mi, sec) = (
        t.next()?.ok()?,
        t.next().unwrap_or(Ok(0.0)).ok()?,
        t.next().unwrap_or(Ok(0.0)).ok()?,
    );
    // Four-digit years: no more is meant, and the arithmetic below must not overflow.
    if !(0..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days as f64 * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
    Some((secs * 1e9) as i64)
}

impl Inner {
    /// A point in history as a seq.
    pub fn resolve_point(&self, p: Point) -> Result<Seq> {
        let current = self.current_seq();
        match p {
            Point::Seq(s) if s <= current => Ok(s),
            Point::Seq(_) => Err(FsError::NotFound),
            Point::Time(t) => {
                let core = self.lock_core();
                history::seq_at_time(&core.conn, t)?.ok_or(FsError::NotFound)
            }
        }
    }

    /// The generation the kernel is told for `ino`, which it keeps in file handles: 0 for
    /// the store's own inodes (numbers are never reused, so a number names one inode for
    /// good, across mounts), and the mount's epoch for view inodes, which are numbered per
    /// mount. The control entries have fixed numbers and generation 0.
    pub fn generation(&self, ino: Ino) -> u64 {
        match classify(ino) {
            Some(Node::View { .. }) => self.views.lock().unwrap().epoch as u64,
            _ => 0,
        }
    }

    fn view_of(&self, view: u32) -> Result<(Seq, Ino)> {
        self.views.lock().unwrap().get(view).ok_or(FsError::Stale)
    }

    /// A view's inode as the kernel sees it: the revision then, with permissions no more
    /// open than the same inode's now (`caller::stricter`), so that `default_permissions`
    /// judges every path through the past by then *and* now. Views are cached for
    /// `VIEW_TTL` only, so a chmod now takes effect in the views within that time.
    fn view_attr(&self, conn: &Connection, view: u32, rev: &Revision) -> Result<Attr> {
        let shown = access::judged_rev(conn, rev)?;
        let mut a = super::ops::attr_from(&shown, rev.size, rev.mtime);
        a.ino = view_ino(view, rev.ino);
        a.blocks = self.blocks_committed(conn, rev);
        Ok(a)
    }

    /// The check `open` and `opendir` of a view make besides the kernel's: `who` may do
    /// `mask` to the inode and search every directory above it in the view, each judged as
    /// it was then *and* as it is now. The kernel judges by the attributes it cached, which
    /// may be up to `VIEW_TTL` older than a chmod now; opening always reaches the daemon, so
    /// no content of a now-closed tree is handed out even within that time.
    pub(super) fn view_access(&self, who: &Credentials, ino: Ino, mask: u32) -> Result<()> {
        let Some(Node::View { view, ino: real }) = classify(ino) else {
            return Ok(());
        };
        let who = who.caller();
        if who.is_root() {
            return Ok(());
        }
        let (seq, root) = self.view_of(view)?;
        let conn = &self.lock_core().conn;
        who.check(&access::judged(conn, real, seq)?, mask)?;
        if !access::may_reach(conn, &who, real, Some(root), When::At(seq))? {
            return Err(FsError::AccessDenied);
        }
        Ok(())
    }

    /// Look `name` up in a special directory. With a caller, `/.chunkfs/snapshots` has only
    /// the snapshots they may read.
    pub(super) fn special_lookup(
        &self,
        who: Option<&Caller>,
        parent: Ino,
        name: &[u8],
    ) -> Result<Attr> {
        let Some(node) = classify(parent) else {
            return Err(FsError::NotFound);
        };
        match node {
            Node::CtlDir => match name {
                b"ctl" => self.special_getattr(CTL_FILE),
                b"snapshots" => self.special_getattr(SNAPSHOTS_DIR),
                b"at" => self.special_getattr(AT_DIR),
                b"store" => self.special_getattr(STORE_FILE),
                b"progress" => self.special_getattr(PROGRESS_FILE),
                b"ask" => self.special_getattr(ASK_DIR),
                b"." => self.special_getattr(CTL_DIR),
                b".." => self.getattr(Ino::ROOT),
                _ => Err(FsError::NotFound),
            },
            Node::CtlFile | Node::StoreFile | Node::ProgressFile => Err(FsError::NotDir),
            Node::SnapshotsDir | Node::AtDir | Node::AskDir if name == b"." || name == b".." => {
                self.special_getattr(if name == b"." { parent } else { CTL_DIR })
            }
            Node::AskDir | Node::Ask(_) if name == b"." => self.special_getattr(parent),
            Node::Ask(_) if name == b".." => Err(FsError::NotFound),
            // Looked up by the kernel for someone (`lookup_as`), never without.
            Node::AskDir | Node::Ask(_) => Err(FsError::NotFound),
            Node::SnapshotsDir => {
                let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
                let snap = {
                    let conn = &self.lock_core().conn;
                    let snap = history::snapshot(conn, name)?.ok_or(FsError::NotFound)?;
                    if let Some(who) = who
                        && !access::snapshot_readable(conn, who, &snap)?
                    {
                        return Err(FsError::NotFound);
                    }
                    snap
                };
                self.open_view(Seq(snap.seq), Ino(snap.root))
            }
            Node::AtDir => {
                let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
                let point = parse_point(name).ok_or(FsError::NotFound)?;
                let seq = self.resolve_point(point)?;
                self.open_view(seq, Ino::ROOT)
            }
            Node::View { view, ino } => {
                let (seq, root) = self.view_of(view)?;
                let core = self.lock_core();
                let conn = &core.conn;
                let target = match name {
                    b"." => ino,
                    b".." if ino == root => {
                        drop(core);
                        return self.special_getattr(AT_DIR);
                    }
                    b".." => tree::parent(conn, ino, When::At(seq))?.ok_or(FsError::NotFound)?,
                    _ => {
                        tree::lookup(conn, ino, name, When::At(seq))?
                            .ok_or(FsError::NotFound)?
                            .ino
                    }
                };
                let rev = tree::rev_or_missing(conn, target, When::At(seq))?;
                self.view_attr(conn, view, &rev)
            }
        }
    }

    fn open_view(&self, seq: Seq, root: Ino) -> Result<Attr> {
        let core = self.lock_core();
        let rev = tree::rev_or_missing(&core.conn, root, When::At(seq))?;
        let view = self.views.lock().unwrap().id(seq, root)?;
        self.view_attr(&core.conn, view, &rev)
    }

    /// Look `name` up under `/.chunkfs/ask` or one of its nodes (`parent`) for user `uid`:
    /// each user's nodes are their own (`ask::Asks`).
    pub(super) fn ask_lookup(&self, uid: u32, parent: Ino, name: &[u8]) -> Result<Attr> {
        let from = match classify(parent) {
            Some(Node::AskDir) => 0,
            Some(Node::Ask(n)) => n,
            _ => return Err(FsError::NotFound),
        };
        if name == b"." {
            return self.special_getattr(parent);
        }
        if name == b".." {
            return match from {
                0 => self.special_getattr(CTL_DIR),
                _ => Err(FsError::NotFound),
            };
        }
        let (n, _) = self
            .asks
            .lock()
            .unwrap()
            .child(uid, from, name, ASK_NUMBERS)?;
        self.special_getattr(ask_ino(n))
    }

    pub(super) fn special_getattr(&self, ino: Ino) -> Result<Attr> {
        match classify(ino).ok_or(FsError::NotFound)? {
            Node::CtlDir | Node::SnapshotsDir | Node::AtDir | Node::AskDir => {
                Ok(dir_attr(ino, 0o555))
            }
            Node::Ask(n) => {
                let node = self.asks.lock().unwrap().get(n).ok_or(FsError::Stale)?;
                let mut a = dir_attr(ino, 0o555);
                if !node.dir {
                    a.kind = FileKind::File;
                    a.perm = 0o444;
                    a.nlink = 1;
                }
                Ok(a)
            }
            Node::CtlFile => {
                let mut a = dir_attr(ino, 0o666);
                a.kind = FileKind::File;
                a.nlink = 1;
                Ok(a)
            }
            Node::StoreFile => {
                let mut a = dir_attr(ino, 0o444);
                a.kind = FileKind::File;
                a.nlink = 1;
                a.size = self.store_file().len() as u64;
                a.blocks = a.size.div_ceil(512);
                Ok(a)
            }
            Node::ProgressFile => {
                // Its content differs by reader and moment: size 0, read until EOF.
                let mut a = dir_attr(ino, 0o444);
                a.kind = FileKind::File;
                a.nlink = 1;
                Ok(a)
            }
            Node::View { view, ino: real } => {
                let (seq, _) = self.view_of(view)?;
                let core = self.lock_core();
                let rev = tree::rev_or_missing(&core.conn, real, When::At(seq))?;
                self.view_attr(&core.conn, view, &rev)
            }
        }
    }

    /// Entries of a special directory after `offset`. With a caller, `/.chunkfs/snapshots`
    /// lists only the snapshots they may read.
    pub(super) fn special_readdir(
        &self,
        who: Option<&Caller>,
        ino: Ino,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>> {
        let mut out = Vec::new();
        let node = classify(ino).ok_or(FsError::NotFound)?;
        let dot = |out: &mut Vec<(DirEntry, Attr)>, parent: Attr, me: Attr| {
            if offset == 0 {
                out.push((
                    DirEntry {
                        ino: me.ino,
                        kind: FileKind::Dir,
                        name: b".".to_vec(),
                        next_offset: 1,
                    },
                    me.clone(),
                ));
            }
            if offset <= 1 {
                out.push((
                    DirEntry {
                        ino: parent.ino,
                        kind: FileKind::Dir,
                        name: b"..".to_vec(),
                        next_offset: 2,
                    },
                    parent,
                ));
            }
        };
        match node {
            Node::CtlFile | Node::StoreFile | Node::ProgressFile => {
                return Err(FsError::NotDir);
            }
            // Nothing is listed under `ask`: its names are requests, made up by whoever asks.
            Node::AskDir => dot(
                &mut out,
                self.special_getattr(CTL_DIR)?,
                self.special_getattr(ASK_DIR)?,
            ),
            Node::Ask(_) => {
                let me = self.special_getattr(ino)?;
                if me.kind != FileKind::Dir {
                    return Err(FsError::NotDir);
                }
                dot(&mut out, self.special_getattr(ASK_DIR)?, me)
            }
            Node::CtlDir => {
                dot(
                    &mut out,
                    self.getattr(Ino::ROOT)?,
                    self.special_getattr(CTL_DIR)?,
                );
                for (i, (name, child)) in [
                    (&b"ctl"[..], CTL_FILE),
                    (b"snapshots", SNAPSHOTS_DIR),
                    (b"at", AT_DIR),
                    (b"store", STORE_FILE),
                    (b"progress", PROGRESS_FILE),
                    (b"ask", ASK_DIR),
                ]
                .into_iter()
                .enumerate()
                {
                    let off = 3 + i as u64;
                    if offset < off {
                        let a = self.special_getattr(child)?;
                        out.push((
                            DirEntry {
                                ino: child,
                                kind: a.kind,
                                name: name.to_vec(),
                                next_offset: off,
                            },
                            a,
                        ));
                    }
                }
            }
            Node::AtDir => dot(
                &mut out,
                self.special_getattr(CTL_DIR)?,
                self.special_getattr(AT_DIR)?,
            ),
            Node::SnapshotsDir => {
                dot(
                    &mut out,
                    self.special_getattr(CTL_DIR)?,
                    self.special_getattr(SNAPSHOTS_DIR)?,
                );
                // Offsets past "." and ".." are snapshot rowids + 2: paged by the index, and
                // a page of snapshots the caller may not read is skipped, not an end.
                let mut after = offset.saturating_sub(2) as i64;
                while out.len() < limit {
                    let page = {
                        let conn = &self.lock_core().conn;
                        let mut page = Vec::new();
                        let rows = history::snapshots_after(conn, after, limit)?;
                        let Some((last, _)) = rows.last() else { break };
                        after = *last;
                        for (rowid, s) in rows {
                            let visible = match who {
                                Some(w) => access::snapshot_readable(conn, w, &s)?,
                                None => true,
                            };
                            if visible {
                                page.push((rowid, s));
                            }
                        }
                        page
                    };
                    for (rowid, s) in page {
                        let a = self.open_view(Seq(s.seq), Ino(s.root))?;
                        out.push((
                            DirEntry {
                                ino: a.ino,
                                kind: FileKind::Dir,
                                name: s.name.into_bytes(),
                                next_offset: rowid as u64 + 2,
                            },
                            a,
                        ));
                    }
                }
            }
            Node::View { view, ino: real } => {
                let (seq, root) = self.view_of(view)?;
                let me = self.special_getattr(ino)?;
                let parent = if real == root {
                    self.special_getattr(AT_DIR)?
                } else {
                    let p = tree::parent(&self.lock_core().conn, real, When::At(seq))?
                        .ok_or(FsError::NotFound)?;
                    self.special_getattr(view_ino(view, p))?
                };
                dot(&mut out, parent, me);
                let core = self.lock_core();
                let conn = &core.conn;
                for d in tree::list(conn, real, When::At(seq), offset.saturating_sub(2), limit)? {
                    let rev = tree::rev_or_missing(conn, d.ino, When::At(seq))?;
                    let a = self.view_attr(conn, view, &rev)?;
                    out.push((
                        DirEntry {
                            ino: a.ino,
                            kind: d.kind,
                            name: d.name,
                            next_offset: d.id + 2,
                        },
                        a,
                    ));
                }
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    pub(super) fn special_readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        match classify(ino) {
            Some(Node::View { view, ino: real }) => {
                let (seq, _) = self.view_of(view)?;
                let rev = tree::rev_or_missing(&self.lock_core().conn, real, When::At(seq))?;
                rev.target.ok_or(FsError::Invalid)
            }
            _ => Err(FsError::Invalid),
        }
    }

    pub(super) fn special_xattrs(&self, ino: Ino) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match classify(ino) {
            Some(Node::View { view, ino: real }) => {
                let (seq, _) = self.view_of(view)?;
                tree::xattrs(&self.lock_core().conn, real, When::At(seq))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Open a special file: the conduit, or a file in a view (read-only).
    pub(super) fn special_open(&self, who: &Credentials, ino: Ino, flags: i32) -> Result<Opened> {
        let write = matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR);
        if !write {
            self.view_access(who, ino, super::caller::R)?;
        }
        match classify(ino).ok_or(FsError::NotFound)? {
            Node::CtlFile => {
                let fh = self.new_fh(Handle {
                    ino,
                    write: true,
                    dir: false,
                    generation: 0,
                });
                let conduit = super::control::Conduit::new(who);
                self.conduits.lock().unwrap().insert(fh, conduit);
                Ok(Opened {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                })
            }
            Node::StoreFile | Node::ProgressFile if write || flags & libc::O_TRUNC != 0 => {
                Err(FsError::NotPermitted)
            }
            Node::ProgressFile => {
                let fh = self.new_fh(Handle {
                    ino,
                    write: false,
                    dir: false,
                    generation: 0,
                });
                // What it reads is taken now, for this caller, without the core lock.
                self.progress.open(fh, who);
                Ok(Opened {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                })
            }
            Node::Ask(n) => {
                let node = self.asks.lock().unwrap().get(n).ok_or(FsError::Stale)?;
                if node.dir {
                    return Err(FsError::IsDir);
                }
                if write || flags & libc::O_TRUNC != 0 {
                    return Err(FsError::NotPermitted);
                }
                let fh = self.new_fh(Handle {
                    ino,
                    write: false,
                    dir: false,
                    generation: 0,
                });
                // Executed at the first read, as a request written to `ctl` is, for the
                // opener (their groups are read now, while they wait in open(2)).
                let asked =
                    self.conduits
                        .lock()
                        .unwrap()
                        .insert_asked(fh, who, node.request.to_vec());
                if let Err(e) = asked {
                    self.handles.lock().unwrap().remove(&fh.0);
                    return Err(e);
                }
                Ok(Opened {
                    fh,
                    keep_cache: false,
                    direct_io: true,
                })
            }
            Node::StoreFile => Ok(Opened {
                fh: self.new_fh(Handle {
                    ino,
                    write: false,
                    dir: false,
                    generation: 0,
                }),
                keep_cache: false,
                direct_io: true,
            }),
            Node::View { view, ino: real } => {
                if write || flags & libc::O_TRUNC != 0 {
                    return Err(FsError::ReadOnly);
                }
                let (seq, _) = self.view_of(view)?;
                let content = {
                    let core = self.lock_core();
                    let rev = tree::rev_or_missing(&core.conn, real, When::At(seq))?;
                    if rev.kind != FileKind::File {
                        return Err(if rev.kind == FileKind::Dir {
                            FsError::IsDir
                        } else {
                            FsError::Invalid
                        });
                    }
                    super::content::load(&core.conn, rev.list)?
                };
                let fh = self.new_fh(Handle {
                    ino,
                    write: false,
                    dir: false,
                    generation: 0,
                });
                self.view_files
                    .lock()
                    .unwrap()
                    .insert(fh.0, std::sync::Arc::new(ViewFile::new(content)));
                // A view never changes: the kernel may keep its pages.
                Ok(Opened {
                    fh,
                    keep_cache: true,
                    direct_io: false,
                })
            }
            _ => Err(FsError::IsDir),
        }
    }

    pub(super) fn special_read(
        &self,
        who: &Credentials,
        fh: Fh,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>> {
        // Taken out first: the map's lock must not be held across the read.
        let view = self.view_files.lock().unwrap().get(&fh.0).cloned();
        if let Some(v) = view {
            let end = (offset + size as u64).min(v.content.size());
            if offset >= end {
                return Ok(Vec::new());
            }
            let window = self.read_ahead_window();
            let ahead = v.ahead.lock().unwrap().next(offset, end, window);
            return self.read_committed(&v.content, offset, end, ahead);
        }
        if let Some(bytes) = self.progress.read(fh, offset, size) {
            return Ok(bytes);
        }
        if self.handle(fh)?.ino == STORE_FILE {
            let text = self.store_file();
            let from = (offset as usize).min(text.len());
            let to = from.saturating_add(size as usize).min(text.len());
            return Ok(text[from..to].to_vec());
        }
        self.conduit_read(fh, who, size)
    }

    /// What `/.chunkfs/store` holds: the store directory's path and a newline (empty for a
    /// filesystem opened from a bare database). A mount's source in the mount table is its
    /// `fsname`, by default this same path, but any name the user chose (`-o fsname=`); the
    /// CLI reads this file to find the store of a mount either way.
    fn store_file(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        match self.opts.meta_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                [dir.as_os_str().as_bytes(), b"\n"].concat()
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn special_release(&self, fh: Fh) {
        self.view_files.lock().unwrap().remove(&fh.0);
        self.conduits.lock().unwrap().remove(fh);
        self.progress.release(fh);
    }
}

/// An open file of a view: its content, fixed, and its reader's read-ahead.
pub struct ViewFile {
    content: super::content::Content,
    ahead: Mutex<super::readahead::Ahead>,
}

impl ViewFile {
    /// The file's content in the view.
    pub(super) fn content(&self) -> &super::content::Content {
        &self.content
    }

    fn new(content: super::content::Content) -> ViewFile {
        ViewFile {
            content,
            ahead: Default::default(),
        }
    }
}

/// Errors for changes under `/.chunkfs`: views are read-only, the control entries fixed.
pub fn refuse_change(ino: Ino) -> Result<()> {
    match classify(ino) {
        None => Ok(()),
        Some(Node::View { .. }) => Err(FsError::ReadOnly),
        Some(_) => Err(FsError::NotPermitted),
    }
}

/// The control directory cannot be removed or renamed, nor anything under it.
pub fn refuse_removal(parent: Ino, name: &[u8]) -> Result<()> {
    if parent == Ino::ROOT && name == CONTROL_NAME {
        return Err(FsError::NotPermitted);
    }
    refuse_change(parent)
}

/// The control directory's name is taken in the root directory.
pub fn refuse_name(parent: Ino, name: &[u8]) -> Result<()> {
    if parent == Ino::ROOT && name == CONTROL_NAME {
        return Err(FsError::Exists);
    }
    refuse_change(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_as_seqs_unix_times_and_iso_times() {
        assert_eq!(parse_point("42"), Some(Point::Seq(Seq(42))));
        assert_eq!(parse_point("@10"), Some(Point::Time(10_000_000_000)));
        assert_eq!(
            parse_point("1970-01-02T00:00:00Z"),
            Some(Point::Time(86_400_000_000_000))
        );
        assert_eq!(
            parse_point("2000-03-01"),
            Some(Point::Time(951_868_800_000_000_000))
        );
        assert_eq!(parse_point("yesterday"), None);
    }

    #[test]
    fn views_past_the_limit_are_refused_not_wrapped() {
        let mut v = Views::default();
        for s in 0..MAX_VIEWS as u64 {
            v.id(Seq(s), Ino::ROOT).unwrap();
        }
        assert_eq!(
            v.id(Seq(0), Ino::ROOT).unwrap(),
            1,
            "a known view keeps its id"
        );
        assert!(matches!(
            v.id(Seq(u64::MAX), Ino::ROOT),
            Err(FsError::TooManyViews)
        ));
    }

    #[test]
    fn view_inodes_round_trip() {
        let i = view_ino(7, Ino(12345));
        assert_eq!(
            classify(i),
            Some(Node::View {
                view: 7,
                ino: Ino(12345)
            })
        );
        assert_eq!(classify(CTL_FILE), Some(Node::CtlFile));
        assert_eq!(classify(Ino(5)), None);
    }
}
