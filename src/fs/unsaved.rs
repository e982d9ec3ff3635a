//! The last commit before the store closes, and the account of what it could not commit: the
//! files whose dirty data is lost, named by path so that an unmount can say which.

use super::Inner;
use super::error::{FsError, Result, Unsaved};
use crate::meta::Ino;
use crate::meta::namespace;
use rusqlite::Connection;

impl Inner {
    /// Commit every dirty file and the group transaction. A file that cannot commit does not
    /// stop the others; those left are reported together (`FsError::Unsaved`), after the
    /// group commit has made everything else durable.
    pub(super) fn final_commit(&self) -> Result<()> {
        let failed = self.try_commit_files(true, |_| true);
        let mut core = self.lock_core();
        core.commit(&*self.dev)?;
        if failed.is_empty() {
            return Ok(());
        }
        let mut unsaved = Vec::with_capacity(failed.len());
        for (ino, e) in failed {
            unsaved.push(Unsaved {
                ino,
                path: path_of(&core.conn, ino)?,
                error: e.to_string(),
            });
        }
        for u in &unsaved {
            log::error!(
                "chunkfs: uncommitted data of {} is lost: {}",
                u.path.as_deref().unwrap_or("an unlinked file"),
                u.error
            );
        }
        Err(FsError::Unsaved(unsaved))
    }
}

/// One current path of `ino`, `None` if it has no name. A directory above it that cannot be
/// resolved shows as `?`.
fn path_of(conn: &Connection, ino: Ino) -> Result<Option<String>> {
    let mut parts = Vec::new();
    let mut cur = ino;
    while cur != Ino::ROOT {
        match namespace::name_of(conn, cur, None)? {
            Some((parent, name)) => {
                parts.push(String::from_utf8_lossy(&name).into_owned());
                cur = parent;
            }
            None if cur == ino => return Ok(None),
            None => {
                parts.push("?".into());
                break;
            }
        }
        if parts.len() > 4096 {
            break; // a cycle would be damage; fsck reports it, this only names files
        }
    }
    parts.reverse();
    Ok(Some(format!("/{}", parts.join("/"))))
}
