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
