//! One GC pass as a sequence of bounded steps: prune revisions, prune the current state of
//! unlinked inodes, prune entries and xattrs, sweep chunks, free superchunks. The caller runs
//! each step in its own transaction and may stop between any two.

use super::{BATCH_ROWS, GcReport, Live, Retention, prune, sweep};
use crate::meta;
use crate::store::freemap::{Extent, FreeMap};
use rusqlite::Connection;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Revisions {
        cursor: (u64, i64),
    },
    Unlinked {
        cursor: i64,
    },
    Entries,
    Chunks {
        cursor: Vec<u8>,
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
            Phase::Entries => "pruning directory entries",
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
}

impl Pass {
    pub fn new(retention: Retention) -> Pass {
        Pass {
            retention,
            phase: Phase::Revisions { cursor: (0, 0) },
            report: GcReport::default(),
            limit: BATCH_ROWS,
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
        report.batches += 1;
        let mut freed = Vec::new();
        let next = match &mut self.phase {
            Phase::Revisions { cursor } => prune::revisions(conn, ret, cursor, limit, report)?
                .then_some(Phase::Unlinked { cursor: 0 }),
            Phase::Unlinked { cursor } => {
                prune::unlinked(conn, ret, live, cursor, limit, report)?.then_some(Phase::Entries)
            }
            Phase::Entries => prune::entries(conn, ret, limit, report)?
                .then_some(Phase::Chunks { cursor: Vec::new() }),
            Phase::Chunks { cursor } => {
                sweep::chunks(conn, live, cursor, limit, report)?.then_some(Phase::Superchunks)
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
