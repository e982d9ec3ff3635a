//! `--repair-from DIR`: chunk every file under DIR with the store's parameters and keep the
//! chunks whose hash names a damaged chunk. Their bytes are exactly the lost ones, so writing
//! them again heals every file and revision that uses them.

use super::relocate::{StoredChunk, write_chunks};
use crate::chunker::{self, ChunkHash, ChunkParams};
use crate::store::superchunk;
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

/// Write the found chunks into fresh superchunks and point their index rows at them; the old
/// copies stop counting in their superchunks' live bytes. The superchunks are synced before
/// the transaction that references them commits. Returns a line per chunk restored.
pub fn store(
    conn: &rusqlite::Connection,
    dev: &dyn crate::store::device::Device,
    target: u64,
    found: HashMap<ChunkHash, Vec<u8>>,
    zstd_level: i32,
) -> super::Result<Vec<String>> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut hashes: Vec<ChunkHash> = found.keys().copied().collect();
    hashes.sort();
    let stored: Vec<StoredChunk> = hashes
        .iter()
        .map(|h| {
            let (codec, bytes) = superchunk::compress_chunk(&found[h], zstd_level);
            StoredChunk {
                hash: *h,
                codec,
                raw_len: found[h].len() as u32,
                bytes,
            }
        })
        .collect();
    crate::meta::in_transaction(conn, true, || {
        let written = write_chunks(conn, dev, target, stored)?;
        Ok(written
            .iter()
            .map(|e| format!("restored chunk {} from a good copy", e.hash))
            .collect())
    })
}
