//! A reference model of the namespace and file contents, and a harness that applies the same
//! operations to it and to the core, comparing after every step: the result (Ok or errno), the
//! whole tree with kinds, link counts and contents, inode identity of hard links, and what
//! every open handle reads. Shared by the property test (`model.rs`) and the named regression
//! tests (`regressions.rs`).
#![allow(dead_code)]

use crate::common::{TestStore, assert_consistent, random_bytes};
use crate::support::{Found, tree};
use chunkfs::fs::{Fh, FileKind, Fs, FsError, Ino, RenameFlags, SetAttr};
use std::collections::{BTreeMap, HashMap};

pub const NAMES: [&str; 3] = ["a", "b", "c"];

/// A path as indices into `NAMES`, from the root.
pub type P = Vec<u8>;

#[derive(Clone, Debug)]
pub enum Op {
    /// Create a file and keep a handle to it open.
    Create {
        path: P,
    },
    Mkdir {
        path: P,
    },
    /// Open an existing file read-write and keep the handle.
    Open {
        path: P,
    },
    /// Write through open handle number `h` (modulo the open handles).
    Write {
        h: usize,
        off: u32,
        len: u32,
        seed: u8,
        zeros: bool,
    },
    /// `copy_file_range` from handle `from` to handle `to` (modulo the open handles).
    Copy {
        from: usize,
        to: usize,
        off_in: u32,
        off_out: u32,
        len: u32,
    },
    Truncate {
        path: P,
        size: u32,
    },
    /// flag: 0 plain, 1 RENAME_NOREPLACE, 2 RENAME_EXCHANGE.
    Rename {
        from: P,
        to: P,
        flag: u8,
    },
    Link {
        from: P,
        to: P,
    },
    Unlink {
        path: P,
    },
    Rmdir {
        path: P,
    },
    Fsync {
        h: usize,
    },
    Close {
        h: usize,
    },
    /// Release every handle, close the store and open it again.
    Reopen,
    /// Take a snapshot of the whole tree; the model keeps a full copy.
    Snapshot,
    /// Check snapshot `snap`'s view against the model's copy, then revert the whole tree to
    /// it (handles are released first: a revert makes them stale).
    RevertAll {
        snap: u8,
    },
    /// Clone a file or a directory tree.
    Clone {
        from: P,
        to: P,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, usize>),
}

type R = Result<(), i32>;

#[derive(Clone, Default)]
struct Model {
    nodes: HashMap<usize, Node>,
    next: usize,
}

const ROOT: usize = 0;

fn name_of(i: u8) -> String {
    NAMES[i as usize % NAMES.len()].to_string()
}

impl Model {
    fn new() -> Model {
        let mut m = Model::default();
        m.nodes.insert(ROOT, Node::Dir(BTreeMap::new()));
        m.next = 1;
        m
    }

    fn entries(&self, dir: usize) -> Option<&BTreeMap<String, usize>> {
        match &self.nodes[&dir] {
            Node::Dir(e) => Some(e),
            Node::File(_) => None,
        }
    }

    fn entries_mut(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match self.nodes.get_mut(&dir).unwrap() {
            Node::Dir(e) => e,
            Node::File(_) => panic!("not a dir"),
        }
    }

    fn is_dir(&self, n: usize) -> bool {
        matches!(self.nodes[&n], Node::Dir(_))
    }

    /// Walk `comps` from the root as a chain of lookups does.
    fn walk(&self, comps: &[u8]) -> Result<usize, i32> {
        let mut cur = ROOT;
        for c in comps {
            let e = self.entries(cur).ok_or(libc::ENOTDIR)?;
            cur = *e.get(&name_of(*c)).ok_or(libc::ENOENT)?;
        }
        Ok(cur)
    }

    fn lookup(&self, dir: usize, name: &str) -> Result<Option<usize>, i32> {
        Ok(self.entries(dir).ok_or(libc::ENOTDIR)?.get(name).copied())
    }

    fn parent_of(&self, dir: usize) -> Option<usize> {
        self.nodes.iter().find_map(|(id, n)| match n {
            Node::Dir(e) if e.values().any(|&c| c == dir) => Some(*id),
            _ => None,
        })
    }

    fn is_within(&self, mut dir: usize, ancestor: usize) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            match self.parent_of(dir) {
                Some(p) => dir = p,
                None => return false,
            }
        }
    }

    fn nlink(&self, n: usize) -> u32 {
        match &self.nodes[&n] {
            Node::Dir(e) => 2 + e.values().filter(|c| self.is_dir(**c)).count() as u32,
            Node::File(_) => self
                .nodes
                .values()
                .map(|d| match d {
                    Node::Dir(e) => e.values().filter(|&&c| c == n).count() as u32,
                    Node::File(_) => 0,
                })
                .sum(),
        }
    }

    fn new_node(&mut self, node: Node) -> usize {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, node);
        id
    }

    fn make(&mut self, parent: usize, name: &str, node: Node) -> Result<usize, i32> {
        if self.lookup(parent, name)?.is_some() {
            return Err(libc::EEXIST);
        }
        let id = self.new_node(node);
        self.entries_mut(parent).insert(name.to_string(), id);
        Ok(id)
    }

    fn unlink(&mut self, parent: usize, name: &str) -> R {
        let n = self.lookup(parent, name)?.ok_or(libc::ENOENT)?;
        if self.is_dir(n) {
            return Err(libc::EISDIR);
        }
        self.entries_mut(parent).remove(name);
        Ok(())
    }

    fn rmdir(&mut self, parent: usize, name: &str) -> R {
        let n = self.lookup(parent, name)?.ok_or(libc::ENOENT)?;
        match self.entries(n) {
            None => return Err(libc::ENOTDIR),
            Some(e) if !e.is_empty() => return Err(libc::ENOTEMPTY),
            _ => {}
        }
        self.entries_mut(parent).remove(name);
        Ok(())
    }

    fn link(&mut self, src: usize, parent: usize, name: &str) -> R {
        if self.is_dir(src) {
            return Err(libc::EPERM);
        }
        if self.lookup(parent, name)?.is_some() {
            return Err(libc::EEXIST);
        }
        self.entries_mut(parent).insert(name.to_string(), src);
        Ok(())
    }

    /// rename(2) in the order the core checks things.
    fn rename(&mut self, sp: usize, sname: &str, dp: usize, dname: &str, flag: u8) -> R {
        if !self.is_dir(sp) || !self.is_dir(dp) {
            return Err(libc::ENOTDIR);
        }
        let src = self.lookup(sp, sname)?.ok_or(libc::ENOENT)?;
        let dst = self.lookup(dp, dname)?;
        if self.is_dir(src) && self.is_within(dp, src) {
            return Err(libc::EINVAL);
        }
        if flag == 2 {
            let dst = dst.ok_or(libc::ENOENT)?;
            if self.is_dir(dst) && self.is_within(sp, dst) {
                return Err(libc::EINVAL);
            }
            if dst == src {
                return Ok(());
            }
            self.entries_mut(sp).insert(sname.to_string(), dst);
            self.entries_mut(dp).insert(dname.to_string(), src);
            return Ok(());
        }
        if let Some(dst) = dst {
            if flag == 1 {
                return Err(libc::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            match (self.is_dir(src), self.is_dir(dst)) {
                (true, false) => return Err(libc::ENOTDIR),
                (false, true) => return Err(libc::EISDIR),
                (true, true) if !self.entries(dst).unwrap().is_empty() => {
                    return Err(libc::ENOTEMPTY);
                }
                _ => {}
            }
        }
        self.entries_mut(sp).remove(sname);
        self.entries_mut(dp).insert(dname.to_string(), src);
        Ok(())
    }

    /// A deep copy of node `n` (and its subtree), sharing among the copies what is shared in
    /// the original (hard links inside the tree), as a clone does.
    fn copy(&mut self, n: usize, memo: &mut HashMap<usize, usize>) -> usize {
        if let Some(c) = memo.get(&n) {
            return *c;
        }
        let node = match self.nodes[&n].clone() {
            Node::File(d) => Node::File(d),
            Node::Dir(_) => Node::Dir(BTreeMap::new()),
        };
        let id = self.new_node(node);
        memo.insert(n, id);
        if let Node::Dir(e) = self.nodes[&n].clone() {
            for (name, child) in e {
                let c = self.copy(child, memo);
                self.entries_mut(id).insert(name, c);
            }
        }
        id
    }

    /// The whole tree back as `old` had it; inodes keep their identity.
    fn revert_all(&mut self, old: &Model) {
        // Nodes made since are unreachable afterwards (every directory is as it was), and must
        // not count: a directory made since still lists what was moved into it, and `nlink`
        // of a file counts the entries of every directory node.
        self.nodes.retain(|id, _| old.nodes.contains_key(id));
        for (id, node) in &old.nodes {
            self.nodes.insert(*id, node.clone());
        }
    }

    fn data_mut(&mut self, n: usize) -> &mut Vec<u8> {
        match self.nodes.get_mut(&n).unwrap() {
            Node::File(d) => d,
            Node::Dir(_) => panic!("not a file"),
        }
    }

    fn tree(&self) -> BTreeMap<String, (usize, Found)> {
        let mut out = BTreeMap::new();
        self.walk_tree(ROOT, "", &mut out);
        out
    }

    fn walk_tree(&self, dir: usize, prefix: &str, out: &mut BTreeMap<String, (usize, Found)>) {
        for (name, &n) in self.entries(dir).unwrap() {
            let path = format!("{prefix}{name}");
            let found = match &self.nodes[&n] {
                Node::Dir(_) => Found::Dir {
                    nlink: self.nlink(n),
                },
                Node::File(d) => Found::File {
                    data: d.clone(),
                    nlink: self.nlink(n),
                },
            };
            out.insert(path.clone(), (n, found));
            if self.is_dir(n) {
                self.walk_tree(n, &format!("{path}/"), out);
            }
        }
    }
}

struct Open {
    node: usize,
    ino: Ino,
    fh: Fh,
}

pub struct Harness {
    fs: Option<Fs>,
    ts: TestStore,
    model: Model,
    /// (name, the model as the snapshot saw it).
    snapshots: Vec<(String, Model)>,
    handles: Vec<Open>,
    inos: HashMap<usize, Ino>,
    step: usize,
}

fn res<T>(r: Result<T, FsError>) -> R {
    r.map(|_| ()).map_err(|e| e.errno())
}

fn path_str(p: &P) -> String {
    p.iter().map(|c| name_of(*c)).collect::<Vec<_>>().join("/")
}

fn split(p: &P) -> (&[u8], String) {
    let (last, parent) = p.split_last().expect("paths are never empty");
    (parent, name_of(*last))
}

impl Harness {
    pub fn new() -> Harness {
        let ts = TestStore::new(256 << 20);
        let mut inos = HashMap::new();
        inos.insert(ROOT, Ino::ROOT);
        Harness {
            fs: Some(ts.open()),
            ts,
            model: Model::new(),
            snapshots: Vec::new(),
            handles: Vec::new(),
            inos,
            step: 0,
        }
    }

    fn fs(&self) -> &Fs {
        self.fs.as_ref().unwrap()
    }

    /// Resolve a path in the core by a chain of lookups.
    fn walk(&self, comps: &[u8]) -> Result<Ino, i32> {
        let mut ino = Ino::ROOT;
        for c in comps {
            ino = res_val(self.fs().lookup(ino, name_of(*c).as_bytes()))?.ino;
        }
        Ok(ino)
    }

    /// Both sides resolve `comps`; they must agree on the outcome.
    fn walk_both(&self, comps: &[u8]) -> Result<(Ino, usize), i32> {
        let f = self.walk(comps);
        let m = self.model.walk(comps);
        match (f, m) {
            (Ok(i), Ok(n)) => {
                assert_eq!(
                    self.inos.get(&n),
                    Some(&i),
                    "step {}: {comps:?} names another inode",
                    self.step
                );
                Ok((i, n))
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "step {}: resolving {comps:?}", self.step);
                Err(a)
            }
            (f, m) => panic!(
                "step {}: resolving {comps:?}: core {f:?}, model {m:?}",
                self.step
            ),
        }
    }

    pub fn apply(&mut self, op: &Op) {
        let (f, m) = self.run(op);
        assert_eq!(
            f, m,
            "step {}: {op:?}: core (left) and model (right) disagree",
            self.step
        );
        self.check();
        self.step += 1;
    }

    fn pick(&self, h: usize) -> Option<usize> {
        (!self.handles.is_empty()).then(|| h % self.handles.len())
    }

    fn run(&mut self, op: &Op) -> (R, R) {
        match op {
            Op::Create { path } | Op::Mkdir { path } => {
                let (pp, name) = split(path);
                let (pi, pn) = match self.walk_both(pp) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let dir = matches!(op, Op::Mkdir { .. });
                let node = if dir {
                    Node::Dir(BTreeMap::new())
                } else {
                    Node::File(Vec::new())
                };
                let m = self.model.make(pn, &name, node);
                let f = if dir {
                    self.fs()
                        .mkdir(pi, name.as_bytes(), 0o755, 0, 0)
                        .map(|a| (a, None))
                } else {
                    self.fs()
                        .create(pi, name.as_bytes(), 0o644, libc::O_RDWR, 0, 0)
                        .map(|(a, h)| (a, Some(h.fh)))
                };
                if let (Ok((a, fh)), Ok(n)) = (&f, &m) {
                    self.inos.insert(*n, a.ino);
                    if let Some(fh) = fh {
                        self.handles.push(Open {
                            node: *n,
                            ino: a.ino,
                            fh: *fh,
                        });
                    }
                }
                (res(f), m.map(|_| ()))
            }
            Op::Open { path } => {
                let (ino, n) = match self.walk_both(path) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let m = if self.model.is_dir(n) {
                    Err(libc::EISDIR)
                } else {
                    Ok(())
                };
                let f = self.fs().open(ino, libc::O_RDWR);
                if let (Ok(h), Ok(())) = (&f, &m) {
                    self.handles.push(Open {
                        node: n,
                        ino,
                        fh: h.fh,
                    });
                }
                (res(f), m)
            }
            Op::Write {
                h,
                off,
                len,
                seed,
                zeros,
            } => {
                let Some(i) = self.pick(*h) else {
                    return (Ok(()), Ok(()));
                };
                let data = if *zeros {
                    vec![0u8; *len as usize]
                } else {
                    random_bytes(*seed as u64, *len as usize)
                };
                let o = &self.handles[i];
                let f = self.fs().write(o.ino, o.fh, *off as u64, &data);
                // POSIX: a write of nothing changes nothing, not even the size.
                if !data.is_empty() {
                    let d = self.model.data_mut(o.node);
                    let (from, end) = (*off as usize, *off as usize + data.len());
                    if d.len() < end {
                        d.resize(end, 0);
                    }
                    d[from..end].copy_from_slice(&data);
                }
                (res(f), Ok(()))
            }
            Op::Copy {
                from,
                to,
                off_in,
                off_out,
                len,
            } => {
                let (Some(i), Some(j)) = (self.pick(*from), self.pick(*to)) else {
                    return (Ok(()), Ok(()));
                };
                let (src, dst) = (&self.handles[i], &self.handles[j]);
                let (oi, oo, n) = (*off_in as u64, *off_out as u64, *len as u64);
                let f = self
                    .fs()
                    .copy_range(src.ino, src.fh, oi, dst.ino, dst.fh, oo, n);
                let (sn, dn) = (src.node, dst.node);
                let s = self.model.data_mut(sn).clone();
                let copied = n.min((s.len() as u64).saturating_sub(oi)) as usize;
                let c = copied as u64;
                let m = if c > 0 && sn == dn && oi < oo + c && oo < oi + c {
                    Err(libc::EINVAL)
                } else {
                    if copied > 0 {
                        let d = self.model.data_mut(dn);
                        let (from, end) = (oo as usize, oo as usize + copied);
                        if d.len() < end {
                            d.resize(end, 0);
                        }
                        d[from..end].copy_from_slice(&s[oi as usize..oi as usize + copied]);
                    }
                    Ok(copied as u64)
                };
                match (f, m) {
                    (Ok(a), Ok(b)) if a == b => (Ok(()), Ok(())),
                    (Ok(a), Ok(b)) => panic!("copy_range copied {a} bytes, the model {b}"),
                    (f, m) => (res(f), m.map(|_| ())),
                }
            }
            Op::Truncate { path, size } => {
                let (ino, n) = match self.walk_both(path) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let m = if self.model.is_dir(n) {
                    Err(libc::EISDIR)
                } else {
                    self.model.data_mut(n).resize(*size as usize, 0);
                    Ok(())
                };
                let set = SetAttr {
                    size: Some(*size as u64),
                    ..SetAttr::default()
                };
                (res(self.fs().setattr(ino, &set)), m)
            }
            Op::Rename { from, to, flag } => {
                let (sp, sname) = split(from);
                let (dp, dname) = split(to);
                let (si, sn) = match self.walk_both(sp) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let (di, dn) = match self.walk_both(dp) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let flags = RenameFlags {
                    noreplace: *flag == 1,
                    exchange: *flag == 2,
                };
                let f = self
                    .fs()
                    .rename(si, sname.as_bytes(), di, dname.as_bytes(), flags);
                (res(f), self.model.rename(sn, &sname, dn, &dname, *flag))
            }
            Op::Link { from, to } => {
                let (si, sn) = match self.walk_both(from) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let (dp, dname) = split(to);
                let (di, dn) = match self.walk_both(dp) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let m = if self.model.is_dir(sn) {
                    Err(libc::EPERM)
                } else {
                    self.model.link(sn, dn, &dname)
                };
                (res(self.fs().link(si, di, dname.as_bytes())), m)
            }
            Op::Unlink { path } | Op::Rmdir { path } => {
                let (pp, name) = split(path);
                let (pi, pn) = match self.walk_both(pp) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                if matches!(op, Op::Unlink { .. }) {
                    (
                        res(self.fs().unlink(pi, name.as_bytes())),
                        self.model.unlink(pn, &name),
                    )
                } else {
                    (
                        res(self.fs().rmdir(pi, name.as_bytes())),
                        self.model.rmdir(pn, &name),
                    )
                }
            }
            Op::Fsync { h } => {
                let Some(i) = self.pick(*h) else {
                    return (Ok(()), Ok(()));
                };
                let o = &self.handles[i];
                (res(self.fs().fsync(o.ino, o.fh, false)), Ok(()))
            }
            Op::Close { h } => {
                let Some(i) = self.pick(*h) else {
                    return (Ok(()), Ok(()));
                };
                let o = self.handles.remove(i);
                (res(self.fs().release(o.ino, o.fh)), Ok(()))
            }
            Op::Snapshot => {
                let name = format!("s{}", self.snapshots.len());
                let f = self
                    .fs()
                    .snapshot_create(&chunkfs::fs::Caller::root(), &name, "/");
                self.snapshots.push((name, self.model.clone()));
                (res(f), Ok(()))
            }
            Op::RevertAll { snap } => {
                if self.snapshots.is_empty() {
                    return (Ok(()), Ok(()));
                }
                let (name, old) = self.snapshots[*snap as usize % self.snapshots.len()].clone();
                self.check_view(&name, &old);
                for o in std::mem::take(&mut self.handles) {
                    self.fs().release(o.ino, o.fh).unwrap();
                }
                let seq = self
                    .fs()
                    .snapshot_list(&chunkfs::fs::Caller::root())
                    .unwrap()
                    .into_iter()
                    .find(|s| s.name == name)
                    .unwrap()
                    .seq;
                let f = self
                    .fs()
                    .revert(&chunkfs::fs::Caller::root(), "/", chunkfs::fs::Seq(seq));
                self.model.revert_all(&old);
                (res(f), Ok(()))
            }
            Op::Clone { from, to } => {
                let (fi, fnode) = match self.walk_both(from) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let (pp, name) = split(to);
                let (_, pn) = match self.walk_both(pp) {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Err(e)),
                };
                let _ = fi;
                let m = match self.model.lookup(pn, &name) {
                    Err(e) => Err(e),
                    Ok(Some(_)) => Err(libc::EEXIST),
                    Ok(None) if self.model.is_dir(fnode) && self.model.is_within(pn, fnode) => {
                        Err(libc::EINVAL)
                    }
                    Ok(None) => {
                        let c = self.model.copy(fnode, &mut HashMap::new());
                        self.model.entries_mut(pn).insert(name.clone(), c);
                        Ok(())
                    }
                };
                let f = self.fs().clone_path(
                    &chunkfs::fs::Caller::root(),
                    &path_str(from),
                    &path_str(to),
                );
                if f.is_ok() && m.is_ok() {
                    self.learn(to);
                }
                (res(f), m)
            }
            Op::Reopen => {
                for o in std::mem::take(&mut self.handles) {
                    self.fs().release(o.ino, o.fh).unwrap();
                }
                let fs = self.fs.take().unwrap();
                assert_consistent(&fs);
                fs.close().unwrap();
                self.fs = Some(self.ts.open());
                assert_consistent(self.fs());
                (Ok(()), Ok(()))
            }
        }
    }

    /// Map the model's new nodes under `path` (made by a clone) to the core's inodes.
    fn learn(&mut self, path: &P) {
        let ino = self.walk(path).unwrap();
        let node = self.model.walk(path).unwrap();
        let mut stack = vec![(node, ino)];
        while let Some((n, i)) = stack.pop() {
            if let Some(known) = self.inos.get(&n) {
                assert_eq!(
                    *known, i,
                    "step {}: a shared node became two inodes",
                    self.step
                );
                continue;
            }
            self.inos.insert(n, i);
            if let Some(entries) = self.model.entries(n).cloned() {
                for (name, child) in entries {
                    let ci = self.fs().lookup(i, name.as_bytes()).unwrap().ino;
                    stack.push((child, ci));
                }
            }
        }
    }

    /// Snapshot `name`'s view must show exactly what the model copied when it was taken.
    fn check_view(&self, name: &str, old: &Model) {
        let ctl = self
            .fs()
            .lookup(Ino::ROOT, chunkfs::fs::CONTROL_NAME)
            .unwrap()
            .ino;
        let snaps = self.fs().lookup(ctl, b"snapshots").unwrap().ino;
        let view = self.fs().lookup(snaps, name.as_bytes()).unwrap().ino;
        let got: Vec<_> = tree(self.fs(), view)
            .into_iter()
            .map(|(p, (_, f))| (p, f))
            .collect();
        let want: Vec<_> = old.tree().into_iter().map(|(p, (_, f))| (p, f)).collect();
        assert!(
            got == want,
            "step {}: snapshot {name} no longer shows what it saw",
            self.step
        );
    }

    /// Compare everything observable.
    pub fn check(&self) {
        let step = self.step;
        let got = tree(self.fs(), Ino::ROOT);
        let want = self.model.tree();
        let got_paths: Vec<_> = got.iter().map(|(p, (_, f))| (p.clone(), kind(f))).collect();
        let want_paths: Vec<_> = want
            .iter()
            .map(|(p, (_, f))| (p.clone(), kind(f)))
            .collect();
        assert_eq!(got_paths, want_paths, "step {step}: the trees differ");
        for (path, (ino, found)) in &got {
            let (n, wanted) = &want[path];
            assert_eq!(
                self.inos.get(n),
                Some(ino),
                "step {step}: {path} is another inode"
            );
            if found != wanted {
                let show = |f: &Found| match f {
                    Found::File { data, nlink } => {
                        format!("file of {} bytes, nlink {nlink}", data.len())
                    }
                    f => format!("{f:?}"),
                };
                let first_diff = match (found, wanted) {
                    (Found::File { data: a, .. }, Found::File { data: b, .. }) => {
                        a.iter().zip(b).position(|(x, y)| x != y)
                    }
                    _ => None,
                };
                panic!(
                    "step {step}: {path}: core has {}, model has {} (first differing byte {first_diff:?})",
                    show(found),
                    show(wanted)
                );
            }
        }
        for o in &self.handles {
            let Node::File(want) = &self.model.nodes[&o.node] else {
                unreachable!()
            };
            let size = self.fs().getattr(o.ino).unwrap().size;
            assert_eq!(
                size,
                want.len() as u64,
                "step {step}: size through a handle"
            );
            let mut data = Vec::new();
            while data.len() < want.len() {
                let part = self
                    .fs()
                    .read(o.ino, o.fh, data.len() as u64, 1 << 20)
                    .unwrap();
                assert!(!part.is_empty());
                data.extend_from_slice(&part);
            }
            assert!(
                data == *want,
                "step {step}: content through an open handle differs"
            );
        }
    }

    /// Release everything, check consistency, reopen and compare once more.
    pub fn finish(mut self) {
        let (f, m) = self.run(&Op::Reopen);
        assert_eq!((f, m), (Ok(()), Ok(())));
        self.check();
        let fs = self.fs.take().unwrap();
        assert_consistent(&fs);
        fs.close().unwrap();
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

fn res_val<T>(r: Result<T, FsError>) -> Result<T, i32> {
    r.map_err(|e| e.errno())
}

fn kind(f: &Found) -> FileKind {
    match f {
        Found::Dir { .. } => FileKind::Dir,
        Found::File { .. } => FileKind::File,
        Found::Other { kind } => *kind,
    }
}

/// Apply `ops` to a fresh store and the model, checking after every step and at the end.
pub fn run(ops: &[Op]) {
    let mut h = Harness::new();
    for op in ops {
        h.apply(op);
    }
    h.finish();
}
