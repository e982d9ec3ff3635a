//! The free map: the set of free, sector-aligned extents of the data area, merged on free and
//! split on allocation. It lives in memory; every change is also queued as a `FreeChange` so
//! the meta layer can persist it in the same SQLite transaction as whatever used the space.
//!
//! Allocation is best fit, lowest address among equal fits, taken from the low end of the
//! extent. Superchunks are of similar size, so a freed one's hole is usually an exact fit for
//! the next; large extents stay whole for large writes; and preferring low addresses keeps an
//! image file compact (its tail is only grown when nothing earlier fits) and punched holes
//! few.

use std::collections::{BTreeMap, BTreeSet};

use super::{Result, SECTOR, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// A change the meta layer must persist in the same transaction, against a table
/// free_extents(start PRIMARY KEY, len). `Put` is an upsert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreeChange {
    Remove { start: u64 },
    Put { start: u64, len: u64 },
}

#[derive(Clone, Debug, Default)]
pub struct FreeMap {
    by_start: BTreeMap<u64, u64>,
    /// (len, start): the first entry at or above a length is the best, lowest-addressed fit.
    by_size: BTreeSet<(u64, u64)>,
    /// start → new len, or None for removed; only the last change per start matters.
    changes: BTreeMap<u64, Option<u64>>,
    /// Retired extents: free as far as the persisted table is concerned, but not yet
    /// allocatable (see `retire`).
    retired: Vec<Extent>,
    /// Bytes in `by_start`, kept in step so statfs need not add the extents up.
    total: u64,
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        what: "free map",
        detail,
    }
}

fn check_aligned(e: Extent) -> Result<()> {
    if e.len == 0
        || !e.start.is_multiple_of(SECTOR)
        || !e.len.is_multiple_of(SECTOR)
        || e.start.checked_add(e.len).is_none()
    {
        return Err(corrupt(format!(
            "extent {}+{} is empty or not sector aligned",
            e.start, e.len
        )));
    }
    Ok(())
}

impl FreeMap {
    pub fn new() -> FreeMap {
        FreeMap::default()
    }

    /// Load persisted extents. Overlaps and misalignment are corruption; adjacent extents are
    /// merged (and the merge queued as changes) since a clean map never holds them.
    pub fn from_extents(it: impl IntoIterator<Item = Extent>) -> Result<FreeMap> {
        let mut sorted: Vec<Extent> = it.into_iter().collect();
        sorted.sort();
        let mut map = FreeMap::new();
        let mut run: Option<Extent> = None;
        for e in sorted {
            check_aligned(e)?;
            match run {
                Some(r) if r.end() > e.start => {
                    return Err(corrupt(format!(
                        "extents {}+{} and {}+{} overlap",
                        r.start, r.len, e.start, e.len
                    )));
                }
                Some(r) if r.end() == e.start => {
                    map.changes.insert(e.start, None);
                    map.changes.insert(r.start, Some(r.len + e.len));
                    run = Some(Extent {
                        start: r.start,
                        len: r.len + e.len,
                    });
                }
                _ => {
                    run.into_iter().for_each(|r| map.index(r));
                    run = Some(e);
                }
            }
        }
        run.into_iter().for_each(|r| map.index(r));
        Ok(map)
    }

    fn index(&mut self, e: Extent) {
        self.by_start.insert(e.start, e.len);
        self.by_size.insert((e.len, e.start));
        self.total += e.len;
    }

    fn insert(&mut self, e: Extent) {
        self.index(e);
        self.changes.insert(e.start, Some(e.len));
    }

    fn remove(&mut self, e: Extent) {
        if self.by_start.remove(&e.start).is_some() {
            self.total -= e.len;
        }
        self.by_size.remove(&(e.len, e.start));
        self.changes.insert(e.start, None);
    }

    /// Best-fit allocation of `len` rounded up to SECTOR; None if nothing fits.
    pub fn allocate(&mut self, len: u64) -> Option<Extent> {
        let need = len.checked_next_multiple_of(SECTOR)?;
        if need == 0 {
            return None;
        }
        let &(have, start) = self.by_size.range((need, 0)..).next()?;
        self.remove(Extent { start, len: have });
        if have > need {
            self.insert(Extent {
                start: start + need,
                len: have - need,
            });
        }
        Some(Extent { start, len: need })
    }

    /// Return an extent, merging it with free neighbours. Freeing space that is already
    /// (even partly) free is a double free and is refused, leaving the map unchanged.
    pub fn free(&mut self, e: Extent) -> Result<()> {
        check_aligned(e)?;
        let before = self
            .by_start
            .range(..e.end())
            .next_back()
            .map(|(&s, &l)| Extent { start: s, len: l });
        if let Some(b) = before.filter(|b| b.end() > e.start) {
            return Err(corrupt(format!(
                "double free: {}+{} overlaps free extent {}+{}",
                e.start, e.len, b.start, b.len
            )));
        }
        if let Some(r) = self
            .retired
            .iter()
            .find(|r| r.start < e.end() && e.start < r.end())
        {
            return Err(corrupt(format!(
                "double free: {}+{} overlaps retired extent {}+{}",
                e.start, e.len, r.start, r.len
            )));
        }
        let mut merged = e;
        if let Some(b) = before.filter(|b| b.end() == e.start) {
            self.remove(b);
            merged = Extent {
                start: b.start,
                len: b.len + merged.len,
            };
        }
        if let Some(&len) = self.by_start.get(&e.end()) {
            self.remove(Extent {
                start: e.end(),
                len,
            });
            merged.len += len;
        }
        self.insert(merged);
        Ok(())
    }

    /// Free an extent that readers may still be reading, or whose old bytes are still to be
    /// discarded: the persisted table gets it as a free row at once (so a crash frees it), but
    /// `allocate` cannot hand it out until `release_retired` merges it into the free set. The
    /// owner releases only once nothing can read the old bytes any more (`fs::core`).
    pub fn retire(&mut self, e: Extent) -> Result<()> {
        check_aligned(e)?;
        let overlaps_free = self
            .by_start
            .range(..e.end())
            .next_back()
            .is_some_and(|(&s, &l)| s + l > e.start);
        let overlaps_retired = self
            .retired
            .iter()
            .any(|r| r.start < e.end() && e.start < r.end());
        if overlaps_free || overlaps_retired {
            return Err(corrupt(format!(
                "double free: {}+{} overlaps free or retired space",
                e.start, e.len
            )));
        }
        self.retired.push(e);
        self.changes.insert(e.start, Some(e.len));
        Ok(())
    }

    /// Extents retired and not yet released.
    pub fn retired(&self) -> &[Extent] {
        &self.retired
    }

    /// Make every retired extent allocatable, merged with its free neighbours. The table
    /// already holds each as a row of its own; a row merged into a lower neighbour is queued
    /// for removal so table and map keep agreeing.
    pub fn release_retired(&mut self) {
        for e in std::mem::take(&mut self.retired) {
            let merged_into_lower = self
                .by_start
                .range(..e.start)
                .next_back()
                .is_some_and(|(&s, &l)| s + l == e.start);
            self.free(e).expect("checked when retired");
            if merged_into_lower {
                self.changes.insert(e.start, None);
            }
        }
    }

    /// Remove a specific range from the free set (rebuilding from the device, fsck). Fails,
    /// leaving the map unchanged, unless the range is entirely free.
    pub fn reserve(&mut self, e: Extent) -> Result<()> {
        check_aligned(e)?;
        let Some(holder) = self.containing(e) else {
            return Err(corrupt(format!(
                "reserve {}+{}: range is not entirely free",
                e.start, e.len
            )));
        };
        self.remove(holder);
        if holder.start < e.start {
            self.insert(Extent {
                start: holder.start,
                len: e.start - holder.start,
            });
        }
        if holder.end() > e.end() {
            self.insert(Extent {
                start: e.end(),
                len: holder.end() - e.end(),
            });
        }
        Ok(())
    }

    /// The free extent that wholly contains `e`, if any.
    fn containing(&self, e: Extent) -> Option<Extent> {
        let (&start, &len) = self.by_start.range(..=e.start).next_back()?;
        let holder = Extent { start, len };
        (holder.end() >= e.end()).then_some(holder)
    }

    /// True if every byte of `e` is free.
    pub fn is_free(&self, e: Extent) -> bool {
        e.len == 0 || self.containing(e).is_some()
    }

    /// Free bytes in all extents: O(1).
    pub fn free_bytes(&self) -> u64 {
        self.total
    }

    /// The highest-addressed free extent.
    pub fn last(&self) -> Option<Extent> {
        self.by_start
            .last_key_value()
            .map(|(&start, &len)| Extent { start, len })
    }

    /// Free extents in address order.
    pub fn extents(&self) -> impl Iterator<Item = Extent> + '_ {
        self.by_start
            .iter()
            .map(|(&start, &len)| Extent { start, len })
    }

    /// Number of free extents.
    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }

    /// The largest single allocation that can succeed now.
    pub fn largest(&self) -> u64 {
        self.by_size.last().map_or(0, |&(len, _)| len)
    }

    /// Drain the changes made since the last call, coalesced: one per start, the last one
    /// made. Removes come first, then puts, each in address order.
    pub fn take_changes(&mut self) -> Vec<FreeChange> {
        let changes = std::mem::take(&mut self.changes);
        let removes = changes
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(&start, _)| FreeChange::Remove { start });
        let puts = changes
            .iter()
            .filter_map(|(&start, v)| v.map(|len| FreeChange::Put { start, len }));
        removes.chain(puts).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = SECTOR;

    fn ext(start: u64, len: u64) -> Extent {
        Extent {
            start: start * S,
            len: len * S,
        }
    }

    fn map(extents: &[(u64, u64)]) -> FreeMap {
        let mut m = FreeMap::from_extents(extents.iter().map(|&(s, l)| ext(s, l))).unwrap();
        m.take_changes();
        m
    }

    fn listed(m: &FreeMap) -> Vec<Extent> {
        m.extents().collect()
    }

    #[test]
    fn freemap_allocation_rounds_up_to_a_sector_and_splits_the_extent() {
        let mut m = map(&[(1, 10)]);
        assert_eq!(m.allocate(1), Some(ext(1, 1)));
        assert_eq!(m.allocate(S + 1), Some(ext(2, 2)));
        assert_eq!(listed(&m), [ext(4, 7)]);
        assert_eq!(m.allocate(0), None);
        assert_eq!(m.allocate(8 * S), None);
        assert_eq!(m.allocate(7 * S), Some(ext(4, 7)));
        assert!(m.is_empty());
    }

    #[test]
    fn freemap_picks_the_best_fit_then_the_lowest_address() {
        let mut m = map(&[(0, 8), (10, 3), (20, 4), (30, 3), (40, 100)]);
        assert_eq!(m.allocate(3 * S), Some(ext(10, 3)));
        assert_eq!(m.allocate(3 * S), Some(ext(30, 3)));
        assert_eq!(m.allocate(2 * S), Some(ext(20, 2)));
        assert_eq!(m.allocate(50 * S), Some(ext(40, 50)));
        assert_eq!(m.largest(), 50 * S);
    }

    #[test]
    fn freemap_merges_neighbours_on_free() {
        let mut m = map(&[(0, 2), (4, 2)]);
        m.free(ext(2, 2)).unwrap();
        assert_eq!(listed(&m), [ext(0, 6)]);
        m.free(ext(8, 1)).unwrap();
        m.free(ext(6, 1)).unwrap();
        assert_eq!(listed(&m), [ext(0, 7), ext(8, 1)]);
        m.free(ext(7, 1)).unwrap();
        assert_eq!(listed(&m), [ext(0, 9)]);
        assert_eq!((m.len(), m.free_bytes(), m.largest()), (1, 9 * S, 9 * S));
    }

    #[test]
    fn freemap_refuses_a_double_free_and_stays_unchanged() {
        let mut m = map(&[(4, 4)]);
        for bad in [ext(4, 1), ext(7, 2), ext(2, 3), ext(0, 20)] {
            assert!(matches!(
                m.free(bad),
                Err(StoreError::Corrupt {
                    what: "free map",
                    ..
                })
            ));
        }
        assert!(m.free(Extent { start: 1, len: S }).is_err(), "misaligned");
        assert!(m.free(ext(9, 0)).is_err(), "empty");
        assert_eq!(listed(&m), [ext(4, 4)]);
        assert!(m.take_changes().is_empty());
    }

    #[test]
    fn freemap_reserve_takes_out_a_free_range_or_refuses() {
        let mut m = map(&[(0, 10), (20, 5)]);
        m.reserve(ext(3, 2)).unwrap();
        assert_eq!(listed(&m), [ext(0, 3), ext(5, 5), ext(20, 5)]);
        m.reserve(ext(20, 5)).unwrap();
        assert!(m.reserve(ext(4, 2)).is_err());
        assert!(m.reserve(ext(8, 4)).is_err());
        assert_eq!(listed(&m), [ext(0, 3), ext(5, 5)]);
        assert_eq!(m.free_bytes(), 8 * S);
        assert!(m.is_free(ext(6, 4)) && !m.is_free(ext(2, 2)));
    }

    #[test]
    fn freemap_take_changes_coalesces_to_the_last_change_per_start() {
        let mut m = map(&[(0, 10)]);
        let a = m.allocate(S).unwrap(); // Remove 0, Put 1+9
        m.allocate(S).unwrap(); // Remove 1, Put 2+8
        m.free(a).unwrap(); // Put 0+1
        assert_eq!(
            m.take_changes(),
            [
                FreeChange::Remove { start: S },
                FreeChange::Put { start: 0, len: S },
                FreeChange::Put {
                    start: 2 * S,
                    len: 8 * S
                }
            ]
        );
        assert!(m.take_changes().is_empty());
    }

    #[test]
    fn freemap_from_extents_rejects_overlaps_and_misalignment_and_merges_neighbours() {
        let overlap = FreeMap::from_extents([ext(0, 4), ext(3, 4)]);
        assert!(matches!(
            overlap,
            Err(StoreError::Corrupt {
                what: "free map",
                ..
            })
        ));
        assert!(FreeMap::from_extents([Extent { start: 100, len: S }]).is_err());
        assert!(FreeMap::from_extents([ext(1, 0)]).is_err());
        let mut m = FreeMap::from_extents([ext(4, 2), ext(0, 4), ext(8, 1)]).unwrap();
        assert_eq!(listed(&m), [ext(0, 6), ext(8, 1)]);
        assert_eq!(
            m.take_changes(),
            [
                FreeChange::Remove { start: 4 * S },
                FreeChange::Put {
                    start: 0,
                    len: 6 * S
                }
            ]
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc(u64),
        /// Free the allocation at this index (mod the number outstanding).
        Free(usize),
        /// Retire the allocation at this index: free in the table, not yet allocatable.
        Retire(usize),
        /// Make every retired extent allocatable.
        Release,
        /// Load the map again from the table (as after a rolled-back transaction).
        Reload,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..20 * S).prop_map(Op::Alloc),
            any::<usize>().prop_map(Op::Free),
            any::<usize>().prop_map(Op::Retire),
            Just(Op::Release),
            Just(Op::Reload),
        ]
    }

    /// Extents sorted with adjacent ones merged.
    fn merged(mut v: Vec<Extent>) -> Vec<Extent> {
        v.sort();
        let mut out: Vec<Extent> = Vec::new();
        for e in v {
            match out.last_mut() {
                Some(l) if l.end() == e.start => l.len += e.len,
                _ => out.push(e),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn freemap_random_allocate_and_free_conserve_space_without_overlaps(
            ops in proptest::collection::vec(op(), 1..200)
        ) {
            let total = ext(1, 256);
            let mut m = FreeMap::from_extents([total]).unwrap();
            // The persisted table as the meta layer would keep it by applying changes.
            let mut table = BTreeMap::from([(total.start, total.len)]);
            let mut held: Vec<Extent> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc(len) => {
                        if let Some(e) = m.allocate(len) {
                            prop_assert!(e.len >= len && e.len - len < S && e.start % S == 0);
                            held.push(e);
                        } else {
                            prop_assert!(m.largest() < len);
                        }
                    }
                    Op::Free(i) if !held.is_empty() => {
                        let e = held.swap_remove(i % held.len());
                        m.free(e).unwrap();
                    }
                    Op::Retire(i) if !held.is_empty() => {
                        let e = held.swap_remove(i % held.len());
                        m.retire(e).unwrap();
                        prop_assert!(m.retire(e).is_err() && m.free(e).is_err(), "double free");
                    }
                    Op::Release => m.release_retired(),
                    // A rollback undoes the retiring with the rest of its transaction: only
                    // a map with nothing retired is reloaded.
                    Op::Reload if m.retired().is_empty() => {
                        let rows = table.iter().map(|(&start, &len)| Extent { start, len });
                        m = FreeMap::from_extents(rows).unwrap();
                    }
                    Op::Free(_) | Op::Retire(_) | Op::Reload => {}
                }
                let allocated: u64 = held.iter().map(|e| e.len).sum();
                let retired: u64 = m.retired().iter().map(|e| e.len).sum();
                prop_assert_eq!(m.free_bytes() + allocated + retired, total.len);
                // The running total statfs reads is the extents added up.
                prop_assert_eq!(m.free_bytes(), m.extents().map(|e| e.len).sum::<u64>());
                prop_assert_eq!(m.last(), m.extents().last());
                let mut all: Vec<Extent> = m
                    .extents()
                    .chain(held.iter().copied())
                    .chain(m.retired().iter().copied())
                    .collect();
                all.sort();
                prop_assert_eq!(all.first().unwrap().start, total.start);
                prop_assert_eq!(all.last().unwrap().end(), total.end());
                for w in all.windows(2) {
                    prop_assert_eq!(w[0].end(), w[1].start, "gap or overlap");
                }
                let free: Vec<Extent> = m.extents().collect();
                for w in free.windows(2) {
                    prop_assert!(w[0].end() < w[1].start, "adjacent free extents not merged");
                }
                prop_assert_eq!(m.by_size.len(), m.by_start.len());
                for change in m.take_changes() {
                    match change {
                        FreeChange::Remove { start } => { table.remove(&start); }
                        FreeChange::Put { start, len } => { table.insert(start, len); }
                    }
                }
                let from_table: Vec<Extent> = table.iter().map(|(&start, &len)| Extent { start, len }).collect();
                for w in from_table.windows(2) {
                    prop_assert!(w[0].end() <= w[1].start, "table rows overlap");
                }
                // The table holds the free and the retired extents, perhaps not yet merged.
                let mut mem = free.clone();
                mem.extend(m.retired().iter().copied());
                prop_assert_eq!(merged(from_table.clone()), merged(mem));
                if m.retired().is_empty() {
                    prop_assert_eq!(merged(from_table), free);
                }
            }
        }
    }
}
