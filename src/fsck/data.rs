//! The data pass: every superchunk's header and payload checksum, every chunk's BLAKE3
//! against its name, and the chunk index against what the device holds.

use super::{CheckOptions, Progress, Report, Result};
use crate::chunker::ChunkHash;
use crate::meta::chunks::{Location, SuperchunkRow};
use crate::meta::{self, lists};
use crate::store::device::Device;
use crate::store::superchunk::{self, ChunkEntry, Header};
use rayon::prelude::*;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

/// A chunk found damaged: its hash, superchunk, problem and detail.
pub(super) struct Damage {
    pub hash: ChunkHash,
    pub superchunk: u64,
    pub problem: &'static str,
    pub detail: String,
}

/// What one superchunk's check found.
#[derive(Default)]
struct Verdict {
    damaged_superchunk: Option<String>,
    damage: Vec<Damage>,
    misplaced: Vec<String>,
    /// Header entries the index does not hold at all.
    unindexed: Vec<ChunkHash>,
    chunks: u64,
    bytes: u64,
}

fn index_by_superchunk(conn: &Connection) -> Result<HashMap<u64, Vec<(ChunkHash, Location)>>> {
    let mut out: HashMap<u64, Vec<(ChunkHash, Location)>> = HashMap::new();
    for (h, loc) in meta::chunks::all_locations(conn)? {
        out.entry(loc.superchunk.0).or_default().push((h, loc));
    }
    Ok(out)
}

/// Check the device against the index; returns the damaged chunks (files named later).
pub(super) fn check(
    conn: &Connection,
    dev: &dyn Device,
    opts: CheckOptions,
    progress: &dyn Progress,
    report: &mut Report,
) -> Result<Vec<Damage>> {
    let mut index = index_by_superchunk(conn)?;
    let supers = meta::chunks::superchunks(conn)?;
    let indexed: HashSet<ChunkHash> = index.values().flatten().map(|(h, _)| *h).collect();
    let dev_len = dev.len()?;
    let mut damage = Vec::new();

    // Index rows that point at no superchunk.
    let known: HashSet<u64> = supers.iter().map(|s| s.id.0).collect();
    for (sc, rows) in &index {
        if !known.contains(sc) {
            for (h, _) in rows {
                damage.push(Damage {
                    hash: *h,
                    superchunk: *sc,
                    problem: "missing",
                    detail: format!("superchunk {sc} does not exist"),
                });
            }
        }
    }
    // Chunks a list uses that the index does not hold.
    let mut needed: HashSet<ChunkHash> = HashSet::new();
    for (_, node) in lists::all(conn)? {
        let (leaf, kids) = lists::children(&node)?;
        if leaf {
            for k in kids {
                if k != lists::HOLE && !indexed.contains(&k) && needed.insert(k) {
                    damage.push(Damage {
                        hash: k,
                        superchunk: 0,
                        problem: "missing",
                        detail: "not in the chunk index".into(),
                    });
                }
            }
        }
    }

    let total: u64 = supers.iter().map(|s| s.extent.len).sum();
    progress.start(if opts.quick { 0 } else { total });
    let verdicts: Vec<(SuperchunkRow, Verdict)> = supers
        .par_iter()
        .map(|sc| {
            let rows = index.get(&sc.id.0).map(Vec::as_slice).unwrap_or(&[]);
            let v = if sc.extent.end() > dev_len {
                truncated(sc, rows, dev_len)
            } else if opts.quick {
                Verdict::default()
            } else {
                let v = verify(dev, sc, rows, &indexed);
                progress.advance(sc.extent.len);
                v
            };
            (*sc, v)
        })
        .collect();
    progress.finish();

    for (sc, v) in verdicts {
        report.superchunks_checked += 1;
        report.chunks_checked += v.chunks;
        report.bytes_checked += v.bytes;
        if let Some(d) = v.damaged_superchunk {
            report.damaged_superchunks.push(d);
            report.damaged_superchunk_ids.push(sc.id.0);
        }
        report.misplaced_chunks.extend(v.misplaced);
        // A header entry the index lacks is dead space when no list needs it (GC swept the
        // chunk and the superchunk is not repacked yet); it is lost data only when one does.
        report.unindexed_chunks.extend(
            v.unindexed
                .iter()
                .filter(|h| needed.contains(h))
                .map(|h| format!("chunk {h} in superchunk {}", sc.id.0)),
        );
        damage.extend(v.damage);
        if index.remove(&sc.id.0).is_none_or(|r| r.is_empty()) {
            report.orphan_superchunks.push(format!(
                "superchunk {} at {} holds no indexed chunk",
                sc.id.0, sc.extent.start
            ));
        }
    }
    damage.sort_by_key(|d| d.hash);
    damage.dedup_by_key(|d| d.hash);
    Ok(damage)
}

fn truncated(sc: &SuperchunkRow, rows: &[(ChunkHash, Location)], dev_len: u64) -> Verdict {
    let detail = format!(
        "superchunk {} at {}..{} lies past the end of the device ({} bytes)",
        sc.id.0,
        sc.extent.start,
        sc.extent.end(),
        dev_len
    );
    Verdict {
        damaged_superchunk: Some(detail.clone()),
        damage: rows
            .iter()
            .map(|(h, _)| Damage {
                hash: *h,
                superchunk: sc.id.0,
                problem: "missing",
                detail: detail.clone(),
            })
            .collect(),
        ..Verdict::default()
    }
}

/// Read one superchunk and check its header, payload and every chunk in it.
fn verify(
    dev: &dyn Device,
    sc: &SuperchunkRow,
    rows: &[(ChunkHash, Location)],
    indexed: &HashSet<ChunkHash>,
) -> Verdict {
    let mut v = Verdict {
        bytes: sc.extent.len,
        ..Verdict::default()
    };
    let mut bytes = vec![0u8; sc.extent.len as usize];
    if let Err(e) = dev.read_at(&mut bytes, sc.extent.start) {
        v.damaged_superchunk = Some(format!("superchunk {}: device read failed: {e}", sc.id.0));
        for (h, _) in rows {
            v.damage.push(Damage {
                hash: *h,
                superchunk: sc.id.0,
                problem: "missing",
                detail: format!("read error: {e}"),
            });
        }
        return v;
    }
    let header = match superchunk::decode_header(&bytes) {
        Ok(h) if h.id == sc.id => Some(h),
        Ok(h) => {
            v.damaged_superchunk = Some(format!(
                "superchunk {} holds the header of superchunk {}",
                sc.id.0, h.id.0
            ));
            None
        }
        Err(e) => {
            v.damaged_superchunk = Some(format!(
                "superchunk {} at {}: {e}",
                sc.id.0, sc.extent.start
            ));
            None
        }
    };
    if let Some(h) = &header {
        if let Err(e) = superchunk::verify_payload(h, &bytes) {
            v.damaged_superchunk = Some(format!(
                "superchunk {} at {}: {e}",
                sc.id.0, sc.extent.start
            ));
        }
        for e in &h.entries {
            if !indexed.contains(&e.hash) {
                v.unindexed.push(e.hash);
            }
        }
    }
    // Each indexed chunk is checked where the index says it is: the header may be damaged
    // while the chunks are fine, and the index is what reads follow.
    for (hash, loc) in rows {
        v.chunks += 1;
        let entry = ChunkEntry {
            hash: *hash,
            offset: loc.offset,
            stored_len: loc.stored_len,
            raw_len: loc.raw_len,
            codec: loc.codec,
        };
        if let Some(h) = &header {
            match h.entry(hash) {
                Some(he) if *he == entry => {}
                Some(he) => v.misplaced.push(format!(
                    "chunk {hash}: index says offset {} length {}, superchunk {} header says offset {} length {}",
                    loc.offset, loc.stored_len, sc.id.0, he.offset, he.stored_len
                )),
                None => v.misplaced.push(format!("chunk {hash}: superchunk {} header does not list it", sc.id.0)),
            }
        }
        if let Err(detail) = verify_chunk(&bytes, &entry) {
            v.damage.push(Damage {
                hash: *hash,
                superchunk: sc.id.0,
                problem: "corrupt",
                detail,
            });
        }
    }
    v
}

fn verify_chunk(bytes: &[u8], e: &ChunkEntry) -> std::result::Result<(), String> {
    let start = e.offset as usize;
    let stored = bytes
        .get(start..start + e.stored_len as usize)
        .ok_or_else(|| {
            format!(
                "offset {} length {} lies outside its superchunk",
                e.offset, e.stored_len
            )
        })?;
    let plain =
        superchunk::decompress_chunk(e.codec, stored, e.raw_len).map_err(|err| err.to_string())?;
    if ChunkHash::of(&plain) != e.hash {
        return Err("its bytes do not match its BLAKE3 name".into());
    }
    Ok(())
}

/// Headers of the indexed superchunks, for repairs that rebuild index rows.
pub(crate) fn read_headers(
    conn: &Connection,
    dev: &dyn Device,
) -> Result<Vec<(SuperchunkRow, Header, Vec<u8>)>> {
    let supers = meta::chunks::superchunks(conn)?;
    let dev_len = dev.len()?;
    Ok(supers
        .par_iter()
        .filter(|sc| sc.extent.end() <= dev_len)
        .filter_map(|sc| {
            let mut bytes = vec![0u8; sc.extent.len as usize];
            dev.read_at(&mut bytes, sc.extent.start).ok()?;
            let h = superchunk::decode_header(&bytes).ok()?;
            Some((*sc, h, bytes))
        })
        .collect())
}

/// Does the chunk at `e` in these superchunk bytes read back as its name says?
pub(crate) fn chunk_is_good(bytes: &[u8], e: &ChunkEntry) -> bool {
    verify_chunk(bytes, e).is_ok()
}
