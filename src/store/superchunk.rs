//! Superchunks: sealed, immutable, self-describing units on the device. A header (magic, id,
//! chunk table, payload checksum, header checksum) is followed by the chunks' stored bytes,
//! each chunk compressed on its own. Because every superchunk starts on a sector with a magic
//! and carries its own table, fsck can rebuild the chunk index by scanning the device alone.
//! Byte layout in docs/FORMAT.md.

use std::cell::RefCell;
use std::collections::HashMap;

use super::device::Device;
use super::{Result, SECTOR, StoreError};
use crate::chunker::ChunkHash;

pub const SUPERCHUNK_MAGIC: [u8; 8] = *b"CHKSUPR1";
pub const SUPERCHUNK_VERSION: u16 = 1;
/// Fixed part of the header, before the chunk table.
pub const HEADER_FIXED_LEN: usize = 64;
pub const ENTRY_LEN: usize = 48;
/// Bounds what a corrupt chunk_count can make a reader allocate (48 MiB of table). Writers
/// seal on `encoded_len`, which keeps real superchunks far below it.
pub const MAX_CHUNKS: u32 = 1 << 20;
/// Payload starts on this alignment, so a reader can map the stored bytes without shifting.
const HEADER_ALIGN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SuperchunkId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
}

impl Codec {
    pub fn from_u8(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// One chunk inside a superchunk. `offset` is from the start of the superchunk (header
/// included), so the chunk's bytes live at extent.start + offset .. + stored_len.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub hash: ChunkHash,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Header length for a table of `count` entries; a pure function of the count so a reader can
/// cross-check the stored value.
pub fn header_len_for(count: usize) -> usize {
    (HEADER_FIXED_LEN + count * ENTRY_LEN + 32).next_multiple_of(HEADER_ALIGN)
}

thread_local! {
    // zstd contexts are costly to set up (hundreds of KiB) relative to one 64 KiB chunk; rayon
    // workers keep one each instead of paying for it per chunk.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        slot.as_mut().expect("just set").1.compress(data)
    })
}

/// Compress one chunk. Keeps zstd only when it saves at least 1/32 of the size: below that
/// the decompression cost on every read outweighs the space.
pub fn compress_chunk(data: &[u8], level: i32) -> (Codec, Vec<u8>) {
    if data.is_empty() {
        return (Codec::Raw, Vec::new());
    }
    match zstd_compress(data, level) {
        Ok(c) if c.len() < data.len() && data.len() - c.len() >= data.len() / 32 => {
            (Codec::Zstd, c)
        }
        _ => (Codec::Raw, data.to_vec()),
    }
}

/// Undo `compress_chunk`. Any failure, or a length other than raw_len, is a corrupt chunk.
pub fn decompress_chunk(codec: Codec, stored: &[u8], raw_len: u32) -> Result<Vec<u8>> {
    let out = match codec {
        Codec::Raw => stored.to_vec(),
        Codec::Zstd => DECOMPRESSOR
            .with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new()?);
                }
                slot.as_mut()
                    .expect("just set")
                    .decompress(stored, raw_len as usize)
            })
            .map_err(|e| corrupt("chunk", format!("zstd: {e}")))?,
    };
    if out.len() != raw_len as usize {
        return Err(corrupt(
            "chunk",
            format!("{} bytes, expected {raw_len}", out.len()),
        ));
    }
    Ok(out)
}

struct Pending {
    hash: ChunkHash,
    codec: Codec,
    raw_len: u32,
    /// Position within `SuperchunkBuilder::payload`.
    start: usize,
    len: usize,
}

/// Collects compressed chunks until the caller decides (by `encoded_len`) to seal.
pub struct SuperchunkBuilder {
    id: SuperchunkId,
    chunks: Vec<Pending>,
    by_hash: HashMap<ChunkHash, usize>,
    payload: Vec<u8>,
}

impl SuperchunkBuilder {
    pub fn new(id: SuperchunkId) -> Self {
        SuperchunkBuilder {
            id,
            chunks: Vec::new(),
            by_hash: HashMap::new(),
            payload: Vec::new(),
        }
    }

    pub fn id(&self) -> SuperchunkId {
        self.id
    }

    /// Append an already-compressed chunk. A hash already in this builder is ignored: the
    /// chunk index holds one location per hash, so a second copy would only waste space.
    pub fn push(&mut self, hash: ChunkHash, codec: Codec, raw_len: u32, stored: Vec<u8>) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        assert!(
            self.chunks.len() < MAX_CHUNKS as usize,
            "superchunk chunk table is full"
        );
        let start = self.payload.len();
        self.payload.extend_from_slice(&stored);
        assert!(
            self.encoded_len() <= u32::MAX as usize,
            "superchunk exceeds 4 GiB"
        );
        self.by_hash.insert(hash, self.chunks.len());
        self.chunks.push(Pending {
            hash,
            codec,
            raw_len,
            start,
            len: stored.len(),
        });
    }

    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// Chunks pushed so far.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Header plus payload, before sector padding: what to compare with the target, since a
    /// superchunk of tiny, well-compressed chunks is mostly table.
    pub fn encoded_len(&self) -> usize {
        header_len_for(self.chunks.len()) + self.payload.len()
    }

    /// A pushed chunk's stored bytes, so reads of chunks not yet sealed still succeed.
    pub fn get(&self, hash: &ChunkHash) -> Option<(Codec, u32, &[u8])> {
        let p = &self.chunks[*self.by_hash.get(hash)?];
        Some((p.codec, p.raw_len, &self.payload[p.start..p.start + p.len]))
    }

    /// Encode header + chunk table + payload, padded with zeros to a multiple of SECTOR.
    pub fn seal(self) -> Sealed {
        let header_len = header_len_for(self.chunks.len());
        let payload_len = self.payload.len();
        let total = round_up((header_len + payload_len) as u64, SECTOR) as usize;
        let entries: Vec<ChunkEntry> = self
            .chunks
            .iter()
            .map(|p| ChunkEntry {
                hash: p.hash,
                offset: (header_len + p.start) as u32,
                stored_len: p.len as u32,
                raw_len: p.raw_len,
                codec: p.codec,
            })
            .collect();

        let mut bytes = Vec::with_capacity(total);
        bytes.extend_from_slice(&SUPERCHUNK_MAGIC);
        bytes.extend_from_slice(&SUPERCHUNK_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes()); // flags
        bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&self.id.0.to_le_bytes());
        bytes.extend_from_slice(&(header_len as u32).to_le_bytes());
        bytes.extend_from_slice(&(payload_len as u32).to_le_bytes());
        bytes.extend_from_slice(blake3::hash(&self.payload).as_bytes());
        debug_assert_eq!(bytes.len(), HEADER_FIXED_LEN);
        for e in &entries {
            bytes.extend_from_slice(&e.hash.0);
            bytes.extend_from_slice(&e.offset.to_le_bytes());
            bytes.extend_from_slice(&e.stored_len.to_le_bytes());
            bytes.extend_from_slice(&e.raw_len.to_le_bytes());
            bytes.extend_from_slice(&[e.codec as u8, 0, 0, 0]);
        }
        let header_sum = blake3::hash(&bytes);
        bytes.extend_from_slice(header_sum.as_bytes());
        bytes.resize(header_len, 0);
        bytes.extend_from_slice(&self.payload);
        bytes.resize(total, 0);
        Sealed {
            id: self.id,
            bytes,
            entries,
            header_len: header_len as u32,
            payload_len: payload_len as u32,
        }
    }
}

/// A sealed superchunk, ready to be written at a sector-aligned offset.
pub struct Sealed {
    pub id: SuperchunkId,
    /// len % SECTOR == 0
    pub bytes: Vec<u8>,
    pub entries: Vec<ChunkEntry>,
    pub header_len: u32,
    pub payload_len: u32,
}

impl Sealed {
    /// Write at `offset`, growing the device first if needed. Not synced: the caller syncs
    /// once for a batch of superchunks, before any metadata points at them.
    pub fn write_to(&self, dev: &dyn Device, offset: u64) -> Result<()> {
        assert_eq!(offset % SECTOR, 0, "superchunks start on a sector");
        dev.grow(offset + self.bytes.len() as u64)?;
        dev.write_at(&self.bytes, offset)?;
        Ok(())
    }
}

/// A decoded header (no payload).
#[derive(Clone, Debug)]
pub struct Header {
    pub id: SuperchunkId,
    pub header_len: u32,
    pub payload_len: u32,
    pub payload_checksum: [u8; 32],
    pub entries: Vec<ChunkEntry>,
}

impl Header {
    /// header_len + payload_len rounded up to SECTOR: the extent the superchunk occupies.
    pub fn total_len(&self) -> u64 {
        round_up(
            u64::from(self.header_len) + u64::from(self.payload_len),
            SECTOR,
        )
    }

    pub fn entry(&self, hash: &ChunkHash) -> Option<&ChunkEntry> {
        self.entries.iter().find(|e| e.hash == *hash)
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// True if `bytes` starts with the superchunk magic: a candidate for `decode_header`.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(&SUPERCHUNK_MAGIC)
}

/// From the first HEADER_FIXED_LEN bytes, the full header length to read. Checks only what is
/// needed to bound that read; `decode_header` verifies the rest.
pub fn header_len_hint(first: &[u8]) -> Result<u32> {
    const WHAT: &str = "superchunk header";
    if first.len() < HEADER_FIXED_LEN {
        return Err(corrupt(WHAT, format!("only {} bytes", first.len())));
    }
    if !has_magic(first) {
        return Err(corrupt(WHAT, "no superchunk magic"));
    }
    let count = u32_at(first, 12);
    if count > MAX_CHUNKS {
        return Err(corrupt(
            WHAT,
            format!("{count} chunks exceeds the limit of {MAX_CHUNKS}"),
        ));
    }
    let header_len = u32_at(first, 24);
    let expected = header_len_for(count as usize) as u32;
    if header_len != expected {
        return Err(corrupt(
            WHAT,
            format!("header_len {header_len}, {count} chunks need {expected}"),
        ));
    }
    Ok(header_len)
}

/// Parse and verify a header from the start of `bytes`, which must hold at least header_len
/// bytes (`header_len_hint` says how many).
pub fn decode_header(bytes: &[u8]) -> Result<Header> {
    const WHAT: &str = "superchunk header";
    let header_len = header_len_hint(bytes)? as usize;
    if bytes.len() < header_len {
        return Err(corrupt(
            WHAT,
            format!("{} bytes of a {header_len}-byte header", bytes.len()),
        ));
    }
    let count = u32_at(bytes, 12) as usize;
    let table_end = HEADER_FIXED_LEN + count * ENTRY_LEN;
    if blake3::hash(&bytes[..table_end]).as_bytes() != &bytes[table_end..table_end + 32] {
        return Err(corrupt(WHAT, "header checksum mismatch"));
    }
    // Checked after the checksum: superchunks of a newer layout only exist on devices whose
    // superblock already refused to open, so here a strange version can only be damage.
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != SUPERCHUNK_VERSION {
        return Err(corrupt(
            WHAT,
            format!("unknown superchunk version {version}"),
        ));
    }
    let payload_len = u32_at(bytes, 28);
    let end = header_len as u64 + u64::from(payload_len);
    if end > u64::from(u32::MAX) {
        return Err(corrupt(WHAT, "superchunk longer than 4 GiB"));
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let e = &bytes[HEADER_FIXED_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
        let entry = ChunkEntry {
            hash: ChunkHash::from_slice(&e[..32]).expect("32 bytes"),
            offset: u32_at(e, 32),
            stored_len: u32_at(e, 36),
            raw_len: u32_at(e, 40),
            codec: Codec::from_u8(e[44])
                .ok_or_else(|| corrupt(WHAT, format!("entry {i}: unknown codec {}", e[44])))?,
        };
        let (start, stop) = (
            u64::from(entry.offset),
            u64::from(entry.offset) + u64::from(entry.stored_len),
        );
        if start < header_len as u64 || stop > end {
            return Err(corrupt(
                WHAT,
                format!("entry {i}: bytes {start}..{stop} outside the payload"),
            ));
        }
        if entry.codec == Codec::Raw && entry.raw_len != entry.stored_len {
            return Err(corrupt(
                WHAT,
                format!("entry {i}: raw chunk with two lengths"),
            ));
        }
        entries.push(entry);
    }
    Ok(Header {
        id: SuperchunkId(u64::from_le_bytes(
            bytes[16..24].try_into().expect("8 bytes"),
        )),
        header_len: header_len as u32,
        payload_len,
        payload_checksum: bytes[32..64].try_into().expect("32 bytes"),
        entries,
    })
}

/// Read and verify the header of the superchunk at `offset`: one sector first (headers of up
/// to ~80 chunks fit in it), then the rest once header_len is known.
pub fn read_header(dev: &dyn Device, offset: u64) -> Result<Header> {
    let dev_len = dev.len()?;
    let avail = dev_len.saturating_sub(offset);
    if avail < HEADER_FIXED_LEN as u64 {
        return Err(corrupt(
            "superchunk header",
            format!("offset {offset} is past the device end"),
        ));
    }
    let mut buf = vec![0u8; avail.min(SECTOR) as usize];
    dev.read_at(&mut buf, offset)?;
    let header_len = u64::from(header_len_hint(&buf)?);
    if header_len > avail {
        return Err(corrupt(
            "superchunk header",
            "header runs past the device end",
        ));
    }
    if header_len > buf.len() as u64 {
        let have = buf.len();
        buf.resize(header_len as usize, 0);
        dev.read_at(&mut buf[have..], offset + have as u64)?;
    }
    decode_header(&buf)
}

/// Verify the payload checksum given the full superchunk bytes.
pub fn verify_payload(header: &Header, superchunk_bytes: &[u8]) -> Result<()> {
    let (start, len) = (header.header_len as usize, header.payload_len as usize);
    let Some(payload) = superchunk_bytes.get(start..start + len) else {
        return Err(corrupt(
            "superchunk payload",
            format!("truncated to {} bytes", superchunk_bytes.len()),
        ));
    };
    if blake3::hash(payload).as_bytes() != &header.payload_checksum {
        return Err(corrupt(
            "superchunk payload",
            format!("checksum mismatch in {:?}", header.id),
        ));
    }
    Ok(())
}

/// Read one chunk of the superchunk at `extent_start`, decompress it and check its hash, so a
/// corrupt chunk is reported as such instead of returned as file data.
pub fn read_chunk(dev: &dyn Device, extent_start: u64, entry: &ChunkEntry) -> Result<Vec<u8>> {
    let mut stored = vec![0u8; entry.stored_len as usize];
    dev.read_at(&mut stored, extent_start + u64::from(entry.offset))?;
    let data = decompress_chunk(entry.codec, &stored, entry.raw_len)?;
    if ChunkHash::of(&data) != entry.hash {
        return Err(corrupt(
            "chunk",
            format!("{} fails its hash at {extent_start}", entry.hash),
        ));
    }
    Ok(data)
}

/// Walk the device from `from` sector by sector and report every superchunk header found, in
/// address order, as fsck needs to rebuild the index with no metadata. After a valid header
/// the walk jumps past that superchunk, so magic-looking bytes inside its payload are never
/// mistaken for a header; a damaged header is reported and the walk resumes one sector on.
pub fn scan(dev: &dyn Device, from: u64, mut visit: impl FnMut(u64, Result<Header>)) -> Result<()> {
    // Reading a window at a time keeps the walk at sequential-read speed instead of one
    // small read per sector.
    const WINDOW: u64 = 256 * SECTOR;
    let len = dev.len()?;
    let mut off = round_up(from, SECTOR);
    let (mut window, mut win_start) = (Vec::new(), 0u64);
    while off + SECTOR <= len {
        if off < win_start || off >= win_start + window.len() as u64 {
            window.resize(((len - off) / SECTOR * SECTOR).min(WINDOW) as usize, 0);
            dev.read_at(&mut window, off)?;
            win_start = off;
        }
        if !has_magic(&window[(off - win_start) as usize..]) {
            off += SECTOR;
            continue;
        }
        match read_header(dev, off) {
            Ok(h) => {
                let next = off + h.total_len();
                visit(off, Ok(h));
                off = next;
            }
            Err(StoreError::Io(e)) => return Err(StoreError::Io(e)),
            Err(e) => {
                visit(off, Err(e));
                off += SECTOR;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::device::MemDevice;

    /// The `what` of a Corrupt error; anything else fails the test.
    fn corrupt_what<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
        match r {
            Err(StoreError::Corrupt { what, .. }) => what,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    fn text(len: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog. "
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn sample_chunks() -> Vec<Vec<u8>> {
        vec![
            text(10_000),
            crate::testdata::random_bytes(1, 7_000),
            vec![0u8; 65_536],
            crate::testdata::random_bytes(2, 1),
            text(300),
            crate::testdata::random_bytes(3, 20_000),
        ]
    }

    fn build(id: u64, chunks: &[Vec<u8>]) -> Sealed {
        let mut b = SuperchunkBuilder::new(SuperchunkId(id));
        for c in chunks {
            let (codec, stored) = compress_chunk(c, 3);
            b.push(ChunkHash::of(c), codec, c.len() as u32, stored);
        }
        b.seal()
    }

    #[test]
    fn compress_chunk_keeps_incompressible_data_raw() {
        let n = crate::testdata::random_bytes(9, 50_000);
        assert_eq!(compress_chunk(&n, 3), (Codec::Raw, n.clone()));
        let t = text(50_000);
        let (codec, stored) = compress_chunk(&t, 3);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() < 1000);
        assert_eq!(decompress_chunk(codec, &stored, t.len() as u32).unwrap(), t);
        assert_eq!(compress_chunk(&[], 3), (Codec::Raw, vec![]));
    }

    #[test]
    fn decompress_chunk_with_the_wrong_length_or_garbage_is_a_corrupt_chunk() {
        let t = text(5000);
        let (codec, stored) = compress_chunk(&t, 3);
        for (c, s, n) in [
            (codec, &stored[..], 4999),
            (codec, &stored[..], 5001),
            (Codec::Zstd, &b"junk"[..], 4),
        ] {
            assert_eq!(corrupt_what(decompress_chunk(c, s, n)), "chunk");
        }
        assert!(decompress_chunk(Codec::Raw, b"abc", 4).is_err());
    }

    #[test]
    fn sealed_superchunk_round_trips_and_each_chunk_decompresses_at_its_offset() {
        let chunks = sample_chunks();
        let sealed = build(42, &chunks);
        assert_eq!(sealed.bytes.len() as u64 % SECTOR, 0);
        assert_eq!(sealed.entries.len(), chunks.len());
        let header = decode_header(&sealed.bytes).unwrap();
        assert_eq!(header.id, SuperchunkId(42));
        assert_eq!(header.entries, sealed.entries);
        assert_eq!(
            (header.header_len, header.payload_len),
            (sealed.header_len, sealed.payload_len)
        );
        assert_eq!(header.total_len(), sealed.bytes.len() as u64);
        verify_payload(&header, &sealed.bytes).unwrap();
        let codecs: Vec<Codec> = header.entries.iter().map(|e| e.codec).collect();
        assert_eq!(
            codecs,
            [
                Codec::Zstd,
                Codec::Raw,
                Codec::Zstd,
                Codec::Raw,
                Codec::Zstd,
                Codec::Raw
            ]
        );
        for (e, c) in header.entries.iter().zip(&chunks) {
            let stored = &sealed.bytes[e.offset as usize..][..e.stored_len as usize];
            assert_eq!(decompress_chunk(e.codec, stored, e.raw_len).unwrap(), *c);
            assert_eq!(e.hash, ChunkHash::of(c));
        }
    }

    #[test]
    fn header_layout_matches_docs_format_md() {
        let sealed = build(
            0x0102030405060708,
            &[text(1000), crate::testdata::random_bytes(1, 500)],
        );
        let b = &sealed.bytes;
        assert_eq!(header_len_for(2), 96 + 2 * 48);
        assert_eq!(&b[..8], b"CHKSUPR1");
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), 1);
        assert_eq!(u32_at(b, 12), 2);
        assert_eq!(&b[16..24], &0x0102030405060708u64.to_le_bytes());
        assert_eq!(u32_at(b, 24), sealed.header_len);
        let payload = &b[192..192 + sealed.payload_len as usize];
        assert_eq!(&b[32..64], blake3::hash(payload).as_bytes());
        let e1 = &b[64 + 48..64 + 96];
        assert_eq!(
            (u32_at(e1, 32), u32_at(e1, 36), e1[44]),
            (sealed.entries[1].offset, 500, 0)
        );
        assert_eq!(&b[160..192], blake3::hash(&b[..160]).as_bytes());
    }

    #[test]
    fn builder_serves_unsealed_chunks_and_ignores_duplicate_pushes() {
        let mut b = SuperchunkBuilder::new(SuperchunkId(1));
        assert!(b.is_empty());
        let t = text(4000);
        let (codec, stored) = compress_chunk(&t, 3);
        let h = ChunkHash::of(&t);
        b.push(h, codec, 4000, stored.clone());
        b.push(h, codec, 4000, stored.clone());
        assert_eq!((b.len(), b.payload_len()), (1, stored.len()));
        assert_eq!(b.encoded_len(), header_len_for(1) + stored.len());
        assert_eq!(b.get(&h), Some((codec, 4000, &stored[..])));
        assert_eq!(b.get(&ChunkHash::of(b"other")), None);
    }

    #[test]
    fn empty_superchunk_seals_to_one_sector() {
        let sealed = SuperchunkBuilder::new(SuperchunkId(7)).seal();
        assert_eq!(sealed.bytes.len() as u64, SECTOR);
        let h = decode_header(&sealed.bytes).unwrap();
        assert!(h.entries.is_empty());
        verify_payload(&h, &sealed.bytes).unwrap();
    }

    #[test]
    fn flipped_payload_byte_is_caught_by_verify_payload() {
        let sealed = build(3, &sample_chunks());
        let header = decode_header(&sealed.bytes).unwrap();
        let mut bad = sealed.bytes.clone();
        bad[sealed.header_len as usize + 5000] ^= 0x40;
        assert_eq!(
            corrupt_what(verify_payload(&header, &bad)),
            "superchunk payload"
        );
        assert!(verify_payload(&header, &sealed.bytes[..100]).is_err());
    }

    #[test]
    fn flipped_header_byte_is_caught_by_decode_header() {
        let sealed = build(3, &sample_chunks());
        let table_end = HEADER_FIXED_LEN + sealed.entries.len() * ENTRY_LEN;
        for off in (0..table_end + 32)
            .step_by(7)
            .chain([8, 10, 16, 33, table_end + 31])
        {
            let mut bad = sealed.bytes.clone();
            bad[off] ^= 0x01;
            assert_eq!(
                corrupt_what(decode_header(&bad)),
                "superchunk header",
                "flip at {off}"
            );
        }
        assert!(decode_header(&sealed.bytes[..HEADER_FIXED_LEN + 10]).is_err());
    }

    #[test]
    fn header_is_read_from_a_device_even_when_longer_than_a_sector() {
        let chunks: Vec<Vec<u8>> = (0..200)
            .map(|i| crate::testdata::random_bytes(i, 100))
            .collect();
        let sealed = build(9, &chunks);
        assert!(sealed.header_len as u64 > SECTOR);
        let dev = MemDevice::new();
        sealed.write_to(&dev, 2 * SECTOR).unwrap();
        let h = read_header(&dev, 2 * SECTOR).unwrap();
        assert_eq!(h.entries, sealed.entries);
        for (e, c) in h.entries.iter().zip(&chunks) {
            assert_eq!(read_chunk(&dev, 2 * SECTOR, e).unwrap(), *c);
        }
        assert!(read_header(&dev, 0).is_err());
        assert!(read_header(&dev, 1 << 30).is_err());
    }

    #[test]
    fn read_chunk_reports_a_chunk_whose_bytes_fail_its_hash() {
        let chunks = sample_chunks();
        let sealed = build(5, &chunks);
        let e = sealed.entries[1].clone(); // raw, so a flipped byte still "decompresses"
        let mut bytes = sealed.bytes.clone();
        bytes[e.offset as usize] ^= 0xff;
        let dev = MemDevice::from_bytes(bytes);
        assert_eq!(corrupt_what(read_chunk(&dev, 0, &e)), "chunk");
    }

    #[test]
    fn scan_finds_every_superchunk_and_skips_magic_inside_payloads() {
        // A raw chunk that starts with the magic and lands on a sector boundary mimics an
        // image of chunkfs stored inside chunkfs.
        let mut decoy = build(99, &[text(100)]).bytes;
        decoy.extend(crate::testdata::random_bytes(4, 3 * SECTOR as usize));
        let mut first = SuperchunkBuilder::new(SuperchunkId(1));
        let pad = crate::testdata::random_bytes(5, SECTOR as usize - header_len_for(2));
        first.push(ChunkHash::of(&pad), Codec::Raw, pad.len() as u32, pad);
        first.push(ChunkHash::of(&decoy), Codec::Raw, decoy.len() as u32, decoy);
        let first = first.seal();
        assert!(has_magic(&first.bytes[SECTOR as usize..]));
        let second = build(2, &sample_chunks());
        let dev = MemDevice::new();
        first.write_to(&dev, SECTOR).unwrap();
        let second_at = SECTOR + first.bytes.len() as u64 + 3 * SECTOR;
        second.write_to(&dev, second_at).unwrap();
        let mut broken = second.bytes.clone();
        broken[20] ^= 1;
        let broken_at = second_at + second.bytes.len() as u64;
        dev.grow(broken_at + broken.len() as u64).unwrap();
        dev.write_at(&broken, broken_at).unwrap();

        let mut found = Vec::new();
        scan(&dev, 0, |off, h| found.push((off, h.map(|h| h.id)))).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, SECTOR);
        assert_eq!(found[0].1.as_ref().unwrap(), &SuperchunkId(1));
        assert_eq!(
            (found[1].0, found[1].1.as_ref().unwrap()),
            (second_at, &SuperchunkId(2))
        );
        assert_eq!(found[2].0, broken_at);
        assert!(found[2].1.is_err());
    }
}
