//! One GC pass as a sequence of bounded steps: prune revisions, prune the current state of
//! unlinked inodes, prune entries and xattrs, sweep chunks, free superchunks. The caller runs
//! each step in its own transaction and may stop between any two. Each step reads at most
//! its limit of rows, through an index, whatever the store holds; a pass started `since` a
//! seq judges only history that ended from that seq on.

use super::{BATCH_ROWS, GcReport, Live, Retention, prune, sweep};
use crate::meta::{self, Seq, gc::Cursor, gc::Entries};
use crate::store::freemap::{Extent, FreeMap};
use rusqlite::Connection;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Revisions {
        cursor: Cursor,
    },
    Unlinked {
        cursor: Cursor,
    },
    Entries {
        which: Entries,
        cursor: Cursor,
    },
    /// After (superchunk, hash).
    Chunks {
        cursor: (u64, Vec<u8>),
    },
    Superchunks,
    /// Pruning and sweeping are done; what is left (repacking) is the caller's.
    Swept,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Revisions { .. } => "pruning revisions",
            Phase::Unlinked { .. } => "pruning unlinked files",
            Phase::Entries {
                which: Entries::Dirents,
                ..
            } => "pruning directory entries",
            Phase::Entries { .. } => "pruning xattrs",
            Phase::Chunks { .. } => "sweeping chunks",
            Phase::Superchunks => "freeing superchunks",
            Phase::Swept => "repacking",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Pass {
    pub retention: Retention,
    pub phase: Phase,
    pub report: GcReport,
    pub limit: usize,
    /// History that ended before this seq was judged by an earlier pass and is not read.
    pub since: Seq,
}

impl Pass {
    /// A pass over all history.
    pub fn new(retention: Retention) -> Pass {
        Pass::since(retention, Seq(0))
    }

    /// A pass that judges only history ended at `since` or later (and every unlinked file,
    /// chunk and superchunk): what an earlier complete pass left is still not prunable when
    /// no retention point has gone since (the caller's to know).
    pub fn since(retention: Retention, since: Seq) -> Pass {
        Pass {
            retention,
            phase: Phase::Revisions {
                cursor: meta::gc::before(since),
            },
            report: GcReport::default(),
            limit: BATCH_ROWS,
            since,
        }
    }

    pub fn swept(&self) -> bool {
        self.phase == Phase::Swept
    }

    /// Run one bounded step inside the caller's transaction. Returns the extents freed, to be
    /// discarded on the device after the transaction commits.
    pub fn step(
        &mut self,
        conn: &Connection,
        freemap: &mut FreeMap,
        live: &Live<'_>,
    ) -> meta::Result<Vec<Extent>> {
        let (ret, limit, report) = (&self.retention, self.limit, &mut self.report);
        let from = meta::gc::before(self.since);
        report.batches += 1;
        let mut freed = Vec::new();
        let next = match &mut self.phase {
            Phase::Revisions { cursor } => prune::revisions(conn, ret, cursor, limit, report)?
                .then_some(Phase::Unlinked { cursor: (0, 0) }),
            Phase::Unlinked { cursor } => prune::unlinked(conn, ret, live, cursor, limit, report)?
                .then_some(Phase::Entries {
                    which: Entries::Dirents,
                    cursor: from,
                }),
            Phase::Entries { which, cursor } => {
                let done = prune::entries(conn, ret, *which, cursor, limit, report)?;
                match which {
                    _ if !done => None,
                    Entries::Dirents => Some(Phase::Entries {
                        which: Entries::Xattrs,
                        cursor: from,
                    }),
                    Entries::Xattrs => Some(Phase::Chunks {
                        cursor: (0, Vec::new()),
                    }),
                }
            }
            Phase::Chunks { cursor } => {
                let done = sweep::chunks(conn, live, cursor, limit, report)?;
                // Free the superchunks this batch emptied in the same transaction: stopped
                // between the two (an unmount, a crash), a superchunk row with no chunk left
                // stays until a later pass, and fsck reports it as an orphan.
                let (f, _) = sweep::superchunks(conn, freemap, limit, report)?;
                freed = f;
                done.then_some(Phase::Superchunks)
            }
            Phase::Superchunks => {
                let (f, done) = sweep::superchunks(conn, freemap, limit, report)?;
                freed = f;
                done.then_some(Phase::Swept)
            }
            Phase::Swept => None,
        };
        if let Some(p) = next {
            self.phase = p;
        }
        Ok(freed)
    }
}
