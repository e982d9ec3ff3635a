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
    let mut st = conn.prepare("SELECT ino, born, died FROM revisions ORDER BY ino, born, id")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let mut prev: Option<(i64, i64, Option<i64>)> = None;
    for row in rows {
        let (ino, born, died) = row?;
        if let Some(d) = died
            && d <= born
        {
            problems.push(format!(
                "inode {ino}: a revision ends (seq {d}) before it begins (seq {born})"
            ));
        }
        if let Some((pino, pborn, pdied)) = prev
            && pino == ino
        {
            match pdied {
                None => problems.push(format!(
                    "inode {ino}: revision from seq {pborn} is current but a later one exists"
                )),
                Some(d) if d > born => problems.push(format!(
                    "inode {ino}: revisions from seq {pborn} and {born} overlap"
                )),
                _ => {}
            }
        }
        prev = Some((ino, born, died));
    }
    let missing: Vec<i64> = conn
        // An unlinked inode whose last state GC pruned may keep older revisions that history
        // still needs; an inode with no revision at all is an error.
        .prepare("SELECT ino FROM inodes WHERE ino NOT IN (SELECT ino FROM revisions)")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for ino in missing {
        problems.push(format!("inode {ino} has no revision"));
    }
    Ok(())
}
