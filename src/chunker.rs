//! Content-defined chunking (FastCDC) and chunk naming (BLAKE3). Pure functions.

use std::fmt;

/// The name of a chunk: the BLAKE3 hash of its plain bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash(pub [u8; 32]);

impl ChunkHash {
    pub fn of(data: &[u8]) -> ChunkHash {
        ChunkHash(*blake3::hash(data).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_slice(bytes: &[u8]) -> Option<ChunkHash> {
        Some(ChunkHash(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// FastCDC size bounds, fixed for a store at mkfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkParams {
    /// min = avg/4, max = avg*4, as FastCDC's authors recommend.
    pub fn from_avg(avg: u32) -> ChunkParams {
        ChunkParams {
            min: (avg / 4).max(64),
            avg,
            max: avg.saturating_mul(4).clamp(1024, 16 << 20),
        }
    }
}

impl Default for ChunkParams {
    fn default() -> Self {
        ChunkParams::from_avg(64 * 1024)
    }
}

/// Cut `data` into content-defined chunks; returns the length of each chunk in order.
/// The last chunk ends at the end of `data` whatever its content.
pub fn cut(data: &[u8], params: ChunkParams) -> Vec<usize> {
    if data.is_empty() {
        return Vec::new();
    }
    fastcdc::v2020::FastCDC::new(data, params.min, params.avg, params.max)
        .map(|c| c.length)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_covers_all_bytes_within_bounds() {
        let data: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let p = ChunkParams::from_avg(4096);
        let lens = cut(&data, p);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        for l in &lens[..lens.len() - 1] {
            assert!(*l >= p.min as usize && *l <= p.max as usize);
        }
    }

    #[test]
    fn cut_resyncs_after_an_insertion() {
        let data: Vec<u8> = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let mut edited = data.clone();
        edited.splice(1000..1000, [1u8, 2, 3]);
        let p = ChunkParams::from_avg(4096);
        let a: Vec<ChunkHash> = chunks(&data, p);
        let b: Vec<ChunkHash> = chunks(&edited, p);
        let shared = a.iter().filter(|h| b.contains(h)).count();
        assert!(shared + 3 >= a.len(), "{shared} of {} shared", a.len());
    }

    fn chunks(data: &[u8], p: ChunkParams) -> Vec<ChunkHash> {
        let mut off = 0;
        cut(data, p)
            .into_iter()
            .map(|l| {
                let h = ChunkHash::of(&data[off..off + l]);
                off += l;
                h
            })
            .collect()
    }
}
