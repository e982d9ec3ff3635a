//! Namespace invariants: entries point at live inodes of the right kind, link counts match,
//! every directory has one parent and is reachable from the root (no cycles), and each
//! inode's revisions form a well-ordered chain of seq ranges.

use super::Result;
use crate::meta::Ino;
use crate::meta::namespace::{self, FileKind, Revision};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet, VecDeque};

pub(super) fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    revision_chains(conn, &mut problems)?;
    let revs: HashMap<Ino, Revision> = namespace::all_current(conn)?
        .into_iter()
        .map(|r| (r.ino, r))
        .collect();
    let dirents = namespace::all_dirents(conn)?;
    // Clone-side inodes may be named by directories that are still virtual (they read their
    // source's entries): their names and reachability are not all rows, so those checks skip
    // them; everything that does have rows is checked as usual.
    let cloned = crate::meta::history::all_clone_inos(conn)?;
    let mut names: HashMap<Ino, u32> = HashMap::new();
    let mut subdirs: HashMap<Ino, u32> = HashMap::new();
    let mut children: HashMap<Ino, Vec<Ino>> = HashMap::new();
    for (parent, d) in &dirents {
        let name = String::from_utf8_lossy(&d.name);
        match revs.get(parent) {
            Some(p) if p.kind == FileKind::Dir => {}
            Some(_) => problems.push(format!(
                "entry {name:?} lives in inode {}, which is not a directory",
                parent.0
            )),
            None => problems.push(format!(
                "entry {name:?} lives in inode {}, which does not exist",
                parent.0
            )),
        }
        match revs.get(&d.ino) {
            None if cloned.contains(&d.ino) => {}
            None => problems.push(format!(
                "entry {name:?} in directory {} points at missing inode {}",
                parent.0, d.ino.0
            )),
            Some(r) if r.kind != d.kind => problems.push(format!(
                "entry {name:?} says inode {} is a {:?} but it is a {:?}",
                d.ino.0, d.kind, r.kind
            )),
            Some(_) => {}
        }
        *names.entry(d.ino).or_default() += 1;
        if d.kind == FileKind::Dir {
            *subdirs.entry(*parent).or_default() += 1;
        }
        children.entry(*parent).or_default().push(d.ino);
    }
    for r in revs.values() {
        let n = names.get(&r.ino).copied().unwrap_or(0);
        if r.kind == FileKind::Dir {
            if r.nlink == 0 {
                if n > 0 {
                    problems.push(format!("removed directory {} still has an entry", r.ino.0));
                }
                continue;
            }
            let want_names = if r.ino == Ino::ROOT { 0 } else { 1 };
            if n != want_names && !cloned.contains(&r.ino) {
                problems.push(format!(
                    "directory {} has {n} names (expected {want_names})",
                    r.ino.0
                ));
            }
            let want = 2 + subdirs.get(&r.ino).copied().unwrap_or(0);
            if r.nlink != want {
                problems.push(format!(
                    "directory {} has link count {}, but {want} links",
                    r.ino.0, r.nlink
                ));
            }
        } else if r.nlink != n && !cloned.contains(&r.ino) {
            problems.push(format!(
                "inode {} has link count {}, but {n} names",
                r.ino.0, r.nlink
            ));
        }
    }
    // Every directory with a name is reachable from the root exactly once.
    let mut seen = HashSet::from([Ino::ROOT]);
    let mut queue = VecDeque::from([Ino::ROOT]);
    while let Some(dir) = queue.pop_front() {
        for &c in children.get(&dir).map(Vec::as_slice).unwrap_or(&[]) {
            if revs.get(&c).is_some_and(|r| r.kind == FileKind::Dir) {
                if !seen.insert(c) {
                    problems.push(format!(
                        "directory {} is reachable twice (a cycle or a second parent)",
                        c.0
                    ));
                } else {
                    queue.push_back(c);
                }
            }
        }
    }
    for r in revs.values() {
        if r.kind == FileKind::Dir
            && r.nlink > 0
            && !seen.contains(&r.ino)
            && !cloned.contains(&r.ino)
        {
            problems.push(format!(
                "directory {} is not reachable from the root",
                r.ino.0
            ));
        }
    }
    if !revs.contains_key(&Ino::ROOT) {
        problems.push("the root directory has no current revision".into());
    }
    problems.sort();
    Ok(problems)
}

/// Each inode's revisions, ordered by born, must not overlap, and only the last may be current.
fn revision_chains(conn: &Connection, problems: &mut Vec<String>) -> Result<()> {
    let mut prev: Option<namespace::Span> = None;
    for span in namespace::all_spans(conn)? {
        let (ino, born) = (span.ino.0, span.born.0);
        if let Some(d) = span.died
            && d <= span.born
        {
            problems.push(format!(
                "inode {ino}: a revision ends (seq {}) before it begins (seq {born})",
                d.0
            ));
        }
        if let Some(p) = prev
            && p.ino == span.ino
        {
            match p.died {
                None => problems.push(format!(
                    "inode {ino}: revision from seq {} is current but a later one exists",
                    p.born.0
                )),
                Some(d) if d > span.born => problems.push(format!(
                    "inode {ino}: revisions from seq {} and {born} overlap",
                    p.born.0
                )),
                _ => {}
            }
        }
        prev = Some(span);
    }
    // An unlinked inode whose last state GC pruned may keep older revisions that history
    // still needs; an inode with no revision at all is an error.
    for ino in namespace::inodes_without_revisions(conn)? {
        problems.push(format!("inode {} has no revision", ino.0));
    }
    Ok(())
}
