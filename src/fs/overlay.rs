//! The dirty state of an open file: bytes written but not yet committed, and ranges of the
//! committed content that now read as zeros (after truncate or punch hole).

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Overlay {
    /// Non-overlapping, non-adjacent written ranges: start -> bytes.
    data: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn write(&mut self, off: u64, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        let end = off + buf.len() as u64;
        // The common case, sequential writes: extend the range that ends where this begins.
        if let Some((&s, v)) = self.data.range_mut(..=off).next_back()
            && s + v.len() as u64 == off
            && self.data.range(off + 1..=end).next().is_none()
        {
            let v = self.data.get_mut(&s).unwrap();
            v.extend_from_slice(buf);
            self.bytes += buf.len();
            return;
        }
        let touching: Vec<u64> = self
            .data
            .range(..=end)
            .rev()
            .take_while(|(s, v)| *s + v.len() as u64 >= off)
            .map(|(s, _)| *s)
            .collect();
        let mut start = off;
        let mut stop = end;
        for s in &touching {
            start = start.min(*s);
            stop = stop.max(s + self.data[s].len() as u64);
        }
        let mut merged = vec![0u8; (stop - start) as usize];
        for s in touching {
            let v = self.data.remove(&s).unwrap();
            self.bytes -= v.len();
            let at = (s - start) as usize;
            merged[at..at + v.len()].copy_from_slice(&v);
        }
        let at = (off - start) as usize;
        merged[at..at + buf.len()].copy_from_slice(buf);
        self.bytes += merged.len();
        self.data.insert(start, merged);
    }

    /// Forget written bytes in [from, to).
    pub fn clear_range(&mut self, from: u64, to: u64) {
        let hit: Vec<u64> = self
            .data
            .range(..to)
            .rev()
            .take_while(|(s, v)| *s + v.len() as u64 > from)
            .map(|(s, _)| *s)
            .collect();
        for s in hit {
            let v = self.data.remove(&s).unwrap();
            self.bytes -= v.len();
            let e = s + v.len() as u64;
            if s < from {
                let keep = v[..(from - s) as usize].to_vec();
                self.bytes += keep.len();
                self.data.insert(s, keep);
            }
            if e > to {
                let keep = v[(to - s) as usize..].to_vec();
                self.bytes += keep.len();
                self.data.insert(to, keep);
            }
        }
    }

    /// Copy written bytes that fall in [off, off + buf.len()) into `buf`.
    pub fn read_into(&self, off: u64, buf: &mut [u8]) {
        let end = off + buf.len() as u64;
        for (&s, v) in self.data.range(..end).rev() {
            let e = s + v.len() as u64;
            if e <= off {
                break;
            }
            let from = s.max(off);
            let to = e.min(end);
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&v[(from - s) as usize..(to - s) as usize]);
        }
    }

    /// Does one written range hold all of [from, to)?
    pub fn covers(&self, from: u64, to: u64) -> bool {
        self.data
            .range(..=from)
            .next_back()
            .is_some_and(|(s, v)| *s <= from && s + v.len() as u64 >= to)
    }

    /// The first written range that ends after `off` (it may hold `off` or start later).
    pub fn range_from(&self, off: u64) -> Option<(u64, u64)> {
        if let Some((s, v)) = self.data.range(..=off).next_back()
            && s + v.len() as u64 > off
        {
            return Some((*s, s + v.len() as u64));
        }
        let (s, v) = self.data.range(off + 1..).next()?;
        Some((*s, s + v.len() as u64))
    }

    /// The written ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.data.iter().map(|(s, v)| (*s, s + v.len() as u64))
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.bytes = 0;
    }
}

/// Sorted, merged ranges [start, end) of the committed content that read as zeros.
#[derive(Debug, Default, Clone)]
pub struct Zeroed(Vec<(u64, u64)>);

impl Zeroed {
    pub fn add(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        self.0.push((from, to));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(s, e) in &self.0 {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn covers(&self, from: u64, to: u64) -> bool {
        self.0.iter().any(|&(s, e)| s <= from && to <= e)
    }

    /// Zero the parts of `buf` (holding bytes from `off`) that fall in a zeroed range.
    pub fn apply(&self, off: u64, buf: &mut [u8]) {
        let end = off + buf.len() as u64;
        for &(s, e) in &self.0 {
            let from = s.max(off);
            let to = e.min(end);
            if from < to {
                buf[(from - off) as usize..(to - off) as usize].fill(0);
            }
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_writes_merge_and_later_bytes_win() {
        let mut o = Overlay::default();
        o.write(10, b"aaaa");
        o.write(20, b"bbbb");
        o.write(12, b"cccccccccc");
        assert_eq!(o.ranges().collect::<Vec<_>>(), vec![(10, 24)]);
        let mut buf = vec![0; 14];
        o.read_into(10, &mut buf);
        assert_eq!(&buf, b"aaccccccccccbb");
        assert_eq!(o.bytes(), 14);
    }

    #[test]
    fn sequential_writes_extend_one_range() {
        let mut o = Overlay::default();
        for i in 0..100u64 {
            o.write(i * 10, &[i as u8; 10]);
        }
        assert_eq!(o.ranges().count(), 1);
        assert_eq!(o.bytes(), 1000);
    }

    #[test]
    fn clear_range_splits_ranges() {
        let mut o = Overlay::default();
        o.write(0, &[1; 100]);
        o.clear_range(10, 20);
        assert_eq!(o.ranges().collect::<Vec<_>>(), vec![(0, 10), (20, 100)]);
        assert_eq!(o.bytes(), 90);
    }

    #[test]
    fn zeroed_ranges_merge() {
        let mut z = Zeroed::default();
        z.add(10, 20);
        z.add(15, 30);
        z.add(40, 50);
        assert_eq!(z.ranges(), &[(10, 30), (40, 50)]);
        assert!(z.covers(12, 30));
        assert!(!z.covers(12, 31));
    }
}
