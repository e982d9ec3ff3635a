//! `--repair-from DIR`: chunk every file under DIR with the store's parameters and keep the
//! chunks whose hash names a damaged chunk. Their bytes are exactly the lost ones, so writing
//! them again heals every file and revision that uses them.

use crate::chunker::{self, ChunkHash, ChunkParams};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Walk `dir` (not following symlinks) and return the bytes of every wanted chunk found.
pub fn find(
    dir: &Path,
    params: ChunkParams,
    wanted: &HashSet<ChunkHash>,
) -> std::io::Result<HashMap<ChunkHash, Vec<u8>>> {
    let mut found = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let data = std::fs::read(entry.path())?;
                let mut off = 0;
                for len in chunker::cut(&data, params) {
                    let piece = &data[off..off + len];
                    off += len;
                    let h = ChunkHash::of(piece);
                    if wanted.contains(&h) && !found.contains_key(&h) {
                        found.insert(h, piece.to_vec());
                    }
                }
            }
            if found.len() == wanted.len() {
                return Ok(found);
            }
        }
    }
    Ok(found)
}

/// Write the found chunks into one new superchunk and point their index rows at it: the
/// superchunk is synced before the transaction that references it commits.
pub fn store(
    conn: &rusqlite::Connection,
    dev: &dyn crate::store::device::Device,
    found: HashMap<ChunkHash, Vec<u8>>,
    zstd_level: i32,
) -> super::Result<Vec<String>> {
    use crate::meta::chunks::{self, Location, SuperchunkRow};
    use crate::store::freemap::FreeMap;
    use crate::store::superchunk::{self, SuperchunkBuilder, SuperchunkId};
    if found.is_empty() {
        return Ok(Vec::new());
    }
    crate::meta::in_transaction(conn, true, || -> super::Result<Vec<String>> {
        let id = SuperchunkId(chunks::next_superchunk_id(conn)?);
        crate::meta::set_u64(conn, "superchunk_hwm", id.0)?;
        let mut b = SuperchunkBuilder::new(id);
        let mut hashes: Vec<ChunkHash> = found.keys().copied().collect();
        hashes.sort();
        for h in &hashes {
            let (codec, stored) = superchunk::compress_chunk(&found[h], zstd_level);
            b.push(*h, codec, found[h].len() as u32, stored);
        }
        let sealed = b.seal();
        let mut fm = FreeMap::from_extents(chunks::free_extents(conn)?)?;
        let ext = fm
            .allocate(sealed.bytes.len() as u64)
            .ok_or(crate::store::StoreError::NoSpace)?;
        sealed.write_to(dev, ext.start)?;
        dev.sync()?;
        let row = SuperchunkRow::holding(id, ext, &sealed.entries);
        chunks::insert_superchunk(conn, &row, crate::fs::now_ns() / 1_000_000_000)?;
        let mut fixes = Vec::new();
        for e in &sealed.entries {
            let loc = Location::of_entry(id, e);
            if chunks::location(conn, &e.hash)?.is_some() {
                chunks::set_location(conn, &e.hash, &loc)?;
            } else {
                chunks::insert(conn, &e.hash, &loc)?;
            }
            fixes.push(format!("restored chunk {} from a good copy", e.hash));
        }
        chunks::apply_free_changes(conn, &fm.take_changes())?;
        Ok(fixes)
    })
}
