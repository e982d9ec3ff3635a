//! Healing a mounted store and retiring the damage. `fsck --repair-from DIR` through the
//! conduit: the daemon checks its committed state, looks for the damaged chunks' bytes under
//! DIR the way offline fsck does (`fsck::heal::find`), stores the good copies (`heal_chunks`),
//! and retires every damaged superchunk. A heal by rewrite (a write of a damaged chunk's bytes,
//! `file.rs`) retires the superchunk the chunk was in the same way.
//!
//! Retiring is GC's repack (`move_superchunks`): the intact chunks move into fresh
//! superchunks and the emptied superchunk is freed. Nothing is guessed: a chunk with no good
//! copy stays where it is, reported, and so does its superchunk; one that shares its space
//! with another superchunk is left to offline `fsck --repair`, which frees only the part
//! nothing else occupies.

use super::Inner;
use super::error::{FsError, Result};
use crate::chunker::ChunkHash;
use crate::fsck::Report;
use crate::store::superchunk::SuperchunkId;
use std::collections::HashSet;
use std::path::Path;

impl Inner {
    /// Check, heal from the files under `dir` (an absolute path the daemon can read), retire
    /// the damaged superchunks, and check again: the report of the second check, with what
    /// was done in `repairs`.
    pub fn fsck_repair_from(
        &self,
        dir: &Path,
        quick: bool,
        meter: super::progress::Meter,
    ) -> Result<Report> {
        if !dir.is_absolute() || !dir.is_dir() {
            return Err(FsError::Setup(format!(
                "--repair-from {}: not an absolute path to a directory",
                dir.display()
            )));
        }
        let first = self.fsck_online_with(quick, meter)?;
        let mut fixes = Vec::new();
        let wanted: HashSet<ChunkHash> = first.damaged_hashes().into_iter().collect();
        if !wanted.is_empty() {
            meter.phase("looking for good copies", "", None);
            let found = crate::fsck::heal::find(dir, self.sb.chunk, &wanted)
                .map_err(|e| FsError::Setup(format!("--repair-from {}: {e}", dir.display())))?;
            // A good copy re-points an index row; a chunk the index lost altogether is
            // indexed again by offline `--repair` (from the device) or `--repair-from`.
            let indexed = {
                let core = self.lock_core();
                let mut v = Vec::new();
                for (h, d) in found {
                    if crate::meta::chunks::exists(&core.conn, &h)? {
                        v.push((h, d));
                    }
                }
                v
            };
            for h in self.heal_chunks(indexed)? {
                fixes.push(format!("restored chunk {h} from a good copy"));
            }
        }
        for &id in &first.damaged_superchunk_ids {
            if let Some(line) = self.retire_superchunk(SuperchunkId(id))? {
                fixes.push(line);
            }
        }
        if fixes.is_empty() {
            return Ok(first);
        }
        meter.phase("checking again", "", None);
        let mut report = self.fsck_online_with(quick, meter)?;
        report.repairs = fixes;
        Ok(report)
    }

    /// The superchunks the index places these chunks in now.
    pub(super) fn homes_of(&self, hashes: &[ChunkHash]) -> Result<Vec<SuperchunkId>> {
        let core = self.lock_core();
        let mut homes = Vec::new();
        for h in hashes {
            if let Some(loc) = crate::meta::chunks::location(&core.conn, h)? {
                homes.push(loc.superchunk);
            }
        }
        homes.sort();
        homes.dedup();
        Ok(homes)
    }

    /// Once a damaged chunk has a good copy (a heal by rewrite, `heal_chunks`), its old
    /// superchunk holds nothing that needs it: retire it so fsck finds the store clean. Best
    /// effort: the heal itself is durable already, and `fsck --repair` retires what this
    /// could not.
    pub(super) fn retire_damaged(&self, homes: &[SuperchunkId]) {
        for &id in homes {
            match self.retire_superchunk(id) {
                Ok(Some(what)) => log::info!("chunkfs: {what}"),
                Ok(None) => {}
                Err(e) => log::warn!("chunkfs: cannot retire damaged superchunk {}: {e}", id.0),
            }
        }
    }

    /// Free the superchunks no index row points into, in a GC batch of their own, as the
    /// repack does after moving chunks.
    fn sweep_empty_superchunks(&self) -> Result<()> {
        let mut core = self.lock_core();
        core.gc_txn(&*self.dev, |core| {
            let (conn, freemap, _) = core.gc_parts();
            let mut report = crate::gc::GcReport::default();
            while !crate::gc::sweep::superchunks(conn, freemap, crate::gc::BATCH_ROWS, &mut report)?
                .1
            {}
            Ok(())
        })
    }

    /// Move a damaged superchunk's intact chunks out and free it; None if it is gone already
    /// (a heal retired it) or nothing could be moved. One that shares space with another
    /// superchunk (written over it) is left to offline `--repair`: freeing its whole extent
    /// would free live data.
    fn retire_superchunk(&self, id: SuperchunkId) -> Result<Option<String>> {
        let exists = |this: &Inner| -> Result<bool> {
            Ok(crate::meta::gc::superchunk_space(&this.lock_core().conn, id)?.is_some())
        };
        let overlap = {
            let core = self.lock_core();
            let all = crate::meta::chunks::superchunks(&core.conn)?;
            let Some(me) = all.iter().find(|s| s.id == id).copied() else {
                return Ok(None);
            };
            all.into_iter().find(|s| {
                s.id != id && s.extent.start < me.extent.end() && me.extent.start < s.extent.end()
            })
        };
        if let Some(other) = overlap {
            return Ok(Some(format!(
                "left damaged superchunk {}: it shares space with superchunk {}; unmount and run --repair",
                id.0, other.id.0
            )));
        }
        let mut report = crate::gc::GcReport::default();
        let all = self.move_superchunks(&[id], &mut report)?;
        if all && exists(self)? {
            // Nothing was left to move (every chunk in it was healed): the repack had no
            // batch to free it in.
            self.sweep_empty_superchunks()?;
        }
        Ok(if !exists(self)? {
            Some(format!(
                "moved the intact chunks out of damaged superchunk {} and freed it",
                id.0
            ))
        } else if !all && report.bytes_repacked > 0 {
            Some(format!(
                "moved the intact chunks out of damaged superchunk {}; it keeps damaged chunks",
                id.0
            ))
        } else {
            None
        })
    }
}
